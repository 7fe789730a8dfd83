package io.mailbridge.keycloak;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.mailbridge.keycloak.render.RenderException;
import io.mailbridge.keycloak.render.WasmRenderer;
import org.jboss.logging.Logger;

/**
 * What the SMTP fallback sends: the email rendered from the mailbridge templates exactly as the
 * service would have rendered it (same renderer, same request), or Keycloak's own rendering when
 * the templates lack the kind or the language, or the render fails.
 */
final class FallbackContent {

    private static final Logger LOG = Logger.getLogger(FallbackContent.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private FallbackContent() {
    }

    /**
     * The content to send through Keycloak's SMTP sender.
     *
     * @param renderer the mailbridge renderer, or null when there is none
     * @param tenant the realm name, or null (the service's {@code default} tenant)
     * @param record kind, data and locale from the template provider, or null when unknown
     * @param userLocale the user's locale when the record has none, or null
     * @param keycloak subject, text and html as Keycloak rendered them
     */
    static MessageBody.Content choose(WasmRenderer renderer, String tenant, TemplateRecord record, String userLocale,
            MessageBody.Content keycloak) {
        if (renderer == null || record == null) {
            LOG.infof("SMTP fallback for realm %s: kind of email unknown, sending Keycloak's rendering", tenant);
            return keycloak;
        }
        String locale = record.locale() != null ? record.locale() : userLocale;
        try {
            JsonNode answer = JSON.readTree(renderer.render(request(tenant, record, locale, keycloak)));
            if (answer.has("error")) {
                // The kind only: a render error's message may quote the template's data.
                LOG.infof("SMTP fallback for realm %s: no mailbridge rendering of %s in %s (%s), sending Keycloak's",
                        tenant, record.kind(), locale, answer.path("kind").asText());
                return keycloak;
            }
            LOG.infof("SMTP fallback for realm %s: %s rendered from the mailbridge templates in %s", tenant,
                    record.kind(), locale);
            return new MessageBody.Content(answer.path("subject").asText(), answer.path("text").asText(),
                    answer.path("html").asText());
        } catch (RenderException | JsonProcessingException e) {
            LOG.warnf("SMTP fallback for realm %s: rendering %s failed (%s), sending Keycloak's rendering", tenant,
                    record.kind(), e instanceof RenderException ? e.getMessage() : "unreadable answer");
            return keycloak;
        }
    }

    /**
     * The body the service would get, as a render request. Keycloak's content travels with it, as it
     * does to the service: then a language the template lacks is refused rather than replaced.
     */
    static String request(String tenant, TemplateRecord record, String locale, MessageBody.Content keycloak)
            throws JsonProcessingException {
        ObjectNode request = JSON.createObjectNode();
        if (tenant != null) {
            request.put("tenant", tenant);
        }
        request.put("template", record.kind());
        if (locale != null) {
            request.put("locale", locale);
        }
        request.set("data", JSON.valueToTree(record.data()));
        putIfPresent(request, "subject", keycloak.subject());
        putIfPresent(request, "text", keycloak.text());
        putIfPresent(request, "html", keycloak.html());
        return JSON.writeValueAsString(request);
    }

    private static void putIfPresent(ObjectNode node, String field, String value) {
        if (value != null) {
            node.put(field, value);
        }
    }
}
