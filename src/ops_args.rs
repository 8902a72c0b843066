//! `--metrics ADDR`, `--log-format json|text` (and the node's `--http ADDR`): how an operator
//! watches a verifier node or a prover sidecar.

use std::net::SocketAddr;

use anyhow::{Result, anyhow};
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written to stderr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per event for people, with the span (RPC, job id) in front.
    #[default]
    Text,
    /// One JSON object per event (`timestamp`, `level`, `fields`, `target`, `span`).
    Json,
}

/// Metrics and logs of a server command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OpsArgs {
    /// Serve metrics in Prometheus' text format at `http://ADDR/metrics` (plaintext:
    /// loopback, or another address with --insecure).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Log format on stderr: events of matproof at INFO and above, others at WARN. No
    /// identity seed, input or result bytes are ever logged.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Installs the process's log subscriber (once: a second call is an error).
pub fn init_logs(format: LogFormat) -> Result<()> {
    // The crates' own events at INFO; dependencies (arkworks' spans around key setup and
    // proving, hyper, sqlx) only when something is wrong, which also keeps their spans
    // from costing time.
    let filter = Targets::new().with_default(Level::WARN).with_target("matproof", Level::INFO);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => tracing_subscriber::registry().with(layer.with_filter(filter)).try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().with_current_span(true).with_span_list(false).with_filter(filter))
            .try_init(),
    };
    installed.map_err(|e| anyhow!("installing the log subscriber: {e}"))
}
