//! `mailbridge queue list|show|retry|purge`: operate the queue of a running
//! service through its admin API (a token with `mailbridge:admin` is minted
//! from `MAILBRIDGE_JWT_SECRET`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use mailbridge::{auth, config};
use serde_json::Value;

/// The `queue` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// List messages, newest first.
    List {
        /// Only this status (queued, sending, sent, retrying, failed).
        #[arg(long)]
        status: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one message's status row.
    Show {
        /// The message id.
        id: String,
    },
    /// Put a failed message back in the queue.
    Retry {
        /// The message id.
        id: String,
    },
    /// Delete failed (or sent) messages, e.g. after reading why they failed.
    Purge {
        /// Which status to delete: failed or sent.
        #[arg(long, default_value = "failed")]
        status: String,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only messages last changed longer ago than this (e.g. 7d).
        #[arg(long)]
        older_than: Option<humantime::Duration>,
    },
}

/// Where the service runs.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Base URL of the running service.
    #[arg(
        long,
        env = "MAILBRIDGE_URL",
        default_value = "http://127.0.0.1:8090",
        global = true
    )]
    pub(super) server: String,
}

/// The admin API of a running service, with an admin token.
pub(super) struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client of the service at `server`.
    pub(super) fn new(server: &str) -> anyhow::Result<Client> {
        let settings = config::from_env()?;
        let token = match &settings.jwt_secret {
            Some(secret) => Some(auth::mint(secret.expose().as_bytes(), None, true, 60)?),
            None => None,
        };
        Ok(Client {
            base: server.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token,
        })
    }

    /// Calls `path`; answers the status and the JSON body.
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }
}

/// Runs a `queue` subcommand.
pub async fn run(target: Target, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(&target.server)?;
    let (status, body) = match command {
        QueueCommand::List {
            status,
            tenant,
            limit,
        } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(status.map(|s| format!("status={s}")));
            query.extend(tenant.map(|t| format!("tenant={t}")));
            let (code, page) = client
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/messages?{}", query.join("&")),
                )
                .await?;
            if code == 200 {
                print_table(
                    page["messages"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                );
                return Ok(ExitCode::SUCCESS);
            }
            (code, page)
        }
        QueueCommand::Show { id } => {
            client
                .call(reqwest::Method::GET, &format!("/v1/messages/{id}"))
                .await?
        }
        QueueCommand::Retry { id } => {
            client
                .call(reqwest::Method::POST, &format!("/v1/messages/{id}/retry"))
                .await?
        }
        QueueCommand::Purge {
            status,
            tenant,
            older_than,
        } => {
            return purge(
                &client,
                &status,
                tenant.as_deref(),
                older_than.map(Into::into),
            )
            .await;
        }
    };
    report(status, &body)
}

/// Prints a 2xx answer, or the problem's detail with exit code 1.
pub(super) fn report(status: u16, body: &Value) -> anyhow::Result<ExitCode> {
    if (200..300).contains(&status) {
        println!("{}", serde_json::to_string_pretty(body)?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{status}: {}",
            body["detail"].as_str().unwrap_or("request failed")
        );
        Ok(ExitCode::from(1))
    }
}

fn print_table(rows: &[Value]) {
    println!(
        "{:<36}  {:<16}  {:<8}  {:>3}  {:<20}  LAST ERROR",
        "ID", "TENANT", "STATUS", "TRY", "UPDATED"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let error: String = s("last_error").chars().take(60).collect();
        println!(
            "{:<36}  {:<16}  {:<8}  {:>3}  {:<20}  {error}",
            s("id"),
            s("tenant").chars().take(16).collect::<String>(),
            s("status"),
            r["attempts"].as_u64().unwrap_or(0),
            s("updated_at").chars().take(19).collect::<String>(),
        );
    }
    println!("{} message(s)", rows.len());
}

async fn purge(
    client: &Client,
    status: &str,
    tenant: Option<&str>,
    older_than: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        status == "failed" || status == "sent",
        "--status must be failed or sent"
    );
    let cutoff = older_than.map(|d| time::OffsetDateTime::now_utc() - d);
    let mut deleted = 0;
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/v1/messages?status={status}&limit=500");
        if let Some(t) = tenant {
            path.push_str(&format!("&tenant={t}"));
        }
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let (code, page) = client.call(reqwest::Method::GET, &path).await?;
        if code != 200 {
            return report(code, &page);
        }
        let rows = page["messages"].as_array().cloned().unwrap_or_default();
        for row in &rows {
            let updated = row["updated_at"].as_str().and_then(|u| {
                time::OffsetDateTime::parse(u, &time::format_description::well_known::Rfc3339).ok()
            });
            if cutoff.is_some_and(|c| updated.is_some_and(|u| u > c)) {
                continue;
            }
            let id = row["id"].as_str().unwrap_or_default();
            let (code, _) = client
                .call(reqwest::Method::DELETE, &format!("/v1/messages/{id}"))
                .await?;
            if code == 204 {
                deleted += 1;
            }
        }
        match page["next"].as_str() {
            Some(next) if !rows.is_empty() => before = Some(next.to_owned()),
            _ => break,
        }
    }
    println!("deleted {deleted} {status} message(s)");
    Ok(ExitCode::SUCCESS)
}
