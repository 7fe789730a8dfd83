package io.mailbridge.keycloak;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import org.jboss.logging.Logger;
import org.keycloak.email.EmailException;
import org.keycloak.models.KeycloakContext;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakUriInfo;
import org.keycloak.models.RealmModel;
import org.keycloak.urls.UrlType;

/**
 * The realm's issuer URL, {@code {base}/realms/{name}} as in its tokens and discovery document: the
 * {@code iss} of a token signed with the realm's key, which the service accepts only when it equals the
 * tenant's {@code issuer}. The base is the realm's own Frontend URL, else the current request's frontend
 * URL, else the {@code issuer-base-url} option, else Keycloak's {@code hostname} when it is a full URL.
 * Outside an HTTP request (a scheduled task, an event listener on another thread) there is no request
 * URL; with none of the others either, the send fails rather than sign a token the service refuses.
 */
public final class RealmIssuer {

    /** The realm attribute holding its Frontend URL (Realm settings, General). */
    static final String FRONTEND_URL = "frontendUrl";
    /** How operators write the option that gives the base outside a request. */
    static final String OPTION_FLAG = "--spi-email-sender--mailbridge--issuer-base-url";
    /** The same option as an environment variable. */
    static final String OPTION_ENV = "KC_SPI_EMAIL_SENDER__MAILBRIDGE__ISSUER_BASE_URL";

    private static final Logger LOG = Logger.getLogger(RealmIssuer.class);

    private final URI configured;
    private final URI hostname;

    /**
     * @param configured the {@code issuer-base-url} option, or null
     * @param hostname Keycloak's {@code hostname} option when it is a full URL (see {@link #hostnameUrl}), or null
     */
    public RealmIssuer(URI configured, URI hostname) {
        this.configured = configured;
        this.hostname = hostname;
    }

    /**
     * Keycloak's {@code hostname} option as a base URL, or null: a bare host name says nothing of the
     * scheme, port and path, which only a request would tell.
     */
    public static URI hostnameUrl(String value) {
        URI uri = httpUrl(value);
        return uri == null || uri.getRawQuery() != null || uri.getRawFragment() != null ? null : uri;
    }

    /**
     * The issuer of {@code realm} for a token signed now.
     *
     * @throws EmailException when no base URL is known, naming what to set
     */
    public String of(KeycloakSession session, RealmModel realm) throws EmailException {
        URI base = frontendUrl(realm);
        if (base == null) {
            base = requestBase(session);
        }
        if (base == null) {
            base = configured != null ? configured : hostname;
        }
        if (base == null) {
            throw new EmailException("mailbridge cannot sign for realm " + realm.getName() + " with its key: outside an "
                    + "HTTP request (a scheduled task, an event listener) the realm's issuer URL is unknown. Set the realm's "
                    + "Frontend URL, Keycloak's hostname as a full URL, or " + OPTION_FLAG + " (" + OPTION_ENV + ") to the "
                    + "URL the realm's issuer begins with, e.g. https://sso.example");
        }
        return issuer(base, realm.getName());
    }

    /** {@code base}, without a trailing slash or a default port, then {@code /realms/} and the name as one path segment. */
    static String issuer(URI base, String realm) {
        String scheme = base.getScheme().toLowerCase(Locale.ROOT);
        int port = base.getPort();
        boolean defaultPort = port == -1 || (scheme.equals("https") && port == 443) || (scheme.equals("http") && port == 80);
        String path = base.getRawPath() == null ? "" : base.getRawPath().replaceAll("/+$", "");
        return scheme + "://" + base.getHost() + (defaultPort ? "" : ":" + port) + path + "/realms/" + segment(realm);
    }

    private static URI frontendUrl(RealmModel realm) {
        String value = realm.getAttribute(FRONTEND_URL);
        if (value == null || value.isBlank()) {
            return null;
        }
        URI uri = httpUrl(value.trim());
        if (uri == null) {
            // Keycloak ignores such a value too, and uses its global hostname.
            LOG.warnf("realm %s: Frontend URL '%s' is not an http(s) URL; ignored for the mailbridge token's issuer",
                    realm.getName(), MailbridgeOptions.excerpt(value));
        }
        return uri;
    }

    /** The current request's frontend base URL; none outside a request, where Keycloak's context throws or has none. */
    private static URI requestBase(KeycloakSession session) {
        try {
            KeycloakContext context = session.getContext();
            KeycloakUriInfo uri = context == null ? null : context.getUri(UrlType.FRONTEND);
            URI base = uri == null ? null : uri.getBaseUri();
            return base == null || base.getHost() == null ? null : base;
        } catch (RuntimeException e) {
            return null;
        }
    }

    private static URI httpUrl(String value) {
        if (value == null || value.isBlank()) {
            return null;
        }
        try {
            URI uri = new URI(value.trim());
            String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
            return (scheme.equals("http") || scheme.equals("https")) && uri.getHost() != null ? uri : null;
        } catch (URISyntaxException e) {
            return null;
        }
    }

    /** The realm name percent-encoded as one path segment (RFC 3986 pchar), as Keycloak encodes it in its URLs. */
    private static String segment(String name) {
        StringBuilder out = new StringBuilder();
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "-._~!$&'()*+,;=:@".indexOf(c) >= 0) {
                out.append((char) c);
            } else {
                out.append('%').append(String.format("%02X", c));
            }
        }
        return out.toString();
    }
}
