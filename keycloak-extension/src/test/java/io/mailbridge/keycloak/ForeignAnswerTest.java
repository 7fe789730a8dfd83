package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.keycloak.email.EmailException;

/**
 * Answers that did not come from the service: a wrong URL, a maintenance page, a proxy's error. Only
 * the service's own answers count as "stored" (a message id) or "not stored" (its 503 problem);
 * anything else may have come after the service stored the email, so it is neither a success nor
 * a reason to send the email by SMTP. Every test runs with {@code fallback=smtp}.
 */
class ForeignAnswerTest {

    private FakeMailbridge service;
    private KeycloakFixture keycloak;

    @BeforeEach
    void start() throws Exception {
        service = new FakeMailbridge();
        keycloak = new KeycloakFixture().service(service.url(), java.time.Duration.ofSeconds(5),
                MailbridgeOptions.Fallback.SMTP);
    }

    @AfterEach
    void stop() {
        service.close();
    }

    @Test
    void anHtmlPageAnsweredWith200IsNotADelivery() throws Exception {
        service.answer(200, "text/html; charset=utf-8", "<html><body>Down for maintenance</body></html>");

        EmailException e = assertThrows(EmailException.class, this::send);

        assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
        assertTrue(e.getMessage().contains(service.url().toString()), "names the URL: " + e.getMessage());
        assertTrue(e.getMessage().contains("text/html"), "names the content type: " + e.getMessage());
        assertTrue(e.getMessage().contains("200"), "names the status: " + e.getMessage());
        assertEquals(2, service.requests().size(), "retried once with the same key, like any unknown outcome");
        assertTrue(keycloak.smtp.sent.isEmpty(), "nothing proves the email was not stored: SMTP could send it twice");
    }

    @Test
    void aJsonSuccessWithoutAMessageIdIsNotADelivery() throws Exception {
        service.answer(202, "application/json", "{\"ok\":true}");

        EmailException e = assertThrows(EmailException.class, this::send);

        assertTrue(e.getMessage().contains("no message id"), e.getMessage());
        assertTrue(keycloak.smtp.sent.isEmpty());
    }

    @Test
    void aProxys503IsMaybeStoredAndNeverFallsBack() throws Exception {
        // Envoy's answer when the service's connection ends before its answer: it may have committed.
        service.answer(503, "text/plain",
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination");

        EmailException e = assertThrows(EmailException.class, this::send);

        assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
        assertTrue(e.getMessage().contains("503"), e.getMessage());
        assertEquals(2, service.requests().size(), "retried once with the same key");
        assertTrue(keycloak.smtp.sent.isEmpty(), "a proxy's 503 went to SMTP: the user may get the email twice");
    }

    @Test
    void theServicesOwn503IsNotStoredAndFallsBack() throws Exception {
        // As service/src/api/error.rs answers when the store did not take the message.
        service.answer(503, "application/problem+json", "{\"type\":\"https://mailbridge.dev/problems/503\","
                + "\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"the queue store did not answer\"}");

        send();

        assertEquals(1, service.requests().size(), "the service said not stored: no retry");
        assertEquals(1, keycloak.smtp.sent.size());
    }

    private void send() throws EmailException {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
    }
}
