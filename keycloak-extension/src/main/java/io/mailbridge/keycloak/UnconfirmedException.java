package io.mailbridge.keycloak;

/**
 * The request reached the service but no verdict came back: no answer within the timeout, the
 * connection lost before an answer, or a 5xx other than 503. The service may hold the email, so it
 * is sent again only with the same idempotency key, and never by SMTP.
 */
public class UnconfirmedException extends Exception {

    private static final long serialVersionUID = 1L;

    /** A failure described for an administrator. */
    public UnconfirmedException(String message, Throwable cause) {
        super(message, cause);
    }
}
