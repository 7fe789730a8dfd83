//! `mailbridge send`: one email through a running service, or directly.

use std::process::ExitCode;

use anyhow::Context as _;
use mailbridge::api::compose;
use mailbridge::api::request::MessageRequest;
use mailbridge::email::Mailbox;
use mailbridge::{auth, config, server, tenant::Tenants};

/// Arguments of `mailbridge send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Recipient (repeat for several).
    #[arg(long, required = true)]
    to: Vec<String>,
    /// Sender, `Name <addr>` or `addr` (default: the tenant's or MAILBRIDGE_FROM).
    #[arg(long)]
    from: Option<String>,
    /// Template to render, e.g. password-reset.
    #[arg(long)]
    template: Option<String>,
    /// Template data as JSON, or @FILE.
    #[arg(long)]
    data: Option<String>,
    /// Language of the template.
    #[arg(long)]
    locale: Option<String>,
    /// Subject (when not using a template).
    #[arg(long)]
    subject: Option<String>,
    /// Plain-text body.
    #[arg(long)]
    text: Option<String>,
    /// HTML body.
    #[arg(long)]
    html: Option<String>,
    /// Tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Base URL of a running service.
    #[arg(long, env = "MAILBRIDGE_URL", default_value = "http://127.0.0.1:8090")]
    server: String,
    /// Wait for delivery and report its result.
    #[arg(long)]
    wait: bool,
    /// Skip the service: render and deliver now with the configured transport (no queue, no retry).
    #[arg(long)]
    direct: bool,
}

impl SendArgs {
    fn request(&self) -> anyhow::Result<MessageRequest> {
        let mailbox = |s: &str| Mailbox::parse(s).map_err(|e| anyhow::anyhow!("{s}: {}", e.reason));
        Ok(MessageRequest {
            tenant: self.tenant.clone(),
            to: self
                .to
                .iter()
                .map(|t| mailbox(t))
                .collect::<Result<_, _>>()?,
            from: self.from.as_deref().map(mailbox).transpose()?,
            subject: self.subject.clone(),
            text: self.text.clone(),
            html: self.html.clone(),
            template: self.template.clone(),
            locale: self.locale.clone(),
            data: super::read_data(self.data.as_deref())?.unwrap_or_default(),
            tags: vec!["cli".into()],
            ..Default::default()
        })
    }
}

/// Runs `mailbridge send`.
pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let settings = config::from_env()?;
    let request = args.request()?;
    request.validate()?;
    if args.direct {
        return direct(&settings, request).await;
    }
    let url = format!(
        "{}/v1/messages{}",
        args.server.trim_end_matches('/'),
        if args.wait { "?wait=true" } else { "" }
    );
    let mut http = reqwest::Client::new()
        .post(&url)
        .json(&request_json(&request));
    if let Some(secret) = &settings.jwt_secret {
        let token = auth::mint(
            secret.expose().as_bytes(),
            request.tenant.as_deref(),
            false,
            120,
        )?;
        http = http.bearer_auth(token);
    }
    let response = http
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("{status} {body}");
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn request_json(r: &MessageRequest) -> serde_json::Value {
    serde_json::json!({
        "tenant": r.tenant, "to": r.to, "from": r.from, "subject": r.subject,
        "text": r.text, "html": r.html, "template": r.template, "locale": r.locale,
        "data": r.data, "tags": r.tags,
    })
}

async fn direct(settings: &config::Settings, request: MessageRequest) -> anyhow::Result<ExitCode> {
    let tenant = request
        .tenant
        .clone()
        .unwrap_or_else(|| auth::DEFAULT_TENANT.to_owned());
    let route = Tenants::from_settings(settings).route(&tenant);
    let from = route
        .sender(request.from.as_ref())
        .map_err(anyhow::Error::msg)?;
    let renderer = server::load_renderer(settings)?;
    let content =
        compose::content(&renderer, &tenant, &request).map_err(|e| anyhow::anyhow!(e.detail))?;
    let message = compose::message(uuid::Uuid::now_v7(), &tenant, from, request, content);
    let transports = server::build_transports(settings)?;
    let transport = transports
        .get(&route.transport)
        .with_context(|| format!("no transport `{}`", route.transport))?;
    match transport.send(&message).await {
        Ok(delivery) => {
            println!(
                "sent {} via {} {}",
                message.id,
                route.transport,
                delivery.provider_message_id.unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("not sent: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
