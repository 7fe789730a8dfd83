package io.mailbridge.keycloak.render;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code java -jar mailbridge-keycloak.jar render}: its answers and exit statuses. */
class RenderCommandTest {

    @TempDir Path dir;

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(String input, String... args) throws Exception {
        return RenderCommand.run(
                args,
                input.getBytes(StandardCharsets.UTF_8),
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    private String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    @Test
    void rendersEachLineWithLinesAndSaysWhichFailed() throws Exception {
        Files.createDirectories(dir.resolve("emails/hi"));
        Files.writeString(dir.resolve("emails/hi/subject.j2"), "Hi \"{{ name }}\"");
        Files.writeString(dir.resolve("emails/hi/html.j2"), "<p>Hi\n{{ name }}</p>");
        String input = "{\"template\":\"hi\",\"data\":{\"name\":\"Zoë\"}}\n\n{\"template\":\"gone\"}\n";
        int status = run(input, "render", "--templates", dir.toString(), "--lines");
        String[] answers = out().split("\n");
        assertEquals(2, answers.length, out());
        assertEquals("{\"subject\":\"Hi \\\"Zoë\\\"\",\"text\":\"Hi Zoë\\n\",\"html\":\"<p>Hi\\nZoë</p>\"}", answers[0]);
        assertTrue(answers[1].contains("\"kind\":\"unknown-template\""), answers[1]);
        assertEquals(1, status, "one request failed");
    }

    @Test
    void templatesGivenAsASymbolicLinkRender() throws Exception {
        Files.createDirectories(dir.resolve("real/emails/hi"));
        Files.writeString(dir.resolve("real/emails/hi/subject.j2"), "Hi");
        Files.writeString(dir.resolve("real/emails/hi/html.j2"), "<p>Hi</p>");
        Path link = Files.createSymbolicLink(dir.resolve("link"), dir.resolve("real"));

        int status = run("{\"template\":\"hi\"}", "render", "--templates", link.toString());

        assertEquals("{\"subject\":\"Hi\",\"text\":\"Hi\\n\",\"html\":\"<p>Hi</p>\"}\n", out());
        assertEquals(0, status);
    }

    @Test
    void templatesWithoutATemplateExitWithTwo() throws Exception {
        assertEquals(2, run("{\"template\":\"hi\"}", "render", "--templates", dir.toString()));
        assertEquals("render: " + dir + " holds no email template (a subject.j2 and an html.j2 under"
                + " emails/<name>/ or tenants/<tenant>/emails/<name>/)\n", err.toString(StandardCharsets.UTF_8));
        assertEquals("", out());
    }

    @Test
    void aUsageErrorExitsWithTwo() throws Exception {
        assertEquals(2, run("{}", "draw"));
        assertEquals(2, run("{}", "render", "--templates"));
        assertEquals(2, run("{}", "render", "--templates", dir.resolve("missing").toString()));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("usage:"));
        assertEquals("", out());
    }
}
