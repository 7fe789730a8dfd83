package io.mailbridge.keycloak;

import org.keycloak.Config;
import org.keycloak.email.EmailTemplateProvider;
import org.keycloak.email.EmailTemplateProviderFactory;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;

/** Registers the {@code mailbridge} email template provider. */
public class MailbridgeEmailTemplateProviderFactory implements EmailTemplateProviderFactory {

    /** Provider id, as selected with {@code --spi-email-template--provider=mailbridge}. */
    public static final String ID = "mailbridge";

    @Override
    public EmailTemplateProvider create(KeycloakSession session) {
        return new MailbridgeEmailTemplateProvider(session);
    }

    @Override
    public void init(Config.Scope config) {
        // No options: rendering is Keycloak's, and where the email goes is the sender's business.
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
    }

    @Override
    public void close() {
    }

    @Override
    public String getId() {
        return ID;
    }
}
