package io.mailbridge.keycloak;

import io.mailbridge.keycloak.render.WasmRenderer;
import java.net.URI;
import java.net.URISyntaxException;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.Map;
import java.util.UUID;
import java.util.function.Supplier;
import org.jboss.logging.Logger;
import org.keycloak.email.EmailException;
import org.keycloak.email.EmailSenderProvider;
import org.keycloak.models.KeycloakContext;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.UserModel;

/** Sends every email of a session to the mailbridge service instead of an SMTP server. */
public class MailbridgeEmailSenderProvider implements EmailSenderProvider {

    /** Key in a realm's SMTP settings; the value {@code off} keeps that realm on Keycloak's own SMTP sender. */
    public static final String REALM_SWITCH = "mailbridge";
    /** Realm SMTP setting that overrides the server-wide {@code fallback} option for one realm. */
    public static final String REALM_FALLBACK = "mailbridgeFallback";

    private static final Logger LOG = Logger.getLogger(MailbridgeEmailSenderProvider.class);

    private final KeycloakSession session;
    private final MailbridgeOptions options;
    private final MailbridgeClient client;
    private final TokenSigner signer;
    private final FallbackSender fallback;
    private final WasmRenderer renderer;
    private final Signing signing;
    private final RealmKeySigner realmKeys;
    private final RealmIssuer issuers;

    /** A sender for one session that signs with the shared secret and has no renderer for its fallback. */
    public MailbridgeEmailSenderProvider(KeycloakSession session, MailbridgeOptions options, MailbridgeClient client,
            TokenSigner signer, FallbackSender fallback) {
        this(session, options, client, signer, fallback, null, Signing.SECRET, null, new RealmIssuer(null, null));
    }

    /**
     * A sender for one session; the client, signer and renderer are shared by the factory. The renderer (null:
     * none) renders what the SMTP fallback sends from the mailbridge templates; requests are signed as
     * {@code signing} says (realms may override it); {@code issuers} names the realm in realm-key tokens.
     */
    public MailbridgeEmailSenderProvider(KeycloakSession session, MailbridgeOptions options, MailbridgeClient client,
            TokenSigner signer, FallbackSender fallback, WasmRenderer renderer, Signing signing,
            RealmKeySigner realmKeys, RealmIssuer issuers) {
        this.session = session;
        this.options = options;
        this.client = client;
        this.signer = signer;
        this.fallback = fallback;
        this.renderer = renderer;
        this.signing = signing;
        this.realmKeys = realmKeys;
        this.issuers = issuers;
    }

    @Override
    public void send(Map<String, String> config, UserModel user, String subject, String textBody, String htmlBody)
            throws EmailException {
        if (optedOut(config)) {
            fallback.open(session).send(config, user, subject, textBody, htmlBody);
            return;
        }
        deliver(config, user.getEmail(), user.getFirstAttribute(UserModel.LOCALE), new MessageBody.Content(subject, textBody, htmlBody));
    }

    @Override
    public void send(Map<String, String> config, String address, String subject, String textBody, String htmlBody)
            throws EmailException {
        if (optedOut(config)) {
            fallback.open(session).send(config, address, subject, textBody, htmlBody);
            return;
        }
        deliver(config, address, null, new MessageBody.Content(subject, textBody, htmlBody));
    }

    @Override
    public void validate(Map<String, String> config) throws EmailException {
        AddressRules.check(config);
    }

    @Override
    public void close() {
    }

    private static boolean optedOut(Map<String, String> config) {
        return "off".equalsIgnoreCase(String.valueOf(config.get(REALM_SWITCH)).trim());
    }

    private void deliver(Map<String, String> config, String address, String userLocale, MessageBody.Content content)
            throws EmailException {
        if (!options.configured()) {
            throw new EmailException("mailbridge is not configured: set --spi-email-sender--mailbridge--url "
                    + "(or KC_SPI_EMAIL_SENDER__MAILBRIDGE__URL).");
        }
        AddressRules.checkRecipient(address);
        TemplateRecord record = session.getAttribute(TemplateRecord.SESSION_ATTRIBUTE, TemplateRecord.class);
        String realm = realmName(record);
        // One key per email, made once and reused by the retry: the service stores the email at most once.
        String key = "kc-" + UUID.randomUUID();
        byte[] body = MessageBody.build(realm, config, address.trim(), content, record, userLocale, key);
        boolean wait = record != null && record.waitForDelivery();
        try {
            MailbridgeClient.Accepted accepted = postOnceMore(body, key, realm, wait, signingFor(config));
            LOG.infof("mailbridge %s message %s for realm %s (%s)", accepted.status(), accepted.id(), realm,
                    record == null ? "no template" : record.kind());
        } catch (ServiceUnreachableException e) {
            handleUnreachable(e, config, address,
                    () -> FallbackContent.choose(renderer, realm, record, userLocale, content), realm, wait);
        } catch (UnconfirmedException e) {
            LOG.warnf("mailbridge did not confirm an email for realm %s: %s; not sent by SMTP, the service may hold it",
                    realm, e.getMessage());
            throw new EmailException("The mail service did not confirm the email (" + e.getMessage()
                    + "); it may still be delivered, so it was not sent another way.", e);
        } catch (EmailException e) {
            LOG.warnf("mailbridge did not take an email for realm %s: %s", realm, e.getMessage());
            throw e;
        }
    }

    /**
     * Posts the email, and once more with the same key when the first answer is unknown. After an
     * unknown first answer, every failure of the second is unknown too: the first may be stored.
     */
    private MailbridgeClient.Accepted postOnceMore(byte[] body, String key, String realm, boolean wait, Signing signing)
            throws ServiceUnreachableException, UnconfirmedException, EmailException {
        Duration timeout = wait ? options.waitTimeout() : options.timeout();
        try {
            return client.post(body, key, token(realm, signing), wait, timeout);
        } catch (UnconfirmedException first) {
            LOG.infof("mailbridge did not confirm an email for realm %s (%s); sending it again with the same key",
                    realm, first.getMessage());
        }
        try {
            // A fresh token: each request gets its own jti and lifetime.
            return client.post(body, key, token(realm, signing), wait, timeout);
        } catch (ServiceUnreachableException second) {
            throw new UnconfirmedException(second.getMessage() + ", after a first attempt without an answer", second);
        }
    }

    /** Hands the email to Keycloak's SMTP sender when allowed; its content is rendered only then. */
    private void handleUnreachable(ServiceUnreachableException e, Map<String, String> config, String address,
            Supplier<MessageBody.Content> fallbackContent, String realm, boolean wait) throws EmailException {
        // The test email never falls back: the admin is testing the path through mailbridge.
        if (fallbackFor(config) == MailbridgeOptions.Fallback.SMTP && !wait) {
            LOG.warnf("mailbridge unreachable for realm %s (%s); handing the email to Keycloak's SMTP sender", realm, e.getMessage());
            MessageBody.Content content = fallbackContent.get();
            fallback.open(session).send(config, address, content.subject(), content.text(), content.html());
            return;
        }
        LOG.warnf("mailbridge unreachable for realm %s: %s", realm, e.getMessage());
        throw new EmailException("The mail service is unreachable: " + e.getMessage(), e);
    }

    /** The realm's own {@code mailbridgeFallback} setting, else the server-wide option. */
    private MailbridgeOptions.Fallback fallbackFor(Map<String, String> config) {
        String own = config == null ? null : config.get(REALM_FALLBACK);
        if (own == null || own.isBlank()) {
            return options.fallback();
        }
        try {
            return MailbridgeOptions.parseFallback(own);
        } catch (IllegalArgumentException e) {
            LOG.warnf("realm setting %s='%s' is neither none nor smtp; using the server option", REALM_FALLBACK,
                    MailbridgeOptions.excerpt(own));
            return options.fallback();
        }
    }

    private String realmName(TemplateRecord record) {
        KeycloakContext context = session.getContext();
        RealmModel realm = context == null ? null : context.getRealm();
        if (realm != null) {
            return realm.getName();
        }
        return record == null ? null : record.realm();
    }

    /** The realm's own {@code mailbridgeSigning} setting, else the server-wide option. */
    private Signing signingFor(Map<String, String> config) {
        String own = config == null ? null : config.get(Signing.REALM_SETTING);
        if (own == null || own.isBlank()) {
            return signing;
        }
        try {
            return Signing.parse(own);
        } catch (IllegalArgumentException e) {
            LOG.warnf("realm setting %s='%s' is neither secret nor realm-key; using the server option", Signing.REALM_SETTING,
                    MailbridgeOptions.excerpt(own));
            return signing;
        }
    }

    private String token(String realm, Signing signing) throws EmailException {
        try {
            if (signing == Signing.REALM_KEY) {
                return realmKeyToken(realm);
            }
            return signer == null ? null : signer.sign(issuer(realm), realm);
        } catch (GeneralSecurityException e) {
            LOG.warnf("could not sign the request to mailbridge for realm %s: %s", realm, e.getMessage());
            throw new EmailException("Could not sign the request to mailbridge: " + e.getMessage(), e);
        }
    }

    private String realmKeyToken(String name) throws GeneralSecurityException, EmailException {
        KeycloakContext context = session.getContext();
        RealmModel realm = context == null ? null : context.getRealm();
        if (realm == null || !realm.getName().equals(name)) {
            realm = name == null ? null : session.realms().getRealmByName(name);
        }
        if (realm == null || realmKeys == null) {
            throw new GeneralSecurityException("signing=realm-key needs the realm of the email, and none is known");
        }
        // The service refuses a token whose iss is not the realm's URL: never sign one with a guess.
        return realmKeys.sign(session, realm, issuers.of(session, realm));
    }

    private String issuer(String realm) {
        if (realm == null) {
            return "keycloak";
        }
        try {
            URI base = session.getContext().getUri().getBaseUri();
            String path = base.getPath() == null ? "" : base.getPath().replaceAll("/+$", "");
            // The multi-argument constructor quotes what a realm name may hold (spaces, non-ASCII).
            return new URI(base.getScheme(), base.getAuthority(), path + "/realms/" + realm, null, null).toASCIIString();
        } catch (URISyntaxException | RuntimeException e) {
            // No HTTP request behind this session (a scheduled task): the realm name identifies the caller.
            return realm;
        }
    }
}
