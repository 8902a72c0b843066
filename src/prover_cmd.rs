//! `matproof prover serve|run`: the prover sidecar as a service, or one job from a job file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use matproof_prover::sidecar::{
    Progress, ProgressObserver, ProvingKeys, RunJob, SidecarConfig, VerifierTarget, run_job, start,
};
use matproof_verifier::service::accounts::{consumer_account, provider_account};

use matproof_protocol::identity::PublicKey;

use crate::job::{
    LoadedJob, load_or_create_identity, load_proving_keys, open_job, parse_public_key, runtime, write_receipt,
};
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
    verifier_url: &str,
    verifier_key: Option<PublicKey>,
    listen: SocketAddr,
    keys: &Path,
    identity_file: &Path,
    max_jobs_in_flight: usize,
) -> Result<ExitCode> {
    let (identity, created) = load_or_create_identity(identity_file)?;
    if created {
        eprintln!("created a new provider identity in {}", identity_file.display());
    }
    let proving_keys = load_proving_keys(keys)?;
    let shapes = ProvingKeys::new(proving_keys.clone()).shapes();
    let rt = runtime()?;
    rt.block_on(async {
        let mut config = SidecarConfig::new(verifier_url, identity, proving_keys);
        config.verifier_key = verifier_key;
        config.listen = listen;
        config.max_jobs_in_flight = max_jobs_in_flight;
        let observer: ProgressObserver = std::sync::Arc::new(log_progress);
        config.observer = Some(observer);
        let sidecar = start(config).await.context("starting the prover sidecar")?;
        println!("prover sidecar listening on {}", sidecar.url());
        println!("provider public key: {}", hex::encode(sidecar.public_key().0));
        println!("provider account: {}", provider_account(&sidecar.public_key()));
        for (shape, vk_hash) in shapes {
            println!("proving key: {}x{} kc {} (vk_hash {})", shape.tm, shape.tn, shape.kc, hex::encode(vk_hash));
        }
        match verifier_key {
            Some(key) => println!("verifier: {verifier_url}, pinned key {} (Ctrl-C to stop)", hex::encode(key.0)),
            None => println!("verifier: {verifier_url}, key not pinned: any verifier (Ctrl-C to stop)"),
        }
        shutdown_signal().await;
        eprintln!("shutting down (jobs in flight finish first)");
        sidecar.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `matproof prover run`: opens the job file's job as its consumer, runs it as its provider
/// against the verifier, writes the receipt. Exit 0 when approved, 1 when rejected.
pub fn run(
    verifier_url: &str,
    verifier_key: Option<PublicKey>,
    job_path: &Path,
    receipt_out: Option<PathBuf>,
) -> Result<ExitCode> {
    let job = LoadedJob::read(job_path)?;
    let provider = job.provider.as_ref().context("prover run needs provider_identity in the job file")?;
    let vk = job.verifying_key()?;
    let pk = job.proving_key()?;
    anyhow::ensure!(
        pk.verifying_key() == vk,
        "the proving and verifying key files in {} differ",
        job.key_dir.display()
    );
    let (spec, signature) = job.signed_spec(vk.hash())?;
    let keys = ProvingKeys::new(vec![pk]);
    let rt = runtime()?;
    rt.block_on(async {
        let job_id = open_job(verifier_url, &spec, &signature, &job.a, &job.b).await?;
        println!("job_id: {job_id}");
        println!("consumer account: {}", consumer_account(&spec.consumer));
        println!("provider account: {}", provider_account(&spec.provider));
        let verifier = VerifierTarget { url: verifier_url.to_string(), pinned_key: verifier_key };
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
        Ok(match outcome.verdict.verdict {
            matproof_protocol::receipt::Verdict::Approved => ExitCode::SUCCESS,
            matproof_protocol::receipt::Verdict::Rejected => ExitCode::from(1),
        })
    })
}

/// `matproof prover …`.
#[derive(clap::Subcommand, Debug)]
pub enum ProverCommand {
    /// Run the prover sidecar (gRPC `SubmitJob`) until Ctrl-C.
    Serve {
        /// The verifier node, e.g. `http://127.0.0.1:7001`.
        #[arg(long)]
        verifier: String,
        /// The verifier's public key (hex): a challenge signed by another key is refused
        /// before any proving. Recommended; without it any verifier at the URL is accepted.
        #[arg(long = "verifier-key", value_name = "HEX")]
        verifier_key: Option<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7002")]
        listen: SocketAddr,
        /// Directory of proving keys (`*.pk`, from `matproof setup`).
        #[arg(long)]
        keys: PathBuf,
        /// The provider's identity: a 32-byte Ed25519 seed, created (mode 0600) if missing.
        #[arg(long)]
        identity: PathBuf,
        /// Jobs run at once (more are refused with RESOURCE_EXHAUSTED).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        max_jobs: u32,
    },
    /// Run one job from a job file: open it as the consumer, run it as the provider.
    Run {
        /// The verifier node, e.g. `http://127.0.0.1:7001`.
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
    },
}

/// Runs a `matproof prover` command.
pub fn dispatch(command: ProverCommand) -> Result<ExitCode> {
    match command {
        ProverCommand::Serve { verifier, verifier_key, listen, keys, identity, max_jobs } => {
            let verifier_key = verifier_key.map(|k| parse_public_key("--verifier-key", &k)).transpose()?;
            serve(&verifier, verifier_key, listen, &keys, &identity, max_jobs as usize)
        }
        ProverCommand::Run { verifier, verifier_key, job, receipt } => {
            let verifier_key = verifier_key.map(|k| parse_public_key("--verifier-key", &k)).transpose()?;
            run(&verifier, verifier_key, &job, receipt)
        }
    }
}
