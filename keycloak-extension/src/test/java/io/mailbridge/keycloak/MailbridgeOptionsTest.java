package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.when;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.keycloak.Config;
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
        MailbridgeOptions options = read(Map.of("url", "https://mail.internal/base", "secret", "s3cr3t-0123456789abcdef-0123456789abcdef",
                "timeout", "1500", "waitTimeout", "40000", "fallback", "SMTP", "issuerBaseUrl", "https://sso.acme.example/auth/"));

        assertEquals("https://mail.internal/base", options.url().toString());
        assertEquals(Duration.ofMillis(1500), options.timeout());
        assertEquals(Duration.ofMillis(40000), options.waitTimeout());
        assertEquals(MailbridgeOptions.Fallback.SMTP, options.fallback());
        assertEquals("https://sso.acme.example/auth", options.issuerBaseUrl().toString());
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
    void aUrlWithCredentialsQueryOrFragmentStopsTheStartWithoutShowingThem() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> read(Map.of("url", "http://kc:hunter2@mailbridge:8090")));
        assertTrue(e.getMessage().contains("option url"), e.getMessage());
        assertFalse(e.getMessage().contains("hunter2"), "the password in the URL was printed: " + e.getMessage());
        assertFalse(e.getMessage().contains("kc:"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "http://user@mailbridge:8090")));
        e = assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "http://mailbridge:8090/?tenant=acme")));
        assertTrue(e.getMessage().contains("option url") && e.getMessage().contains("query"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "http://mailbridge:8090/#top")));
        assertTrue(e.getMessage().contains("option url") && e.getMessage().contains("fragment"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", "kc:hunter2@mailbridge:8090")));
        assertFalse(e.getMessage().contains("hunter2"), "the password in the URL was printed: " + e.getMessage());
        // Malformed or without a scheme or host: the query is not shown either.
        for (String url : new String[] {"mailbridge:8090/?token=abc123", "http://:8090/?key=abc123", "http://mail bridge/?key=abc123",
                "ftp://mailbridge/#abc123"}) {
            e = assertThrows(IllegalArgumentException.class, () -> read(Map.of("url", url)));
            assertTrue(e.getMessage().contains("option url"), e.getMessage());
            assertFalse(e.getMessage().contains("abc123"), "the query was printed: " + e.getMessage());
        }
    }

    @Test
    void anIssuerBaseUrlThatNamesNoKeycloakBaseStopsTheStart() {
        assertNull(read(Map.of("url", "http://m")).issuerBaseUrl());
        for (String bad : new String[] {"sso.acme.example", "ftp://sso.acme.example", "https://sso.acme.example/?realm=acme",
                "https://sso.acme.example/#top", "https://sso.acme.example/realms/acme", "https://sso.acme.example/auth/realms/",
                "https://kc:hunter2@sso.acme.example"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> read(Map.of("url", "http://m", "issuerBaseUrl", bad)));
            assertTrue(e.getMessage().startsWith("mailbridge option issuer-base-url"), e.getMessage());
            assertFalse(e.getMessage().contains("hunter2"), "the password in the URL was printed: " + e.getMessage());
        }
        assertThrows(IllegalArgumentException.class,
                () -> init(Map.of("url", "https://mailbridge.internal", "signing", "realm-key", "issuerBaseUrl", "sso.acme.example")));
    }

    @Test
    void valuesFromOutsideAreRepeatedShortAndOnOneLine() {
        String forged = "x\n2026-12-07 INFO [org.keycloak] admin signed in" + "y".repeat(100);
        String shown = MailbridgeOptions.excerpt(forged);
        assertFalse(shown.contains("\n"), shown);
        assertTrue(shown.startsWith("x\\u000a2026"), shown);
        assertTrue(shown.endsWith("…"), shown);
        assertTrue(shown.length() <= 48, shown);
        assertTrue(MailbridgeOptions.excerpt("smtp").equals("smtp"));
    }

    @Test
    void aSecretShorterThanTheServiceAcceptsStopsTheStartWithoutShowingIt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> read(Map.of("url", "http://mailbridge:8090", "secret", "hunter2-is-too-short")));
        assertTrue(e.getMessage().contains("option secret") && e.getMessage().contains("32 bytes"), e.getMessage());
        assertFalse(e.getMessage().contains("hunter2"), "the secret was printed: " + e.getMessage());
        // Bytes, as the service counts them: 16 two-byte characters are enough.
        read(Map.of("url", "http://mailbridge:8090", "secret", "\u00e9".repeat(16)));
    }

    @Test
    void signingWithTheSharedSecretNeedsItUnlessTheServiceIsOnLoopback() {
        MailbridgeOptions remote = read(Map.of("url", "http://mailbridge:8090"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> remote.checkSigning(Signing.SECRET));
        assertTrue(e.getMessage().contains("option secret") && e.getMessage().contains("signing=secret"), e.getMessage());

        remote.checkSigning(Signing.REALM_KEY);
        read(Map.of("url", "http://mailbridge:8090", "secret", KeycloakFixture.SECRET)).checkSigning(Signing.SECRET);
        read(Map.of()).checkSigning(Signing.SECRET);
        // A service run with --insecure-no-auth listens on loopback only, and takes no token.
        for (String loopback : new String[] {"http://127.0.0.1:8090", "http://localhost:8090", "http://[::1]:8090"}) {
            read(Map.of("url", loopback)).checkSigning(Signing.SECRET);
        }
    }

    @Test
    void keycloakStopsAtStartOnAMissingSecretAndStartsWithTheShippedConfigurations() {
        assertThrows(IllegalArgumentException.class, () -> init(Map.of("url", "http://mailbridge:8090")));
        assertThrows(IllegalArgumentException.class,
                () -> init(Map.of("url", "http://mailbridge:8090", "secret", "short", "signing", "realm-key")));

        // docker-compose.yml, scripts/keycloak.sh (without MAILBRIDGE_SECRET) and the end-to-end tests.
        init(Map.of("url", "http://mailbridge:8090", "secret", "dev-only-secret-change-me-0123456789abcdef", "fallback", "none"));
        init(Map.of("url", "http://127.0.0.1:8090", "fallback", "none", "timeout", "5000"));
        init(Map.of("url", "http://127.0.0.1:8090", "secret", "e2e-shared-secret-0123456789abcdef-0123", "fallback", "smtp"));
        init(Map.of("url", "https://mailbridge.internal", "signing", "realm-key"));
        init(Map.of("url", "https://mailbridge.internal", "signing", "realm-key", "issuerBaseUrl", "https://sso.acme.example"));
        init(Map.of());
    }

    private static void init(Map<String, String> values) {
        Config.Scope scope = mock(Config.Scope.class);
        when(scope.get(anyString())).thenAnswer(call -> values.get(call.<String>getArgument(0)));
        MailbridgeEmailSenderProviderFactory factory = new MailbridgeEmailSenderProviderFactory();
        try {
            factory.init(scope);
        } finally {
            factory.close();
        }
    }

    @Test
    void aTemplatesOptionThatNamesNoDirectoryStopsTheStart() {
        assertThrows(IllegalArgumentException.class,
                () -> io.mailbridge.keycloak.render.TemplateFiles.forOption("/nonexistent/mailbridge-templates"));
        assertEquals(io.mailbridge.keycloak.render.TemplateFiles.shipped().size(),
                io.mailbridge.keycloak.render.TemplateFiles.forOption(" ").size(), "blank: the shipped templates");
    }

    @Test
    void aTemplatesOptionThatNamesAnEmptyDirectoryStopsTheStart(@TempDir Path empty) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> init(Map.of("url", "http://127.0.0.1:8090", "templates", empty.toString())));

        assertTrue(e.getMessage().startsWith("mailbridge option templates: " + empty + " holds no email template"),
                e.getMessage());
    }

    @Test
    void aTemplatesOptionWhoseTemplatesDoNotCompileStopsTheStart(@TempDir Path dir) throws Exception {
        Path email = dir.resolve("emails/reset");
        java.nio.file.Files.createDirectories(email);
        java.nio.file.Files.writeString(email.resolve("subject.j2"), "Reset");
        java.nio.file.Files.writeString(email.resolve("html.j2"), "{% if %}broken");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> init(Map.of("url", "http://127.0.0.1:8090", "templates", dir.toString())));
        assertTrue(e.getMessage().startsWith("mailbridge option templates: " + dir), e.getMessage());
        assertTrue(e.getMessage().contains("html.j2"), e.getMessage());
        // A set that compiles starts.
        java.nio.file.Files.writeString(email.resolve("html.j2"), "<p>Reset</p>");
        init(Map.of("url", "http://127.0.0.1:8090", "templates", dir.toString()));
    }

    @Test
    void withoutAUrlTheProviderLoadsButIsNotConfigured() {
        assertFalse(read(Map.of()).configured());
    }

    @Test
    void everyOptionIsDocumentedForTheServerInfo() {
        var names = new MailbridgeEmailSenderProviderFactory().getConfigMetadata().stream()
                .map(ProviderConfigProperty::getName).toList();

        assertEquals(java.util.List.of("url", "secret", "signing", "issuerBaseUrl", "timeout", "waitTimeout", "fallback", "templates"), names);
    }
}
