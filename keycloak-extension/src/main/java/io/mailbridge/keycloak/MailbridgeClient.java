package io.mailbridge.keycloak;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.UnknownHostException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.channels.UnresolvedAddressException;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.keycloak.email.EmailException;

/** Posts one message to the service's {@code /v1/messages} and reads its answer. */
public final class MailbridgeClient {

    /** The service's answer to an accepted message. */
    public record Accepted(String id, String status, int httpStatus) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_DETAIL = 500;
    /** Longest answer read, in bytes: the service's answers are a few hundred; beyond, unreadable. */
    static final int MAX_ANSWER_BYTES = 64 * 1024;
    /**
     * Until an answer's head arrives the JDK's own timeouts are in charge, and only they tell a connect
     * timeout (nothing sent) from a late answer: how long past {@code timeout} to wait for their verdict.
     */
    private static final Duration HEAD_GRACE = Duration.ofSeconds(1);
    private static final String PROBLEM = "application/problem+json";

    private final HttpClient http;
    private final URI base;

    /** A client for the service at {@code base}, sharing one connection pool. */
    public MailbridgeClient(HttpClient http, URI base) {
        this.http = http;
        this.base = base;
    }

    /** An HTTP/1.1 client whose connect attempts are bounded by {@code connectTimeout}. */
    public static HttpClient newHttpClient(Duration connectTimeout) {
        // HTTP/1.1: a plain-http HTTP/2 upgrade attempt buys nothing for one small POST.
        return HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(connectTimeout)
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    /**
     * Sends one message.
     *
     * @param body the JSON body
     * @param idempotencyKey also sent as the {@code Idempotency-Key} header
     * @param token bearer token, or null to send none
     * @param wait whether the service must deliver before answering
     * @param timeout bound of the whole exchange, the answer's body included
     * @throws ServiceUnreachableException when the service cannot have stored the message
     * @throws UnconfirmedException when the service may have stored it but gave no verdict
     * @throws EmailException when the service refused it, with the service's {@code detail}
     */
    public Accepted post(byte[] body, String idempotencyKey, String token, boolean wait, Duration timeout)
            throws ServiceUnreachableException, UnconfirmedException, EmailException {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(base + "/v1/messages" + (wait ? "?wait=true" : "")))
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json, application/problem+json")
                .header("Idempotency-Key", idempotencyKey)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (token != null) {
            request.header("Authorization", "Bearer " + token);
        }
        String traceparent = TraceContext.traceparent();
        if (traceparent != null) {
            request.header("traceparent", traceparent);
        }
        HttpResponse<String> response = exchange(request.build(), timeout);
        return answer(response, wait);
    }

    /**
     * The whole exchange within {@code timeout}: the JDK's request timeout ends when the answer's head
     * arrives, so a body that stalls or never ends is bounded here, and its connection closed.
     */
    private HttpResponse<String> exchange(HttpRequest request, Duration timeout)
            throws ServiceUnreachableException, UnconfirmedException, EmailException {
        BoundedAnswer answer = new BoundedAnswer(MAX_ANSWER_BYTES);
        CompletableFuture<HttpResponse<String>> pending = http.sendAsync(request, answer);
        try {
            HttpResponse<String> response = await(pending, timeout, timeout);
            if (response == null && !answer.headArrived()) {
                response = await(pending, HEAD_GRACE, timeout);
            }
            if (response == null) {
                // Like a timeout: the request was sent, so the service may have stored the email.
                throw new UnconfirmedException("no complete answer from " + base + " within " + timeout.toMillis() + " ms", null);
            }
            return response;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new EmailException("Sending the email to mailbridge was interrupted.", e);
        } finally {
            if (!pending.isDone()) {
                answer.abandon();
                pending.cancel(true);
            }
        }
    }

    /** The answer if it completes within {@code wait}, else null. */
    private HttpResponse<String> await(CompletableFuture<HttpResponse<String>> pending, Duration wait, Duration timeout)
            throws ServiceUnreachableException, UnconfirmedException, InterruptedException {
        try {
            return pending.get(wait.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            return null;
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof HttpConnectTimeoutException) {
                // A subclass of HttpTimeoutException, but thrown only before the connection existed.
                throw new ServiceUnreachableException("cannot reach " + base + ": " + describe(cause), cause);
            }
            if (cause instanceof HttpTimeoutException) {
                throw new UnconfirmedException("no answer from " + base + " within " + timeout.toMillis() + " ms", cause);
            }
            if (neverConnected(cause)) {
                throw new ServiceUnreachableException("cannot reach " + base + ": " + describe(cause), cause);
            }
            // The client cannot say whether the service read the request before the connection broke.
            throw new UnconfirmedException("the connection to " + base + " broke before an answer: " + describe(cause), cause);
        }
    }

    /** True when the failure happened while connecting, before any byte of the request could be sent. */
    private static boolean neverConnected(Throwable e) {
        for (Throwable cause = e; cause != null; cause = cause.getCause()) {
            if (cause instanceof ConnectException || cause instanceof NoRouteToHostException
                    || cause instanceof UnknownHostException || cause instanceof UnresolvedAddressException) {
                return true;
            }
        }
        return false;
    }

    private Accepted answer(HttpResponse<String> response, boolean wait)
            throws ServiceUnreachableException, UnconfirmedException, EmailException {
        int status = response.statusCode();
        if (status >= 200 && status < 300) {
            JsonNode json = parse(response.body());
            String id = text(json, "id");
            if (id == null || id.isBlank()) {
                // A wrong URL, a maintenance page, a gateway's 200: nothing says whether the service stored it.
                throw new UnconfirmedException(notFromTheService(response) + "; check the url option", null);
            }
            return delivered(new Accepted(id, text(json, "status"), status), wait);
        }
        String detail = detail(response);
        if (wait && (status == 502 || status == 504) && PROBLEM.equals(mediaType(response))) {
            // With ?wait=true the service's own carry the delivery's real outcome, which the admin must
            // see; a proxy's (not a problem document) says nothing about the delivery.
            throw new EmailException("mailbridge could not deliver the email (HTTP " + status + "): " + detail);
        }
        if (status == 503 && PROBLEM.equals(mediaType(response))) {
            // The service's own 503 (always a problem): its store did not take the message.
            throw new ServiceUnreachableException("mailbridge answered HTTP 503: " + detail, null);
        }
        if (status == 503) {
            // A proxy's 503 ("upstream reset before headers") may come after the service stored the message.
            throw new UnconfirmedException("HTTP 503 from " + base + " (" + contentType(response)
                    + ") is not mailbridge's own refusal but perhaps a proxy's, which can come after the service stored the email", null);
        }
        if (status >= 500) {
            // Another 5xx (often a proxy's 502/504) may come after the service stored the message.
            throw new UnconfirmedException("mailbridge answered HTTP " + status + ": " + detail, null);
        }
        throw new EmailException("mailbridge refused the email (HTTP " + status + "): " + detail);
    }

    /**
     * With {@code ?wait=true} only {@code sent} is a success: a repeated idempotency key answers
     * 200 with the first message's status, which may be {@code retrying} or {@code failed}.
     */
    private static Accepted delivered(Accepted accepted, boolean wait) throws EmailException {
        if (wait && !"sent".equals(accepted.status())) {
            throw new EmailException("mailbridge holds the email as message " + accepted.id() + " with status "
                    + accepted.status() + ": not delivered yet; see GET /v1/messages/" + accepted.id());
        }
        return accepted;
    }

    /** Names what answered a success without a message id, and how. */
    private String notFromTheService(HttpResponse<String> response) {
        String body = response.body() == null ? "an answer over " + MAX_ANSWER_BYTES / 1024 + " KiB" : "no message id";
        return "HTTP " + response.statusCode() + " from " + base + " (" + contentType(response) + ") with " + body
                + ": not an answer of mailbridge";
    }

    private static String contentType(HttpResponse<String> response) {
        String type = mediaType(response);
        return type.isEmpty() ? "no content type" : "content type " + type;
    }

    /** The answer's media type, lower case and without parameters; empty when none is given. */
    private static String mediaType(HttpResponse<String> response) {
        return response.headers().firstValue("Content-Type")
                .map(value -> value.split(";", 2)[0].trim().toLowerCase(Locale.ROOT))
                .orElse("");
    }

    private static String detail(HttpResponse<String> response) {
        JsonNode json = parse(response.body());
        String detail = text(json, "detail");
        if (detail == null) {
            detail = text(json, "title");
        }
        if (detail == null) {
            return "no details given";
        }
        String oneLine = detail.replaceAll("[\\r\\n]+", " ");
        return oneLine.length() > MAX_DETAIL ? oneLine.substring(0, MAX_DETAIL) + "…" : oneLine;
    }

    private static JsonNode parse(String body) {
        try {
            return body == null || body.isBlank() ? null : JSON.readTree(body);
        } catch (IOException e) {
            return null;
        }
    }

    private static String text(JsonNode json, String field) {
        if (json == null || !json.hasNonNull(field)) {
            return null;
        }
        return json.get(field).asText();
    }

    private static String describe(Throwable e) {
        if (e instanceof ConnectException && (e.getMessage() == null || e.getMessage().isBlank())) {
            return "connection refused or host unreachable";
        }
        String message = e.getMessage();
        return message == null || message.isBlank() ? e.getClass().getSimpleName() : message;
    }
}
