package io.mailbridge.keycloak.preview;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mailbridge.keycloak.render.TemplateFiles;
import io.mailbridge.keycloak.render.WasmRenderer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The preview's answer follows the renderer's outcome (view-realm is checked end to end). */
class TemplatePreviewTest {

    private static final TemplateFiles TEMPLATES = TemplateFiles.shipped();
    private static WasmRenderer renderer;

    @TempDir Path dir;

    @BeforeAll
    static void start() {
        renderer = new WasmRenderer(TEMPLATES);
    }

    @AfterAll
    static void stop() {
        renderer.close();
    }

    private static TemplatePreview preview() {
        return new TemplatePreview(renderer, TEMPLATES);
    }

    @Test
    void rendersTheSampleDataInTheLanguageAsked() {
        TemplatePreview.Answer html = preview().render("acme", "password-reset", "de-AT", null);
        assertEquals(200, html.status());
        assertTrue(html.mediaType().startsWith("text/html"), html.mediaType());
        assertTrue(html.body().contains("data-mailbridge-template=\"password-reset\""), html.body());
        assertTrue(html.subject().startsWith("Passwort"), html.subject());

        TemplatePreview.Answer text = preview().render("acme", "password-reset", null, "text");
        assertEquals(200, text.status());
        assertTrue(text.mediaType().startsWith("text/plain"), text.mediaType());
        assertTrue(text.body().contains("https://sso.example.com/realms/acme/"), text.body());
        assertTrue(text.subject().startsWith("Reset"), text.subject());
    }

    @Test
    void answersByWhatWentWrong() {
        assertEquals(404, preview().render("acme", "no-such-template", null, null).status());
        TemplatePreview.Answer bad = preview().render("acme", "password-reset", null, "pdf");
        assertEquals(400, bad.status());
        assertEquals("bad-format", bad.kind());
    }

    @Test
    void theRealmsOwnSampleAndTemplateWin() throws IOException {
        write("emails/hello/subject.j2", "Hello {{ name }}");
        write("emails/hello/html.j2", "<p>{{ name }}</p>");
        write("emails/hello/sample.json", "{\"name\": \"shipped\"}");
        write("tenants/acme/emails/hello/sample.json", "{\"name\": \"ACME's\"}");
        write("emails/broken/subject.j2", "x");
        write("emails/broken/html.j2", "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
        TemplateFiles files = TemplateFiles.fromDirectory(dir);
        try (WasmRenderer own = new WasmRenderer(files)) {
            TemplatePreview preview = new TemplatePreview(own, files);
            assertEquals("<p>ACME&#39;s</p>", preview.render("acme", "hello", null, "html").body());
            assertEquals("<p>shipped</p>", preview.render("globex", "hello", null, "html").body());
            assertEquals(422, preview.render("acme", "broken", null, "html").status());
        }
    }

    private void write(String path, String contents) throws IOException {
        Path file = dir.resolve(path);
        Files.createDirectories(file.getParent());
        Files.writeString(file, contents);
    }
}
