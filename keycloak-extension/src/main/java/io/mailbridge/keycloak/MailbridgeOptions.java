package io.mailbridge.keycloak;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.function.UnaryOperator;

/**
 * The sender's settings, read once from the SPI options when Keycloak starts.
 *
 * @param url base URL of the mailbridge service, or null when not configured
 * @param secret HS256 secret shared with the service, or null to send no token
 * @param timeout bound of one request (connect and answer)
 * @param waitTimeout bound of a request sent with {@code ?wait=true} (the test email)
 * @param fallback what to do when the service cannot have taken an email
 * @param issuerBaseUrl Keycloak's base URL for realm-key tokens sent outside an HTTP request, or null
 */
public record MailbridgeOptions(URI url, String secret, Duration timeout, Duration waitTimeout, Fallback fallback,
        URI issuerBaseUrl) {

    /** The shortest secret the service accepts, in bytes (its MAILBRIDGE_JWT_SECRET rule). */
    public static final int MIN_SECRET_BYTES = 32;
    /** Default bound of one request in milliseconds. */
    public static final long DEFAULT_TIMEOUT_MS = 5000;
    /** Default bound of a {@code ?wait=true} request: the service's own 30 s bound plus a margin. */
    public static final long DEFAULT_WAIT_TIMEOUT_MS = 35000;

    /** What happens to an email the service cannot have taken (refused connection, DNS failure, its own 503). */
    public enum Fallback {
        /** Fail the send with an EmailException. */
        NONE,
        /** Hand the email to Keycloak's own SMTP sender (provider id {@code default}). */
        SMTP
    }

    /** Options without an {@code issuerBaseUrl}. */
    public MailbridgeOptions(URI url, String secret, Duration timeout, Duration waitTimeout, Fallback fallback) {
        this(url, secret, timeout, waitTimeout, fallback, null);
    }

    /**
     * Reads the options through a key lookup (Keycloak's {@code Config.Scope::get}).
     *
     * @throws IllegalArgumentException when a value is present but malformed, so that a typo stops the start
     */
    public static MailbridgeOptions read(UnaryOperator<String> option) {
        return new MailbridgeOptions(
                parseUrl(option.apply("url")),
                parseSecret(option.apply("secret")),
                parseMillis("timeout", option.apply("timeout"), DEFAULT_TIMEOUT_MS),
                parseMillis("waitTimeout", option.apply("waitTimeout"), DEFAULT_WAIT_TIMEOUT_MS),
                parseFallback(option.apply("fallback")),
                parseIssuerBaseUrl(option.apply("issuerBaseUrl")));
    }

    /** True when a service URL was given. */
    public boolean configured() {
        return url != null;
    }

    /**
     * Refuses, at start, a configuration whose emails would all be refused: signing with the shared
     * secret when none is set. Only a service on loopback can run without tokens ({@code --insecure-no-auth}).
     *
     * @throws IllegalArgumentException naming the option
     */
    public void checkSigning(Signing signing) {
        if (configured() && signing == Signing.SECRET && secret == null && !isLoopback(url.getHost())) {
            throw new IllegalArgumentException("mailbridge option secret is not set, but signing=secret signs every request "
                    + "with it: set it to the service's MAILBRIDGE_JWT_SECRET, or use signing=realm-key");
        }
    }

    /** Never prints the secret. */
    @Override
    public String toString() {
        return "MailbridgeOptions[url=" + url + ", secret=" + (secret == null ? "unset" : "set")
                + ", timeout=" + timeout.toMillis() + "ms, waitTimeout=" + waitTimeout.toMillis()
                + "ms, fallback=" + fallback.name().toLowerCase(Locale.ROOT)
                + (issuerBaseUrl == null ? "" : ", issuerBaseUrl=" + issuerBaseUrl) + "]";
    }

    private static URI parseUrl(String value) {
        String url = blankToNull(value);
        if (url == null) {
            return null;
        }
        URI uri;
        try {
            uri = new URI(url.endsWith("/") ? url.substring(0, url.length() - 1) : url);
        } catch (URISyntaxException e) {
            // Not the exception itself: its message repeats the value, credentials included.
            throw new IllegalArgumentException("mailbridge option url is not a valid URL: '" + shown(url) + "'");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (url.indexOf('@') >= 0) {
            // User info would be logged at start and repeated in every error; the service takes a token, not a password.
            throw new IllegalArgumentException("mailbridge option url must not carry a user name or password (an '@'), got '"
                    + shown(url) + "'; the service authenticates requests by a token, see the secret option");
        }
        if (!(scheme.equals("http") || scheme.equals("https")) || uri.getHost() == null) {
            throw new IllegalArgumentException("mailbridge option url must be an http(s) URL with a host, got '" + shown(url) + "'");
        }
        if (uri.getRawQuery() != null || uri.getRawFragment() != null) {
            // Not repeated: a query may hold a key.
            throw new IllegalArgumentException("mailbridge option url must be the service's base URL, without a query or "
                    + "fragment (the extension adds /v1/messages to it)");
        }
        return uri;
    }

    /**
     * Keycloak's base URL as realms' issuers begin with it ({@code https://sso.example}, or with a path such
     * as {@code /auth}): the realm's own path is added per realm, so a value naming one realm is refused.
     */
    private static URI parseIssuerBaseUrl(String value) {
        String text = blankToNull(value);
        if (text == null) {
            return null;
        }
        String name = "mailbridge option issuer-base-url";
        URI uri;
        try {
            uri = new URI(text.trim().replaceAll("/+$", ""));
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException(name + " is not a valid URL: '" + shown(text) + "'");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!(scheme.equals("http") || scheme.equals("https")) || uri.getHost() == null || uri.getRawUserInfo() != null
                || uri.getRawQuery() != null || uri.getRawFragment() != null) {
            throw new IllegalArgumentException(name + " must be an http(s) URL with a host and without a user name, query or "
                    + "fragment, got '" + shown(text) + "'");
        }
        String path = uri.getRawPath() == null ? "" : uri.getRawPath();
        if (path.endsWith("/realms") || path.contains("/realms/")) {
            throw new IllegalArgumentException(name + " is Keycloak's base URL, without /realms/…: each realm's path is "
                    + "added to it, got '" + shown(text) + "'");
        }
        return uri;
    }

    /**
     * A value from outside (a realm setting, a path parameter) as a log line or an error may repeat it: at most 40
     * characters, control characters escaped, so that it can neither be long nor forge a line of its own.
     */
    public static String excerpt(String value) {
        if (value == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder();
        int count = 0;
        for (int i = 0; i < value.length() && count < 40; i += Character.charCount(value.codePointAt(i)), count++) {
            int c = value.codePointAt(i);
            if (Character.isISOControl(c) || c == 0x2028 || c == 0x2029) {
                out.append(String.format("\\u%04x", c));
            } else {
                out.appendCodePoint(c);
            }
        }
        return value.codePointCount(0, value.length()) > 40 ? out + "…" : out.toString();
    }

    /** The URL as an error may show it: without user info, query or fragment (either may hold a key). */
    private static String shown(String url) {
        int end = url.length();
        for (char c : new char[] {'?', '#'}) {
            int at = url.indexOf(c);
            if (at >= 0 && at < end) {
                end = at;
            }
        }
        return withoutUserInfo(url.substring(0, end)) + (end < url.length() ? "…" : "");
    }

    /** The URL with everything up to its last {@code @} (where a password would be) shown as {@code ***}. */
    private static String withoutUserInfo(String url) {
        int at = url.lastIndexOf('@');
        return at < 0 ? url : "***@" + url.substring(at + 1);
    }

    private static String parseSecret(String value) {
        String secret = blankToNull(value);
        if (secret != null && secret.getBytes(StandardCharsets.UTF_8).length < MIN_SECRET_BYTES) {
            throw new IllegalArgumentException("mailbridge option secret is shorter than " + MIN_SECRET_BYTES
                    + " bytes, which the service refuses as MAILBRIDGE_JWT_SECRET: use the service's secret");
        }
        return secret;
    }

    /** A host name or address that stays on this machine, judged without DNS. */
    private static boolean isLoopback(String host) {
        String name = host.toLowerCase(Locale.ROOT);
        return name.equals("localhost") || name.endsWith(".localhost") || name.matches("127(\\.[0-9]{1,3}){3}")
                || name.equals("[::1]");
    }

    private static Duration parseMillis(String name, String value, long defaultMillis) {
        String text = blankToNull(value);
        if (text == null) {
            return Duration.ofMillis(defaultMillis);
        }
        try {
            long millis = Long.parseLong(text.trim());
            if (millis <= 0) {
                throw new IllegalArgumentException("mailbridge option " + name + " must be a positive number of milliseconds, got '" + text + "'");
            }
            return Duration.ofMillis(millis);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("mailbridge option " + name + " must be a number of milliseconds, got '" + text + "'", e);
        }
    }

    static Fallback parseFallback(String value) {
        String text = blankToNull(value);
        if (text == null) {
            return Fallback.NONE;
        }
        switch (text.trim().toLowerCase(Locale.ROOT)) {
            case "none":
                return Fallback.NONE;
            case "smtp":
                return Fallback.SMTP;
            default:
                throw new IllegalArgumentException("mailbridge option fallback must be 'none' or 'smtp', got '" + text + "'");
        }
    }

    static String blankToNull(String value) {
        return value == null || value.isBlank() ? null : value;
    }
}
