//! The commands behind the `mailbridge` command line.

pub mod check;
mod client;
mod purge;
pub mod queue;
pub mod send;
pub mod suppressions;

use std::process::ExitCode;

use anyhow::Context as _;
use mailbridge::{config, server, telemetry};

use crate::{Command, KeysCommand};

/// Runs one command.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    install_crypto();
    match command {
        Command::Serve { insecure_no_auth } => serve(insecure_no_auth).await,
        Command::Send(args) => send::run(args).await,
        Command::Queue { target, command } => queue::run(target, command).await,
        Command::Suppressions { target, command } => suppressions::run(target, command).await,
        Command::Check { connect } => check::run(connect).await,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate_keys().await,
        Command::Token { tenant, admin, ttl } => token(tenant.as_deref(), admin, ttl),
        Command::Render {
            template,
            locale,
            tenant,
            data,
            templates,
        } => check::render(
            &template,
            locale.as_deref(),
            &tenant,
            data.as_deref(),
            templates,
        ),
    }
}

/// One crypto backend for rustls and jsonwebtoken (aws-lc-rs), chosen before any use.
fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

async fn serve(insecure_no_auth: bool) -> anyhow::Result<ExitCode> {
    let settings = config::from_env()?;
    // Held until the server stops: dropping it flushes the last spans.
    let _telemetry = telemetry::init(&settings.log)?;
    let auth = if insecure_no_auth {
        server::AuthMode::InsecureNoAuth
    } else {
        server::AuthMode::Required
    };
    let parts = server::build(&settings, auth).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    server::serve(parts, listener, server::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `mailbridge keys rotate`.
async fn rotate_keys() -> anyhow::Result<ExitCode> {
    let settings = config::from_env()?;
    let keys = settings.encryption_keys.as_ref().context(
        "MAILBRIDGE_ENCRYPTION_KEYS (or MAILBRIDGE_ENCRYPTION_KEYS_FILE) is not set: nothing to rotate to",
    )?;
    let keyring = mailbridge::queue::sealing::Keyring::parse(keys.expose())
        .context("MAILBRIDGE_ENCRYPTION_KEYS")?;
    let done = mailbridge::queue::rotation::rotate(&settings.database_url, &keyring).await?;
    println!(
        "re-encrypted {} stored messages with key `{}`; {} already used it; {} could not be read",
        done.resealed,
        keyring.primary(),
        done.current,
        done.unreadable
    );
    Ok(if done.unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn token(tenant: Option<&str>, admin: bool, ttl: u64) -> anyhow::Result<ExitCode> {
    let settings = config::from_env()?;
    let secret = settings
        .jwt_secret
        .context("MAILBRIDGE_JWT_SECRET (or MAILBRIDGE_JWT_SECRET_FILE) is not set")?;
    let token = mailbridge::auth::mint(secret.expose().as_bytes(), tenant, admin, ttl)?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Reads `--data`: inline JSON or `@FILE`.
pub fn read_data(data: Option<&str>) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(data) = data else { return Ok(None) };
    let text = match data.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => data.to_owned(),
    };
    Ok(Some(
        serde_json::from_str(&text).context("--data is not valid JSON")?,
    ))
}
