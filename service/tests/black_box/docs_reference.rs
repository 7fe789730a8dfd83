//! The operator references are checked against the code: every variable the
//! configuration reads is in the README's and docs/operations.md's tables with
//! its real default (and nothing else is), and the metrics table lists exactly
//! the metrics `/metrics` serves, with their types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use mailbridge::config::{self, Settings};
use mailbridge::queue::QueueStats;
use mailbridge::telemetry::Metrics;
use mailbridge::transport::{self, Dsn, Transports};
use time::OffsetDateTime;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cells of the table rows of `doc` whose first cell starts with `prefix`
/// (in backticks), by that first cell.
fn table_rows(doc: &str, prefix: &str) -> Vec<Vec<String>> {
    doc.lines()
        .filter(|l| l.starts_with(&format!("| `{prefix}")))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The first value in backticks in `cell`, or the cell itself.
fn first_code(cell: &str) -> &str {
    cell.split('`').nth(1).unwrap_or(cell)
}

/// `MAILBRIDGE_*` variables documented in `doc`, with the default cell.
/// `` `NAME` / `_FILE` `` documents `NAME` (its `_FILE` form is implied).
fn documented_variables(doc: &str) -> BTreeMap<String, String> {
    table_rows(doc, "MAILBRIDGE_")
        .into_iter()
        .map(|cells| (first_code(&cells[0]).to_owned(), cells[2].clone()))
        .collect()
}

/// The `MAILBRIDGE_*` names that `config.rs` reads (outside its tests).
fn variables_read_by_the_code() -> BTreeSet<String> {
    let source = read("src/config.rs");
    let code = source.split("#[cfg(test)]").next().unwrap();
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|lit| {
            lit.starts_with("MAILBRIDGE_")
                && lit
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// The default the code gives `variable`, written as the docs write it.
fn actual_default(settings: &Settings, variable: &str) -> String {
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    match variable {
        "MAILBRIDGE_CONSOLE_ISSUER" | "MAILBRIDGE_CONSOLE_CLIENT_ID" | "MAILBRIDGE_CONSOLE_URL" => {
            assert!(settings.console.is_none());
            "none".to_owned()
        }
        "MAILBRIDGE_CONFIG" | "MAILBRIDGE_JWT_SECRET" => {
            assert!(settings.jwt_secret.is_none());
            "none".to_owned()
        }
        "MAILBRIDGE_ENCRYPTION_KEYS" => {
            assert!(settings.encryption_keys.is_none());
            "none".to_owned()
        }
        "MAILBRIDGE_LISTEN" => settings.listen.to_string(),
        "MAILBRIDGE_DATABASE_URL" => settings.database_url.clone(),
        "MAILBRIDGE_TRANSPORT" => settings.transports["default"].expose().to_owned(),
        "MAILBRIDGE_TEMPLATES" => settings.templates.display().to_string(),
        "MAILBRIDGE_FROM" => settings.from.to_string(),
        "MAILBRIDGE_RETRY_BASE" => duration(settings.retry.base),
        "MAILBRIDGE_RETRY_MAX_INTERVAL" => duration(settings.retry.max_interval),
        "MAILBRIDGE_RETRY_MAX_ATTEMPTS" => settings.retry.max_attempts.to_string(),
        "MAILBRIDGE_RETRY_MAX_AGE" => duration(settings.retry.max_age),
        "MAILBRIDGE_WAIT_TIMEOUT" => duration(settings.wait_timeout),
        "MAILBRIDGE_MAX_PENDING" => settings.max_pending.to_string(),
        "MAILBRIDGE_LOG" => settings.log.clone(),
        "MAILBRIDGE_RETENTION" => duration(settings.retention),
        "MAILBRIDGE_SHUTDOWN_DELAY" => duration(settings.shutdown_delay),
        "MAILBRIDGE_SHUTDOWN_GRACE" => duration(settings.shutdown_grace),
        "MAILBRIDGE_LEASE" => duration(settings.lease),
        "MAILBRIDGE_HEADER_TIMEOUT" => duration(settings.header_timeout),
        "MAILBRIDGE_BODY_TIMEOUT" => duration(settings.body_timeout),
        "MAILBRIDGE_MAX_CONNECTIONS" => settings.max_connections.to_string(),
        other => panic!("{other} is read by the code but this test does not know its default"),
    }
}

/// A documented default in the form `humantime` writes (`1h` stays `1h`,
/// `7d` becomes `7days`), so both sides compare equal when they mean the same.
fn normalised(variable: &str, documented: &str) -> String {
    if documented.starts_with("none") {
        return "none".to_owned();
    }
    let value = first_code(documented);
    match humantime::parse_duration(value) {
        Ok(d) if variable != "MAILBRIDGE_LISTEN" => humantime::format_duration(d).to_string(),
        _ => value.to_owned(),
    }
}

#[test]
fn configuration_tables_match_the_code() {
    let read_by_code = variables_read_by_the_code();
    assert!(
        read_by_code.len() >= 15,
        "the scan found too few variables: {read_by_code:?}"
    );
    let defaults = config::load(&BTreeMap::new()).expect("defaults load");
    for doc_path in ["../README.md", "../docs/operations.md"] {
        let documented = documented_variables(&read(doc_path));
        let names: BTreeSet<String> = documented.keys().cloned().collect();
        assert_eq!(
            names, read_by_code,
            "{doc_path}: the variable table differs from what config.rs reads"
        );
        for (variable, cell) in &documented {
            assert_eq!(
                normalised(variable, cell),
                actual_default(&defaults, variable),
                "{doc_path}: documented default of {variable} (`{cell}`)"
            );
        }
    }
}

/// Every metric, with a value in each so that every series is printed.
fn every_metric() -> String {
    let metrics = Metrics::new();
    let dsn = "smtp://mailbox@127.0.0.1:1?auth=xoauth2&token_url=http%3A%2F%2F127.0.0.1%3A1%2Ftoken\
               &client_id=id&client_secret=secret&scope=s";
    let mut transports = Transports::default();
    transports.insert(
        "m365",
        transport::from_dsn(&Dsn::parse(dsn).unwrap()).unwrap(),
    );
    metrics.watch_token_refreshes(&transports);
    metrics.accepted("acme");
    metrics.sent("acme", "m365", Duration::from_millis(300));
    metrics.attempted("m365", Duration::from_millis(40));
    metrics.retried("acme", "m365", "transient");
    metrics.failed("acme", "m365", "permanent");
    metrics.reply_class("m365", "2xx");
    metrics.rate_limited("acme", "m365");
    metrics.delivery_event("m365", "bounced");
    metrics.suppressed("acme");
    metrics.limited("acme", "template");
    metrics.transport_held("m365", true);
    metrics.observe_queue(
        &QueueStats {
            oldest_unsent: Some(OffsetDateTime::now_utc()),
            ..QueueStats::default()
        },
        OffsetDateTime::now_utc(),
    );
    metrics.encode().unwrap()
}

#[test]
fn metrics_table_matches_what_is_served() {
    let served: BTreeMap<String, String> = every_metric()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            // The table names counters as they are sampled: with `_total`.
            let name = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            (name, kind.to_owned())
        })
        .collect();
    let documented: BTreeMap<String, String> =
        table_rows(&read("../docs/operations.md"), "mailbridge_")
            .into_iter()
            .map(|cells| (first_code(&cells[0]).to_owned(), cells[1].clone()))
            .collect();
    assert_eq!(
        documented, served,
        "docs/operations.md's metrics table differs from /metrics"
    );
}
