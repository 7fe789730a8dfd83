package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.Mockito.doReturn;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.when;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.time.Clock;
import java.time.Duration;
import java.util.Base64;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.keycloak.crypto.AsymmetricSignatureSignerContext;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.SignatureProvider;
import org.keycloak.email.EmailException;
import org.keycloak.models.KeyManager;
import org.keycloak.models.KeycloakUriInfo;
import org.keycloak.models.RealmProvider;
import org.keycloak.urls.UrlType;

/**
 * signing=realm-key outside an HTTP request (a scheduled task, an event listener on another thread): the
 * token's {@code iss} is still the realm's issuer URL, which the service compares with the tenant's
 * {@code issuer}, or the send fails saying what to set; a token the service would refuse is never sent.
 */
class RealmIssuerTest {

    private static KeyPair pair;

    private FakeMailbridge service;
    private KeycloakFixture keycloak;

    @BeforeAll
    static void realmKey() throws Exception {
        pair = KeyPairGenerator.getInstance("RSA").generateKeyPair();
    }

    @BeforeEach
    void start() throws Exception {
        service = new FakeMailbridge();
        keycloak = new KeycloakFixture();
        KeyWrapper key = new KeyWrapper();
        key.setKid("realm-key-1");
        key.setAlgorithm("RS256");
        key.setType("RSA");
        key.setUse(KeyUse.SIG);
        key.setPrivateKey(pair.getPrivate());
        key.setPublicKey(pair.getPublic());
        SignatureProvider rs256 = mock(SignatureProvider.class);
        when(rs256.signer(any(KeyWrapper.class))).thenAnswer(call -> new AsymmetricSignatureSignerContext(call.getArgument(0)));
        KeyManager keys = mock(KeyManager.class);
        when(keycloak.session.keys()).thenReturn(keys);
        when(keys.getActiveKey(keycloak.realm, KeyUse.SIG, "RS256")).thenReturn(key);
        when(keycloak.session.getProvider(SignatureProvider.class, "RS256")).thenReturn(rs256);
        // No HTTP request behind the session: Keycloak's context has no URL to give.
        when(keycloak.context.getUri(any(UrlType.class))).thenThrow(new NullPointerException("no HTTP request"));
        when(keycloak.context.getUri()).thenThrow(new NullPointerException("no HTTP request"));
        keycloak.factory.signing(Signing.REALM_KEY, Clock.systemUTC());
    }

    @AfterEach
    void stop() {
        service.close();
    }

    @Test
    void outsideARequestTheRealmsFrontendUrlNamesTheRealm() throws Exception {
        when(keycloak.realm.getAttribute(RealmIssuer.FRONTEND_URL)).thenReturn("https://login.acme.example/auth/");
        configure(null);
        send();
        assertEquals("https://login.acme.example/auth/realms/acme", issuerOfTheOnlyRequest());
    }

    @Test
    void outsideARequestTheIssuerBaseUrlOptionNamesTheRealm() throws Exception {
        configure("https://sso.acme.example/");
        send();
        assertEquals("https://sso.acme.example/realms/acme", issuerOfTheOnlyRequest());
    }

    @Test
    void outsideARequestKeycloaksHostnameNamesTheRealmWhenItIsAUrl() throws Exception {
        keycloak.factory.keycloakHostname("https://sso.acme.example:443/kc");
        configure(null);
        send();
        assertEquals("https://sso.acme.example/kc/realms/acme", issuerOfTheOnlyRequest());
    }

    @Test
    void outsideARequestWithNoUrlKnownTheSendFailsNamingTheOptionAndNothingIsSent() {
        // A bare host name says nothing of the scheme, port or path.
        keycloak.factory.keycloakHostname("sso.acme.example");
        when(keycloak.realm.getAttribute(RealmIssuer.FRONTEND_URL)).thenReturn("not a url");
        configure(null);
        EmailException e = assertThrows(EmailException.class, this::send);
        assertTrue(e.getMessage().contains("--spi-email-sender--mailbridge--issuer-base-url")
                && e.getMessage().contains("KC_SPI_EMAIL_SENDER__MAILBRIDGE__ISSUER_BASE_URL")
                && e.getMessage().contains("realm acme"), e.getMessage());
        assertEquals(0, service.requests().size(), "a token the service refuses was sent");
    }

    @Test
    void aTaskWithoutTheRealmInItsContextFindsItByTheEmailsRealm() throws Exception {
        when(keycloak.context.getRealm()).thenReturn(null);
        RealmProvider realms = mock(RealmProvider.class);
        when(keycloak.session.realms()).thenReturn(realms);
        when(realms.getRealmByName("acme")).thenReturn(keycloak.realm);
        when(keycloak.realm.getAttribute(RealmIssuer.FRONTEND_URL)).thenReturn("https://login.acme.example");
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.of("event-login_error", Map.of(), "en", "acme"));
        configure("https://sso.acme.example");
        send();
        assertEquals("https://login.acme.example/realms/acme", issuerOfTheOnlyRequest(), "the realm's own URL comes first");
    }

    @Test
    void inARequestItsFrontendUrlNamesTheRealmBeforeTheOption() throws Exception {
        KeycloakUriInfo frontend = mock(KeycloakUriInfo.class);
        when(frontend.getBaseUri()).thenReturn(URI.create("https://sso.acme.example:8443/"));
        doReturn(frontend).when(keycloak.context).getUri(UrlType.FRONTEND);
        configure("https://elsewhere.example");
        send();
        assertEquals("https://sso.acme.example:8443/realms/acme", issuerOfTheOnlyRequest());
    }

    @Test
    void aRealmNameIsOnePathSegmentOfTheIssuer() {
        assertEquals("https://sso.example/realms/the%20acme%2Fm%C3%BCnchen",
                RealmIssuer.issuer(URI.create("https://sso.example//"), "the acme/münchen"));
        assertEquals("http://[::1]:8080/realms/acme", RealmIssuer.issuer(URI.create("http://[::1]:8080"), "acme"));
        assertEquals("http://sso.example/realms/acme", RealmIssuer.issuer(URI.create("http://sso.example:80"), "acme"));
        assertNull(RealmIssuer.hostnameUrl("sso.example"));
        assertNull(RealmIssuer.hostnameUrl(null));
    }

    private void configure(String issuerBaseUrl) {
        keycloak.service(MailbridgeOptions.read(option -> switch (option) {
            case "url" -> service.url().toString();
            case "secret" -> KeycloakFixture.SECRET;
            case "issuerBaseUrl" -> issuerBaseUrl;
            default -> null;
        }));
    }

    private void send() throws EmailException {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", "<p>html</p>");
    }

    /** The {@code iss} of the one request's token, after checking it is signed with the realm's key. */
    private String issuerOfTheOnlyRequest() throws Exception {
        String[] parts = service.only().header("Authorization").substring("Bearer ".length()).split("\\.");
        Signature rsa = Signature.getInstance("SHA256withRSA");
        rsa.initVerify(pair.getPublic());
        rsa.update((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
        assertTrue(rsa.verify(Base64.getUrlDecoder().decode(parts[2])), "signed with the realm's private key");
        JsonNode claims = new ObjectMapper().readTree(Base64.getUrlDecoder().decode(parts[1]));
        assertEquals("acme", claims.get("tenant").asText());
        return claims.get("iss").asText();
    }
}
