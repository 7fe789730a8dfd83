package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.context.Scope;
import java.net.ServerSocket;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.keycloak.email.EmailException;

class MailbridgeEmailSenderProviderTest {

    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    private FakeMailbridge service;
    private KeycloakFixture keycloak;

    @BeforeEach
    void start() throws Exception {
        service = new FakeMailbridge();
        keycloak = new KeycloakFixture().service(service.url(), TIMEOUT, MailbridgeOptions.Fallback.NONE);
    }

    @AfterEach
    void stop() {
        service.close();
    }

    @Test
    void postsTheRealmsAddressesAndTheRenderedEmail() throws Exception {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", "<p>html</p>");

        FakeMailbridge.Request request = service.only();
        assertEquals("POST", request.method());
        assertEquals("/v1/messages", request.path());
        assertNull(request.query(), "a normal email does not wait for delivery");
        assertTrue(request.header("Content-Type").startsWith("application/json"));
        JsonNode json = request.json();
        assertEquals("acme", json.get("tenant").asText());
        assertEquals("[{\"email\":\"ada@example.com\"}]", json.get("to").toString());
        assertEquals("{\"email\":\"no-reply@acme.example\",\"name\":\"ACME\"}", json.get("from").toString());
        assertEquals("{\"email\":\"support@acme.example\",\"name\":\"ACME Support\"}", json.get("reply_to").toString());
        assertEquals("bounces@acme.example", json.get("envelope_from").asText());
        assertEquals("Hello", json.get("subject").asText());
        assertEquals("plain", json.get("text").asText());
        assertEquals("<p>html</p>", json.get("html").asText());
        assertEquals("[\"keycloak\"]", json.get("tags").toString());
        assertEquals("{\"realm\":\"acme\"}", json.get("metadata").toString());
        assertFalse(json.has("template"), "no template without the template provider");
    }

    @Test
    void neverForwardsTheSmtpPasswordOrClientSecret() throws Exception {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", "<p>html</p>");

        FakeMailbridge.Request request = service.only();
        String everything = request.body() + request.headers();
        assertFalse(everything.contains("smtp-password-hunter2"), "SMTP password left Keycloak");
        assertFalse(everything.contains("client-secret-s3cr3t"), "token client secret left Keycloak");
        assertFalse(everything.contains("smtp-user"), "SMTP user name left Keycloak");
        assertFalse(everything.contains(KeycloakFixture.SECRET), "the shared secret itself was sent");
    }

    @Test
    void signsEachRequestWithAShortLivedTokenForTheRealm() throws Exception {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);

        List<FakeMailbridge.Request> requests = service.requests();
        String first = bearer(requests.get(0));
        JsonNode claims = Jwt.verify(first, KeycloakFixture.SECRET);
        assertEquals("mailbridge", claims.get("aud").asText());
        assertEquals("acme", claims.get("tenant").asText());
        assertEquals("https://sso.acme.example/realms/acme", claims.get("iss").asText());
        long lifetime = claims.get("exp").asLong() - claims.get("iat").asLong();
        assertTrue(lifetime > 0 && lifetime <= 600, "token lifetime " + lifetime + " s");
        JsonNode second = Jwt.verify(bearer(requests.get(1)), KeycloakFixture.SECRET);
        assertNotEquals(claims.get("jti").asText(), second.get("jti").asText(), "a token is reused");
        assertThrows(AssertionError.class, () -> Jwt.verify(first, "another-secret"), "signature not checked");
    }

    @Test
    void sendsAFreshIdempotencyKeyAsHeaderAndField() throws Exception {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);

        FakeMailbridge.Request first = service.requests().get(0);
        FakeMailbridge.Request second = service.requests().get(1);
        assertEquals(first.header("Idempotency-Key"), first.json().get("idempotency_key").asText());
        assertTrue(first.header("Idempotency-Key").length() > 10);
        assertNotEquals(first.header("Idempotency-Key"), second.header("Idempotency-Key"));
    }

    @Test
    void aRefusalBecomesAnEmailExceptionWithTheServicesDetail() {
        service.answer(403, "application/problem+json",
                "{\"type\":\"about:blank\",\"title\":\"Forbidden\",\"status\":403,\"detail\":\"tenant acme is not allowed for this token\"}");

        EmailException e = assertThrows(EmailException.class,
                () -> keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null));
        assertTrue(e.getMessage().contains("tenant acme is not allowed for this token"), e.getMessage());
        assertTrue(e.getMessage().contains("403"), e.getMessage());
    }

    @Test
    void aSilentServiceFailsTheSendWithinTheTimeout() throws Exception {
        service.neverAnswer();
        keycloak.service(service.url(), Duration.ofMillis(300), MailbridgeOptions.Fallback.NONE);

        EmailException e = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> assertThrows(EmailException.class,
                () -> keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null)));
        assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
        assertTrue(keycloak.smtp.sent.isEmpty(), "fallback none must not use SMTP");
    }

    @Test
    void anUnreachableServiceFallsBackToSmtpWhenAsked() throws Exception {
        keycloak.service(closedPort(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);

        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", "<p>html</p>");

        assertEquals(1, keycloak.smtp.sent.size());
        RecordingSender.Sent sent = keycloak.smtp.sent.get(0);
        assertEquals("ada@example.com", sent.address());
        assertEquals("Hello", sent.subject());
        assertEquals("<p>html</p>", sent.html());
        assertEquals("smtp-password-hunter2", sent.config().get("password"), "SMTP needs the realm's own settings");
    }

    @Test
    void aServerErrorFallsBackToSmtpButARefusalDoesNot() throws Exception {
        keycloak.service(service.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);
        service.answer(503, "application/problem+json", "{\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"store down\"}");
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
        assertEquals(1, keycloak.smtp.sent.size());

        service.answer(422, "application/problem+json", "{\"title\":\"Unprocessable\",\"status\":422,\"detail\":\"no content\"}");
        assertThrows(EmailException.class,
                () -> keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null));
        assertEquals(1, keycloak.smtp.sent.size(), "a refusal went to SMTP");
    }

    @Test
    void theTestEmailNeverFallsBackAndReportsTheDeliveryOutcome() throws Exception {
        keycloak.service(service.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.of("email-test", Map.of(), "en", "acme"));
        service.answer(504, "application/problem+json",
                "{\"title\":\"Gateway Timeout\",\"status\":504,\"detail\":\"not delivered within 30s\"}");

        EmailException e = assertThrows(EmailException.class,
                () -> keycloak.sender().send(KeycloakFixture.smtpConfig(), "admin@acme.example", "Test", "plain", null));

        assertEquals("wait=true", service.only().query());
        assertTrue(e.getMessage().contains("not delivered within 30s"), e.getMessage());
        assertTrue(keycloak.smtp.sent.isEmpty(), "the test email went around mailbridge");
    }

    @Test
    void aProxys504IsNotTakenForTheTestEmailsDeliveryOutcome() throws Exception {
        keycloak.service(service.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.of("email-test", Map.of(), "en", "acme"));
        service.answer(504, "text/html", "<html>504 Gateway Time-out</html>");

        EmailException e = assertThrows(EmailException.class,
                () -> keycloak.sender().send(KeycloakFixture.smtpConfig(), "admin@acme.example", "Test", "plain", null));

        // Not mailbridge's verdict: the same request again (same key), then "may still be delivered".
        assertEquals(2, service.requests().size(), e.getMessage());
        assertTrue(keycloak.smtp.sent.isEmpty(), "the test email went around mailbridge");
    }

    @Test
    void withoutARealmInContextTheTemplatesRealmIsTheTenant() throws Exception {
        org.mockito.Mockito.when(keycloak.context.getRealm()).thenReturn(null);
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.of("event-login_error", Map.of(), null, "acme"));

        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);

        FakeMailbridge.Request request = service.only();
        assertEquals("acme", request.json().get("tenant").asText());
        assertEquals("acme", Jwt.verify(bearer(request), KeycloakFixture.SECRET).get("tenant").asText());
    }

    @Test
    void anUnreachableServiceFailsClearlyWithoutFallback() throws Exception {
        keycloak.service(closedPort(), TIMEOUT, MailbridgeOptions.Fallback.NONE);

        EmailException e = assertThrows(EmailException.class,
                () -> keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null));
        assertTrue(e.getMessage().contains("unreachable"), e.getMessage());
        assertTrue(keycloak.smtp.sent.isEmpty());
    }

    @Test
    void aRealmCanOverrideTheFallbackOption() throws Exception {
        keycloak.service(closedPort(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);
        Map<String, String> strict = KeycloakFixture.smtpConfig();
        strict.put("mailbridgeFallback", "none");
        assertThrows(EmailException.class,
                () -> keycloak.sender().send(strict, "ada@example.com", "Hello", "plain", null));
        assertTrue(keycloak.smtp.sent.isEmpty(), "a realm with mailbridgeFallback=none never falls back");

        keycloak.service(closedPort(), TIMEOUT, MailbridgeOptions.Fallback.NONE);
        Map<String, String> lenient = KeycloakFixture.smtpConfig();
        lenient.put("mailbridgeFallback", "smtp");
        keycloak.sender().send(lenient, "ada@example.com", "Hello", "plain", null);
        assertEquals(1, keycloak.smtp.sent.size(), "a realm with mailbridgeFallback=smtp falls back");
    }

    @Test
    void aRealmThatSwitchedMailbridgeOffKeepsItsSmtpSender() throws Exception {
        Map<String, String> config = KeycloakFixture.smtpConfig();
        config.put("mailbridge", "off");

        keycloak.sender().send(config, keycloak.user, "Hello", "plain", null);

        assertTrue(service.requests().isEmpty(), "the service saw an email of an opted-out realm");
        assertEquals(1, keycloak.smtp.sent.size());
    }

    @Test
    void passesKeycloaksCurrentTraceOnAsTraceparent() throws Exception {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
        assertNull(service.requests().get(0).header("traceparent"), "no span, no header");

        SpanContext context = SpanContext.create("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
                TraceFlags.getSampled(), TraceState.getDefault());
        try (Scope ignored = Span.wrap(context).makeCurrent()) {
            keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
        }
        assertEquals("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                service.requests().get(1).header("traceparent"));
    }

    @Test
    void sendingToAUserCarriesTheirLocale() throws Exception {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), keycloak.user, "Hallo", "plain", null);

        JsonNode json = service.only().json();
        assertEquals("de", json.get("locale").asText());
        assertEquals("ada@example.com", json.get("to").get(0).get("email").asText());
    }

    @Test
    void withoutAUrlTheSendFailsWithAHint() {
        keycloak.factory.configure(MailbridgeOptions.read(key -> null), java.time.Clock.systemUTC());

        EmailException e = assertThrows(EmailException.class,
                () -> keycloak.factory.create(keycloak.session).send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null));
        assertTrue(e.getMessage().contains("--spi-email-sender--mailbridge--url"), e.getMessage());
    }

    private static String bearer(FakeMailbridge.Request request) {
        String authorization = request.header("Authorization");
        assertTrue(authorization != null && authorization.startsWith("Bearer "), "no bearer token");
        return authorization.substring("Bearer ".length());
    }

    private static URI closedPort() throws Exception {
        try (ServerSocket socket = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return URI.create("http://127.0.0.1:" + socket.getLocalPort());
        }
    }
}
