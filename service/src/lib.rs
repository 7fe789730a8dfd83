//! mailbridge: durable, retrying email delivery for Keycloak.
//!
//! # Layout
//!
//! - [`config`]: settings from the environment and an optional TOML file,
//!   validated at start, turned into the parts below.
//! - [`email`]: domain types (addresses, the rendered message); no I/O.
//! - [`auth`]: JWT verification and the [`auth::Caller`] extractor.
//! - [`api`]: the HTTP API, one file per resource, errors as problem+json.
//! - [`render`]: templates (minijinja), Fluent strings, HTML to text; pure.
//! - [`queue`]: the [`queue::JobStore`] trait, the SQLite store, the pure retry
//!   policy and the delivery worker.
//! - [`transport`]: the [`transport::Transport`] trait, DSN parsing, SMTP,
//!   file and provider API transports.
//! - [`oauth`]: OAuth2 token sources with caching (XOAUTH2, Graph).
//! - [`telemetry`]: logs, traces and metrics.

pub mod email;
pub mod oauth;
pub mod queue;
pub mod transport;
