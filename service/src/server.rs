//! Assembly and lifecycle: settings become parts; the server runs until a
//! shutdown signal, then stops accepting, lets in-flight sends finish within a
//! bound, and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::api::AppState;
use crate::auth::Verifier;
use crate::auth::realm::RealmKeys;
use crate::config::Settings;
use crate::console::{Console, SignIn};
use crate::events::source::EventSources;
use crate::feedback::transport::KeycloakTransport;
use crate::feedback::{Feedback, Realm};
use crate::listener::ServingLimits;
use crate::oauth::ClientCredentials;
use crate::queue::JobStore;
use crate::queue::sealing::Keyring;
use crate::queue::worker::{Worker, WorkerConfig};
use crate::render::Renderer;
use crate::secret::Secret;
use crate::telemetry::Metrics;
use crate::tenant::Tenants;
use upkeep::{PRUNE_EVERY, prune_task, retention_task};

mod upkeep;
use crate::transport::ratelimit::RateLimits;
use crate::transport::{self, Dsn, Transports};
use crate::webhooks::transport::WebhookTransport;
use crate::webhooks::{Target, Webhooks};

/// How the server should treat authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Tokens are required (a secret must be configured).
    Required,
    /// `--insecure-no-auth`: no tokens, allowed only on a loopback address.
    InsecureNoAuth,
}

/// Everything a running server is made of.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The state of the HTTP handlers.
    pub state: AppState,
    /// The delivery worker.
    pub worker: Worker,
    /// How long bodies of sent messages are kept.
    pub retention: Duration,
    /// How long to keep serving, not ready, after the stop signal.
    pub shutdown_delay: Duration,
    /// How often flow-limit cells whose window has passed are deleted.
    pub prune_every: Duration,
    /// Header and body timeouts, the connection cap.
    pub serving: ServingLimits,
}

/// Loads the templates of `settings`.
pub fn load_renderer(settings: &Settings) -> anyhow::Result<Renderer> {
    let dir = settings.templates.display();
    let sources = crate::render::load_dir(&settings.templates)
        .with_context(|| format!("loading templates from {dir}"))?;
    if !crate::render::has_email_template(&sources) {
        anyhow::bail!(
            "MAILBRIDGE_TEMPLATES={dir} holds no email template (emails/<name>/subject.j2 and \
             html.j2, or tenants/<tenant>/emails/<name>/…): every render would answer unknown-template"
        );
    }
    Renderer::new(sources).context("compiling templates")
}

/// Builds every configured transport.
pub fn build_transports(settings: &Settings) -> anyhow::Result<Transports> {
    let mut transports = Transports::default();
    for (name, dsn) in &settings.transports {
        let mut dsn = Dsn::parse(dsn.expose()).with_context(|| format!("transport `{name}`"))?;
        // `rate` belongs to the worker's limits and `webhook_key` to the
        // event endpoint, not to the transport itself.
        dsn.options.remove("rate");
        dsn.options.remove(crate::events::source::WEBHOOK_KEY);
        let built = transport::from_dsn(&dsn).with_context(|| format!("transport `{name}`"))?;
        transports.insert(name.clone(), built);
    }
    Ok(transports)
}

/// Each tenant's webhook target (validated at start).
pub fn build_webhooks(settings: &Settings) -> Webhooks {
    let targets = settings
        .tenants
        .iter()
        .filter_map(|(name, t)| {
            let url = url::Url::parse(t.webhook_url.as_deref()?).ok()?;
            let secret = Secret::new(t.webhook_secret.clone()?);
            Some((name.clone(), Target { url, secret }))
        })
        .collect();
    Webhooks::new(targets)
}

/// Each tenant's Keycloak realm for feedback (validated at start).
pub fn build_feedback(settings: &Settings) -> anyhow::Result<Feedback> {
    let mut realms = std::collections::BTreeMap::new();
    for (name, t) in &settings.tenants {
        let (Some(url), Some(id), Some(secret)) = (
            &t.keycloak_url,
            &t.keycloak_client_id,
            &t.keycloak_client_secret,
        ) else {
            continue;
        };
        let (base, realm) = Realm::parse_url(url)
            .map_err(|why| anyhow::anyhow!("tenant `{name}`: keycloak_url {why}"))?;
        let tokens = ClientCredentials::new(
            transport::http::client()?,
            Realm::token_url(&base, &realm).to_string(),
            id.clone(),
            secret.clone(),
            String::new(),
        );
        let unverify = t.keycloak_unverify.unwrap_or(false);
        let tokens = Arc::new(tokens);
        realms.insert(
            name.clone(),
            Realm {
                base,
                realm,
                tokens,
                unverify,
            },
        );
    }
    Ok(Feedback::new(realms))
}

/// The event endpoints: transports with a `webhook_key`.
pub fn build_event_sources(settings: &Settings) -> anyhow::Result<EventSources> {
    let mut dsns = Vec::new();
    for (name, dsn) in &settings.transports {
        let dsn = Dsn::parse(dsn.expose()).with_context(|| format!("transport `{name}`"))?;
        dsns.push((name.as_str(), dsn));
    }
    EventSources::from_dsns(dsns.iter().map(|(n, d)| (*n, d)))
        .map_err(|(name, error)| anyhow::anyhow!(error).context(format!("transport `{name}`")))
}

/// The sending limits: a transport's `?rate=` and a tenant's `rate`.
pub fn build_limits(settings: &Settings) -> anyhow::Result<RateLimits> {
    let mut by_transport = Vec::new();
    for (name, dsn) in &settings.transports {
        let dsn = Dsn::parse(dsn.expose()).with_context(|| format!("transport `{name}`"))?;
        if let Some(rate) = dsn.option("rate") {
            by_transport.push((name.clone(), rate.to_owned()));
        }
    }
    let by_tenant = settings
        .tenants
        .iter()
        .filter_map(|(name, t)| t.rate.clone().map(|r| (name.clone(), r)));
    Ok(RateLimits::new(by_transport, by_tenant)?)
}

/// Token verification: the shared secret and the tenants' realms, at least one of them.
fn build_verifier(settings: &Settings) -> anyhow::Result<Verifier> {
    let realms = RealmKeys::new(settings.issuers(), crate::auth::jwks::client());
    anyhow::ensure!(
        settings.jwt_secret.is_some() || !realms.is_empty(),
        "no MAILBRIDGE_JWT_SECRET (or MAILBRIDGE_JWT_SECRET_FILE) is set and no tenant has an `issuer`; \
         set a tenant's realm issuer or the secret shared with Keycloak, \
         or for a local trial start with --insecure-no-auth"
    );
    let secret = settings.jwt_secret.as_ref().map(|s| s.expose().as_bytes());
    Ok(Verifier::with(secret, realms).realm_key_only(settings.realm_key_only()))
}

/// The keys that seal stored messages, or a warning that they are stored in plain text.
pub fn keyring(settings: &Settings) -> anyhow::Result<Option<Arc<Keyring>>> {
    match &settings.encryption_keys {
        Some(keys) => {
            let keyring = Keyring::parse(keys.expose()).context("MAILBRIDGE_ENCRYPTION_KEYS")?;
            tracing::info!(
                key = keyring.primary(),
                "stored messages are encrypted (AES-256-GCM)"
            );
            Ok(Some(Arc::new(keyring)))
        }
        None => {
            tracing::warn!(
                "MAILBRIDGE_ENCRYPTION_KEYS is not set: stored messages (subjects, bodies, reset and \
                 verification links) are kept in plain text in the queue database"
            );
            Ok(None)
        }
    }
}

/// Opens the store and builds the parts.
pub async fn build(settings: &Settings, auth: AuthMode) -> anyhow::Result<Parts> {
    let verifier = match auth {
        AuthMode::InsecureNoAuth => {
            anyhow::ensure!(
                settings.listen.ip().is_loopback(),
                "--insecure-no-auth is allowed only on a loopback address, not {}",
                settings.listen
            );
            tracing::warn!(
                "authentication is off (--insecure-no-auth): every local caller is an administrator"
            );
            None
        }
        AuthMode::Required => Some(Arc::new(build_verifier(settings)?)),
    };
    // The store's errors name its URL (without a password).
    let store: Arc<dyn JobStore> =
        crate::queue::open_sealed(&settings.database_url, keyring(settings)?)
            .await
            .context("opening the queue store")?;
    let recovered = store.recover_interrupted().await?;
    if recovered > 0 {
        tracing::warn!(
            count = recovered,
            "deliveries interrupted by a previous stop will be attempted again"
        );
    }
    let renderer = Arc::new(load_renderer(settings)?);
    let webhooks = build_webhooks(settings);
    let mut transports = build_transports(settings)?;
    let deliver_webhooks = WebhookTransport::new(webhooks.clone(), transport::http::client()?);
    transports.insert(crate::webhooks::TRANSPORT, Arc::new(deliver_webhooks));
    let feedback = build_feedback(settings)?;
    let tell_keycloak = KeycloakTransport::new(feedback.clone(), transport::http::client()?);
    transports.insert(crate::feedback::TRANSPORT, Arc::new(tell_keycloak));
    let metrics = Metrics::from_env()?;
    metrics.watch_token_refreshes(&transports);
    let worker = Worker::new(
        store.clone(),
        transports,
        settings.retry.clone(),
        WorkerConfig {
            lease: settings.lease,
            shutdown_grace: settings.shutdown_grace,
            ..WorkerConfig::default()
        },
    )
    .with_limits(build_limits(settings)?)
    .with_webhooks(webhooks.clone())
    .with_metrics(metrics.clone());
    let console = console_for(settings, auth)?;
    let state = AppState {
        store,
        renderer,
        verifier,
        worker: Arc::new(worker.clone()),
        tenants: Arc::new(Tenants::from_settings(settings)),
        wait_timeout: settings.wait_timeout,
        max_pending: settings.max_pending,
        accepting: Arc::new(AtomicBool::new(true)),
        metrics,
        event_sources: Arc::new(build_event_sources(settings)?),
        webhooks,
        feedback,
        console,
    };
    Ok(Parts {
        state,
        worker,
        retention: settings.retention,
        shutdown_delay: settings.shutdown_delay,
        prune_every: PRUNE_EVERY,
        serving: ServingLimits {
            header_timeout: settings.header_timeout,
            idle_timeout: crate::listener::IDLE_TIMEOUT,
            body_timeout: settings.body_timeout,
            max_connections: settings.max_connections,
            drain_timeout: settings.wait_timeout + crate::listener::DRAIN_MARGIN,
        },
    })
}

/// The console: signed in through `MAILBRIDGE_CONSOLE_ISSUER` when set; else
/// with `--insecure-no-auth` (loopback only, checked above), where every local
/// browser is an administrator; else off.
fn console_for(settings: &Settings, auth: AuthMode) -> anyhow::Result<Option<Arc<Console>>> {
    let sign_in = match (&settings.console, auth) {
        (Some(oidc), _) => SignIn::Oidc(Arc::new(
            crate::console::signin::Oidc::new(oidc.clone()).context("the console's sign-in")?,
        )),
        (None, AuthMode::InsecureNoAuth) => SignIn::LocalAdmin,
        (None, AuthMode::Required) => return Ok(None),
    };
    let console = Console::new(sign_in).context("compiling the console's pages")?;
    Ok(Some(Arc::new(console)))
}

/// Serves `parts` on `listener` until `shutdown` completes, then stops cleanly.
pub async fn serve(
    parts: Parts,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Parts {
        state,
        worker,
        retention,
        shutdown_delay,
        prune_every,
        serving,
    } = parts;
    let purger = tokio::spawn(retention_task(state.store.clone(), retention));
    let pruner = tokio::spawn(prune_task(state.store.clone(), prune_every));
    let gauges = state.metrics.pushes_otlp().then(|| {
        tokio::spawn(queue_gauges_task(
            state.store.clone(),
            state.metrics.clone(),
        ))
    });
    let metrics = state.metrics.clone();
    let accepting = state.accepting.clone();
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker_task = tokio::spawn(worker.run(async move {
        let _ = worker_stopped.await;
    }));
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    crate::listener::raise_open_files_limit();
    crate::listener::serve(listener, crate::app(state), serving, async move {
        shutdown.await;
        // Readiness answers 503 first, then the listener closes.
        accepting.store(false, Ordering::SeqCst);
        drain_delay(shutdown_delay).await;
        tracing::info!("shutting down: no longer accepting");
        // Deliveries end while connections finish: a slow client must not
        // keep the worker claiming until the orchestrator kills us mid-send.
        let _ = stop_worker.send(());
    })
    .await;
    purger.abort();
    pruner.abort();
    if let Some(gauges) = gauges {
        gauges.abort();
    }
    worker_task.await.context("delivery worker")?;
    metrics.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// Keeps serving for `delay` while `/readyz` answers 503, so that load
/// balancers take the instance out before its listener closes. A second
/// stop signal ends the wait.
async fn drain_delay(delay: Duration) {
    if delay.is_zero() {
        return;
    }
    tracing::info!(
        "stop requested: /readyz now answers 503; still serving for {} (signal again to stop at once)",
        humantime::format_duration(delay)
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shutdown_signal() => {}
    }
}

/// Refreshes the queue gauges for OTLP pushes, which come without a scrape.
async fn queue_gauges_task(store: Arc<dyn JobStore>, metrics: Metrics) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tick.tick().await;
        match store.stats().await {
            Ok(stats) => metrics.observe_queue(&stats, time::OffsetDateTime::now_utc()),
            Err(e) => tracing::warn!(error = %e, "could not read the queue figures for metrics"),
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
