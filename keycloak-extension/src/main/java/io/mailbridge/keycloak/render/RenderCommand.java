package io.mailbridge.keycloak.render;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code java -jar mailbridge-keycloak.jar render [--templates DIR]}: reads a render request (the
 * body of {@code POST /v1/render}, plus {@code "tenant"}) on stdin and prints {@code
 * {"subject","text","html"}}, the same strings the service returns for the same templates. When
 * the template cannot be rendered, prints {@code {"error","kind"}} and exits with 1; a usage error
 * exits with 2.
 */
public final class RenderCommand {

    private static final String USAGE =
            "usage: java -jar mailbridge-keycloak.jar render [--templates DIR] < request.json";

    private RenderCommand() {}

    /** The command line. */
    public static void main(String[] args) throws IOException {
        System.exit(run(args, System.in.readAllBytes(), System.out, System.err));
    }

    /** Runs the command on {@code request}; returns the exit status. */
    static int run(String[] args, byte[] request, PrintStream out, PrintStream err) throws IOException {
        Path dir = null;
        if (args.length == 3 && args[0].equals("render") && args[1].equals("--templates")) {
            dir = Path.of(args[2]);
        } else if (args.length != 1 || !args[0].equals("render")) {
            err.println(USAGE);
            return 2;
        }
        if (dir != null && !Files.isDirectory(dir)) {
            err.println("render: " + dir + " is not a directory");
            return 2;
        }
        TemplateFiles templates = dir == null ? TemplateFiles.shipped() : TemplateFiles.fromDirectory(dir);
        try (WasmRenderer renderer = new WasmRenderer(templates)) {
            String answer = renderer.render(new String(request, StandardCharsets.UTF_8));
            out.write(answer.getBytes(StandardCharsets.UTF_8));
            out.write('\n');
            out.flush();
            return answer.startsWith("{\"error\"") ? 1 : 0;
        } catch (RenderException | IllegalArgumentException e) {
            err.println("render: " + e.getMessage());
            return 1;
        }
    }
}
