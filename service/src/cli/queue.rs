//! `mailbridge queue list|show|retry|purge`: operate the queue of a running
//! service through its admin API (a token with `mailbridge:admin` is minted
//! from `MAILBRIDGE_JWT_SECRET`).

use std::process::ExitCode;

use serde_json::Value;

use super::client::{Client, encode, report, with_query};

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

/// Runs a `queue` subcommand.
pub async fn run(target: Target, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(&target.server)?;
    let (status, body) = match command {
        QueueCommand::List {
            status,
            tenant,
            limit,
        } => {
            let limit = limit.to_string();
            let path = with_query(
                "/v1/messages",
                &[
                    ("limit", Some(limit.as_str())),
                    ("status", status.as_deref()),
                    ("tenant", tenant.as_deref()),
                ],
            );
            let (code, page) = client.call(reqwest::Method::GET, &path).await?;
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
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/messages/{}", encode(&id)),
                )
                .await?
        }
        QueueCommand::Retry { id } => {
            client
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/messages/{}/retry", encode(&id)),
                )
                .await?
        }
        QueueCommand::Purge {
            status,
            tenant,
            older_than,
        } => {
            return super::purge::run(
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
