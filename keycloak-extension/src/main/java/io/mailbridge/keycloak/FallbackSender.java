package io.mailbridge.keycloak;

import org.keycloak.email.EmailSenderProvider;
import org.keycloak.models.KeycloakSession;

/** Finds the sender that takes over when mailbridge is off for a realm or cannot be reached. */
@FunctionalInterface
public interface FallbackSender {

    /** Keycloak's own SMTP sender. */
    FallbackSender KEYCLOAK_SMTP = session -> session.getProvider(EmailSenderProvider.class, "default");

    /** The sender to hand the email to, for this session. */
    EmailSenderProvider open(KeycloakSession session);
}
