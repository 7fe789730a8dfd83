//! `mailbridge queue purge`: deletes the failed (or sent) messages a running
//! service lists, one `DELETE /v1/messages/{id}` each. It stops at the first
//! message the service does not delete (exit code 1) and always says how
//! many it deleted first. A message already gone (`404`: deleted meanwhile
//! by another purge or from the console) counts as done.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::client::{Client, detail, encode, with_query};

/// Messages listed per page.
const PAGE: &str = "500";

/// What a purge did.
#[derive(Debug, Default)]
struct Tally {
    /// Deleted by this purge.
    deleted: u64,
    /// Listed, but deleted by someone else before this purge's `DELETE`.
    gone: u64,
}

/// Deletes the `status` messages (of `tenant`, last changed before `older_than`).
pub(super) async fn run(
    client: &Client,
    status: &str,
    tenant: Option<&str>,
    older_than: Option<Duration>,
) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(
        status == "failed" || status == "sent",
        "--status must be failed or sent"
    );
    let cutoff = older_than.map(|d| OffsetDateTime::now_utc() - d);
    let mut tally = Tally::default();
    let done = pages(client, status, tenant, cutoff, &mut tally).await;
    // Printed whatever happened: an operator who reruns needs to know what is gone.
    print!("deleted {} {status} message(s)", tally.deleted);
    if tally.gone > 0 {
        print!("; {} more were already deleted", tally.gone);
    }
    println!();
    done.map(|()| std::process::ExitCode::SUCCESS)
}

async fn pages(
    client: &Client,
    status: &str,
    tenant: Option<&str>,
    cutoff: Option<OffsetDateTime>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut before: Option<String> = None;
    loop {
        let path = with_query(
            "/v1/messages",
            &[
                ("status", Some(status)),
                ("limit", Some(PAGE)),
                ("tenant", tenant),
                ("before", before.as_deref()),
            ],
        );
        let (code, page) = client.call(reqwest::Method::GET, &path).await?;
        anyhow::ensure!(
            code == 200,
            "listing {status} messages: {code}: {}",
            detail(&page)
        );
        let rows = page["messages"].as_array().cloned().unwrap_or_default();
        for row in rows.iter().filter(|row| !changed_after(row, cutoff)) {
            delete(client, row["id"].as_str().unwrap_or_default(), tally).await?;
        }
        match page["next"].as_str() {
            Some(next) if !rows.is_empty() => before = Some(next.to_owned()),
            _ => return Ok(()),
        }
    }
}

/// Whether `row` changed after `cutoff` (and so is kept).
fn changed_after(row: &Value, cutoff: Option<OffsetDateTime>) -> bool {
    let updated = row["updated_at"]
        .as_str()
        .and_then(|u| OffsetDateTime::parse(u, &Rfc3339).ok());
    cutoff.is_some_and(|c| updated.is_some_and(|u| u > c))
}

async fn delete(client: &Client, id: &str, tally: &mut Tally) -> anyhow::Result<()> {
    let (code, body) = client
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/messages/{}", encode(id)),
        )
        .await
        .with_context(|| format!("deleting message {id}"))?;
    match code {
        204 => tally.deleted += 1,
        404 => tally.gone += 1,
        _ => anyhow::bail!("message {id} was not deleted: {code}: {}", detail(&body)),
    }
    Ok(())
}
