package io.mailbridge.keycloak.render;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bounds of a render in the JVM: each failure ends that render, never the thread or the next render. */
class WasmRendererTest {

    private static final String HELLO = "{\"template\":\"hello\",\"data\":{\"name\":\"Ada\"}}";

    @TempDir Path dir;

    /** A template set with a friendly template and the given body of a hostile one. */
    private TemplateFiles templates(String hostileHtml) throws IOException {
        write("emails/hello/subject.j2", "Hello {{ name }}");
        write("emails/hello/html.j2", "<p>Hello {{ name }}</p>");
        write("emails/hostile/subject.j2", "Hostile");
        write("emails/hostile/html.j2", hostileHtml);
        return TemplateFiles.fromDirectory(dir);
    }

    private void write(String path, String contents) throws IOException {
        Path file = dir.resolve(path);
        Files.createDirectories(file.getParent());
        Files.writeString(file, contents);
    }

    private static String hostile() {
        return "{\"template\":\"hostile\",\"data\":{}}";
    }

    @Test
    void rendersTheTemplate() throws Exception {
        try (WasmRenderer renderer = new WasmRenderer(templates("-"))) {
            assertEquals(
                    "{\"subject\":\"Hello Ada\",\"text\":\"Hello Ada\\n\",\"html\":\"<p>Hello Ada</p>\"}",
                    renderer.render(HELLO));
        }
    }

    @Test
    void aRenderAfterCloseIsARenderErrorNotAnUncheckedOne() throws Exception {
        // Keycloak stopping while an email is sent: the caller falls back to Keycloak's own rendering.
        WasmRenderer renderer = new WasmRenderer(templates("-"));
        renderer.close();
        RenderException refused = assertThrows(RenderException.class, () -> renderer.render(HELLO));
        assertTrue(refused.getMessage().contains("closed"), refused.getMessage());
    }

    @Test
    void aRunawayTemplateRunsOutOfFuel() throws Exception {
        String loop = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}";
        try (WasmRenderer renderer = new WasmRenderer(templates(loop))) {
            String answer = assertTimeoutPreemptively(Duration.ofSeconds(30), () -> renderer.render(hostile()));
            assertTrue(answer.startsWith("{\"error\":") && answer.contains("\"kind\":\"render\""), answer);
            assertEquals(renderer.render(HELLO).substring(0, 22), "{\"subject\":\"Hello Ada\"");
        }
    }

    @Test
    void aSlowRenderIsInterruptedAtTheTimeBoundAndTheNextRenderWorks() throws Exception {
        // Within the fuel, but far longer than the bound: 10,000 times 100 kB upper-cased.
        String slow = "{% for i in range(10000) %}{% set s = ('x' * 100000) | upper %}{% endfor %}done";
        try (WasmRenderer renderer = new WasmRenderer(templates(slow), Duration.ofMillis(300), WasmRenderer.DEFAULT_MAX_MEMORY, 1)) {
            renderer.render(HELLO); // instantiated and warm: the bound now measures the render alone
            RenderException e = assertTimeoutPreemptively(
                    Duration.ofSeconds(30), () -> assertThrows(RenderException.class, () -> renderer.render(hostile())));
            assertTrue(e.getMessage().contains("longer than 300 ms"), e.getMessage());
            assertTrue(renderer.render(HELLO).contains("Hello Ada"));
            assertEquals(2, renderer.instances(), "the interrupted instance was replaced");
        }
    }

    @Test
    void waitingForABusyWorkerCountsAgainstTheBound() throws Exception {
        String slow = "{% for i in range(10000) %}{% set s = ('x' * 100000) | upper %}{% endfor %}done";
        try (WasmRenderer renderer = new WasmRenderer(templates(slow), Duration.ofMillis(300), WasmRenderer.DEFAULT_MAX_MEMORY, 1)) {
            renderer.render(HELLO); // the one worker is warm
            ExecutorService callers = Executors.newFixedThreadPool(6);
            try {
                List<Future<Long>> ends = new ArrayList<>();
                for (int i = 0; i < 6; i++) {
                    ends.add(callers.submit(() -> {
                        long start = System.nanoTime();
                        assertThrows(RenderException.class, () -> renderer.render(hostile()));
                        return (System.nanoTime() - start) / 1_000_000;
                    }));
                }
                // Each caller is answered within its own bound (plus scheduling), not after the
                // renders queued before it: six in a row would take 1.8 s.
                for (Future<Long> end : ends) {
                    long took = end.get(30, java.util.concurrent.TimeUnit.SECONDS);
                    assertTrue(took < 1_200, "a caller waited " + took + " ms for a 300 ms bound");
                }
            } finally {
                callers.shutdownNow();
            }
            assertTrue(renderer.render(HELLO).contains("Hello Ada"));
        }
    }

    @Test
    void aHugeAllocationTrapsAndTheInstanceIsReplaced() throws Exception {
        // minijinja refuses one huge repetition, but not a string doubled 30 times (16 GiB).
        String huge = "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}"
                + "{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}";
        try (WasmRenderer renderer = new WasmRenderer(templates(huge), Duration.ofSeconds(30), 16L * 1024 * 1024, 1)) {
            RenderException e = assertThrows(RenderException.class, () -> renderer.render(hostile()));
            assertTrue(e.getMessage().contains("Trap"), e.getMessage());
            assertTrue(renderer.render(HELLO).contains("Hello Ada"));
            assertEquals(2, renderer.instances(), "the trapped instance was replaced");
        }
    }

    @Test
    void concurrentRendersGiveTheSameAnswers() throws Exception {
        try (WasmRenderer renderer = new WasmRenderer(templates("-"), WasmRenderer.DEFAULT_TIMEOUT, WasmRenderer.DEFAULT_MAX_MEMORY, 3)) {
            ExecutorService callers = Executors.newFixedThreadPool(8);
            try {
                List<Future<String>> answers = new ArrayList<>();
                for (int i = 0; i < 64; i++) {
                    String name = "User" + i;
                    answers.add(callers.submit(() -> renderer.render(HELLO.replace("Ada", name))));
                }
                for (int i = 0; i < 64; i++) {
                    assertTrue(answers.get(i).get().contains("<p>Hello User" + i + "</p>"));
                }
            } finally {
                callers.shutdownNow();
            }
        }
    }

    @Test
    void theShippedTemplatesAreInTheJar() {
        TemplateFiles shipped = TemplateFiles.shipped();
        assertTrue(shipped.size() > 20, "shipped templates: " + shipped.size());
    }
}
