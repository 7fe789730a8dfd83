package io.mailbridge.keycloak;

import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;

/**
 * The W3C {@code traceparent} of Keycloak's current span, so that a Keycloak
 * request and the delivery of its email appear as one trace. Without tracing
 * (Keycloak's {@code tracing-enabled} off) there is no valid span and nothing
 * is sent.
 */
final class TraceContext {

    private TraceContext() {
    }

    /** The current span as a {@code traceparent} header value, or null. */
    static String traceparent() {
        try {
            SpanContext context = Span.current().getSpanContext();
            if (!context.isValid()) {
                return null;
            }
            return "00-" + context.getTraceId() + "-" + context.getSpanId() + "-" + context.getTraceFlags().asHex();
        } catch (LinkageError e) {
            // A Keycloak without the OpenTelemetry API: send no trace context.
            return null;
        }
    }
}
