package io.mailbridge.keycloak;

/**
 * The service could not take the email: no connection, no answer within the timeout, or a 5xx
 * that is not the service's own verdict on a delivery. The only failure that may fall back to SMTP.
 */
public class ServiceUnreachableException extends Exception {

    private static final long serialVersionUID = 1L;

    /** A failure described for an administrator. */
    public ServiceUnreachableException(String message, Throwable cause) {
        super(message, cause);
    }
}
