package io.mailbridge.keycloak.preview;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import jakarta.ws.rs.core.Response;

/** RFC 9457 problem answers, shaped like the service's. */
final class Problems {

    private static final ObjectMapper JSON = new ObjectMapper();

    private Problems() {
    }

    /** A problem+json answer with {@code status}, a type ending in {@code kind}, and {@code detail}. */
    static Response of(int status, String kind, String detail) {
        ObjectNode body = JSON.createObjectNode();
        body.put("type", "https://mailbridge.dev/problems/" + kind);
        body.put("title", Response.Status.fromStatusCode(status) == null
                ? "Error" : Response.Status.fromStatusCode(status).getReasonPhrase());
        body.put("status", status);
        body.put("detail", detail);
        return Response.status(status).type("application/problem+json").entity(body.toString()).build();
    }
}
