package io.mailbridge.keycloak.preview;

import java.util.Locale;

/** What the preview answers with: the HTML part or the text part of the email. */
enum PreviewFormat {
    /** The HTML part. */
    HTML("html", "text/html; charset=utf-8"),
    /** The plain-text part. */
    TEXT("text", "text/plain; charset=utf-8");

    private final String field;
    private final String mediaType;

    PreviewFormat(String field, String mediaType) {
        this.field = field;
        this.mediaType = mediaType;
    }

    /** The format named by the query parameter (absent: html), or null when it names none. */
    static PreviewFormat parse(String value) {
        if (value == null || value.isBlank()) {
            return HTML;
        }
        switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "html":
                return HTML;
            case "text":
                return TEXT;
            default:
                return null;
        }
    }

    /** The renderer's answer field that holds this part. */
    String field() {
        return field;
    }

    /** The response's media type. */
    String mediaType() {
        return mediaType;
    }
}
