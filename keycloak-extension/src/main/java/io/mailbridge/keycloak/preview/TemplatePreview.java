package io.mailbridge.keycloak.preview;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.mailbridge.keycloak.MailbridgeOptions;
import io.mailbridge.keycloak.render.RenderException;
import io.mailbridge.keycloak.render.TemplateFiles;
import io.mailbridge.keycloak.render.WasmRenderer;
import org.jboss.logging.Logger;

/**
 * A template rendered with its sample data for one realm (the tenant), as the SMTP fallback and the
 * service would render it. Free of HTTP types: {@link TemplatePreviewResource} turns the answer into
 * a response.
 */
final class TemplatePreview {

    /**
     * The outcome: {@code status} 200 with the part in {@code body} and the subject, or an error
     * status with a problem {@code kind} and {@code body} saying why.
     */
    record Answer(int status, String mediaType, String body, String subject, String kind) {

        static Answer problem(int status, String kind, String detail) {
            return new Answer(status, "application/problem+json", detail, null, kind);
        }
    }

    private static final Logger LOG = Logger.getLogger(TemplatePreview.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final WasmRenderer renderer;
    private final TemplateFiles templates;

    /** A preview with this renderer and the template set it loaded (for the samples). */
    TemplatePreview(WasmRenderer renderer, TemplateFiles templates) {
        this.renderer = renderer;
        this.templates = templates;
    }

    /** Renders {@code template} for {@code realm} in {@code locale} (null: en) as {@code format} (null: html). */
    Answer render(String realm, String template, String locale, String format) {
        PreviewFormat wanted = PreviewFormat.parse(format);
        if (wanted == null) {
            return Answer.problem(400, "bad-format", "format must be html or text");
        }
        JsonNode answer;
        try {
            answer = JSON.readTree(renderer.render(request(realm, template, locale)));
        } catch (JsonProcessingException e) {
            return Answer.problem(422, "bad-sample", "the sample data of " + MailbridgeOptions.excerpt(template)
                    + " is not valid JSON");
        } catch (RenderException e) {
            LOG.warnf("mailbridge preview of %s for realm %s: %s", MailbridgeOptions.excerpt(template), realm, e.getMessage());
            return Answer.problem(422, "render", "the render broke a bound: " + e.getMessage());
        }
        if (answer.has("error")) {
            String kind = answer.path("kind").asText();
            return Answer.problem("unknown-template".equals(kind) ? 404 : 422, kind, answer.path("error").asText());
        }
        return new Answer(200, wanted.mediaType(), answer.path(wanted.field()).asText(),
                answer.path("subject").asText(), null);
    }

    /** The render request: the template's sample data for this realm, in {@code locale}. */
    private String request(String realm, String template, String locale) throws JsonProcessingException {
        ObjectNode request = JSON.createObjectNode();
        request.put("tenant", realm);
        request.put("template", template);
        if (locale != null && !locale.isBlank()) {
            request.put("locale", locale.trim());
        }
        request.set("data", JSON.readTree(templates.sample(realm, template)));
        return JSON.writeValueAsString(request);
    }
}
