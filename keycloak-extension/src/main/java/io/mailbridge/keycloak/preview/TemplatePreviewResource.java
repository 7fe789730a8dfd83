package io.mailbridge.keycloak.preview;

import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.Response;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
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

    /** The preview is the operator's template shown in Keycloak's origin: no script, no form, no fetch. */
    static final String SANDBOX = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data: https:";

    private final RealmModel realm;
    private final AdminPermissionEvaluator auth;
    private final TemplatePreview preview;

    /** The preview of one realm for the admin behind {@code auth}. */
    TemplatePreviewResource(RealmModel realm, AdminPermissionEvaluator auth, TemplatePreview preview) {
        this.realm = realm;
        this.auth = auth;
        this.preview = preview;
    }

    /** The rendered template: 200 with the html or text, else a problem+json (400, 404, 422). */
    @GET
    @Path("preview/{template}")
    public Response preview(@PathParam("template") String template, @QueryParam("locale") String locale,
            @QueryParam("format") String format) {
        // Keycloak answers 403 for a caller without view-realm (and 401 without a valid token, before this).
        auth.realm().requireViewRealm();
        TemplatePreview.Answer answer = preview.render(realm.getName(), template, locale, format);
        if (answer.status() != 200) {
            return Problems.of(answer.status(), answer.kind(), answer.body());
        }
        String subject = URLEncoder.encode(answer.subject(), StandardCharsets.UTF_8).replace("+", "%20");
        return Response.ok(answer.body(), answer.mediaType())
                .header(SUBJECT_HEADER, subject)
                .header("Content-Security-Policy", SANDBOX)
                .header("X-Content-Type-Options", "nosniff")
                .header("Cache-Control", "no-store")
                .build();
    }
}
