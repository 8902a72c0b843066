//! `matproof bench`: medians of repeated runs on seeded data, one JSON object per line.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::ValueEnum;
use matproof_protocol::commit::{a_digests, b_digests, digest_tree};
use matproof_protocol::freivalds::{self, Dims};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::matrix::{MatrixI8, MatrixI32, random_i8};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_prover::{Backend, CpuBackend};
use rayon::prelude::*;
use serde_json::json;

use ark_bn254::Bn254;
use ark_groth16::Groth16;
use matproof_circuits::{
    PinnedVerifyingKey, TileProof, TilePublicInputs, TileWitness, constraint_count, development_setup, prove_tile,
};
use matproof_protocol::transcript::Challenge;
use rand::rngs::OsRng;

use crate::commands::{parse_tile, random_vectors};

/// What to benchmark.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchKind {
    /// Exact int8 GEMM on the best CPU kernel.
    Gemm,
    /// Freivalds check (2 rounds) against the GEMM it verifies and a plain read of the bytes.
    Freivalds,
    /// Commitments: without `--scheme`, R_A, R_B (Poseidon) and R_C (SHA-256 Merkle) at tile
    /// 4x4, kc = n; with `--scheme c` R_C alone at `--tile` (fast path, streamed, reference),
    /// with `--scheme sha256-inputs` R_A, R_B of the `sha256` input scheme at `--tile`.
    Commit,
    /// Groth16 tile proofs for `--tile TMxTN --k K`: setup, prove, verify, batch verify.
    Prove,
    /// One whole job over loopback gRPC (node, sidecar, consumer), one JSON line per phase:
    /// `--n N --mode full --samples S` (`src/bench_job.rs`).
    Job,
}

/// Which commitment `bench commit --scheme` measures.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CommitScheme {
    /// `R_C` over C = A·B in `--tile` tiles.
    C,
    /// `R_A`, `R_B` of the `sha256` input scheme in `--tile` blocks.
    Sha256Inputs,
}

/// Which backend `bench` runs on (`--backend`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// The best CPU kernel.
    Cpu,
    /// The CUDA backend (an error without a usable GPU).
    Cuda,
    /// CUDA when usable, else the CPU.
    Auto,
}

/// The backend for `choice` and one line saying what was chosen.
fn choose_backend(choice: BackendChoice) -> Result<(Box<dyn Backend>, String)> {
    match choice {
        BackendChoice::Cpu => {
            let cpu = CpuBackend::best();
            let line = format!("backend: {} (--backend cpu)", cpu.name());
            Ok((Box::new(cpu), line))
        }
        BackendChoice::Auto => Ok(matproof_prover::best_backend()),
        #[cfg(feature = "cuda")]
        BackendChoice::Cuda => match matproof_prover::CudaBackend::new() {
            // A benchmark must not quietly time the CPU: device failures are errors here.
            Ok(gpu) => {
                let gpu = gpu.with_fallback(matproof_prover::FallbackPolicy::Fail);
                let line = format!("backend: {} ({})", gpu.name(), gpu.describe());
                Ok((Box::new(gpu), line))
            }
            Err(e) => bail!("--backend cuda: no usable GPU: {e}"),
        },
        #[cfg(not(feature = "cuda"))]
        BackendChoice::Cuda => bail!("--backend cuda: this build has no CUDA backend (feature `cuda` off)"),
    }
}

/// Median seconds of `runs` calls of `f` (after one warm-up call).
pub fn median_seconds<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f());
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A plain parallel pass summing every byte of A, B (as i8) and C (as i32): the read
/// ceiling the Freivalds check is compared with.
pub fn plain_sum(a: &MatrixI8, b: &MatrixI8, c: &MatrixI32) -> i64 {
    let sum_i8 =
        |x: &[i8]| -> i64 { x.par_chunks(1 << 16).map(|chunk| chunk.iter().map(|&v| i64::from(v)).sum::<i64>()).sum() };
    let sum_c: i64 =
        c.as_slice().par_chunks(1 << 14).map(|chunk| chunk.iter().map(|&v| i64::from(v)).sum::<i64>()).sum();
    sum_i8(a.as_slice()) + sum_i8(b.as_slice()) + sum_c
}

/// The options of `matproof bench`.
pub struct BenchArgs<'a> {
    /// Square size.
    pub n: usize,
    /// Timed runs.
    pub runs: usize,
    /// One JSON object per line.
    pub json_output: bool,
    /// Tile shape `TMxTN`.
    pub tile: &'a str,
    /// Circuit depth (bench prove).
    pub k: usize,
    /// GEMM backend.
    pub backend: BackendChoice,
    /// Commitment scheme (bench commit).
    pub scheme: Option<CommitScheme>,
}

pub fn run(what: BenchKind, args: &BenchArgs<'_>) -> Result<ExitCode> {
    let BenchArgs { n, runs, json_output, tile, k, backend, scheme } = *args;
    let record = match (what, scheme) {
        (BenchKind::Prove, _) => bench_prove(tile, k, runs)?,
        (BenchKind::Commit, Some(scheme)) => crate::bench_commit::run(scheme, n, runs, tile)?,
        _ => bench_data(what, n, runs, backend, tile)?,
    };
    if json_output {
        println!("{record}");
    } else {
        println!("{}", serde_json::to_string_pretty(&record)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_prove(tile: &str, k: usize, runs: usize) -> Result<serde_json::Value> {
    let (tm, tn) = parse_tile(tile)?;
    let shape = CircuitShape { tm, tn, kc: k };
    Tiling::new(tm, k, tn, shape)?;
    let constraints = constraint_count(shape)?;
    let start = Instant::now();
    let (pk, vk) = development_setup(shape, &mut OsRng)?;
    let setup_s = start.elapsed().as_secs_f64();
    let witness =
        TileWitness { a_block: random_i8(1, tm * k, 1)?.into_vec(), b_block: random_i8(1, k * tn, 2)?.into_vec() };
    let challenge = Challenge { job_id: JobId([1; 32]), r_c: MerkleRoot([2; 32]), seed: Seed([3; 32]) };
    let (sigma, rho) = (challenge.sigma(), challenge.rho());
    let prove_s = median_seconds(runs, || prove_tile(&pk, witness.clone(), sigma, rho));
    let (proof, public) = prove_tile(&pk, witness, sigma, rho)?;
    let pinned = PinnedVerifyingKey::new(vk.clone(), &vk.hash())?;
    pinned.verify(&proof, &public)?;
    let verify_s = median_seconds(runs.max(21), || pinned.verify(&proof, &public));
    let batch: Vec<(TileProof, TilePublicInputs)> = (0..64)
        .map(|_| (TileProof(Groth16::<Bn254>::rerandomize_proof(&vk.vk, &proof.0, &mut OsRng)), public))
        .collect();
    pinned.batch_verify(&batch)?;
    let batch_s = median_seconds(runs, || pinned.batch_verify(&batch));
    Ok(json!({
        "bench": "prove", "tile": format!("{tm}x{tn}"), "k": k, "constraints": constraints,
        "threads": rayon::current_num_threads(), "runs": runs,
        "setup_s": setup_s, "prove_s": prove_s, "verify_ms": verify_s * 1e3,
        "batch_verify_per_s": 64.0 / batch_s, "batch_64_ms": batch_s * 1e3,
        "proof_bytes": proof.to_bytes().len(), "pk_bytes": pk.to_file_bytes().len(),
        "vk_bytes": vk.to_file_bytes().len(),
    }))
}

fn bench_data(what: BenchKind, n: usize, runs: usize, choice: BackendChoice, tile: &str) -> Result<serde_json::Value> {
    if n == 0 || n > 16384 {
        bail!("--n must be in 1..=16384 for benchmarks (got {n})");
    }
    let (backend, line) = choose_backend(choice)?;
    eprintln!("{line}");
    let on_gpu = backend.name().starts_with("cuda");
    let threads = rayon::current_num_threads();
    let a = random_i8(n, n, 1)?;
    let b = random_i8(n, n, 2)?;
    let ops = 2.0 * (n as f64).powi(3);
    let record = match what {
        BenchKind::Gemm => {
            let seconds = median_seconds(runs, || backend.gemm(&a, &b));
            let mut record = json!({
                "bench": "gemm", "n": n, "backend": backend.name(), "threads": threads, "runs": runs,
                "median_s": seconds, "gops": ops / seconds / 1e9,
            });
            if on_gpu {
                // The end-to-end time above includes host↔device copies and packing; the device
                // timings (CUDA events) split it up and put cuBLASLt beside the GEMM kernel.
                record["includes_transfers"] = json!(true);
                let (tm, tn) = parse_tile(tile)?;
                cuda_timings(&mut record, &a, &b, (tm, tn), runs)?;
            }
            record
        }
        BenchKind::Freivalds => {
            let c = backend.gemm(&a, &b)?;
            let rounds = 2;
            let vectors = random_vectors(rounds, n)?;
            let dims = Dims { m: n, k: n, n };
            freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), dims, &vectors)?;
            let verify_s =
                median_seconds(runs, || freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), dims, &vectors));
            let read_s = median_seconds(runs, || plain_sum(&a, &b, &c));
            let gemm_s = median_seconds(runs, || backend.gemm(&a, &b));
            let bytes = (2 * n * n + 4 * n * n) as f64;
            json!({
                "bench": "freivalds", "n": n, "rounds": rounds, "path": freivalds::Path::detect().name(),
                "threads": threads, "runs": runs, "bytes": bytes as u64,
                "median_s": verify_s, "gemm_s": gemm_s, "ratio": verify_s / gemm_s,
                "verify_gbps": bytes / verify_s / 1e9, "read_s": read_s, "read_gbps": bytes / read_s / 1e9,
                "gemm_backend": backend.name(),
            })
        }
        BenchKind::Commit => {
            let c = backend.gemm(&a, &b)?;
            let tiling = Tiling::new(n, n, n, CircuitShape { tm: 4, tn: 4, kc: n })?;
            let r_c_s = median_seconds(runs, || backend.c_tree(&tiling, &c).map(|t| t.root()));
            let r_ab_s = median_seconds(runs, || {
                let r_a = a_digests(&tiling, &a).map(|d| digest_tree(&d).root());
                let r_b = b_digests(&tiling, &b).map(|d| digest_tree(&d).root());
                (r_a, r_b)
            });
            json!({
                "bench": "commit", "n": n, "tile": "4x4", "kc": n, "tiles": tiling.tile_count(),
                "threads": threads, "runs": runs,
                "median_s": r_c_s + r_ab_s, "r_c_s": r_c_s, "r_c_gbps": (4 * n * n) as f64 / r_c_s / 1e9,
                "r_ab_s": r_ab_s, "r_ab_mbps": (2 * n * n) as f64 / r_ab_s / 1e6,
            })
        }
        BenchKind::Prove => bail!("prove is benchmarked by bench_prove"),
        BenchKind::Job => bail!("job is benchmarked by bench_job"),
    };
    Ok(record)
}

/// Goal for our GEMM kernel against cuBLASLt's int8 GEMM at 8192³ (issue #5).
#[cfg(feature = "cuda")]
pub const GOAL_VS_CUBLAS: f64 = 0.70;
/// Goal for leaf hashing plus projections as a share of the GEMM kernel's time.
#[cfg(feature = "cuda")]
pub const GOAL_COMMIT_FRACTION: f64 = 0.05;

/// Adds device-side timings to a GPU `bench gemm` record: pack, GEMM kernel, leaf hashes of C in
/// `tile` tiles, the three Freivalds projections (2 rounds), copies, and cuBLASLt's int8 GEMM
/// on the same operands (`vs_cublas` = its time over ours: our share of its throughput).
#[cfg(feature = "cuda")]
fn cuda_timings(
    record: &mut serde_json::Value,
    a: &MatrixI8,
    b: &MatrixI8,
    (tm, tn): (usize, usize),
    runs: usize,
) -> Result<()> {
    use matproof_gpu_kernels::{GpuDevice, TimingRequest};
    let device = GpuDevice::open(0)?;
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let request = TimingRequest { m, k, n, tm, tn, rounds: 2, runs };
    let t = device.time_pipeline(a.as_slice(), b.as_slice(), request)?;
    let ops = 2.0 * m as f64 * k as f64 * n as f64;
    let ours_ms = t.pack_ms + t.gemm_ms;
    let commit_fraction = (t.leaf_ms + t.project_ms) / t.gemm_ms;
    let extra = json!({
        "device": device.info().name, "gemm_kernel": device.gemm_kernel().name(), "tile": format!("{tm}x{tn}"),
        "pack_ms": t.pack_ms, "gemm_ms": t.gemm_ms, "kernel_tops": ops / (t.gemm_ms * 1e-3) / 1e12,
        "leaf_ms": t.leaf_ms, "leaf_kernel": t.leaf_kernel.name(), "leaf_thread_ms": t.leaf_thread_ms,
        "leaf_warp_ms": t.leaf_warp_ms,
        "project_ms": t.project_ms, "upload_ms": t.upload_ms, "download_ms": t.download_ms,
        "commit_fraction": commit_fraction, "goal_commit_fraction": GOAL_COMMIT_FRACTION,
        "goal_vs_cublas": GOAL_VS_CUBLAS,
    });
    merge(record, extra);
    merge(record, cublas_fields(&t.cublas, ops, ours_ms, t.gemm_ms)?);
    Ok(())
}

/// The cuBLASLt part of a GPU `bench gemm` record: its time, the algorithm its heuristic chose
/// and `vs_cublas`; or `cublas_status` with a structured reason when it did not run
/// (`no_algorithm`: cuBLASLt has no int8 algorithm for this shape, which is no failure of
/// either GEMM). A product that differs from ours fails the bench.
#[cfg(feature = "cuda")]
fn cublas_fields(
    cublas: &Result<matproof_gpu_kernels::CublasTiming, matproof_gpu_kernels::cublaslt::CublasError>,
    ops: f64,
    ours_ms: f64,
    kernel_ms: f64,
) -> Result<serde_json::Value> {
    use matproof_gpu_kernels::cublaslt::{CublasError, NoAlgorithmReason};
    let c = match cublas {
        Ok(c) => c,
        Err(CublasError::NoAlgorithm { m, k, n, reason }) => {
            let detail = match reason {
                NoAlgorithmReason::NotMultipleOf4 { dimension, value } => {
                    json!({ "dimension": dimension, "value": value, "checked": "before asking cuBLASLt" })
                }
                NoAlgorithmReason::HeuristicFoundNone { status } => json!({ "heuristic_status": status }),
            };
            return Ok(json!({
                "cublas_status": "no_algorithm", "vs_cublas": null,
                "cublas_reason": { "code": reason.code(), "shape": [m, k, n], "detail": detail, "message": reason.to_string() },
            }));
        }
        Err(e @ CublasError::Library(_)) => {
            return Ok(
                json!({ "cublas_status": "unavailable", "vs_cublas": null, "cublas_reason": { "message": e.to_string() } }),
            );
        }
        Err(e) => {
            return Ok(
                json!({ "cublas_status": "failed", "vs_cublas": null, "cublas_reason": { "message": e.to_string() } }),
            );
        }
    };
    if !c.agrees {
        bail!("cuBLASLt's product differs from ours: one of the two GEMMs is wrong");
    }
    let algo = &c.choice;
    Ok(json!({
        "cublas_status": "ran",
        "cublas_library": c.library, "cublas_version": c.version, "cublas_ms": c.matmul_ms,
        "cublas_plan_ms": c.plan_ms,
        "cublas_algo": {
            "algo_id": algo.algo_id, "tile_id": algo.tile_id, "splitk": algo.splitk, "stages_id": algo.stages_id,
            "workspace_bytes": algo.workspace_bytes, "waves_count": algo.waves_count,
            "heuristic_candidates": algo.candidates,
        },
        "cublas_tops": ops / (c.matmul_ms * 1e-3) / 1e12, "cublas_agrees": c.agrees,
        "vs_cublas": c.matmul_ms / ours_ms, "vs_cublas_kernel_only": c.matmul_ms / kernel_ms,
    }))
}

#[cfg(not(feature = "cuda"))]
fn cuda_timings(_: &mut serde_json::Value, _: &MatrixI8, _: &MatrixI8, _: (usize, usize), _: usize) -> Result<()> {
    bail!("this build has no CUDA backend (feature `cuda` off)")
}

/// Copies the fields of `extra` (an object) into `record` (an object).
#[cfg(feature = "cuda")]
fn merge(record: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(record), serde_json::Value::Object(extra)) = (record.as_object_mut(), extra) {
        record.extend(extra);
    }
}
