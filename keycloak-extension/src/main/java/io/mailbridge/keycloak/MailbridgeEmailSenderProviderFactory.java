package io.mailbridge.keycloak;

import io.mailbridge.keycloak.render.TemplateFiles;
import io.mailbridge.keycloak.render.WasmRenderer;
import java.net.URI;
import java.time.Clock;
import java.util.List;
import org.jboss.logging.Logger;
import org.keycloak.Config;
import org.keycloak.email.DefaultEmailSenderProviderFactory;
import org.keycloak.email.EmailSenderProvider;
import org.keycloak.email.EmailSenderProviderFactory;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.provider.ProviderConfigProperty;
import org.keycloak.provider.ProviderConfigurationBuilder;

/** Registers the {@code mailbridge} email sender and holds what its providers share. */
public class MailbridgeEmailSenderProviderFactory implements EmailSenderProviderFactory {

    /** Provider id, as selected with {@code --spi-email-sender--provider=mailbridge}. */
    public static final String ID = "mailbridge";

    /** Option naming the template directory; blank: the templates inside the jar. */
    public static final String TEMPLATES_OPTION = "templates";

    private static final Logger LOG = Logger.getLogger(MailbridgeEmailSenderProviderFactory.class);

    private MailbridgeOptions options;
    private MailbridgeClient client;
    private TokenSigner signer;
    private Signing signing = Signing.SECRET;
    private RealmKeySigner realmKeys = new RealmKeySigner(Clock.systemUTC());
    private final DefaultEmailSenderProviderFactory smtp = new DefaultEmailSenderProviderFactory();
    private FallbackSender fallback = FallbackSender.keycloakSmtp(smtp);
    private TemplateFiles templates;
    private WasmRenderer renderer;
    private URI keycloakHostname;

    @Override
    public EmailSenderProvider create(KeycloakSession session) {
        return new MailbridgeEmailSenderProvider(session, options, client, signer, fallback, renderer, signing,
                realmKeys, new RealmIssuer(options.issuerBaseUrl(), keycloakHostname));
    }

    @Override
    public void init(Config.Scope config) {
        // Every mistake in the options stops the start here, before the first email finds it.
        MailbridgeOptions options = MailbridgeOptions.read(config::get);
        Signing signing = Signing.parse(config.get("signing"));
        options.checkSigning(signing);
        smtp.init(config);
        // Keycloak's own hostname option (its v2 hostname provider's scope), for realm-key tokens outside a request.
        keycloakHostname(Config.scope("hostname", "v2").get("hostname"));
        configure(options, Clock.systemUTC());
        String directory = config.get(TEMPLATES_OPTION);
        TemplateFiles chosen = TemplateFiles.forOption(directory);
        if (directory != null && !directory.isBlank()) {
            // An operator's set that does not compile would fail every fallback and preview.
            WasmRenderer.check(chosen, "mailbridge option " + TEMPLATES_OPTION + ": " + directory.trim());
        }
        templates(chosen);
        signing(signing, Clock.systemUTC());
        if (signing == Signing.REALM_KEY && options.issuerBaseUrl() == null && keycloakHostname == null) {
            LOG.warnf("mailbridge signing=realm-key: a realm without a Frontend URL cannot send email outside an HTTP "
                    + "request (a scheduled task, an event listener): set %s, or Keycloak's hostname as a full URL",
                    RealmIssuer.OPTION_FLAG);
        }
    }

    /** Keycloak's {@code hostname} option; only a full URL is kept (a bare host name needs a request). Also for tests. */
    void keycloakHostname(String value) {
        this.keycloakHostname = RealmIssuer.hostnameUrl(value);
    }

    /**
     * Renders with {@code templates} from now on: the SMTP fallback's emails and the admin preview.
     * The renderer instantiates its module on first use, so an unused one costs nothing.
     */
    void templates(TemplateFiles templates) {
        WasmRenderer previous = renderer;
        this.templates = templates;
        // Two workers: the fallback and the preview are rare, and each worker holds a module instance.
        this.renderer = new WasmRenderer(templates, WasmRenderer.DEFAULT_TIMEOUT, WasmRenderer.DEFAULT_MAX_MEMORY, 2);
        if (previous != null) {
            previous.close();
        }
    }

    /** The template set the renderer uses (from the {@code templates} option), or null before init. */
    public TemplateFiles templateFiles() {
        return templates;
    }

    /** The shared renderer of the mailbridge templates, or null before init. */
    public WasmRenderer renderer() {
        return renderer;
    }

    /** Chooses how requests are signed by default; also the entry point of tests. */
    void signing(Signing signing, Clock clock) {
        this.signing = signing;
        this.realmKeys = new RealmKeySigner(clock);
        if (signing == Signing.REALM_KEY) {
            LOG.infof("mailbridge email sender signs with each realm's own key (signing=realm-key)");
        }
    }

    /** Builds the shared parts from the options; also the entry point of tests. */
    void configure(MailbridgeOptions options, Clock clock) {
        this.options = options;
        this.client = options.configured()
                ? new MailbridgeClient(MailbridgeClient.newHttpClient(options.timeout()), options.url())
                : null;
        this.signer = options.secret() == null ? null : new TokenSigner(options.secret(), clock);
        if (options.configured()) {
            LOG.infof("mailbridge email sender: %s", options);
        }
    }

    /** Replaces Keycloak's SMTP sender as the fallback; for tests. */
    void fallback(FallbackSender fallback) {
        this.fallback = fallback;
    }

    @Override
    public void postInit(KeycloakSessionFactory factory) {
    }

    @Override
    public void close() {
        smtp.close();
        if (renderer != null) {
            renderer.close();
        }
    }

    @Override
    public String getId() {
        return ID;
    }

    @Override
    public int order() {
        return 0;
    }

    @Override
    public List<ProviderConfigProperty> getConfigMetadata() {
        return ProviderConfigurationBuilder.create()
                .property().name("url").type(ProviderConfigProperty.STRING_TYPE)
                .helpText("Base URL of the mailbridge service, e.g. http://mailbridge:8090, without user name, password, "
                        + "query or fragment. Required.").add()
                .property().name("secret").type(ProviderConfigProperty.PASSWORD).secret(true)
                .helpText("HS256 secret shared with the service (MAILBRIDGE_JWT_SECRET, at least 32 bytes). Required with "
                        + "signing=secret, unless the url is on loopback (a service run with --insecure-no-auth): then no token is sent.").add()
                .property().name("signing").type(ProviderConfigProperty.LIST_TYPE).options("secret", "realm-key").defaultValue("secret")
                .helpText("'secret': HS256 with the shared secret; 'realm-key': each realm's own active signing key (the service "
                        + "trusts the realm as a tenant's issuer; no secret anywhere). A realm's SMTP setting mailbridgeSigning overrides it.").add()
                .property().name("issuerBaseUrl").type(ProviderConfigProperty.STRING_TYPE)
                .helpText("Keycloak's base URL as realms' issuers begin with it, e.g. https://sso.example: with signing=realm-key, "
                        + "the token of an email sent outside an HTTP request (a scheduled task, an event listener) names the realm "
                        + "as {this}/realms/{realm} unless the realm has a Frontend URL. Default: Keycloak's hostname when it is a URL.").add()
                .property().name("timeout").type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue(String.valueOf(MailbridgeOptions.DEFAULT_TIMEOUT_MS))
                .helpText("Bound of one request to the service in milliseconds; a request left without an answer is sent once more with the same idempotency key.").add()
                .property().name("waitTimeout").type(ProviderConfigProperty.STRING_TYPE)
                .defaultValue(String.valueOf(MailbridgeOptions.DEFAULT_WAIT_TIMEOUT_MS))
                .helpText("Bound in milliseconds of the admin console's test email, which waits for delivery.").add()
                .property().name("fallback").type(ProviderConfigProperty.LIST_TYPE).options("none", "smtp").defaultValue("none")
                .helpText("When the service cannot have taken the email (refused connection, DNS failure, the service's own 503): 'none' fails the send, "
                        + "'smtp' uses Keycloak's own SMTP sender. Never used after a timeout, where the service may hold the email.").add()
                .property().name(TEMPLATES_OPTION).type(ProviderConfigProperty.STRING_TYPE)
                .helpText("Template directory laid out like the service's (tenant overrides included) that the SMTP fallback "
                        + "and the admin preview render from; default: the templates inside the jar.").add()
                .build();
    }
}
