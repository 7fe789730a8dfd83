package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.keycloak.email.EmailException;
import org.keycloak.email.EmailSenderProvider;

/** What the admin console's "Save" on a realm's email settings runs. */
class ValidateTest {

    private final EmailSenderProvider sender = new KeycloakFixture()
            .service(URI.create("http://127.0.0.1:9"), Duration.ofSeconds(1), MailbridgeOptions.Fallback.NONE)
            .sender();

    @Test
    void acceptsARealmsUsualSettings() {
        assertDoesNotThrow(() -> sender.validate(KeycloakFixture.smtpConfig()));
        assertDoesNotThrow(() -> sender.validate(Map.of("from", "no-reply@acme.example")));
    }

    @Test
    void refusesAMissingFrom() {
        EmailException e = assertThrows(EmailException.class, () -> sender.validate(Map.of("replyTo", "support@acme.example")));
        assertTrue(e.getMessage().contains("From"), e.getMessage());
    }

    @ParameterizedTest
    @CsvSource({
        "from, not-an-address",
        "from, no-reply@",
        "from, ACME <no-reply@acme.example>",
        "from, 'no-reply@acme.example\r\nBcc: victim@example.com'",
        "replyTo, support.acme.example",
        "replyTo, support@acme..example",
        "envelopeFrom, bounces@@acme.example",
    })
    void refusesMalformedAddresses(String field, String value) {
        Map<String, String> config = KeycloakFixture.smtpConfig();
        config.put(field, value);

        EmailException e = assertThrows(EmailException.class, () -> sender.validate(config));
        assertTrue(e.getMessage().startsWith("Invalid "), e.getMessage());
    }

    @Test
    void refusesADisplayNameThatCouldInjectAHeader() {
        Map<String, String> config = KeycloakFixture.smtpConfig();
        config.put("fromDisplayName", "ACME\r\nBcc: victim@example.com");

        assertThrows(EmailException.class, () -> sender.validate(config));
    }
}
