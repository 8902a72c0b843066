//! `matproof prover serve|run`: the prover sidecar as a service, or one job from a job file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use matproof_prover::sidecar::{
    Progress, ProgressObserver, ProvingKeys, RunJob, SidecarConfig, VerifierTarget, run_job, start,
};
use matproof_verifier::service::accounts::{consumer_account, provider_account};

use matproof_client::{Peer, TlsOptions};
use matproof_protocol::identity::PublicKey;

use crate::job::{
    LoadedJob, load_or_create_identity, load_proving_keys, open_job, parse_public_key, pinned_vk_hash, runtime,
    write_npy_atomic, write_receipt,
};
use crate::ops_args::{LogFormat, OpsArgs, init_logs};
use crate::tls_args::TlsArgs;
use crate::verifier_cmd::shutdown_signal;

/// Prints each phase as it ends, on stderr.
fn log_progress(p: &Progress) {
    if let Progress::Finished { job_id, phase, elapsed, detail } = p {
        eprintln!(
            "job {}…: {} done in {:.2} s: {detail}",
            &hex::encode(job_id)[..12],
            phase.as_str(),
            elapsed.as_secs_f64()
        );
    }
}

/// `matproof prover serve`: the sidecar, until Ctrl-C (or SIGTERM).
pub fn serve(
    (verifier_url, verifier_key): (&str, Option<PublicKey>),
    listen: SocketAddr,
    keys: Option<&Path>,
    identity_file: &Path,
    max_jobs_in_flight: usize,
    (tls, ops): (&TlsArgs, &OpsArgs),
) -> Result<ExitCode> {
    init_logs(ops.log_format)?;
    let (identity, created) = load_or_create_identity(identity_file)?;
    if created {
        eprintln!("created a new provider identity in {}", identity_file.display());
    }
    // Without keys the sidecar runs jobs without tile proofs (samples = 0) only.
    let proving_keys = keys.map(load_proving_keys).transpose()?.unwrap_or_default();
    let shapes = ProvingKeys::new(proving_keys.clone()).shapes();
    let rt = runtime()?;
    rt.block_on(async {
        let mut config = SidecarConfig::new(verifier_url, identity, proving_keys);
        config.verifier_key = verifier_key;
        config.listen = listen;
        config.max_jobs_in_flight = max_jobs_in_flight;
        (config.tls, config.verifier_tls) = sidecar_tls(tls, verifier_url)?;
        // JSON logs carry every phase already; the progress lines are for people.
        if ops.log_format == LogFormat::Text {
            let observer: ProgressObserver = std::sync::Arc::new(log_progress);
            config.observer = Some(observer);
        }
        let sidecar = start(config).await.context("starting the prover sidecar")?;
        println!("prover sidecar listening on {}", sidecar.url());
        println!("transport: {}", sidecar.transport());
        println!("provider public key: {}", hex::encode(sidecar.public_key().0));
        println!("provider account: {}", provider_account(&sidecar.public_key()));
        for (shape, vk_hash) in shapes {
            println!("proving key: {}x{} kc {} (vk_hash {})", shape.tm, shape.tn, shape.kc, hex::encode(vk_hash));
        }
        match verifier_key {
            Some(key) => println!("verifier: {verifier_url}, pinned key {} (Ctrl-C to stop)", hex::encode(key.0)),
            None => println!("verifier: {verifier_url}, key not pinned: any verifier (Ctrl-C to stop)"),
        }
        let metrics = match ops.metrics {
            Some(listen) => {
                let server = sidecar.serve_metrics(listen, tls.insecure).await?;
                println!("metrics: {}/metrics", server.url());
                Some(server)
            }
            None => None,
        };
        shutdown_signal().await;
        eprintln!("shutting down (jobs in flight finish first)");
        if let Some(server) = metrics {
            server.shutdown().await;
        }
        sidecar.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The sidecar's own endpoint and its link to the verifier, from one set of flags:
/// `--tls-cert`/`--tls-key` are its server certificate and, to an `https://` verifier, its
/// client certificate; `--tls-ca` is the CA of the verifier's certificate.
fn sidecar_tls(tls: &TlsArgs, verifier_url: &str) -> Result<(TlsOptions, TlsOptions)> {
    let options = tls.options()?;
    let server = TlsOptions { ca_pem: None, ..options.clone() };
    let verifier_is_tls = verifier_url.starts_with("https://");
    let verifier = TlsOptions { identity: options.identity.filter(|_| verifier_is_tls), ..options };
    Ok((server, verifier))
}

/// `matproof prover run`: opens the job file's job as its consumer, runs it as its provider
/// against the verifier, writes the receipt. Exit 0 when approved, 1 when rejected.
pub fn run(
    verifier: &Peer,
    verifier_key: Option<PublicKey>,
    job_path: &Path,
    (receipt_out, out): (Option<PathBuf>, Option<PathBuf>),
) -> Result<ExitCode> {
    let job = LoadedJob::read(job_path)?;
    let provider = job.provider.as_ref().context("prover run needs provider_identity in the job file")?;
    let keys = ProvingKeys::new(job_proving_keys(&job)?);
    let (spec, signature) = job.signed_spec(pinned_vk_hash(&job)?)?;
    let inputs = (Arc::new(job.a.clone()), Arc::new(job.b.clone()));
    let rt = runtime()?;
    rt.block_on(async {
        let job_id = open_job(verifier, &spec, &signature, &inputs).await?;
        println!("job_id: {job_id}");
        println!("consumer account: {}", consumer_account(&spec.consumer));
        println!("provider account: {}", provider_account(&spec.provider));
        let verifier = VerifierTarget { peer: verifier.clone(), pinned_key: verifier_key };
        let outcome = run_job(RunJob {
            verifier: &verifier,
            identity: provider,
            keys: &keys,
            spec,
            consumer_signature: signature,
            a: job.a.clone(),
            b: job.b.clone(),
            progress: &log_progress,
        })
        .await?;
        let path =
            receipt_out.unwrap_or_else(|| job_path.with_file_name(format!("{}.receipt", &job_id.to_hex()[..16])));
        write_receipt(&path, &outcome.receipt_wire)?;
        println!("backend: {}", outcome.backend);
        println!("receipt: {}", path.display());
        println!("verdict: {}", outcome.verdict.verdict.as_str());
        if !outcome.verdict.reason.is_empty() {
            println!("reason: {}", outcome.verdict.reason);
        }
        write_result(&outcome, out.as_deref())?;
        Ok(match outcome.verdict.verdict {
            matproof_protocol::receipt::Verdict::Approved => ExitCode::SUCCESS,
            matproof_protocol::receipt::Verdict::Rejected => ExitCode::from(1),
        })
    })
}

/// The proving key a job file's job needs (none for a job without tile proofs), checked
/// against its verifying key.
fn job_proving_keys(job: &LoadedJob) -> Result<Vec<matproof_circuits::TileProvingKey>> {
    if job.file.samples == 0 {
        return Ok(Vec::new());
    }
    let (vk, pk) = (job.verifying_key()?, job.proving_key()?);
    anyhow::ensure!(
        pk.verifying_key() == vk,
        "the proving and verifying key files in {} differ",
        job.key_dir.display()
    );
    Ok(vec![pk])
}

/// `--out`: the provider's `C` of an approved job, written (atomically) only if it is the `C`
/// the receipt approved.
fn write_result(outcome: &matproof_prover::sidecar::JobOutcome, out: Option<&Path>) -> Result<()> {
    let Some(out) = out else { return Ok(()) };
    if outcome.verdict.verdict != matproof_protocol::receipt::Verdict::Approved {
        println!("result: not written (the job was rejected)");
        return Ok(());
    }
    let execution = &outcome.committed.execution;
    anyhow::ensure!(
        execution.c_tree.root() == outcome.receipt.r_c,
        "job {}: C has R_C {}, the approved receipt's is {}: not written",
        outcome.job_id,
        execution.c_tree.root(),
        outcome.receipt.r_c
    );
    write_npy_atomic(out, &execution.c)?;
    println!("result: checked, written to {}", out.display());
    Ok(())
}

/// `matproof prover …`.
#[derive(clap::Subcommand, Debug)]
pub enum ProverCommand {
    /// Run the prover sidecar (gRPC `SubmitJob`) until Ctrl-C.
    Serve {
        /// The verifier node, e.g. `https://verifier.example:7001` (`http://` on loopback).
        #[arg(long)]
        verifier: String,
        /// The verifier's public key (hex): a challenge signed by another key is refused
        /// before any proving. Recommended; without it any verifier at the URL is accepted.
        #[arg(long = "verifier-key", value_name = "HEX")]
        verifier_key: Option<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7002")]
        listen: SocketAddr,
        /// Directory of proving keys (`*.pk`, from `matproof setup`). Without it, only jobs
        /// with `samples = 0` are run.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// The provider's identity: a 32-byte Ed25519 seed, created (mode 0600) if missing.
        #[arg(long)]
        identity: PathBuf,
        /// Jobs run at once (more are refused with RESOURCE_EXHAUSTED).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        max_jobs: u32,
        /// TLS: the sidecar's certificate (also its client certificate to an `https://`
        /// verifier) and the CA of the verifier's certificate.
        #[command(flatten)]
        tls: TlsArgs,
        /// Metrics (`--metrics ADDR`) and the log format.
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// Run one job from a job file: open it as the consumer, run it as the provider.
    Run {
        /// The verifier node, e.g. `https://verifier.example:7001` (`http://` on loopback).
        #[arg(long)]
        verifier: String,
        /// The verifier's public key (hex): a challenge signed by another key is refused
        /// before any proving. Recommended; without it any verifier at the URL is accepted.
        #[arg(long = "verifier-key", value_name = "HEX")]
        verifier_key: Option<String>,
        /// The job file (format: docs/node.md).
        #[arg(long)]
        job: PathBuf,
        /// Where to write the receipt (default: next to the job file).
        #[arg(long)]
        receipt: Option<PathBuf>,
        /// Where to write `C` (`.npy`) once the job is approved.
        #[arg(long)]
        out: Option<PathBuf>,
        /// TLS to the verifier (an `https://` URL; --tls-cert: the provider's client
        /// certificate).
        #[command(flatten)]
        tls: TlsArgs,
    },
}

/// Runs a `matproof prover` command.
pub fn dispatch(command: ProverCommand) -> Result<ExitCode> {
    match command {
        ProverCommand::Serve { verifier, verifier_key, listen, keys, identity, max_jobs, tls, ops } => {
            let verifier_key = verifier_key.map(|k| parse_public_key("--verifier-key", &k)).transpose()?;
            serve((&verifier, verifier_key), listen, keys.as_deref(), &identity, max_jobs as usize, (&tls, &ops))
        }
        ProverCommand::Run { verifier, verifier_key, job, receipt, out, tls } => {
            let verifier_key = verifier_key.map(|k| parse_public_key("--verifier-key", &k)).transpose()?;
            run(&tls.peer(&verifier)?, verifier_key, &job, (receipt, out))
        }
    }
}
