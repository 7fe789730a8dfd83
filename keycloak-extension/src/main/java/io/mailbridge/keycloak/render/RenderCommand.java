package io.mailbridge.keycloak.render;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * {@code java -jar mailbridge-keycloak.jar render [--templates DIR] [--lines]}: reads a render
 * request (the body of {@code POST /v1/render}, plus {@code "tenant"}) on stdin and prints {@code
 * {"subject","text","html"}}, the same strings the service returns for the same templates. When
 * the template cannot be rendered, prints {@code {"error","kind"}} and exits with 1; a usage error
 * exits with 2. With {@code --lines}, every line of stdin is a request and every line printed its
 * answer (one JVM start for many renders, as CI wants).
 */
public final class RenderCommand {

    private static final String USAGE =
            "usage: java -jar mailbridge-keycloak.jar render [--templates DIR] [--lines] < request.json";

    private RenderCommand() {}

    /** The command line. */
    public static void main(String[] args) throws IOException {
        System.exit(run(args, System.in.readAllBytes(), System.out, System.err));
    }

    /** Runs the command on {@code input}; returns the exit status. */
    static int run(String[] args, byte[] input, PrintStream out, PrintStream err) throws IOException {
        Path dir = null;
        boolean lines = false;
        boolean usage = args.length == 0 || !args[0].equals("render");
        for (int i = 1; i < args.length && !usage; i++) {
            if (args[i].equals("--lines")) {
                lines = true;
            } else if (args[i].equals("--templates") && i + 1 < args.length && dir == null) {
                dir = Path.of(args[++i]);
            } else {
                usage = true;
            }
        }
        if (usage) {
            err.println(USAGE);
            return 2;
        }
        TemplateFiles templates;
        try {
            templates = dir == null ? TemplateFiles.shipped() : TemplateFiles.fromNamedDirectory(dir);
        } catch (IllegalArgumentException e) {
            err.println("render: " + e.getMessage());
            return 2;
        }
        String requests = new String(input, StandardCharsets.UTF_8);
        try (WasmRenderer renderer = new WasmRenderer(templates)) {
            int status = 0;
            for (String request : lines ? requests.split("\n") : new String[] {requests}) {
                if (lines && request.isBlank()) {
                    continue;
                }
                String answer = renderer.render(request);
                out.write(answer.getBytes(StandardCharsets.UTF_8));
                out.write('\n');
                status = answer.startsWith("{\"error\"") ? 1 : status;
            }
            out.flush();
            return status;
        } catch (RenderException | IllegalArgumentException e) {
            err.println("render: " + e.getMessage());
            return 1;
        }
    }
}
