package io.mailbridge.keycloak;

import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.Mockito.lenient;
import static org.mockito.Mockito.mock;

import java.net.URI;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import org.keycloak.email.EmailSenderProvider;
import org.keycloak.models.KeycloakContext;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakUriInfo;
import org.keycloak.models.RealmModel;
import org.keycloak.models.UserModel;

/** A mocked Keycloak session for one realm, with a real attribute store and a recording SMTP sender. */
final class KeycloakFixture {

    static final String SECRET = "test-secret-of-at-least-32-bytes!!";

    final KeycloakSession session = mock(KeycloakSession.class);
    final KeycloakContext context = mock(KeycloakContext.class);
    final RealmModel realm = mock(RealmModel.class);
    final UserModel user = mock(UserModel.class);
    final RecordingSender smtp = new RecordingSender();
    final Map<String, Object> attributes = new HashMap<>();
    final MailbridgeEmailSenderProviderFactory factory = new MailbridgeEmailSenderProviderFactory();

    KeycloakFixture() {
        lenient().when(session.getContext()).thenReturn(context);
        lenient().when(context.getRealm()).thenReturn(realm);
        KeycloakUriInfo uri = mock(KeycloakUriInfo.class);
        lenient().when(uri.getBaseUri()).thenReturn(URI.create("https://sso.acme.example/"));
        lenient().when(context.getUri()).thenReturn(uri);
        lenient().when(realm.getName()).thenReturn("acme");
        lenient().when(realm.getDisplayName()).thenReturn("ACME");
        lenient().when(user.getUsername()).thenReturn("ada");
        lenient().when(user.getEmail()).thenReturn("ada@example.com");
        lenient().when(user.getFirstName()).thenReturn("Ada");
        lenient().when(user.getLastName()).thenReturn("Lovelace");
        lenient().when(user.getFirstAttribute(UserModel.LOCALE)).thenReturn("de");
        lenient().when(session.getAttribute(anyString(), any())).thenAnswer(call -> {
            Object value = attributes.get(call.<String>getArgument(0));
            return call.<Class<?>>getArgument(1).isInstance(value) ? value : null;
        });
        lenient().when(session.getAttribute(anyString())).thenAnswer(call -> attributes.get(call.<String>getArgument(0)));
        lenient().doAnswer(call -> attributes.put(call.getArgument(0), call.getArgument(1)))
                .when(session).setAttribute(anyString(), any());
        lenient().when(session.removeAttribute(anyString())).thenAnswer(call -> attributes.remove(call.<String>getArgument(0)));
        factory.fallback(s -> smtp);
    }

    /** Configures the sender for the service at {@code url}. */
    KeycloakFixture service(URI url, Duration timeout, MailbridgeOptions.Fallback fallback) {
        return service(new MailbridgeOptions(url, SECRET, timeout, timeout, fallback));
    }

    /** Configures the sender with {@code options}. */
    KeycloakFixture service(MailbridgeOptions options) {
        factory.configure(options, java.time.Clock.systemUTC());
        EmailSenderProvider sender = factory.create(session);
        lenient().when(session.getProvider(EmailSenderProvider.class)).thenReturn(sender);
        return this;
    }

    EmailSenderProvider sender() {
        return session.getProvider(EmailSenderProvider.class);
    }

    /** A realm's SMTP settings as the admin console stores them, secrets included. */
    static Map<String, String> smtpConfig() {
        Map<String, String> config = new LinkedHashMap<>();
        config.put("host", "smtp.acme.example");
        config.put("port", "587");
        config.put("from", "no-reply@acme.example");
        config.put("fromDisplayName", "ACME");
        config.put("replyTo", "support@acme.example");
        config.put("replyToDisplayName", "ACME Support");
        config.put("envelopeFrom", "bounces@acme.example");
        config.put("auth", "true");
        config.put("user", "smtp-user");
        config.put("password", "smtp-password-hunter2");
        config.put("authType", "token");
        config.put("authTokenClientSecret", "client-secret-s3cr3t");
        config.put("starttls", "true");
        return config;
    }
}
