//! Logs (and later traces and metrics): `tracing` with an `EnvFilter` from `MAILBRIDGE_LOG`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the global subscriber; `filter` uses `tracing`'s EnvFilter syntax.
pub fn init(filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("MAILBRIDGE_LOG: `{filter}` is not a valid filter ({e})"))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging: {e}"))
}
