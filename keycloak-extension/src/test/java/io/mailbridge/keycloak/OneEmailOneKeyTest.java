package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.keycloak.email.EmailException;

/**
 * One email, one idempotency key: a POST whose fate is unknown is sent once more with the same key,
 * and the SMTP fallback is used only when the service cannot have stored the email. Every test runs
 * with {@code fallback=smtp}, so a duplicate would show as an email in {@code keycloak.smtp}.
 */
class OneEmailOneKeyTest {

    /** Ample for a prompt answer on a busy machine: only the late answers below time out. */
    private static final Duration TIMEOUT = Duration.ofSeconds(5);
    /** The timeout of the tests about timeouts; the late answers come long after it. */
    private static final Duration SHORT = Duration.ofMillis(1500);
    private static final Duration LATE = Duration.ofSeconds(15);
    /** Liveness bound of a whole send: two attempts within their timeout each, with a margin. */
    private static final Duration BOUND = Duration.ofSeconds(30);

    private FakeMailbridge service;
    private KeycloakFixture keycloak;

    @BeforeEach
    void start() throws Exception {
        service = new FakeMailbridge();
        keycloak = new KeycloakFixture().service(service.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);
    }

    @AfterEach
    void stop() {
        service.close();
    }

    @Test
    void aPostThatTimedOutIsSentOnceMoreWithTheSameKey() throws Exception {
        keycloak.service(service.url(), SHORT, MailbridgeOptions.Fallback.SMTP);
        service.answerLate(LATE);

        assertTimeoutPreemptively(BOUND, this::send);

        assertEquals(2, service.requests().size(), "one retry after the timeout");
        String key = sameKeyInHeaderAndField(service.requests());
        assertTrue(key.startsWith("kc-"), key);
        assertTrue(keycloak.smtp.sent.isEmpty(), "the email also went by SMTP after a timeout");
    }

    @Test
    void aServiceThatIsAlwaysTooSlowFailsTheSendButNeverFallsBack() throws Exception {
        keycloak.service(service.url(), SHORT, MailbridgeOptions.Fallback.SMTP);
        service.answerLate(LATE, LATE, LATE);

        EmailException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(EmailException.class, this::send));

        assertEquals(2, service.requests().size(), "exactly one retry");
        sameKeyInHeaderAndField(service.requests());
        assertTrue(keycloak.smtp.sent.isEmpty(), "the service may hold the email: SMTP would send it twice");
        assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
        assertTrue(e.getMessage().contains(SHORT.toMillis() + " ms"), e.getMessage());
    }

    @Test
    void aClosedPortFallsBackToSmtp() throws Exception {
        keycloak.service(closedPort(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);

        send();

        assertEquals(1, keycloak.smtp.sent.size());
    }

    @Test
    void anUnknownHostFallsBackToSmtp() throws Exception {
        // RFC 6761: .invalid never resolves.
        keycloak.service(URI.create("http://mailbridge.invalid:8090"), TIMEOUT, MailbridgeOptions.Fallback.SMTP);

        send();

        assertEquals(1, keycloak.smtp.sent.size());
    }

    @Test
    void aServiceStoppedAfterAnEarlierEmailFallsBackToSmtp() throws Exception {
        // The earlier email leaves a pooled connection; the service's stop closes it, so the next
        // email finds the port closed rather than a broken connection of unknown fate.
        send();
        service.close();

        send();

        assertEquals(1, service.requests().size());
        assertEquals(1, keycloak.smtp.sent.size());
    }

    @Test
    void aConnectTimeoutFallsBackToSmtp() throws Exception {
        // The JDK's connect timeout is a kind of HttpTimeoutException, yet nothing was sent.
        try (ServerSocket listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            List<Socket> queued = fillAcceptQueue(listener);
            keycloak.service(URI.create("http://127.0.0.1:" + listener.getLocalPort()), SHORT, MailbridgeOptions.Fallback.SMTP);

            assertTimeoutPreemptively(BOUND, this::send);

            assertEquals(1, keycloak.smtp.sent.size());
            for (Socket socket : queued) {
                socket.close();
            }
        }
    }

    @Test
    void aStoreThatIsDownFallsBackWithoutARetry() throws Exception {
        service.answer(503, "application/problem+json", "{\"status\":503,\"detail\":\"the queue store did not answer\"}");

        send();

        assertEquals(1, service.requests().size(), "a 503 means not stored: no retry needed");
        assertEquals(1, keycloak.smtp.sent.size());
    }

    @Test
    void aConnectionLostAfterTheRequestIsRetriedWithTheSameKeyAndNeverFallsBack() throws Exception {
        try (DroppingService dropping = DroppingService.afterEachRequest()) {
            keycloak.service(dropping.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);

            EmailException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(EmailException.class, this::send));

            List<DroppingService.Request> requests = dropping.requests();
            assertEquals(2, requests.size(), "one retry after the lost connection");
            assertEquals(requests.get(0).header("Idempotency-Key"), requests.get(1).header("Idempotency-Key"));
            assertTrue(requests.get(1).body().contains(requests.get(0).header("Idempotency-Key")));
            assertTrue(keycloak.smtp.sent.isEmpty(), "the service may hold the email: SMTP would send it twice");
            assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
        }
    }

    @Test
    void aRetryThatFindsThePortClosedStillNeverFallsBack() throws Exception {
        // The first request may be stored although the service is gone by the time of the retry.
        try (DroppingService dropping = DroppingService.thenGone()) {
            keycloak.service(dropping.url(), TIMEOUT, MailbridgeOptions.Fallback.SMTP);

            EmailException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(EmailException.class, this::send));

            assertEquals(1, dropping.requests().size());
            assertTrue(keycloak.smtp.sent.isEmpty(), "the service may hold the email: SMTP would send it twice");
            assertTrue(e.getMessage().contains("did not confirm"), e.getMessage());
        }
    }

    @Test
    void aRefusalIsNeitherRetriedNorSentBySmtp() throws Exception {
        service.answer(422, "application/problem+json",
                "{\"title\":\"Unprocessable\",\"status\":422,\"detail\":\"`to[0].email`: not an address\"}");

        EmailException e = assertThrows(EmailException.class, this::send);

        assertTrue(e.getMessage().contains("`to[0].email`: not an address"), e.getMessage());
        assertEquals(1, service.requests().size(), "a refusal was retried");
        assertTrue(keycloak.smtp.sent.isEmpty());
    }

    @Test
    void aBadGatewayIsRetriedWithTheSameKeyAndNeverFallsBack() throws Exception {
        // A proxy's 502 may come after the service stored the email and then lost the connection.
        service.answer(502, "text/html", "<html>502 Bad Gateway</html>");

        assertThrows(EmailException.class, this::send);

        assertEquals(2, service.requests().size());
        sameKeyInHeaderAndField(service.requests());
        assertTrue(keycloak.smtp.sent.isEmpty(), "a 502 went to SMTP");
    }

    @Test
    void theKeyIsKeptForTheRetryAndNewForTheNextEmail() throws Exception {
        keycloak.service(service.url(), SHORT, MailbridgeOptions.Fallback.SMTP);
        service.answerLate(LATE);
        assertTimeoutPreemptively(BOUND, this::send);
        send();

        List<FakeMailbridge.Request> requests = service.requests();
        assertEquals(3, requests.size());
        String first = sameKeyInHeaderAndField(requests.subList(0, 2));
        assertNotEquals(first, requests.get(2).header("Idempotency-Key"), "two emails shared a key");
    }

    @Test
    void theTestEmailIsRetriedWithTheSameKeyAfterATimeout() throws Exception {
        keycloak.service(service.url(), SHORT, MailbridgeOptions.Fallback.SMTP);
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.of("email-test", Map.of(), "en", "acme"));
        service.answer(200, "application/json", "{\"id\":\"0b7c4a52-6f55-4d0c-a2d4-3d1f0f2f6a11\",\"status\":\"sent\"}");
        service.answerLate(LATE);

        assertTimeoutPreemptively(BOUND, this::send);

        assertEquals(2, service.requests().size());
        sameKeyInHeaderAndField(service.requests());
        service.requests().forEach(request -> assertEquals("wait=true", request.query()));
        assertTrue(keycloak.smtp.sent.isEmpty());
    }

    @Test
    void theTestEmailFailsWhenTheRetryFindsItNotYetDelivered() throws Exception {
        keycloak.service(service.url(), SHORT, MailbridgeOptions.Fallback.SMTP);
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.of("email-test", Map.of(), "en", "acme"));
        // The service's answer to a repeated key: the first message and its status.
        service.answer(200, "application/json", "{\"id\":\"0b7c4a52-6f55-4d0c-a2d4-3d1f0f2f6a11\",\"status\":\"retrying\"}");
        service.answerLate(LATE);

        EmailException e = assertTimeoutPreemptively(BOUND, () -> assertThrows(EmailException.class, this::send));

        assertTrue(e.getMessage().contains("retrying"), e.getMessage());
        assertTrue(e.getMessage().contains("0b7c4a52-6f55-4d0c-a2d4-3d1f0f2f6a11"), e.getMessage());
        assertTrue(keycloak.smtp.sent.isEmpty());
    }

    @Test
    void theTestEmailNeverFallsBackEvenWhenTheStoreIsDown() throws Exception {
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.of("email-test", Map.of(), "en", "acme"));
        service.answer(503, "application/problem+json", "{\"status\":503,\"detail\":\"the queue store did not answer\"}");

        EmailException e = assertThrows(EmailException.class, this::send);

        assertTrue(e.getMessage().contains("the queue store did not answer"), e.getMessage());
        assertEquals(1, service.requests().size());
        assertTrue(keycloak.smtp.sent.isEmpty());
    }

    private void send() throws EmailException {
        keycloak.sender().send(KeycloakFixture.smtpConfig(), "ada@example.com", "Hello", "plain", null);
    }

    /** Asserts that every request carries one key, as header and as body field, and returns it. */
    private static String sameKeyInHeaderAndField(List<FakeMailbridge.Request> requests) throws Exception {
        String key = requests.get(0).header("Idempotency-Key");
        for (FakeMailbridge.Request request : requests) {
            assertEquals(key, request.header("Idempotency-Key"), "the retry has another key");
            assertEquals(key, request.json().get("idempotency_key").asText(), "the body's key differs");
        }
        return key;
    }

    /**
     * Connects to a listener that never accepts until Linux drops further SYNs (its accept queue is
     * full), so that the next connect attempt times out.
     */
    private static List<Socket> fillAcceptQueue(ServerSocket listener) throws Exception {
        List<Socket> queued = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            Socket socket = new Socket();
            try {
                socket.connect(listener.getLocalSocketAddress(), 300);
                queued.add(socket);
            } catch (SocketTimeoutException e) {
                socket.close();
                return queued;
            }
        }
        throw new AssertionError("the accept queue never filled up");
    }

    private static URI closedPort() throws Exception {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return URI.create("http://127.0.0.1:" + socket.getLocalPort());
        }
    }
}
