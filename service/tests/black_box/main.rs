//! The service's black-box tests, one module per area, built as one test
//! binary (each binary links the whole service: one keeps the build small and
//! quick). `cargo test -p mailbridge --test black_box MODULE::` runs one area.
//! The tests that change process-wide state (a tracing subscriber, the trace
//! propagator) stay in binaries of their own: `smtp_debug`, `telemetry_spans`.

mod common;
mod provider_support;
mod smtp_support;
mod store_contract;

mod api_bad_input;
mod api_messages;
mod api_mutations;
mod api_operations;
mod api_tokens;
mod client_assertion;
mod console_access;
mod console_delivery;
mod console_inpage;
mod console_origin;
mod console_send_test;
mod console_signin;
mod console_studio;
mod console_studio_browser;
mod console_studio_missing;
mod console_transports;
mod console_transports_live;
mod crash_recovery;
mod delivery_events;
mod docs_reference;
mod encryption_at_rest;
mod failover_dsn;
mod failover_group;
mod faults_disk_full;
mod flow_limits;
mod graph_sendmail;
mod html_complexity;
mod keycloak_feedback;
mod log_content;
mod notice_slots;
mod openapi_routes;
mod provider_mailgun;
mod provider_mailjet;
mod provider_postmark;
mod provider_resend;
mod provider_sendgrid;
mod provider_wire;
mod queue_leases;
mod queue_purge;
mod queue_store;
mod queue_store_postgres;
mod queue_worker;
mod ratelimit_limits;
mod realm_keys;
mod serving_limits;
mod ses_errors;
mod ses_events;
mod ses_moto;
mod ses_workload_identity;
mod smtp_bounces;
mod smtp_delivery;
mod smtp_dkim;
mod smtp_file;
mod smtp_pipelining;
mod smtp_tls_auth;
mod smtp_wire;
mod smtp_xoauth2;
mod suppression_at_send;
mod suppressions;
mod telemetry_metrics;
mod telemetry_otlp;
mod templates_dir;
mod wait_delivery;
mod webhooks_out;
