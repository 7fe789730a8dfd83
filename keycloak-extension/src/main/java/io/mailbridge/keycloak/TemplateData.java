package io.mailbridge.keycloak;

import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.keycloak.events.Event;
import org.keycloak.models.OrganizationModel;
import org.keycloak.models.UserModel;

/**
 * Turns the attributes Keycloak hands to its FreeMarker email templates into plain JSON values that
 * the service's own templates can use. Keycloak's template beans are not serialisable, so each known
 * attribute is copied field by field; anything unknown stays behind.
 */
public final class TemplateData {

    /** Plain string attributes that some kinds carry and that are copied as they are. */
    private static final List<String> PLAIN_ATTRIBUTES = List.of(
            "link", "realmName", "code", "newEmail", "identityProviderAlias", "identityProviderDisplayName");

    private TemplateData() {
    }

    /**
     * The kind of an email from Keycloak's template file name: {@code password-reset.ftl} stays
     * {@code password-reset}, {@code executeActions.ftl} becomes {@code execute-actions}.
     */
    public static String kindOf(String templateFile) {
        String name = templateFile.endsWith(".ftl") ? templateFile.substring(0, templateFile.length() - 4) : templateFile;
        StringBuilder kind = new StringBuilder(name.length() + 4);
        for (char c : name.toCharArray()) {
            if (Character.isUpperCase(c)) {
                if (kind.length() > 0 && kind.charAt(kind.length() - 1) != '-') {
                    kind.append('-');
                }
                kind.append(Character.toLowerCase(c));
            } else {
                kind.append(c);
            }
        }
        return kind.toString().toLowerCase(Locale.ROOT);
    }

    /**
     * The plain attributes of one email.
     *
     * @param attributes the FreeMarker attributes after Keycloak filled them in
     * @param user the recipient, or null
     * @param event the event the email reports, or null
     */
    public static Map<String, Object> from(Map<String, Object> attributes, UserModel user, Event event) {
        Map<String, Object> data = new LinkedHashMap<>();
        for (String name : PLAIN_ATTRIBUTES) {
            Object value = attributes.get(name);
            if (value instanceof String || value instanceof Number) {
                data.put(name, value.toString());
            }
        }
        if (attributes.get("linkExpiration") instanceof Number) {
            data.put("linkExpiration", ((Number) attributes.get("linkExpiration")).longValue());
        }
        if (user != null) {
            data.put("user", user(user));
        }
        if (attributes.get("requiredActions") instanceof Collection) {
            data.put("requiredActions", strings((Collection<?>) attributes.get("requiredActions")));
        }
        if (event != null) {
            data.put("event", event(event));
        }
        if (attributes.get("organization") instanceof OrganizationModel) {
            data.put("organization", organization((OrganizationModel) attributes.get("organization")));
        }
        return data;
    }

    private static Map<String, Object> user(UserModel user) {
        Map<String, Object> out = new LinkedHashMap<>();
        putIfPresent(out, "username", user.getUsername());
        putIfPresent(out, "email", user.getEmail());
        putIfPresent(out, "firstName", user.getFirstName());
        putIfPresent(out, "lastName", user.getLastName());
        return out;
    }

    private static Map<String, Object> event(Event event) {
        Map<String, Object> out = new LinkedHashMap<>();
        putIfPresent(out, "type", event.getType() == null ? null : event.getType().name());
        out.put("date", Instant.ofEpochMilli(event.getTime()).toString());
        putIfPresent(out, "ipAddress", event.getIpAddress());
        Map<String, Object> details = new LinkedHashMap<>();
        if (event.getDetails() != null) {
            event.getDetails().forEach((key, value) -> putIfPresent(details, key, value));
        }
        out.put("details", details);
        return out;
    }

    private static Map<String, Object> organization(OrganizationModel organization) {
        Map<String, Object> out = new LinkedHashMap<>();
        putIfPresent(out, "name", organization.getName());
        return out;
    }

    private static List<String> strings(Collection<?> values) {
        List<String> out = new ArrayList<>(values.size());
        for (Object value : values) {
            if (value != null) {
                out.add(value.toString());
            }
        }
        return out;
    }

    private static void putIfPresent(Map<String, Object> map, String key, Object value) {
        if (value != null) {
            map.put(key, value);
        }
    }
}
