package io.mailbridge.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyBoolean;
import static org.mockito.ArgumentMatchers.anyMap;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.when;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.keycloak.email.EmailException;
import org.keycloak.events.Event;
import org.keycloak.events.EventType;
import org.keycloak.models.OrganizationModel;
import org.keycloak.models.ThemeManager;
import org.keycloak.theme.Theme;
import org.keycloak.theme.freemarker.FreeMarkerProvider;
import org.keycloak.userprofile.UserProfileProvider;

/** Keycloak's real FreeMarker template provider code, with the theme and FreeMarker itself mocked. */
class MailbridgeEmailTemplateProviderTest {

    private FakeMailbridge service;
    private KeycloakFixture keycloak;
    private MailbridgeEmailTemplateProvider templates;

    @BeforeEach
    void start() throws Exception {
        service = new FakeMailbridge();
        keycloak = new KeycloakFixture().service(service.url(), Duration.ofSeconds(5), MailbridgeOptions.Fallback.NONE);
        FreeMarkerProvider freeMarker = mock(FreeMarkerProvider.class);
        when(freeMarker.processTemplate(anyMap(), any(String.class), any(Theme.class)))
                .thenAnswer(call -> call.<String>getArgument(1).startsWith("html/") ? "<p>rendered</p>" : "rendered");
        when(keycloak.session.getProvider(FreeMarkerProvider.class)).thenReturn(freeMarker);
        when(keycloak.session.getProvider(UserProfileProvider.class)).thenReturn(mock(UserProfileProvider.class));
        Theme theme = mock(Theme.class);
        Properties messages = new Properties();
        messages.setProperty("passwordResetSubject", "Passwort zurücksetzen");
        when(theme.getEnhancedMessages(any(), any())).thenReturn(messages);
        when(theme.getMessages(any(Locale.class))).thenReturn(messages);
        when(theme.getProperties()).thenReturn(new Properties());
        ThemeManager themes = mock(ThemeManager.class);
        when(themes.getTheme(Theme.Type.EMAIL)).thenReturn(theme);
        when(keycloak.session.theme()).thenReturn(themes);
        when(keycloak.context.resolveLocale(any(), anyBoolean())).thenReturn(Locale.GERMAN);
        when(keycloak.realm.getSmtpConfig()).thenReturn(KeycloakFixture.smtpConfig());
        templates = (MailbridgeEmailTemplateProvider) new MailbridgeEmailTemplateProviderFactory().create(keycloak.session);
        templates.setRealm(keycloak.realm).setUser(keycloak.user);
    }

    @AfterEach
    void stop() {
        service.close();
    }

    @Test
    void aPasswordResetCarriesItsKindAndPlainAttributes() throws Exception {
        templates.sendPasswordReset("https://sso.acme.example/realms/acme/login-actions/action-token?key=abc", 5);

        FakeMailbridge.Request request = service.only();
        JsonNode json = request.json();
        assertEquals("password-reset", json.get("template").asText());
        assertEquals("de", json.get("locale").asText());
        assertEquals("Passwort zurücksetzen", json.get("subject").asText());
        assertEquals("rendered", json.get("text").asText());
        assertEquals("<p>rendered</p>", json.get("html").asText());
        JsonNode data = json.get("data");
        assertEquals("https://sso.acme.example/realms/acme/login-actions/action-token?key=abc", data.get("link").asText());
        assertTrue(data.get("linkExpiration").isNumber());
        assertEquals(5, data.get("linkExpiration").asLong());
        assertEquals("ACME", data.get("realmName").asText());
        assertEquals("{\"username\":\"ada\",\"email\":\"ada@example.com\",\"firstName\":\"Ada\",\"lastName\":\"Lovelace\"}",
                data.get("user").toString());
        assertFalse(keycloak.attributes.containsKey(TemplateRecord.SESSION_ATTRIBUTE), "record outlived its send");
    }

    @Test
    void theTestEmailWaitsForDelivery() throws Exception {
        service.answer(200, "application/json", "{\"id\":\"0b7c4a52-6f55-4d0c-a2d4-3d1f0f2f6a11\",\"status\":\"sent\"}");
        templates.sendSmtpTestEmail(KeycloakFixture.smtpConfig(), keycloak.user);

        FakeMailbridge.Request request = service.only();
        assertEquals("wait=true", request.query());
        assertEquals("email-test", request.json().get("template").asText());
    }

    @Test
    void theTestEmailShowsTheRealDeliveryError() {
        service.answer(502, "application/problem+json",
                "{\"type\":\"about:blank\",\"title\":\"Bad Gateway\",\"status\":502,\"detail\":\"550 5.7.1 relaying denied\"}");

        EmailException e = assertThrows(EmailException.class,
                () -> templates.sendSmtpTestEmail(KeycloakFixture.smtpConfig(), keycloak.user));
        assertTrue(e.getMessage().contains("550 5.7.1 relaying denied"), e.getMessage());
    }

    @Test
    void executeActionsCarriesTheRequiredActions() throws Exception {
        templates.setAttribute("requiredActions", List.of("UPDATE_PASSWORD", "CONFIGURE_TOTP"));
        templates.sendExecuteActions("https://sso.acme.example/x", 720);

        JsonNode json = service.only().json();
        assertEquals("execute-actions", json.get("template").asText());
        assertEquals("[\"UPDATE_PASSWORD\",\"CONFIGURE_TOTP\"]", json.get("data").get("requiredActions").toString());
        assertEquals(720, json.get("data").get("linkExpiration").asLong());
    }

    @Test
    void anEventEmailCarriesTheEvent() throws Exception {
        Event event = new Event();
        event.setType(EventType.LOGIN_ERROR);
        event.setTime(1_700_000_000_000L);
        event.setIpAddress("192.0.2.7");
        event.setDetails(Map.of("username", "ada"));

        templates.sendEvent(event);

        JsonNode json = service.only().json();
        assertEquals("event-login_error", json.get("template").asText());
        JsonNode sent = json.get("data").get("event");
        assertEquals("LOGIN_ERROR", sent.get("type").asText());
        assertEquals("2023-11-14T22:13:20Z", sent.get("date").asText());
        assertEquals("192.0.2.7", sent.get("ipAddress").asText());
        assertEquals("{\"username\":\"ada\"}", sent.get("details").toString());
    }

    @Test
    void anOrganizationInviteCarriesTheOrganizationName() throws Exception {
        OrganizationModel organization = mock(OrganizationModel.class);
        when(organization.getName()).thenReturn("Analytical Engines");

        templates.sendOrgInviteEmail(organization, "https://sso.acme.example/invite", 60);

        JsonNode json = service.only().json();
        assertEquals("org-invite", json.get("template").asText());
        assertEquals("{\"name\":\"Analytical Engines\"}", json.get("data").get("organization").toString());
    }

    @Test
    void anEmailUpdateGoesToTheNewAddress() throws Exception {
        templates.sendEmailUpdateConfirmation("https://sso.acme.example/confirm", 10, "ada@new.example");

        JsonNode json = service.only().json();
        assertEquals("email-update-confirmation", json.get("template").asText());
        assertEquals("ada@new.example", json.get("to").get(0).get("email").asText());
        assertEquals("ada@new.example", json.get("data").get("newEmail").asText());
    }

    @Test
    void theRecordIsClearedWhenTheSendFails() throws Exception {
        service.answer(400, "application/problem+json", "{\"status\":400,\"detail\":\"bad\"}");

        assertThrows(EmailException.class, () -> templates.sendVerifyEmail("https://sso.acme.example/verify", 5));
        assertFalse(keycloak.attributes.containsKey(TemplateRecord.SESSION_ATTRIBUTE));
        assertEquals("email-verification", service.only().json().get("template").asText());
    }
}
