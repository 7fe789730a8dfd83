package io.mailbridge.keycloak.preview;

import io.mailbridge.keycloak.MailbridgeEmailSenderProviderFactory;
import io.mailbridge.keycloak.render.TemplateFiles;
import io.mailbridge.keycloak.render.WasmRenderer;
import org.keycloak.Config;
import org.keycloak.email.EmailSenderProvider;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.models.RealmModel;
import org.keycloak.provider.ProviderFactory;
import org.keycloak.services.resources.admin.AdminEventBuilder;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProvider;
import org.keycloak.services.resources.admin.ext.AdminRealmResourceProviderFactory;
import org.keycloak.services.resources.admin.fgap.AdminPermissionEvaluator;

/**
 * Registers {@code /admin/realms/{realm}/mailbridge/…}: the template preview for realm admins. It
 * renders with the email sender's renderer and templates (its {@code templates} option), so the
 * preview shows what the SMTP fallback would send.
 */
public class TemplatePreviewProviderFactory implements AdminRealmResourceProviderFactory, AdminRealmResourceProvider {

    /** The path segment after the realm, and the provider id. */
    public static final String ID = "mailbridge";

    private WasmRenderer renderer;
    private TemplateFiles templates;
    /** A renderer this factory made itself (the sender is not mailbridge's): closed with the factory. */
    private WasmRenderer own;

    @Override
    public AdminRealmResourceProvider create(KeycloakSession session) {
        return this;
    }

    @Override
    public Object getResource(KeycloakSession session, RealmModel realm, AdminPermissionEvaluator auth,
            AdminEventBuilder adminEvent) {
        return new TemplatePreviewResource(realm, auth, new TemplatePreview(renderer, templates));
    }

    @Override
    public void init(Config.Scope config) {
    }

    /** Shares the email sender's renderer when Keycloak runs mailbridge's sender, else makes one of the shipped templates. */
    @Override
    public void postInit(KeycloakSessionFactory factory) {
        ProviderFactory<EmailSenderProvider> sender =
                factory.getProviderFactory(EmailSenderProvider.class, MailbridgeEmailSenderProviderFactory.ID);
        if (sender instanceof MailbridgeEmailSenderProviderFactory mailbridge && mailbridge.renderer() != null) {
            renderer = mailbridge.renderer();
            templates = mailbridge.templateFiles();
            return;
        }
        templates = TemplateFiles.shipped();
        own = new WasmRenderer(templates, WasmRenderer.DEFAULT_TIMEOUT, WasmRenderer.DEFAULT_MAX_MEMORY, 1);
        renderer = own;
    }

    @Override
    public void close() {
        if (own != null) {
            own.close();
        }
    }

    @Override
    public String getId() {
        return ID;
    }
}
