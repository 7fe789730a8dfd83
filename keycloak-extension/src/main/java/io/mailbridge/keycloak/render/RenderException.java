package io.mailbridge.keycloak.render;

/** A render that broke a bound (time, memory) or trapped; the email was not rendered. */
public final class RenderException extends Exception {

    private static final long serialVersionUID = 1L;

    /** A failed render, with why. */
    public RenderException(String message, Throwable cause) {
        super(message, cause);
    }
}
