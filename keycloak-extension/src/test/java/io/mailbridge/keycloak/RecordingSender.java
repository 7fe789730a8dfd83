package io.mailbridge.keycloak;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.keycloak.email.EmailSenderProvider;

/** Stands in for Keycloak's SMTP sender: records what it was asked to send. */
final class RecordingSender implements EmailSenderProvider {

    /** One email handed to this sender. */
    record Sent(Map<String, String> config, String address, String subject, String text, String html) {
    }

    final List<Sent> sent = new CopyOnWriteArrayList<>();

    @Override
    public void send(Map<String, String> config, String address, String subject, String textBody, String htmlBody) {
        sent.add(new Sent(config, address, subject, textBody, htmlBody));
    }

    @Override
    public void validate(Map<String, String> config) {
    }

    @Override
    public void close() {
    }
}
