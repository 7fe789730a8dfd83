//! The `mailbridge` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc: less CPU per message than the C library's allocator (the
/// accept path allocates a lot in short-lived buffers), and memory handed
/// back within a second (`.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// mailbridge: durable, retrying email delivery for Keycloak.
///
/// Settings come from MAILBRIDGE_* environment variables and, if
/// MAILBRIDGE_CONFIG names one, a TOML file (the environment wins).
#[derive(Debug, Parser)]
#[command(
    name = "mailbridge",
    version,
    about,
    long_about,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service and the delivery worker.
    Serve {
        /// Accept requests without a token (only on a loopback address; for local trials).
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Send one email, through a running service or directly with the configured transport.
    Send(cli::send::SendArgs),
    /// Operate the queue of a running service: list, show, retry, purge.
    Queue {
        #[command(flatten)]
        target: cli::queue::Target,
        #[command(subcommand)]
        command: cli::queue::QueueCommand,
    },
    /// A running service's suppression list: list, add, remove.
    Suppressions {
        #[command(flatten)]
        target: cli::queue::Target,
        #[command(subcommand)]
        command: cli::suppressions::SuppressionsCommand,
    },
    /// Check the configuration, templates and transports (and, with --connect, reach each transport).
    Check {
        /// Also connect to every transport (SMTP handshake, no message sent).
        #[arg(long)]
        connect: bool,
    },
    /// Print a short-lived token signed with MAILBRIDGE_JWT_SECRET, for curl and scripts.
    Token {
        /// The tenant the token acts for (default: `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// Grant the `mailbridge:admin` scope.
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds (at most 600).
        #[arg(long, default_value_t = 300)]
        ttl: u64,
    },
    /// Render a shipped or tenant template with its sample data (or --data) and print it.
    Render {
        /// The template name, e.g. password-reset.
        template: String,
        /// The language.
        #[arg(long)]
        locale: Option<String>,
        /// The tenant whose overrides apply.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// JSON data, or @FILE.
        #[arg(long)]
        data: Option<String>,
        /// Template directory (default: MAILBRIDGE_TEMPLATES or ./templates).
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Manage the keys of messages at rest (MAILBRIDGE_ENCRYPTION_KEYS).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `mailbridge keys …`.
#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored message with the first key, in batches, while the service runs.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
