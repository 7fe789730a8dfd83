package io.mailbridge.keycloak;

import java.util.Map;
import org.keycloak.email.EmailException;
import org.keycloak.utils.EmailValidationUtil;

/** Checks the addresses of a realm's email settings before they are saved or used. */
public final class AddressRules {

    private AddressRules() {
    }

    /**
     * Refuses a missing or malformed {@code from}, a malformed {@code replyTo} or {@code envelopeFrom},
     * and display names that could inject a header.
     */
    public static void check(Map<String, String> config) throws EmailException {
        String from = config.get("from");
        if (from == null || from.isBlank()) {
            throw new EmailException("The realm's email settings need a 'From' address.");
        }
        checkAddress("From", from);
        checkDisplayName("From display name", config.get("fromDisplayName"));
        checkOptionalAddress("Reply to", config.get("replyTo"));
        checkDisplayName("Reply to display name", config.get("replyToDisplayName"));
        checkOptionalAddress("Envelope from", config.get("envelopeFrom"));
    }

    /** Refuses a recipient address that is not a plain email address. */
    public static void checkRecipient(String address) throws EmailException {
        if (address == null || address.isBlank()) {
            throw new EmailException("No email address configured for the user");
        }
        checkAddress("Recipient", address);
    }

    private static void checkOptionalAddress(String field, String value) throws EmailException {
        if (value != null && !value.isBlank()) {
            checkAddress(field, value);
        }
    }

    private static void checkAddress(String field, String value) throws EmailException {
        String address = value.trim();
        // The two-argument check avoids Keycloak's global config lookup, so it also runs outside a server.
        if (hasControlCharacter(address) || address.contains(" ")
                || !EmailValidationUtil.isValidEmail(address, EmailValidationUtil.MAX_LOCAL_PART_LENGTH)) {
            throw new EmailException(String.format("Invalid %s address '%s': expected a plain address such as no-reply@example.com.",
                    field.toLowerCase(java.util.Locale.ROOT), printable(address)));
        }
    }

    private static void checkDisplayName(String field, String value) throws EmailException {
        if (value != null && hasControlCharacter(value)) {
            throw new EmailException(field + " must not contain line breaks or control characters.");
        }
    }

    private static boolean hasControlCharacter(String value) {
        return value.chars().anyMatch(c -> c < 0x20 || c == 0x7f);
    }

    private static String printable(String value) {
        return value.replaceAll("\\p{Cntrl}", "?");
    }
}
