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
    void aUsageErrorExitsWithTwo() throws Exception {
        assertEquals(2, run("{}", "draw"));
        assertEquals(2, run("{}", "render", "--templates"));
        assertEquals(2, run("{}", "render", "--templates", dir.resolve("missing").toString()));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("usage:"));
        assertEquals("", out());
    }
}
