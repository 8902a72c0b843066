//! `matproof demo`: the pipeline as far as it exists, on embedded defaults, in one process.
//!
//! Consumer commits to A, B and opens a job; provider computes C, self-checks, commits R_C;
//! verifier draws a seed and signs the challenge; provider opens and proves the sampled
//! tiles; verifier runs Freivalds over all of C (full mode) and checks every opening and
//! proof. The gRPC transport, escrow ledger and receipt audit are not built yet, and this
//! says so.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use matproof_circuits::{PinnedVerifyingKey, TileProvingKey, TileVerifyingKey};
use matproof_protocol::freivalds::{self, Dims};
use matproof_protocol::identity::{Identity, verify};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_prover::{Backend, CommittedJob, CpuBackend, execute};
use matproof_verifier::check_sampled_tiles;

use crate::commands::random_vectors;
use crate::setup::{default_key_dir, key_paths, setup_with_progress};

const M: usize = 256;
const K: usize = 256;
const N: usize = 256;
const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 4, kc: 256 };
const SAMPLES: u32 = 4;
const ROUNDS: u32 = 2;

/// Loads the demo shape's keys from the cache, or makes and caches them.
fn demo_keys() -> Result<(TileProvingKey, TileVerifyingKey, &'static str)> {
    let dir = default_key_dir();
    let (pk_path, vk_path) = key_paths(&dir, SHAPE);
    if pk_path.exists() && vk_path.exists() {
        let loaded = TileProvingKey::read(&pk_path).and_then(|pk| Ok((pk, TileVerifyingKey::read(&vk_path)?)));
        match loaded {
            Ok((pk, vk)) if pk.verifying_key() == vk => return Ok((pk, vk, "loaded from cache")),
            Ok(_) => eprintln!("cached keys in {} do not match each other: regenerating", dir.display()),
            Err(e) => eprintln!("cached keys in {} are invalid ({e}): regenerating", dir.display()),
        }
    }
    let (pk, vk, _) = setup_with_progress(SHAPE, &dir).context("generating the demo keys")?;
    Ok((pk, vk, "generated and cached"))
}

fn seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS random number generator: {e}"))?;
    Ok(seed)
}

pub fn run() -> Result<ExitCode> {
    let total = Instant::now();
    let tiling = Tiling::new(M, K, N, SHAPE)?;
    let backend = CpuBackend::best();
    println!("matproof demo: {M}×{K}×{N} int8 GEMM, tile {}x{}, kc {}, full mode", SHAPE.tm, SHAPE.tn, SHAPE.kc);
    println!("backend: {} (no GPU backend in this build: using the CPU)", backend.name());

    let start = Instant::now();
    let (pk, vk, key_source) = demo_keys()?;
    println!("keys: {key_source} in {:.2} s ({})", start.elapsed().as_secs_f64(), vk.origin.describe());

    // Consumer: data, commitments, job spec.
    let start = Instant::now();
    let (consumer, provider, verifier) = (Identity::generate()?, Identity::generate()?, Identity::generate()?);
    let a = random_i8(M, K, 1)?;
    let b = random_i8(K, N, 2)?;
    let (r_a, r_b) = rayon::join(
        || matproof_protocol::commit::a_digests(&tiling, &a).map(|d| matproof_protocol::commit::digest_tree(&d).root()),
        || matproof_protocol::commit::b_digests(&tiling, &b).map(|d| matproof_protocol::commit::digest_tree(&d).root()),
    );
    let spec = JobSpec {
        m: M as u64,
        k: K as u64,
        n: N as u64,
        shape: SHAPE,
        r_a: r_a?,
        r_b: r_b?,
        vk_hash: vk.hash(),
        policy: Policy {
            mode: VerificationMode::Full,
            samples: SAMPLES,
            freivalds_rounds: ROUNDS,
            quorum: 1,
            target_fraud_ppm: 10_000,
            deadline_unix_ms: u64::MAX,
        },
        price: 1_000,
        slash_amount: 5_000,
        consumer: consumer.public_key(),
        provider: provider.public_key(),
        nonce: seed()?.to_vec(),
    };
    spec.validate()?;
    let job_id = spec.job_id();
    let spec_signature = consumer.sign("job", &spec.canonical_bytes());
    println!("job: {} (consumer committed R_A, R_B in {:.2} s)", hex::encode(job_id), start.elapsed().as_secs_f64());

    // Provider: check the commitments it was given, execute, self-check, commit.
    let start = Instant::now();
    verify(&spec.consumer, "job", &spec.canonical_bytes(), &spec_signature)?;
    let execution = execute(&backend, &tiling, &a, &b, &random_vectors(2, N)?)?;
    let job = CommittedJob::new(tiling, a.clone(), b.clone(), execution)?;
    anyhow::ensure!(job.a_tree.root() == spec.r_a && job.b_tree.root() == spec.r_b, "R_A/R_B mismatch: refusing");
    let r_c = job.execution.c_tree.root();
    println!(
        "provider: computed C, self-checked, committed R_C {} in {:.2} s",
        hex::encode(r_c),
        start.elapsed().as_secs_f64()
    );

    // Verifier: seed after R_C, signed challenge.
    let challenge = Challenge { job_id, r_c, seed: seed()? };
    let challenge_signature = verifier.sign("challenge", &challenge.signing_bytes());

    // Provider: verify the challenge's signature, open and prove the sampled tiles.
    let start = Instant::now();
    verify(&verifier.public_key(), "challenge", &challenge.signing_bytes(), &challenge_signature)?;
    let openings = job.respond(&pk, &challenge, SAMPLES as usize, rayon::current_num_threads())?;
    println!("provider: proved {} sampled tiles in {:.2} s", openings.len(), start.elapsed().as_secs_f64());

    // Verifier: Freivalds over all of C (full mode), then the tile openings and proofs.
    let start = Instant::now();
    let vectors = challenge.freivalds_vectors(ROUNDS as usize, N)?;
    freivalds::check(a.as_slice(), b.as_slice(), job.execution.c.as_slice(), Dims { m: M, k: K, n: N }, &vectors)?;
    let freivalds_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let pinned = PinnedVerifyingKey::new(vk, &spec.vk_hash)?;
    let summary = check_sampled_tiles(&spec, &r_c, &challenge, &openings, &pinned)?;
    println!("verifier: Freivalds ({ROUNDS} rounds over 2^61-1) passed in {:.1} ms", freivalds_s * 1e3);
    println!(
        "verifier: {} of {} tiles opened and their Groth16 proofs batch-verified in {:.1} ms",
        summary.samples,
        summary.tiles,
        start.elapsed().as_secs_f64() * 1e3
    );
    println!("bounds: a wrong C passes Freivalds with probability ≤ 2^-{}", 61 * ROUNDS);
    println!(
        "bounds: a cheater escapes the tile sample with probability ≤ {:.4} (one wrong tile of {}), ≤ {:.4} ({}% of tiles wrong)",
        summary.escape_one_wrong_tile,
        summary.tiles,
        summary.escape_policy_fraction,
        summary.policy_fraction * 100.0
    );
    println!("verdict: approved");
    println!(
        "not yet: this ran in one process without gRPC; the verifier node, escrow ledger and receipt audit \
         land with the gRPC pipeline issue (total {:.2} s)",
        total.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
