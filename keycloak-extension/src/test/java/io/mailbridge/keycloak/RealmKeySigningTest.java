package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
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
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.keycloak.crypto.AsymmetricSignatureSignerContext;
import org.keycloak.crypto.KeyUse;
import org.keycloak.crypto.KeyWrapper;
import org.keycloak.crypto.SignatureProvider;
import org.keycloak.email.EmailException;
import org.keycloak.models.KeyManager;
import org.keycloak.models.KeycloakUriInfo;
import org.keycloak.urls.UrlType;

/** signing=realm-key: the token is signed with the realm's active key and names it by kid. */
class RealmKeySigningTest {

    private FakeMailbridge service;
    private KeycloakFixture keycloak;
    private KeyPair pair;
    private final KeyManager keys = mock(KeyManager.class);

    @BeforeEach
    void start() throws Exception {
        service = new FakeMailbridge();
        keycloak = new KeycloakFixture();
        pair = KeyPairGenerator.getInstance("RSA").generateKeyPair();
        KeyWrapper key = new KeyWrapper();
        key.setKid("realm-key-1");
        key.setAlgorithm("RS256");
        key.setType("RSA");
        key.setUse(KeyUse.SIG);
        key.setPrivateKey(pair.getPrivate());
        key.setPublicKey(pair.getPublic());
        SignatureProvider rs256 = mock(SignatureProvider.class);
        when(rs256.signer(any(KeyWrapper.class))).thenAnswer(call -> new AsymmetricSignatureSignerContext(call.getArgument(0)));
        when(keycloak.session.keys()).thenReturn(keys);
        when(keys.getActiveKey(keycloak.realm, KeyUse.SIG, "RS256")).thenReturn(key);
        when(keycloak.session.getProvider(SignatureProvider.class, "RS256")).thenReturn(rs256);
        KeycloakUriInfo frontend = mock(KeycloakUriInfo.class);
        when(frontend.getBaseUri()).thenReturn(URI.create("https://sso.acme.example/"));
        when(keycloak.context.getUri(UrlType.FRONTEND)).thenReturn(frontend);
        keycloak.service(service.url(), Duration.ofSeconds(5), MailbridgeOptions.Fallback.NONE);
    }

    @AfterEach
    void stop() {
        service.close();
    }

    @Test
    void aRealmSettingSwitchesToTheRealmsKey() throws Exception {
        Map<String, String> config = KeycloakFixture.smtpConfig();
        config.put(Signing.REALM_SETTING, "realm-key");
        keycloak.sender().send(config, "ada@example.com", "Hello", "plain", "<p>html</p>");

        String token = service.only().header("Authorization").substring("Bearer ".length());
        String[] parts = token.split("\\.");
        ObjectMapper json = new ObjectMapper();
        JsonNode header = json.readTree(Base64.getUrlDecoder().decode(parts[0]));
        assertEquals("RS256", header.get("alg").asText());
        assertEquals("realm-key-1", header.get("kid").asText());
        Signature rsa = Signature.getInstance("SHA256withRSA");
        rsa.initVerify(pair.getPublic());
        rsa.update((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
        assertTrue(rsa.verify(Base64.getUrlDecoder().decode(parts[2])), "signed with the realm's private key");
        JsonNode claims = json.readTree(Base64.getUrlDecoder().decode(parts[1]));
        assertEquals("https://sso.acme.example/realms/acme", claims.get("iss").asText());
        assertEquals("mailbridge", claims.get("aud").asText());
        assertEquals("acme", claims.get("tenant").asText());
        assertEquals(TokenSigner.LIFETIME_SECONDS, claims.get("exp").asLong() - claims.get("iat").asLong());
        assertFalse(claims.has("typ"), "not mistaken for one of Keycloak's own tokens");
    }

    @Test
    void withoutTheRealmSettingTheSharedSecretSigns() throws Exception {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", "<p>html</p>");
        String token = service.only().header("Authorization").substring("Bearer ".length());
        assertEquals("acme", Jwt.verify(token, KeycloakFixture.SECRET).get("tenant").asText());
    }

    @Test
    void aRealmWithoutAnActiveKeyFailsClearly() {
        when(keys.getActiveKey(keycloak.realm, KeyUse.SIG, "RS256")).thenReturn(null);
        keycloak.factory.signing(Signing.REALM_KEY, Clock.systemUTC());
        keycloak.service(service.url(), Duration.ofSeconds(5), MailbridgeOptions.Fallback.NONE);
        EmailException e = assertThrows(EmailException.class,
                () -> keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", "<p>html</p>"));
        assertTrue(e.getMessage().contains("no active RS256, ES256, EdDSA signing key"), e.getMessage());
        assertEquals(0, service.requests().size(), "nothing unsigned was sent");
    }

    @Test
    void aRealmWhoseDefaultAlgorithmTheServiceDoesNotVerifySignsWithItsRs256Key() throws Exception {
        when(keycloak.realm.getDefaultSignatureAlgorithm()).thenReturn("PS256");
        Map<String, String> config = KeycloakFixture.smtpConfig();
        config.put(Signing.REALM_SETTING, "realm-key");
        keycloak.sender().send(config, "ada@example.com", "Hello", "plain", "<p>html</p>");
        String token = service.only().header("Authorization").substring("Bearer ".length());
        JsonNode header = new ObjectMapper().readTree(Base64.getUrlDecoder().decode(token.split("\\.")[0]));
        assertEquals("RS256", header.get("alg").asText());
        assertEquals("realm-key-1", header.get("kid").asText());
    }

    @Test
    void signingOptionValues() {
        assertEquals(Signing.SECRET, Signing.parse(null));
        assertEquals(Signing.REALM_KEY, Signing.parse(" Realm-Key "));
        assertThrows(IllegalArgumentException.class, () -> Signing.parse("realmkey"));
    }
}
