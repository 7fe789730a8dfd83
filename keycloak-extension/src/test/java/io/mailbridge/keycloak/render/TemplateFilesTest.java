package io.mailbridge.keycloak.render;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The option {@code templates} as operators set it: through links, on a ConfigMap mount, or wrong. */
class TemplateFilesTest {

    private static final String HELLO = "{\"template\":\"hello\",\"data\":{\"name\":\"Ada\"}}";
    private static final String HELLO_RENDERED =
            "{\"subject\":\"Hello Ada\",\"text\":\"Hello Ada\\n\",\"html\":\"<p>Hello Ada</p>\"}";

    @TempDir Path dir;

    private void writeHello(Path root) throws IOException {
        write(root.resolve("emails/hello/subject.j2"), "Hello {{ name }}");
        write(root.resolve("emails/hello/html.j2"), "<p>Hello {{ name }}</p>");
        write(root.resolve("emails/hello/sample.json"), "{\"name\": \"Ada\"}");
    }

    private static void write(Path file, String contents) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, contents);
    }

    private static String render(TemplateFiles templates) throws RenderException {
        try (WasmRenderer renderer = new WasmRenderer(templates)) {
            return renderer.render(HELLO);
        }
    }

    @Test
    void aDirectoryGivenAsASymbolicLinkRendersItsTemplates() throws Exception {
        writeHello(dir.resolve("releases/42"));
        Path current = Files.createSymbolicLink(dir.resolve("current"), dir.resolve("releases/42"));

        TemplateFiles templates = TemplateFiles.forOption(current.toString());

        assertEquals(HELLO_RENDERED, render(templates));
    }

    @Test
    void aConfigMapMountRendersItsTemplates() throws Exception {
        // What the kubelet writes: the files in a directory named after the update, reached through
        // ..data, and each top-level entry a link into ..data.
        Path mount = dir.resolve("templates");
        writeHello(mount.resolve("..2026_12_07_10_00_00.123456789"));
        Files.createSymbolicLink(mount.resolve("..data"), Path.of("..2026_12_07_10_00_00.123456789"));
        Files.createSymbolicLink(mount.resolve("emails"), Path.of("..data/emails"));

        TemplateFiles templates = TemplateFiles.forOption(mount.toString());

        assertEquals(HELLO_RENDERED, render(templates));
        assertEquals("{\"name\": \"Ada\"}", templates.sample(null, "hello"), "paths are the mount's own");
    }

    @Test
    void aLinkBackToADirectoryAboveStopsTheStart() throws Exception {
        writeHello(dir);
        Files.createSymbolicLink(dir.resolve("emails/hello/again"), dir);

        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> TemplateFiles.forOption(dir.toString()));

        assertTrue(e.getMessage().startsWith("mailbridge option templates: cannot read " + dir), e.getMessage());
        assertTrue(e.getMessage().contains("emails/hello/again leads back to a directory above it"), e.getMessage());
    }

    @Test
    void aDirectoryWithoutATemplateStopsTheStart() throws Exception {
        write(dir.resolve("locales/en.ftl"), "greeting = Hello");
        write(dir.resolve("emails/hello/subject.j2"), "Hello without HTML");

        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> TemplateFiles.forOption(dir.toString()));

        assertEquals("mailbridge option templates: " + dir + " holds no email template"
                + " (a subject.j2 and an html.j2 under emails/<name>/ or tenants/<tenant>/emails/<name>/)",
                e.getMessage());
    }

    @Test
    void aTenantsOwnTemplateIsATemplate() throws Exception {
        write(dir.resolve("tenants/acme/emails/hello/de/subject.j2"), "Hallo");
        write(dir.resolve("tenants/acme/emails/hello/de/html.j2"), "<p>Hallo</p>");

        assertEquals(2, TemplateFiles.forOption(dir.toString()).size());
    }
}
