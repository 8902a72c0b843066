//! `matproof bench job`: one whole job over loopback gRPC — a verifier node (SQLite in a
//! temporary directory), a prover sidecar and the consumer, in this process — with one JSON
//! line per phase and the ratio of each to the GEMM alone, timed on the same data in the
//! same run. The phases come from the `matproof::phase` tracing events the provider, the
//! node and the client emit (`matproof_protocol::phase`); the last line sums them against
//! the goals of `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use matproof_client::{JobTerms, consumer_spec, open_job, submit_job};
use matproof_protocol::identity::Identity;
use matproof_protocol::ids::VkHash;
use matproof_protocol::matrix::random_i8;
use matproof_protocol::phase::PHASE_TARGET;
use matproof_protocol::spec::{InputScheme, Policy, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_prover::sidecar::SidecarConfig;
use matproof_prover::{Backend, CpuBackend};
use matproof_verifier::service::accounts::{consumer_account, stake_account};
use matproof_verifier::service::{NodeConfig, NodeLimits};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

use crate::bench::median_seconds;
use crate::commands::parse_tile;
use crate::job::{load_proving_keys, runtime};

/// What `bench job` runs.
#[derive(Debug, Clone)]
pub struct JobBench {
    /// `m = k = n`.
    pub n: usize,
    /// Full or succinct.
    pub mode: VerificationMode,
    /// Sampled tiles (0: no tile proofs, the `sha256` input scheme).
    pub samples: u32,
    /// Tile shape `TMxTN` (`kc = n`).
    pub tile: String,
    /// Key directory (`matproof setup --tile TMxTN --k N`), when `samples > 0`.
    pub keys: Option<PathBuf>,
    /// Timed runs of the GEMM alone (the median is the reference).
    pub gemm_runs: usize,
}

/// One recorded phase.
#[derive(Debug, Clone)]
struct PhaseRecord {
    name: String,
    seconds: f64,
    bytes: u64,
}

/// Collects the `matproof::phase` events of every thread.
#[derive(Clone, Default)]
struct PhaseLog(Arc<Mutex<Vec<PhaseRecord>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PhaseLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != PHASE_TARGET {
            return;
        }
        let mut record = PhaseRecord { name: String::new(), seconds: 0.0, bytes: 0 };
        event.record(&mut record);
        if let Ok(mut log) = self.0.lock() {
            log.push(record);
        }
    }
}

impl tracing::field::Visit for PhaseRecord {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "seconds" {
            self.seconds = value;
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "bytes" {
            self.bytes = value;
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "phase" {
            self.name = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "phase" {
            self.name = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

impl PhaseLog {
    fn take(&self) -> Vec<PhaseRecord> {
        self.0.lock().map(|mut log| std::mem::take(&mut *log)).unwrap_or_default()
    }
}

/// Peak resident set of this process, in bytes (`VmHWM`), where the OS says.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `bench job`.
pub fn run(bench: &JobBench) -> Result<ExitCode> {
    let log = PhaseLog::default();
    let subscriber = tracing_subscriber::registry().with(log.clone());
    tracing::subscriber::set_global_default(subscriber).context("installing the phase collector")?;
    let (tm, tn) = parse_tile(&bench.tile)?;
    let shape = CircuitShape { tm, tn, kc: bench.n };
    let (a, b) = (random_i8(bench.n, bench.n, 1)?, random_i8(bench.n, bench.n, 2)?);
    let cpu = CpuBackend::best();
    let gemm_s = median_seconds(bench.gemm_runs, || cpu.gemm(&a, &b));
    println!("{}", json!({ "phase": "gemm_alone", "seconds": gemm_s, "backend": cpu.name(), "n": bench.n }));
    let rt = runtime()?;
    let total = Instant::now();
    let (approved, c_ok) = rt.block_on(one_job(bench, shape, (Arc::new(a), Arc::new(b))))?;
    let total_s = total.elapsed().as_secs_f64();
    let phases = log.take();
    for p in &phases {
        let line =
            json!({ "phase": p.name, "seconds": p.seconds, "bytes": p.bytes, "ratio_to_gemm": p.seconds / gemm_s });
        println!("{line}");
    }
    println!("{}", goals(&phases, gemm_s, total_s, approved && c_ok));
    Ok(if approved && c_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The three goals of `docs/benchmarks.md` as sums of phases, each against the GEMM.
fn goals(phases: &[PhaseRecord], gemm_s: f64, total_s: f64, checked: bool) -> serde_json::Value {
    let sum =
        |names: &[&str]| -> f64 { phases.iter().filter(|p| names.contains(&p.name.as_str())).map(|p| p.seconds).sum() };
    // Streaming C to the verifier is what Respond takes beyond the verifier's own work.
    let respond = sum(&["provider.respond_until_verdict"]);
    let verifier_after_stream = sum(&["verifier.judge", "verifier.record"]);
    let provider_streaming = (respond - verifier_after_stream).max(0.0) + sum(&["consumer.result_receive"]);
    let provider_extra =
        sum(&["provider.c_leaves", "provider.c_tree", "provider.self_check", "provider.input_commitments"])
            + provider_streaming;
    let verifier = sum(&["verifier.receive", "verifier.judge"]);
    let consumer = sum(&["consumer.commit", "consumer.result_check"]);
    json!({
        "phase": "goals",
        "gemm_seconds": gemm_s,
        "provider_beyond_gemm_seconds": provider_extra,
        "provider_beyond_gemm_ratio": provider_extra / gemm_s,
        "provider_goal_ratio": 0.25,
        "verifier_check_seconds": verifier,
        "verifier_check_ratio": verifier / gemm_s,
        "verifier_goal_ratio": 0.5,
        "consumer_seconds": consumer,
        "consumer_ratio": consumer / gemm_s,
        "consumer_goal_ratio": 0.5,
        "job_seconds": total_s,
        "result_checked": checked,
        "peak_rss_bytes_all_three": peak_rss_bytes(),
    })
}

/// The job's proving keys and the `vk_hash` its spec pins (none without samples).
fn bench_keys(bench: &JobBench, shape: CircuitShape) -> Result<(Vec<matproof_circuits::TileProvingKey>, VkHash)> {
    if bench.samples == 0 {
        return Ok((Vec::new(), VkHash([0; 32])));
    }
    let dir = bench.keys.as_ref().context("--samples > 0 needs --keys DIR (matproof setup --tile .. --k N)")?;
    let keys: Vec<_> = load_proving_keys(dir)?.into_iter().filter(|k| k.shape == shape).collect();
    let Some(key) = keys.first() else {
        bail!("no proving key for tile {}x{} kc {} in {}", shape.tm, shape.tn, shape.kc, dir.display());
    };
    let vk_hash = key.verifying_key().hash();
    Ok((keys, vk_hash))
}

/// Node, sidecar, consumer: one job. Returns (approved, C received and checked).
async fn one_job(
    bench: &JobBench,
    shape: CircuitShape,
    inputs: matproof_protocol::session::SharedInputs,
) -> Result<(bool, bool)> {
    let (proving_keys, vk_hash) = bench_keys(bench, shape)?;
    let verifying_keys = proving_keys.iter().map(|k| k.verifying_key().clone()).collect();
    let dir = tempfile::tempdir()?;
    let (consumer, provider) = (Identity::generate()?, Identity::generate()?);
    let limits =
        NodeLimits { rpc_timeout: Duration::from_secs(3600), max_stored_bytes: u64::MAX, ..NodeLimits::default() };
    let node = matproof_verifier::service::start(NodeConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display()),
        identity: Identity::generate()?,
        verifying_keys,
        limits,
        tls: Default::default(),
    })
    .await?;
    node.ledger().deposit(&consumer_account(&consumer.public_key()), 1_000).await?;
    node.ledger().deposit(&stake_account(&provider.public_key()), 1_000).await?;
    let provider_key = provider.public_key();
    let mut config = SidecarConfig::new(node.url(), provider, proving_keys);
    config.verifier_key = Some(node.verifier_key());
    let sidecar = matproof_prover::sidecar::start(config).await?;
    let terms = JobTerms { provider: provider_key, shape, vk_hash, policy: policy(bench), price: 10, slash_amount: 10 };
    let start = Instant::now();
    let (spec, signature) = consumer_spec(&consumer, &terms, &inputs.0, &inputs.1)?;
    let bytes = 2 * (bench.n * bench.n) as u64;
    matproof_protocol::phase::phase("consumer.commit", start, bytes);
    let start = Instant::now();
    open_job(&node.url(), &spec, &signature, &inputs).await?;
    matproof_protocol::phase::phase("consumer.open_job", start, bytes);
    let start = Instant::now();
    let submitted = submit_job(&sidecar.url(), &spec, &signature, &inputs).await?;
    matproof_protocol::phase::phase("consumer.submit_job", start, bytes);
    sidecar.shutdown().await?;
    node.shutdown().await;
    Ok((submitted.approved, submitted.c.is_some()))
}

fn policy(bench: &JobBench) -> Policy {
    let deadline = SystemTime::now() + Duration::from_secs(3600);
    Policy {
        mode: bench.mode,
        input_scheme: if bench.samples == 0 { InputScheme::Sha256 } else { InputScheme::Poseidon },
        samples: bench.samples,
        freivalds_rounds: if bench.mode == VerificationMode::Full { 2 } else { 0 },
        quorum: 1,
        target_fraud_ppm: 10_000,
        deadline_unix_ms: deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
    }
}
