//! `matproof demo`: the whole pipeline over gRPC on loopback, on embedded defaults.
//!
//! A verifier node (gRPC, SQLite escrow ledger in a temporary directory) and a prover
//! sidecar start on 127.0.0.1; an operator funds the consumer and the provider's stake; the
//! consumer commits to A, B, opens the job on the verifier (`OpenJob`, full mode: A, B go
//! along) and submits it to the sidecar (`SubmitJob`); the sidecar checks the submission,
//! computes C, self-checks, commits, answers the challenge with Groth16 proofs of the
//! sampled tiles and streams C; the verifier checks, signs the verdict and releases the
//! escrow once; the receipt is written to a file and audited offline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use matproof_circuits::{CacheOutcome, TileProvingKey, TileVerifyingKey};
use matproof_protocol::identity::{Identity, PublicKey};
use matproof_protocol::matrix::{MatrixI32, random_i8};
use matproof_protocol::receipt::{Receipt, Verdict};
use matproof_protocol::session::SharedInputs;
use matproof_protocol::spec::{Policy, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_prover::sidecar::{Phase, Progress, ProgressObserver, SidecarConfig};
use matproof_verifier::audit::AuditData;
use matproof_verifier::ledger::{ESCROW_ACCOUNT, Ledger};
use matproof_verifier::service::accounts::{consumer_account, provider_account, stake_account};
use matproof_verifier::service::{NodeConfig, NodeLimits};

use crate::audit::{KeySource, audit_file};
use crate::job::{runtime, write_receipt};
use crate::setup::{default_key_dir, key_paths, setup_with_progress};
use matproof_client::{JobTerms, consumer_spec, open_job, submit_job};

const M: usize = 256;
const K: usize = 256;
const N: usize = 256;
const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 4, kc: 256 };
const SAMPLES: u32 = 4;
const ROUNDS: u32 = 2;
const PRICE: u64 = 1_000;
const SLASH: u64 = 5_000;
const CONSUMER_FUNDS: u64 = 10_000;
const PROVIDER_STAKE: u64 = 5_000;

/// Loads the demo shape's keys from the cache, or makes and caches them.
fn demo_keys() -> Result<(TileProvingKey, TileVerifyingKey, &'static str)> {
    let dir = default_key_dir();
    let (pk_path, vk_path) = key_paths(&dir, SHAPE);
    if pk_path.exists() && vk_path.exists() {
        let loaded = TileProvingKey::read_cached(&pk_path)
            .and_then(|(pk, outcome)| Ok((pk, outcome, TileVerifyingKey::read(&vk_path)?)));
        match loaded {
            Ok((pk, outcome, vk)) if pk.verifying_key() == vk => {
                let how = match outcome {
                    CacheOutcome::Hit => "loaded from cache (proving key validated on an earlier run)",
                    CacheOutcome::Written { .. } => "loaded from cache and validated",
                    CacheOutcome::NotWritten { .. } => "loaded from cache and validated (load cache not writable)",
                };
                return Ok((pk, vk, how));
            }
            Ok(_) => eprintln!("cached keys in {} do not match each other: regenerating", dir.display()),
            Err(e) => eprintln!("cached keys in {} are invalid ({e}): regenerating", dir.display()),
        }
    }
    let (pk, vk, _) = setup_with_progress(SHAPE, &dir).context("generating the demo keys")?;
    Ok((pk, vk, "generated and cached"))
}

/// Where the demo's receipts go (next to the key cache, so they outlive the run).
fn receipt_dir() -> PathBuf {
    let keys = default_key_dir();
    keys.parent().map(|p| p.join("receipts")).unwrap_or_else(|| PathBuf::from("matproof-receipts"))
}

/// The four balances the demo shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Balances {
    consumer: u64,
    provider: u64,
    escrow: u64,
    stake: u64,
}

async fn balances(ledger: &Ledger, consumer: &PublicKey, provider: &PublicKey) -> Result<Balances> {
    Ok(Balances {
        consumer: ledger.balance(&consumer_account(consumer)).await?,
        provider: ledger.balance(&provider_account(provider)).await?,
        escrow: ledger.balance(ESCROW_ACCOUNT).await?,
        stake: ledger.balance(&stake_account(provider)).await?,
    })
}

/// A progress bar over the sidecar's phases (on stderr; hidden when it is not a terminal).
fn job_progress(log: Arc<Mutex<Vec<Progress>>>) -> (ProgressBar, ProgressObserver) {
    let bar = ProgressBar::new(6);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:20}] {pos}/{len} {msg} ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let observer_bar = bar.clone();
    let observer: ProgressObserver = Arc::new(move |p: &Progress| {
        match p {
            Progress::Started { phase, .. } => observer_bar.set_message(match phase {
                Phase::Check => "provider: checking the submission",
                Phase::Execute => "provider: computing C, self-checking, R_A/R_B/R_C trees",
                Phase::Commit => "provider: committing R_C, awaiting the challenge",
                Phase::Prove => "provider: proving the sampled tiles (Groth16)",
                Phase::Respond => "provider: streaming C and the openings; verifier checking",
                Phase::Receipt => "fetching the receipt",
            }),
            Progress::Finished { .. } => observer_bar.inc(1),
            Progress::Backend { .. } => {}
        }
        if let Ok(mut log) = log.lock() {
            log.push(p.clone());
        }
    });
    (bar, observer)
}

pub fn run() -> Result<ExitCode> {
    let total = Instant::now();
    println!(
        "matproof demo: {M}×{K}×{N} int8 GEMM, tile {}x{}, kc {}, {SAMPLES} samples, full mode, over gRPC on loopback",
        SHAPE.tm, SHAPE.tn, SHAPE.kc
    );
    let start = Instant::now();
    let (pk, vk, key_source) = demo_keys()?;
    let keys_s = start.elapsed().as_secs_f64();
    println!("keys: {key_source} in {keys_s:.2} s ({})", vk.origin.describe());
    runtime()?.block_on(session(pk, vk, keys_s, total))
}

/// The running parties of the demo: a verifier node over a SQLite ledger and a sidecar.
struct Parties {
    dir: tempfile::TempDir,
    node: matproof_verifier::service::RunningNode,
    sidecar: matproof_prover::sidecar::RunningSidecar,
    consumer: Identity,
    bar: ProgressBar,
    log: Arc<Mutex<Vec<Progress>>>,
    startup_s: f64,
}

/// Starts the verifier node (its ledger funded) and the sidecar pinned to it.
async fn start_parties(pk: TileProvingKey, vk: &TileVerifyingKey) -> Result<Parties> {
    let start = Instant::now();
    let dir = tempfile::tempdir().context("creating a temporary directory for the ledger")?;
    let (consumer, provider, verifier) = (Identity::generate()?, Identity::generate()?, Identity::generate()?);
    let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("ledger.db").display());
    let node = matproof_verifier::service::start(NodeConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url,
        identity: verifier,
        verifying_keys: vec![vk.clone()],
        limits: NodeLimits::default(),
        tls: Default::default(),
    })
    .await
    .context("starting the verifier node")?;
    node.ledger().deposit(&consumer_account(&consumer.public_key()), CONSUMER_FUNDS).await?;
    node.ledger().deposit(&stake_account(&provider.public_key()), PROVIDER_STAKE).await?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (bar, observer) = job_progress(Arc::clone(&log));
    let mut config = SidecarConfig::new(node.url(), provider, vec![pk]);
    config.verifier_key = Some(node.verifier_key());
    config.observer = Some(observer);
    let sidecar = matproof_prover::sidecar::start(config).await.context("starting the prover sidecar")?;
    println!(
        "verifier node: {} (key {}), SQLite ledger in {}",
        node.url(),
        short(&node.verifier_key()),
        dir.path().display()
    );
    println!("prover sidecar: {} (key {})", sidecar.url(), short(&sidecar.public_key()));
    Ok(Parties { dir, node, sidecar, consumer, bar, log, startup_s: start.elapsed().as_secs_f64() })
}

/// What the consumer's run of the job left: the receipt, the balances before, in escrow
/// and after, and the phase times.
struct Run {
    receipt_wire: matproof_protocol::wire::pb::Receipt,
    /// `C`, checked against the approved `R_C` (`None` if rejected).
    c: Option<MatrixI32>,
    path: PathBuf,
    balances: [Balances; 3],
    transfer: String,
    open_s: f64,
    submit_s: f64,
}

/// The consumer: data, commitments, signed spec, `OpenJob`, then `SubmitJob` to the sidecar
/// and the receipt written to the cache.
async fn consumer_run(parties: &Parties, vk: &TileVerifyingKey, inputs: &SharedInputs) -> Result<Run> {
    let (a, b) = (inputs.0.as_ref(), inputs.1.as_ref());
    let (consumer_key, provider_key) = (parties.consumer.public_key(), parties.sidecar.public_key());
    let ledger = parties.node.ledger();
    let start = Instant::now();
    let policy = Policy {
        mode: VerificationMode::Full,
        input_scheme: matproof_protocol::spec::InputScheme::Poseidon,
        samples: SAMPLES,
        freivalds_rounds: ROUNDS,
        quorum: 1,
        target_fraud_ppm: 10_000,
        deadline_unix_ms: unix_ms_in(Duration::from_secs(600)),
    };
    let terms = JobTerms {
        provider: provider_key,
        shape: SHAPE,
        vk_hash: vk.hash(),
        policy,
        price: PRICE,
        slash_amount: SLASH,
    };
    let (spec, signature) = consumer_spec(&parties.consumer, &terms, a, b)?;
    let before = balances(ledger, &consumer_key, &provider_key).await?;
    let job_id = open_job(&parties.node.url(), &spec, &signature, inputs).await?;
    let escrowed = balances(ledger, &consumer_key, &provider_key).await?;
    let open_s = start.elapsed().as_secs_f64();
    println!("job: {job_id} opened (consumer committed R_A, R_B; price {PRICE} in escrow)");

    let start = Instant::now();
    let submitted = submit_job(&parties.sidecar.url(), &spec, &signature, inputs).await;
    parties.bar.finish_and_clear();
    // The client accepted C only after its R_C matched the approved receipt's.
    let submitted = submitted?;
    let (receipt_wire, c) = (submitted.receipt, submitted.c);
    let submit_s = start.elapsed().as_secs_f64();
    let path = receipt_dir().join(format!("{job_id}.receipt"));
    write_receipt(&path, &receipt_wire)?;
    let after = balances(ledger, &consumer_key, &provider_key).await?;
    ledger.conservation_check().await.context("ledger conservation")?;
    let transfer = ledger.transfer(&job_id).await?.state.as_str().to_string();
    Ok(Run { receipt_wire, c, path, balances: [before, escrowed, after], transfer, open_s, submit_s })
}

async fn session(pk: TileProvingKey, vk: TileVerifyingKey, keys_s: f64, total: Instant) -> Result<ExitCode> {
    let (_, vk_path) = key_paths(&default_key_dir(), SHAPE);
    let parties = start_parties(pk, &vk).await?;
    let inputs = (Arc::new(random_i8(M, K, 1)?), Arc::new(random_i8(K, N, 2)?));
    let mut run = consumer_run(&parties, &vk, &inputs).await?;
    let result_checked = run.c.is_some();

    // The audit, offline, from the file, with A, B and the received C.
    let start = Instant::now();
    let verifier_key = parties.node.verifier_key();
    let (a, b) = (Arc::unwrap_or_clone(inputs.0), Arc::unwrap_or_clone(inputs.1));
    let data = AuditData { a, b, c: run.c.take() };
    let report = audit_file(&run.path, KeySource::File(&vk_path), &[verifier_key], Some(&data));
    let audit_s = start.elapsed().as_secs_f64();
    let receipt = Receipt::try_from(&run.receipt_wire).context("the receipt is malformed")?;
    let Parties { dir, node, sidecar, log, startup_s, .. } = parties;
    sidecar.shutdown().await?;
    node.shutdown().await;
    drop(dir);

    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    print_phases(&log, [keys_s, startup_s, run.open_s, run.submit_s, audit_s]);
    print_checks(&receipt);
    print_balances(&run);
    let verdict = receipt.verdicts.first().context("the receipt has no verdict")?;
    println!("verifier's reason: {}", verdict.reason);
    let [before, _, after] = &run.balances;
    let paid_once = after.provider == before.provider + PRICE
        && after.consumer + PRICE == before.consumer
        && after.escrow == before.escrow
        && after.stake == before.stake;
    anyhow::ensure!(
        verdict.verdict != Verdict::Approved || paid_once,
        "the job was approved but the balances do not show one payment: {before:?} → {after:?}"
    );
    // On lines of their own, for people and CI.
    println!("verdict: {}", verdict.verdict.as_str());
    if result_checked {
        println!("result: checked");
    }
    let code = match report {
        Ok(report) => {
            let names: Vec<&str> = report.checks.iter().filter(|c| c.passed()).map(|c| c.name).collect();
            println!("audit (offline, from the file, with A, B and C, verifier key pinned): {}", names.join(", "));
            println!("audit: ok");
            if verdict.verdict == Verdict::Approved { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            println!("audit: FAILED: {e:#}");
            ExitCode::from(1)
        }
    };
    println!("total: {:.2} s", total.elapsed().as_secs_f64());
    Ok(code)
}

/// The backend and the time of every phase: `[keys, start-up, open, submit, audit]`.
fn print_phases(log: &[Progress], [keys_s, startup_s, open_s, submit_s, audit_s]: [f64; 5]) {
    let backend = log
        .iter()
        .find_map(|p| if let Progress::Backend { name, .. } = p { Some(name.clone()) } else { None })
        .unwrap_or_else(|| "?".into());
    println!("backend: {backend}");
    println!("time per phase:");
    println!("  keys                  {keys_s:>7.2} s");
    println!("  start node + sidecar  {startup_s:>7.2} s");
    println!("  consumer: open job     {open_s:>7.2} s");
    for p in log {
        if let Progress::Finished { phase, elapsed, detail, .. } = p {
            println!("  {:<21} {:>7.2} s  {detail}", phase_label(*phase), elapsed.as_secs_f64());
        }
    }
    println!("  SubmitJob round trip  {submit_s:>7.2} s");
    println!("  audit                 {audit_s:>7.2} s");
}

/// What the receipt says was checked, and the bounds.
fn print_checks(receipt: &Receipt) {
    let s = &receipt.summary;
    println!("checks:");
    if s.mode == VerificationMode::Full {
        println!(
            "  Freivalds: {} rounds over 2^61-1 on all of C (a wrong C passes with probability <= 2^-{})",
            s.freivalds_rounds,
            61 * s.freivalds_rounds
        );
    }
    println!(
        "  tiles: {} of {} sampled, opened and their Groth16 proofs verified: a cheater escapes with probability <= {:.4} \
         (one wrong tile), <= {:.6} ({}% of tiles wrong)",
        s.samples,
        s.tiles,
        s.escape_one_wrong_tile,
        s.escape_policy_fraction,
        s.policy_fraction * 100.0
    );
    println!("  the receipt states: {}", s.statement);
}

/// The balances funded → escrowed → settled, and the transfer.
fn print_balances(run: &Run) {
    let [before, escrowed, after] = &run.balances;
    println!("balances (funded → escrowed → settled):");
    let row = |name: &str, f: fn(&Balances) -> u64| {
        println!("  {name:<9} {:>6} → {:>6} → {:>6}", f(before), f(escrowed), f(after));
    };
    row("consumer", |b| b.consumer);
    row("provider", |b| b.provider);
    row("escrow", |b| b.escrow);
    row("stake", |b| b.stake);
    println!("escrow transfer: {} (conservation holds)", run.transfer);
    println!("receipt: {}", run.path.display());
}

fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Check => "provider: check",
        Phase::Execute => "provider: execute",
        Phase::Commit => "commit + challenge",
        Phase::Prove => "provider: prove",
        Phase::Respond => "respond + verdict",
        Phase::Receipt => "receipt",
    }
}

fn short(key: &PublicKey) -> String {
    hex::encode(&key.0[..8])
}

fn unix_ms_in(d: Duration) -> u64 {
    (std::time::SystemTime::now() + d).duration_since(std::time::UNIX_EPOCH).map(|t| t.as_millis() as u64).unwrap_or(0)
}
