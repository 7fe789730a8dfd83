package io.mailbridge.keycloak;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Map;
import org.keycloak.email.EmailException;

/**
 * The JSON body of {@code POST /v1/messages} for one email. Only the realm's address settings are
 * read from its SMTP configuration: its password and client secret never leave Keycloak.
 */
public final class MessageBody {

    private static final ObjectMapper JSON = new ObjectMapper();

    private MessageBody() {
    }

    /** The rendered email as Keycloak made it. */
    public record Content(String subject, String text, String html) {
    }

    /**
     * Builds the body.
     *
     * @param tenant realm name, or null
     * @param config the realm's SMTP settings (only from, replyTo, envelopeFrom and display names are read)
     * @param to recipient address
     * @param content subject, text and html as Keycloak rendered them
     * @param record kind, data and locale from the template provider, or null
     * @param locale the user's locale when the record has none, or null
     * @param idempotencyKey unique per send
     */
    public static byte[] build(String tenant, Map<String, String> config, String to, Content content,
            TemplateRecord record, String locale, String idempotencyKey) throws EmailException {
        ObjectNode body = JSON.createObjectNode();
        putIfPresent(body, "tenant", tenant);
        body.putArray("to").addObject().put("email", to);
        mailbox(body, "from", config.get("from"), config.get("fromDisplayName"));
        mailbox(body, "reply_to", config.get("replyTo"), config.get("replyToDisplayName"));
        putIfPresent(body, "envelope_from", trimmed(config.get("envelopeFrom")));
        putIfPresent(body, "subject", content.subject());
        putIfPresent(body, "text", content.text());
        putIfPresent(body, "html", content.html());
        if (record != null) {
            body.put("template", record.kind());
            body.set("data", JSON.valueToTree(record.data()));
        }
        putIfPresent(body, "locale", record != null && record.locale() != null ? record.locale() : locale);
        body.put("idempotency_key", idempotencyKey);
        ArrayNode tags = body.putArray("tags");
        tags.add("keycloak");
        ObjectNode metadata = body.putObject("metadata");
        putIfPresent(metadata, "realm", tenant);
        try {
            return JSON.writeValueAsBytes(body);
        } catch (JsonProcessingException e) {
            throw new EmailException("Could not encode the email for mailbridge.", e);
        }
    }

    private static void mailbox(ObjectNode body, String field, String address, String displayName) {
        String email = trimmed(address);
        if (email == null) {
            return;
        }
        ObjectNode mailbox = body.putObject(field);
        mailbox.put("email", email);
        putIfPresent(mailbox, "name", trimmed(displayName));
    }

    private static String trimmed(String value) {
        return value == null || value.isBlank() ? null : value.trim();
    }

    private static void putIfPresent(ObjectNode node, String field, String value) {
        if (value != null) {
            node.put(field, value);
        }
    }
}
