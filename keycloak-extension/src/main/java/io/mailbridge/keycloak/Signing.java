package io.mailbridge.keycloak;

import java.util.Locale;

/** How a request to the service is signed. */
public enum Signing {
    /** HS256 with the secret shared with the service (option {@code secret}). */
    SECRET,
    /** The realm's own active signing key, through Keycloak's key manager: no secret anywhere. */
    REALM_KEY;

    /** Realm SMTP setting that overrides the server-wide {@code signing} option for one realm. */
    public static final String REALM_SETTING = "mailbridgeSigning";

    /**
     * Reads {@code secret} or {@code realm-key}; blank means {@code secret}.
     *
     * @throws IllegalArgumentException for any other value, so that a typo stops the start
     */
    public static Signing parse(String value) {
        if (value == null || value.isBlank()) {
            return SECRET;
        }
        switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "secret":
                return SECRET;
            case "realm-key":
                return REALM_KEY;
            default:
                throw new IllegalArgumentException("mailbridge option signing must be 'secret' or 'realm-key', got '" + value + "'");
        }
    }
}
