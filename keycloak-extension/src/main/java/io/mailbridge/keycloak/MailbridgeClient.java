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
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.keycloak.email.EmailException;

/** Posts one message to the service's {@code /v1/messages} and reads its answer. */
public final class MailbridgeClient {

    /** The service's answer to an accepted message. */
    public record Accepted(String id, String status, int httpStatus) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_DETAIL = 500;

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
     * @param timeout bound of the whole exchange
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

    private HttpResponse<String> exchange(HttpRequest request, Duration timeout)
            throws ServiceUnreachableException, UnconfirmedException, EmailException {
        try {
            return http.send(request, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        } catch (HttpConnectTimeoutException e) {
            // A subclass of HttpTimeoutException, but thrown only before the connection existed.
            throw new ServiceUnreachableException("cannot reach " + base + ": " + describe(e), e);
        } catch (HttpTimeoutException e) {
            throw new UnconfirmedException("no answer from " + base + " within " + timeout.toMillis() + " ms", e);
        } catch (IOException e) {
            if (neverConnected(e)) {
                throw new ServiceUnreachableException("cannot reach " + base + ": " + describe(e), e);
            }
            // The client cannot say whether the service read the request before the connection broke.
            throw new UnconfirmedException("the connection to " + base + " broke before an answer: " + describe(e), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new EmailException("Sending the email to mailbridge was interrupted.", e);
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

    private static Accepted answer(HttpResponse<String> response, boolean wait)
            throws ServiceUnreachableException, UnconfirmedException, EmailException {
        int status = response.statusCode();
        if (status >= 200 && status < 300) {
            JsonNode json = parse(response.body());
            return delivered(new Accepted(text(json, "id"), text(json, "status"), status), wait);
        }
        String detail = detail(response);
        if (wait && (status == 502 || status == 504)) {
            // With ?wait=true these carry the delivery's real outcome, which the admin must see.
            throw new EmailException("mailbridge could not deliver the email (HTTP " + status + "): " + detail);
        }
        if (status == 503) {
            // The service answers 503 when its store did not take the message.
            throw new ServiceUnreachableException("mailbridge answered HTTP 503: " + detail, null);
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

    private static String describe(IOException e) {
        if (e instanceof ConnectException && (e.getMessage() == null || e.getMessage().isBlank())) {
            return "connection refused or host unreachable";
        }
        String message = e.getMessage();
        return message == null || message.isBlank() ? e.getClass().getSimpleName() : message;
    }
}
