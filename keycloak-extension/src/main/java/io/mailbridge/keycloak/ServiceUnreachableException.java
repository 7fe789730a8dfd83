package io.mailbridge.keycloak;

/**
 * The service cannot have stored the email: the connection was never made (refused, no route, DNS
 * failure, connect timeout) or the service itself answered 503 (a problem, as all its errors are; a
 * proxy's 503 is not proof). The only failure that may fall back to SMTP.
 */
public class ServiceUnreachableException extends Exception {

    private static final long serialVersionUID = 1L;

    /** A failure described for an administrator. */
    public ServiceUnreachableException(String message, Throwable cause) {
        super(message, cause);
    }
}
