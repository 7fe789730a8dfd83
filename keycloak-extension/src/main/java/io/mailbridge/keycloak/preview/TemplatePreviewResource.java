package io.mailbridge.keycloak.preview;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.mailbridge.keycloak.render.RenderException;
import io.mailbridge.keycloak.render.TemplateFiles;
import io.mailbridge.keycloak.render.WasmRenderer;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.Response;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import org.jboss.logging.Logger;
import org.keycloak.models.RealmModel;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;

/**
 * {@code GET /admin/realms/{realm}/mailbridge/preview/{template}?locale=&format=html|text}: the
 * template rendered with its sample data, the realm as tenant, as the SMTP fallback would render it.
 * Nothing is sent. Needs {@code view-realm}.
 */
public final class TemplatePreviewResource {

    /** Response header with the rendered subject, percent-encoded UTF-8 (a header holds ASCII only). */
    public static final String SUBJECT_HEADER = "Mailbridge-Subject";

    private static final Logger LOG = Logger.getLogger(TemplatePreviewResource.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The preview is the operator's template shown in Keycloak's origin: no script, no form, no fetch. */
    private static final String SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data: https:";

    private final RealmModel realm;
    private final AdminPermissionEvaluator auth;
    private final WasmRenderer renderer;
    private final TemplateFiles templates;

    /** The preview of one realm for the admin behind {@code auth}. */
    TemplatePreviewResource(RealmModel realm, AdminPermissionEvaluator auth, WasmRenderer renderer, TemplateFiles templates) {
        this.realm = realm;
        this.auth = auth;
        this.renderer = renderer;
        this.templates = templates;
    }

    /** The rendered template: 200 with the html or text, else a problem+json (400, 404, 422). */
    @GET
    @Path("preview/{template}")
    public Response preview(@PathParam("template") String template, @QueryParam("locale") String locale,
            @QueryParam("format") String format) {
        auth.realm().requireViewRealm();
        PreviewFormat wanted = PreviewFormat.parse(format);
        if (wanted == null) {
            return Problems.of(400, "bad-format", "format must be html or text");
        }
        JsonNode answer;
        try {
            answer = JSON.readTree(renderer.render(request(template, locale)));
        } catch (JsonProcessingException e) {
            return Problems.of(422, "bad-sample", "the sample data of " + template + " is not valid JSON");
        } catch (RenderException e) {
            LOG.warnf("mailbridge preview of %s for realm %s: %s", template, realm.getName(), e.getMessage());
            return Problems.of(422, "render", "the render broke a bound: " + e.getMessage());
        }
        if (answer.has("error")) {
            String kind = answer.path("kind").asText();
            int status = "unknown-template".equals(kind) ? 404 : 422;
            return Problems.of(status, kind, answer.path("error").asText());
        }
        String subject = URLEncoder.encode(answer.path("subject").asText(), StandardCharsets.UTF_8).replace("+", "%20");
        return Response.ok(answer.path(wanted.field()).asText(), wanted.mediaType())
                .header(SUBJECT_HEADER, subject)
                .header("Content-Security-Policy", SANDBOX)
                .header("X-Content-Type-Options", "nosniff")
                .header("Cache-Control", "no-store")
                .build();
    }

    /** The render request: the template's sample data for this realm, in {@code locale}. */
    private String request(String template, String locale) throws JsonProcessingException {
        ObjectNode request = JSON.createObjectNode();
        request.put("tenant", realm.getName());
        request.put("template", template);
        if (locale != null && !locale.isBlank()) {
            request.put("locale", locale.trim());
        }
        request.set("data", JSON.readTree(templates.sample(realm.getName(), template)));
        return JSON.writeValueAsString(request);
    }
}
