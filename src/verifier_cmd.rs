//! `matproof verifier serve|fund`: run a verifier node; mint funds into a ledger account.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use matproof_verifier::ledger::Ledger;
use matproof_verifier::service::{HttpPages, NodeConfig, NodeLimits, start};

use crate::job::{load_or_create_identity, load_verifying_keys, runtime};
use crate::ops_args::{OpsArgs, init_logs};
use crate::tls_args::TlsArgs;

/// `matproof verifier serve`: serves until Ctrl-C (or SIGTERM), then shuts down cleanly.
pub fn serve(
    database_url: &str,
    listen: SocketAddr,
    (keys, identity_file): (Option<&Path>, &Path),
    limits: NodeLimits,
    (tls, ops, http): (&TlsArgs, &OpsArgs, Option<SocketAddr>),
) -> Result<ExitCode> {
    init_logs(ops.log_format)?;
    let insecure = tls.insecure;
    let tls = tls.options()?;
    let (identity, created) = load_or_create_identity(identity_file)?;
    if created {
        eprintln!("created a new verifier identity in {}", identity_file.display());
    }
    // Without keys the node serves jobs without tile proofs (samples = 0) only.
    let verifying_keys = keys.map(load_verifying_keys).transpose()?.unwrap_or_default();
    let rt = runtime()?;
    rt.block_on(async {
        let shapes: Vec<String> = verifying_keys
            .iter()
            .map(|k| format!("{}x{} kc {} (vk_hash {})", k.shape.tm, k.shape.tn, k.shape.kc, hex::encode(k.hash())))
            .collect();
        let node =
            start(NodeConfig { listen, database_url: database_url.to_string(), identity, verifying_keys, limits, tls })
                .await
                .context("starting the verifier node")?;
        println!("verifier node listening on {}", node.url());
        println!("transport: {}", node.transport());
        println!("verifier public key: {}", hex::encode(node.verifier_key().0));
        for shape in &shapes {
            println!("verifying key: {shape}");
        }
        let mut pages = Vec::new();
        if let Some(listen) = ops.metrics {
            let server = node.serve_http(listen, HttpPages { status_page: false, insecure }).await?;
            println!("metrics: {}/metrics", server.url());
            pages.push(server);
        }
        if let Some(listen) = http {
            let server = node.serve_http(listen, HttpPages { status_page: true, insecure }).await?;
            println!("status page: {}/ (metrics at /metrics)", server.url());
            pages.push(server);
        }
        println!("ledger: {:?} (Ctrl-C to stop)", node.ledger().backend());
        shutdown_signal().await;
        eprintln!("shutting down");
        for server in pages {
            server.shutdown().await;
        }
        node.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `matproof verifier fund`: mints `amount` into `account` (operator only: this creates
/// money in the ledger).
pub fn fund(database_url: &str, account: &str, amount: u64) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let ledger = Ledger::open(database_url).await.with_context(|| format!("opening the ledger {database_url}"))?;
        let balance = ledger.deposit(account, amount).await.with_context(|| format!("depositing into {account}"))?;
        ledger.close().await;
        println!("minted {amount} into {account}: balance {balance}");
        Ok(ExitCode::SUCCESS)
    })
}

/// `matproof verifier …`.
#[derive(clap::Subcommand, Debug)]
pub enum VerifierCommand {
    /// Run a verifier node (gRPC) until Ctrl-C.
    Serve {
        /// The ledger database: `sqlite://PATH?mode=rwc` (embedded) or `postgres://…`.
        #[arg(long)]
        db: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7001")]
        listen: SocketAddr,
        /// Directory of verifying keys (`*.vk`, from `matproof setup`); jobs with tile proofs
        /// must pin one. Without it, only jobs with `samples = 0` are accepted.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// The node's identity: a 32-byte Ed25519 seed, created (mode 0600) if missing.
        #[arg(long)]
        identity: PathBuf,
        /// Disk budget for full-mode inputs (`|A| + |B|` of every job not yet pruned, over the
        /// whole database): an `OpenJob` beyond it is refused before its upload.
        #[arg(long, default_value_t = 16 << 30)]
        max_stored_bytes: u64,
        /// Seconds a job's inputs are kept after it is released (settled or expired).
        #[arg(long, default_value_t = 24 * 3600)]
        retention_secs: u64,
        /// TLS: the node's certificate and key; --tls-ca: the CA of providers' client
        /// certificates (then `Commit` and `Respond` need one). Without a certificate the
        /// node listens in plaintext, on loopback only unless --insecure.
        #[command(flatten)]
        tls: Box<TlsArgs>,
        /// Metrics (`--metrics ADDR`) and the log format.
        #[command(flatten)]
        ops: OpsArgs,
        /// Serve the read-only status page at `http://ADDR/` (jobs, ledger totals and the
        /// conservation check, keys, health; each receipt at /jobs/<job id>/receipt) and the
        /// metrics at /metrics. Plaintext: loopback, or another address with --insecure.
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
    },
    /// Deposit into a ledger account. This MINTS money (the only way money enters the
    /// ledger): an operator command for test networks and demos, not a payment.
    Fund {
        /// The ledger database (as for `serve`).
        #[arg(long)]
        db: String,
        /// The account id: `consumer-<hex key>`, `provider-<hex key>` or `stake-<hex key>`
        /// (`matproof job accounts --job job.toml` prints them).
        #[arg(long)]
        account: String,
        /// Amount, in the ledger's smallest unit.
        #[arg(long)]
        amount: u64,
    },
}

/// Runs a `matproof verifier` command.
pub fn dispatch(command: VerifierCommand) -> Result<ExitCode> {
    match command {
        VerifierCommand::Serve { db, listen, keys, identity, max_stored_bytes, retention_secs, tls, ops, http } => {
            let input_retention = std::time::Duration::from_secs(retention_secs);
            let limits = NodeLimits { max_stored_bytes, input_retention, ..NodeLimits::default() };
            serve(&db, listen, (keys.as_deref(), &identity), limits, (&tls, &ops, http))
        }
        VerifierCommand::Fund { db, account, amount } => fund(&db, &account, amount),
    }
}
