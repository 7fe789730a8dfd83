package io.mailbridge.keycloak;

import org.keycloak.email.DefaultEmailSenderProviderFactory;
import org.keycloak.email.EmailSenderProvider;
import org.keycloak.models.KeycloakSession;

/** Finds the sender that takes over when mailbridge is off for a realm or cannot be reached. */
@FunctionalInterface
public interface FallbackSender {

    /** The sender to hand the email to, for this session. */
    EmailSenderProvider open(KeycloakSession session);

    /**
     * Keycloak's own SMTP sender: the server's {@code default} provider when Keycloak loaded it, else
     * a private instance of it. Keycloak loads only the selected provider when an SPI is set with
     * {@code --spi-email-sender--provider=mailbridge}, so the private instance is the usual case.
     */
    static FallbackSender keycloakSmtp(DefaultEmailSenderProviderFactory own) {
        return session -> {
            EmailSenderProvider loaded = session.getProvider(EmailSenderProvider.class, "default");
            return loaded != null ? loaded : own.create(session);
        };
    }
}
