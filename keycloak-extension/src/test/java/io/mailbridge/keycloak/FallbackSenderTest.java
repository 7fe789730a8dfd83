package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.when;

import org.junit.jupiter.api.Test;
import org.keycloak.email.DefaultEmailSenderProvider;
import org.keycloak.email.DefaultEmailSenderProviderFactory;
import org.keycloak.email.EmailSenderProvider;
import org.keycloak.models.KeycloakSession;

class FallbackSenderTest {

    @Test
    void usesKeycloaksLoadedSmtpSender() {
        KeycloakSession session = mock(KeycloakSession.class);
        EmailSenderProvider loaded = new RecordingSender();
        when(session.getProvider(EmailSenderProvider.class, "default")).thenReturn(loaded);

        assertSame(loaded, FallbackSender.keycloakSmtp(new DefaultEmailSenderProviderFactory()).open(session));
    }

    @Test
    void bringsItsOwnSmtpSenderWhenKeycloakLoadedOnlyMailbridge() {
        KeycloakSession session = mock(KeycloakSession.class);
        DefaultEmailSenderProviderFactory own = new DefaultEmailSenderProviderFactory();
        own.init(null);

        assertInstanceOf(DefaultEmailSenderProvider.class, FallbackSender.keycloakSmtp(own).open(session));
    }
}
