import io.mailbridge.keycloak.render.TemplateFiles;
import io.mailbridge.keycloak.render.WasmRenderer;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Render latency of the WebAssembly renderer in the JVM (bench/render/run.sh runs it):
 * cold start (module load, instance, templates, first render), then p50/p99 of each request
 * over a fixed number of renders on one thread, and the heap in use afterwards.
 * Usage: RenderBench TEMPLATES_DIR WARMUP ITERATIONS REQUEST_FILE...
 */
public class RenderBench {
    public static void main(String[] args) throws Exception {
        Path templates = Path.of(args[0]);
        int warmup = Integer.parseInt(args[1]);
        int iterations = Integer.parseInt(args[2]);
        long start = System.nanoTime();
        try (WasmRenderer renderer = new WasmRenderer(TemplateFiles.fromDirectory(templates))) {
            String first = Files.readString(Path.of(args[3]));
            check(renderer.render(first));
            System.out.printf("cold start (load, instance, %s, first render): %.0f ms%n",
                    args[0], (System.nanoTime() - start) / 1e6);
            for (int r = 3; r < args.length; r++) {
                String request = Files.readString(Path.of(args[r]));
                for (int i = 0; i < warmup; i++) {
                    check(renderer.render(request));
                }
                long[] took = new long[iterations];
                for (int i = 0; i < iterations; i++) {
                    long t = System.nanoTime();
                    check(renderer.render(request));
                    took[i] = System.nanoTime() - t;
                }
                Arrays.sort(took);
                System.out.printf("%s: p50 %.3f ms, p99 %.3f ms (%d renders)%n", Path.of(args[r]).getFileName(),
                        took[iterations / 2] / 1e6, took[iterations * 99 / 100] / 1e6, iterations);
            }
            System.gc();
            var heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
            System.out.printf("heap in use after GC: %.1f MiB%n", heap.getUsed() / 1048576.0);
        }
    }

    private static void check(String answer) {
        if (answer.startsWith("{\"error\"")) {
            throw new IllegalStateException(answer);
        }
    }
}
