//! `mailbridge suppressions list|add|remove`: the suppression list of a
//! running service, through its admin API.

use std::process::ExitCode;

use serde_json::Value;

use super::client::{Client, encode, report, with_query};
use super::queue::Target;

/// The `suppressions` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SuppressionsCommand {
    /// List suppressed addresses, newest first.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Stop sending to an address.
    Add {
        /// The tenant (a Keycloak realm by default).
        tenant: String,
        /// The address.
        email: String,
    },
    /// Send to an address again.
    Remove {
        /// The tenant.
        tenant: String,
        /// The address.
        email: String,
    },
}

/// Runs a `suppressions` subcommand.
pub async fn run(target: Target, command: SuppressionsCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(&target.server)?;
    let path = |tenant: &str, email: &str| {
        format!("/v1/suppressions/{}/{}", encode(tenant), encode(email))
    };
    let (status, body) = match command {
        SuppressionsCommand::List { tenant, limit } => {
            let limit = limit.to_string();
            let query = with_query(
                "/v1/suppressions",
                &[
                    ("limit", Some(limit.as_str())),
                    ("tenant", tenant.as_deref()),
                ],
            );
            let (code, list) = client.call(reqwest::Method::GET, &query).await?;
            if code == 200 {
                print_table(
                    list["suppressions"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                );
                return Ok(ExitCode::SUCCESS);
            }
            (code, list)
        }
        SuppressionsCommand::Add { tenant, email } => {
            client
                .call(reqwest::Method::PUT, &path(&tenant, &email))
                .await?
        }
        SuppressionsCommand::Remove { tenant, email } => {
            let (code, body) = client
                .call(reqwest::Method::DELETE, &path(&tenant, &email))
                .await?;
            if code == 204 {
                println!("{email} removed from {tenant}'s suppression list");
                return Ok(ExitCode::SUCCESS);
            }
            (code, body)
        }
    };
    report(status, &body)
}

fn print_table(rows: &[Value]) {
    println!(
        "{:<16}  {:<40}  {:<9}  {:<20}  DETAIL",
        "TENANT", "EMAIL", "REASON", "SINCE"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        println!(
            "{:<16}  {:<40}  {:<9}  {:<20}  {}",
            s("tenant"),
            s("email"),
            s("reason"),
            s("created_at").chars().take(19).collect::<String>(),
            s("detail").chars().take(60).collect::<String>(),
        );
    }
    println!("{} address(es)", rows.len());
}
