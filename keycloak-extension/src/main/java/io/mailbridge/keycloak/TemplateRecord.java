package io.mailbridge.keycloak;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What the template provider knows about the email it is about to hand to the sender: the kind
 * (the service's template name), its attributes as plain JSON values, the language Keycloak rendered
 * it in, and whether the caller waits for delivery. It travels as a session attribute for one send.
 *
 * @param kind template name such as {@code password-reset} or {@code event-login_error}
 * @param data attributes: only strings, numbers, booleans, lists and maps of those
 * @param locale BCP 47 language tag Keycloak rendered the email in, or null
 * @param realm name of the realm the email belongs to, or null
 * @param waitForDelivery true when the service must deliver before answering ({@code ?wait=true})
 */
public record TemplateRecord(String kind, Map<String, Object> data, String locale, String realm, boolean waitForDelivery) {

    /** The session attribute under which the record waits for the sender. */
    public static final String SESSION_ATTRIBUTE = "mailbridge.template-record";

    /** Kind of the admin console's "Test connection" email, which waits for delivery. */
    public static final String TEST_EMAIL_KIND = "email-test";

    /** A record; the test email always waits for delivery. */
    public static TemplateRecord of(String kind, Map<String, Object> data, String locale, String realm) {
        return new TemplateRecord(kind, Collections.unmodifiableMap(new LinkedHashMap<>(data)), locale, realm, TEST_EMAIL_KIND.equals(kind));
    }

    /** Never prints the data: it holds links and codes. */
    @Override
    public String toString() {
        return "TemplateRecord[kind=" + kind + ", locale=" + locale + ", realm=" + realm + ", wait=" + waitForDelivery + "]";
    }
}
