package io.mailbridge.keycloak;

/**
 * The request reached the service but no verdict came back: no complete answer within the timeout,
 * the connection lost before an answer, a 5xx other than the service's own 503, or a success without
 * the service's message id (not the service's answer). The service may hold the email, so it is sent
 * again only with the same idempotency key, and never by SMTP.
 */
public class UnconfirmedException extends Exception {

    private static final long serialVersionUID = 1L;

    /** A failure described for an administrator. */
    public UnconfirmedException(String message, Throwable cause) {
        super(message, cause);
    }
}
