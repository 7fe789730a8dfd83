package io.mailbridge.keycloak.render;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemLoopException;
import java.nio.file.FileVisitOption;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * A template set laid out like the service's template directory ({@code emails/…}, {@code
 * locales/…}, {@code tenants/…}), as the renderer module takes it: one JSON object {@code {path:
 * source}}.
 */
public final class TemplateFiles {

    /** Where the shipped templates are inside the jar, and the list of their paths. */
    private static final String SHIPPED = "/mailbridge/templates/";

    private static final String INDEX = "/mailbridge/templates.index";

    private final Map<String, String> files;

    private TemplateFiles(Map<String, String> files) {
        this.files = files;
    }

    /** The templates shipped inside the jar. */
    public static TemplateFiles shipped() {
        Map<String, String> files = new TreeMap<>();
        String index = resource(INDEX);
        for (String path : index.split("\n")) {
            if (!path.isBlank()) {
                files.put(path, resource(SHIPPED + path));
            }
        }
        return new TemplateFiles(files);
    }

    /**
     * Every template, Fluent file and sample under {@code dir}, following symbolic links as the
     * service does: {@code dir} may be one, and so may what it holds (a Kubernetes ConfigMap mount
     * links {@code emails} to {@code ..data/emails}). Like the service, it skips no directory: such a
     * mount's {@code ..data} and {@code ..2026_…} copies are read too, under paths no render looks up.
     *
     * @throws FileSystemLoopException when a link leads back to a directory above it
     */
    public static TemplateFiles fromDirectory(Path dir) throws IOException {
        Map<String, String> files = new TreeMap<>();
        try (Stream<Path> walk = Files.walk(dir, FileVisitOption.FOLLOW_LINKS)) {
            for (Path file : (Iterable<Path>) walk::iterator) {
                String name = file.getFileName().toString();
                boolean template =
                        name.endsWith(".j2") || name.endsWith(".ftl") || name.endsWith(".json");
                if (template && Files.isRegularFile(file)) {
                    String path = dir.relativize(file).toString().replace('\\', '/');
                    files.put(path, Files.readString(file, StandardCharsets.UTF_8));
                }
            }
        } catch (UncheckedIOException e) {
            // What the walk meets on its way (a loop, an unreadable directory) comes wrapped.
            throw e.getCause();
        }
        return new TemplateFiles(files);
    }

    /**
     * The set in {@code dir}, a directory an administrator named (the option {@code templates}, or
     * {@code render --templates}).
     *
     * @throws IllegalArgumentException with a message for that administrator when {@code dir} is not a
     *     directory, cannot be read, loops, or holds no email template: every render would answer
     *     {@code unknown-template}
     */
    public static TemplateFiles fromNamedDirectory(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException(dir + " is not a directory");
        }
        TemplateFiles files;
        try {
            files = fromDirectory(dir);
        } catch (FileSystemLoopException e) {
            throw new IllegalArgumentException(
                    "cannot read " + dir + ": the symbolic link " + e.getFile() + " leads back to a directory above it", e);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read " + dir + ": " + e, e);
        }
        if (!files.hasEmailTemplate()) {
            throw new IllegalArgumentException(dir + " holds no email template (a subject.j2 and an html.j2 under"
                    + " emails/<name>/ or tenants/<tenant>/emails/<name>/)");
        }
        return files;
    }

    /**
     * The set named by the extension option {@code templates}: the directory it names, laid out like
     * the service's, or the shipped templates when the option is blank.
     *
     * @throws IllegalArgumentException when the option names no readable directory with templates, so
     *     that a wrong path stops Keycloak's start instead of silently rendering other templates
     */
    public static TemplateFiles forOption(String dir) {
        if (dir == null || dir.isBlank()) {
            return shipped();
        }
        try {
            return fromNamedDirectory(Path.of(dir.trim()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("mailbridge option templates: " + e.getMessage(), e);
        }
    }

    /** Whether the set holds an email template: a subject and HTML, shared or a tenant's own. */
    boolean hasEmailTemplate() {
        for (String path : files.keySet()) {
            boolean email = path.startsWith("emails/") || path.matches("tenants/[^/]+/emails/.+");
            String dir = path.substring(0, path.lastIndexOf('/') + 1);
            if (email && path.endsWith("/subject.j2") && files.containsKey(dir + "html.j2")) {
                return true;
            }
        }
        return false;
    }

    /**
     * The sample data of template {@code name} as JSON: the tenant's own {@code sample.json}, else the
     * shipped one, else an empty object.
     */
    public String sample(String tenant, String name) {
        String own = tenant == null ? null : files.get("tenants/" + tenant + "/emails/" + name + "/sample.json");
        if (own != null) {
            return own;
        }
        return files.getOrDefault("emails/" + name + "/sample.json", "{}");
    }

    /** How many files the set holds. */
    public int size() {
        return files.size();
    }

    /** The set as the module's {@code mb_load_templates} takes it. */
    public byte[] toJson() {
        StringBuilder json = new StringBuilder();
        json.append('{');
        for (Map.Entry<String, String> file : files.entrySet()) {
            if (json.length() > 1) {
                json.append(',');
            }
            Json.string(json, file.getKey());
            json.append(':');
            Json.string(json, file.getValue());
        }
        json.append('}');
        return json.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static String resource(String name) {
        try (InputStream in = TemplateFiles.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("the jar lacks " + name + ": it was built without its templates");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + name + " from the jar", e);
        }
    }
}
