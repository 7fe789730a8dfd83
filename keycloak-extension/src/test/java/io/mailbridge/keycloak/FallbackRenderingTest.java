package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.mailbridge.keycloak.render.TemplateFiles;
import io.mailbridge.keycloak.render.WasmRenderer;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.keycloak.email.EmailSenderProvider;

/**
 * With {@code fallback=smtp} and the service unreachable, the email Keycloak's SMTP sender gets is
 * the one the service would have rendered from the mailbridge templates; Keycloak's own rendering
 * only when those templates lack the kind or the language, or the render fails.
 */
class FallbackRenderingTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final MessageBody.Content KEYCLOAKS = new MessageBody.Content("Keycloak subject", "keycloak text",
            "<p>keycloak html</p>");
    private static final String LINK = "https://sso.acme.example/realms/acme/login-actions/action-token?key=abc";

    @TempDir Path dir;

    private final KeycloakFixture keycloak = new KeycloakFixture();

    /** The sender with the service down, falling back to SMTP, rendering from {@code templates}. */
    private EmailSenderProvider downWith(TemplateFiles templates) throws IOException {
        keycloak.service(closedPort(), Duration.ofSeconds(5), MailbridgeOptions.Fallback.SMTP);
        keycloak.factory.templates(templates);
        return keycloak.factory.create(keycloak.session);
    }

    private static TemplateRecord reset(String locale, String link) {
        return TemplateRecord.of("password-reset", Map.of("link", link, "linkExpiration", 5, "realmName", "ACME",
                "user", Map.of("username", "ada", "firstName", "Ada")), locale, "acme");
    }

    private RecordingSender.Sent sendWith(EmailSenderProvider sender, TemplateRecord record) throws Exception {
        keycloak.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, record);
        sender.send(KeycloakFixture.smtpConfig(), "ada@example.com", KEYCLOAKS.subject(), KEYCLOAKS.text(), KEYCLOAKS.html());
        assertEquals(1, keycloak.smtp.sent.size(), "one email to SMTP");
        return keycloak.smtp.sent.get(0);
    }

    /** What the renderer answers for the request the service would get. */
    private static JsonNode serviceRendering(TemplateFiles templates, TemplateRecord record) throws Exception {
        try (WasmRenderer renderer = new WasmRenderer(templates)) {
            return JSON.readTree(renderer.render(FallbackContent.request("acme", record, record.locale(), KEYCLOAKS)));
        }
    }

    @Test
    void theUserGetsTheMailbridgeTemplateInTheirLanguage() throws Exception {
        EmailSenderProvider sender = downWith(TemplateFiles.shipped());

        RecordingSender.Sent sent = sendWith(sender, reset("de-AT", LINK));

        JsonNode expected = serviceRendering(TemplateFiles.shipped(), reset("de", LINK));
        assertTrue(sent.subject().startsWith("Passwort"), sent.subject());
        assertEquals(expected.get("subject").asText(), sent.subject());
        assertEquals(expected.get("text").asText(), sent.text());
        assertEquals(expected.get("html").asText(), sent.html());
        assertTrue(sent.html().contains("data-mailbridge-template=\"password-reset\""), sent.html());
        assertTrue(sent.text().contains(LINK), sent.text());
        assertEquals("smtp-password-hunter2", sent.config().get("password"), "SMTP needs the realm's own settings");
    }

    @Test
    void theRealmsOwnTemplateWins() throws Exception {
        write("emails/password-reset/subject.j2", "Shipped subject");
        write("emails/password-reset/html.j2", "<p>shipped</p>");
        write("tenants/acme/emails/password-reset/subject.j2", "ACME: reset for {{ user.firstName }}");
        write("tenants/acme/emails/password-reset/html.j2", "<p>ACME's own {{ link }}</p>");
        EmailSenderProvider sender = downWith(TemplateFiles.fromDirectory(dir));

        RecordingSender.Sent sent = sendWith(sender, reset(null, LINK));

        assertEquals("ACME: reset for Ada", sent.subject());
        assertEquals("<p>ACME's own " + LINK + "</p>", sent.html());
    }

    @Test
    void aKindWithoutTemplateKeepsKeycloaksRendering() throws Exception {
        EmailSenderProvider sender = downWith(TemplateFiles.shipped());

        RecordingSender.Sent sent = sendWith(sender, TemplateRecord.of("my-custom-kind", Map.of(), "de", "acme"));

        assertEquals(KEYCLOAKS, new MessageBody.Content(sent.subject(), sent.text(), sent.html()));
    }

    @Test
    void aLanguageWithoutTemplateKeepsKeycloaksRenderingRatherThanAnotherLanguage() throws Exception {
        EmailSenderProvider sender = downWith(TemplateFiles.shipped());

        RecordingSender.Sent sent = sendWith(sender, reset("fr", LINK));

        assertEquals(KEYCLOAKS, new MessageBody.Content(sent.subject(), sent.text(), sent.html()));
    }

    @Test
    void aTemplateThatFailsKeepsKeycloaksRendering() throws Exception {
        write("emails/password-reset/subject.j2", "Reset");
        write("emails/password-reset/html.j2", "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
        EmailSenderProvider sender = downWith(TemplateFiles.fromDirectory(dir));

        RecordingSender.Sent sent = sendWith(sender, reset(null, LINK));

        assertEquals(KEYCLOAKS, new MessageBody.Content(sent.subject(), sent.text(), sent.html()));
    }

    @Test
    void withoutAnyTemplateRecordKeycloaksRenderingGoes() throws Exception {
        EmailSenderProvider sender = downWith(TemplateFiles.shipped());

        sender.send(KeycloakFixture.smtpConfig(), "ada@example.com", KEYCLOAKS.subject(), KEYCLOAKS.text(), KEYCLOAKS.html());

        RecordingSender.Sent sent = keycloak.smtp.sent.get(0);
        assertEquals(KEYCLOAKS, new MessageBody.Content(sent.subject(), sent.text(), sent.html()));
    }

    /** Each session carries its own record: concurrent requests never get each other's email. */
    @Test
    void concurrentRequestsEachGetTheirOwnEmail() throws Exception {
        downWith(TemplateFiles.shipped());
        int requests = 8;
        List<Future<?>> done = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(requests);
        try {
            for (int i = 0; i < requests; i++) {
                KeycloakFixture other = new KeycloakFixture();
                EmailSenderProvider sender = keycloak.factory.create(other.session);
                String locale = i % 2 == 0 ? "de" : "en";
                other.attributes.put(TemplateRecord.SESSION_ATTRIBUTE, reset(locale, LINK + i));
                String to = "user" + i + "@example.com";
                done.add(pool.submit(() -> {
                    sender.send(KeycloakFixture.smtpConfig(), to, "s", "t", "h");
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(requests, keycloak.smtp.sent.size());
        for (RecordingSender.Sent sent : keycloak.smtp.sent) {
            int i = Integer.parseInt(sent.address().replaceAll("\\D", ""));
            assertTrue(sent.text().contains(LINK + i + "\n") || sent.text().contains(LINK + i + " "),
                    sent.address() + " got another's link: " + sent.text());
            assertEquals(i % 2 == 0, sent.subject().startsWith("Passwort"), sent.address() + ": " + sent.subject());
        }
    }

    private void write(String path, String contents) throws IOException {
        Path file = dir.resolve(path);
        Files.createDirectories(file.getParent());
        Files.writeString(file, contents);
    }

    private static URI closedPort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return URI.create("http://127.0.0.1:" + socket.getLocalPort());
        }
    }
}
