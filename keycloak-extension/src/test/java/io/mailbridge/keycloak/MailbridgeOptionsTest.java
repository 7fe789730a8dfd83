package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.keycloak.provider.ProviderConfigProperty;

class MailbridgeOptionsTest {

    private static MailbridgeOptions read(Map<String, String> values) {
        return MailbridgeOptions.read(values::get);
    }

    @Test
    void defaultsWhenOnlyTheUrlIsGiven() {
        MailbridgeOptions options = read(Map.of("url", "http://mailbridge:8090/"));

        assertEquals("http://mailbridge:8090", options.url().toString());
        assertNull(options.secret());
        assertEquals(Duration.ofMillis(5000), options.timeout());
        assertEquals(MailbridgeOptions.Fallback.NONE, options.fallback());
        assertTrue(options.configured());
    }

    @Test
    void readsEveryOption() {
        MailbridgeOptions options = read(Map.of("url", "https://mail.internal/base", "secret", "s3cr3t",
                "timeout", "1500", "waitTimeout", "40000", "fallback", "SMTP"));

        assertEquals("https://mail.internal/base", options.url().toString());
        assertEquals(Duration.ofMillis(1500), options.timeout());
        assertEquals(Duration.ofMillis(40000), options.waitTimeout());
        assertEquals(MailbridgeOptions.Fallback.SMTP, options.fallback());
        assertFalse(options.toString().contains("s3cr3t"), "secret printed");
    }

    @Test
    void aTypoStopsTheStart() {
        assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "mailbridge:8090")));
        assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "http://m", "timeout", "5s")));
        assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "http://m", "timeout", "0")));
        assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "http://m", "fallback", "sendmail")));
    }

    @Test
    void aTemplatesOptionThatNamesNoDirectoryStopsTheStart() {
        assertThrows(IllegalArgumentException.class,
                () -> io.mailbridge.keycloak.render.TemplateFiles.forOption("/nonexistent/mailbridge-templates"));
        assertEquals(io.mailbridge.keycloak.render.TemplateFiles.shipped().size(),
                io.mailbridge.keycloak.render.TemplateFiles.forOption(" ").size(), "blank: the shipped templates");
    }

    @Test
    void withoutAUrlTheProviderLoadsButIsNotConfigured() {
        assertFalse(read(Map.of()).configured());
    }

    @Test
    void everyOptionIsDocumentedForTheServerInfo() {
        var names = new MailbridgeEmailSenderProviderFactory().getConfigMetadata().stream()
                .map(ProviderConfigProperty::getName).toList();

        assertEquals(java.util.List.of("url", "secret", "signing", "timeout", "waitTimeout", "fallback", "templates"), names);
    }
}
