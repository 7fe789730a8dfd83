package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.keycloak.email.EmailException;

/**
 * An answer whose head came but whose body never completes, or never ends, is bounded like an
 * answer that never came: the send ends within the timeouts, the email counts as maybe stored (one
 * retry with the same key, never SMTP), and the connection is closed rather than left to hang.
 */
class UnfinishedAnswerTest {

    private static final Duration TIMEOUT = Duration.ofSeconds(1);
    /** Liveness bound of a whole send, generous for a busy machine: two attempts of one second each. */
    private static final Duration BOUND = Duration.ofSeconds(10);

    private final KeycloakFixture keycloak = new KeycloakFixture();

    @Test
    void aBodyThatStallsAfterTheHeadEndsTheSendWithinTheTimeouts() throws Exception {
        try (StallingService stalling = StallingService.afterTheFirstByte()) {
            keycloak.service(stalling.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);

            EmailException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(EmailException.class, this::send));

            assertMaybeStoredAndRetriedOnce(e, stalling);
        }
    }

    @Test
    void aChunkedBodyThatNeverEndsEndsTheSendWithinTheTimeouts() throws Exception {
        try (StallingService stalling = StallingService.chunkedForever()) {
            keycloak.service(stalling.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);

            EmailException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(EmailException.class, this::send));

            assertMaybeStoredAndRetriedOnce(e, stalling);
        }
    }

    @Test
    void anAnswerOverTheSizeBoundIsNotReadNorTakenAsAcceptance() throws Exception {
        try (FakeMailbridge service = new FakeMailbridge()) {
            // Valid JSON with an id, but 1 MiB of it: the extension must not hold that in memory.
            String padding = " ".repeat(1 << 20);
            service.answer(202, "application/json",
                    "{\"id\":\"0b7c4a52-6f55-4d0c-a2d4-3d1f0f2f6a11\",\"status\":\"queued\"," + padding + "\"pad\":1}");
            keycloak.service(service.url(), Duration.ofSeconds(5), MailbridgeOptions.Fallback.SMTP);

            EmailException e = assertTimeoutPreemptively(Duration.ofSeconds(30),
                    () -> assertThrows(EmailException.class, this::send));

            assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
            assertTrue(e.getMessage().contains("64 KiB"), e.getMessage());
            assertEquals(2, service.requests().size(), "retried once with the same key");
            assertTrue(keycloak.smtp.sent.isEmpty(), "the service may hold the email: SMTP would send it twice");
        }
    }

    private void assertMaybeStoredAndRetriedOnce(EmailException e, StallingService stalling) throws Exception {
        assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
        List<DroppingService.Request> requests = stalling.requests();
        assertEquals(2, requests.size(), "one retry after the unfinished answer");
        assertEquals(requests.get(0).header("Idempotency-Key"), requests.get(1).header("Idempotency-Key"));
        assertTrue(keycloak.smtp.sent.isEmpty(), "the service may hold the email: SMTP would send it twice");
        assertTimeoutPreemptively(BOUND, () -> {
            while (stalling.released() < 2) {
                Thread.sleep(50);
            }
        }, "a connection with an unfinished answer was left open");
    }

    private void send() throws EmailException {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
    }
}
