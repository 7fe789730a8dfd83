package io.mailbridge.keycloak;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.keycloak.email.EmailException;
import org.keycloak.email.freemarker.FreeMarkerEmailTemplateProvider;
import org.keycloak.events.Event;
import org.keycloak.models.KeycloakSession;

/**
 * Keycloak's FreeMarker email templates, unchanged (themes keep working), plus a record of each
 * email's kind and attributes that the mailbridge sender forwards with the rendered content.
 */
public class MailbridgeEmailTemplateProvider extends FreeMarkerEmailTemplateProvider {

    private Event event;
    private TemplateRecord pending;

    /** A provider for one session. */
    public MailbridgeEmailTemplateProvider(KeycloakSession session) {
        super(session);
    }

    /** Keeps the event itself: the FreeMarker bean only offers a display form of its type. */
    @Override
    public void sendEvent(Event event) throws EmailException {
        this.event = event;
        try {
            super.sendEvent(event);
        } finally {
            this.event = null;
        }
    }

    /** Renders as Keycloak does, then notes the kind and the plain attributes of this email. */
    @Override
    protected EmailTemplate processTemplate(String subjectKey, List<Object> subjectAttributes, String template,
            Map<String, Object> attributes) throws EmailException {
        EmailTemplate email = super.processTemplate(subjectKey, subjectAttributes, template, attributes);
        Object locale = attributes.get("locale");
        pending = TemplateRecord.of(
                TemplateData.kindOf(template),
                TemplateData.from(attributes, user, event),
                locale instanceof Locale ? ((Locale) locale).toLanguageTag() : null,
                realm == null ? null : realm.getName());
        return email;
    }

    /** Hands the record to the sender through the session for exactly this one send. */
    @Override
    protected void send(Map<String, String> config, String subject, String textBody, String htmlBody, String address)
            throws EmailException {
        TemplateRecord record = pending;
        pending = null;
        if (record != null) {
            session.setAttribute(TemplateRecord.SESSION_ATTRIBUTE, record);
        }
        try {
            super.send(config, subject, textBody, htmlBody, address);
        } finally {
            session.removeAttribute(TemplateRecord.SESSION_ATTRIBUTE);
        }
    }
}
