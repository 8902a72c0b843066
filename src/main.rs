//! `matproof`: the command-line interface (demo, data generation, GEMM, commitments,
//! Freivalds check, key setup, benchmarks, the verifier node, the prover sidecar, jobs).
#![forbid(unsafe_code)]

mod audit;
mod bench;
mod bench_commit;
mod bench_job;
mod commands;
mod demo;
mod gpu;
mod job;
mod ops_args;
mod prover_cmd;
mod provider_cmd;
mod setup;
mod tls_args;
mod verifier_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use matproof_protocol::spec::VerificationMode;

/// Checkable GPU matrix work.
#[derive(Parser, Debug)]
#[command(name = "matproof", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the pipeline on embedded defaults.
    Demo,
    /// Write a seeded random i8 matrix as .npy.
    Gen {
        /// Rows.
        #[arg(long)]
        rows: usize,
        /// Columns.
        #[arg(long)]
        cols: usize,
        /// Seed (same seed, same matrix, on every machine).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// C = A·B, exact int8 GEMM on the best CPU kernel.
    Gemm {
        /// A (m×k, i8 .npy).
        #[arg(long)]
        a: PathBuf,
        /// B (k×n, i8 .npy).
        #[arg(long)]
        b: PathBuf,
        /// Where to write C (m×n, i32 .npy).
        #[arg(long)]
        out: PathBuf,
        /// Which CPU kernel (default: the best this CPU has).
        #[arg(long, value_enum, default_value_t = KernelChoice::Auto)]
        kernel: KernelChoice,
    },
    /// Print the commitments R_A, R_B, R_C.
    Commit {
        /// A (m×k, i8 .npy).
        #[arg(long)]
        a: PathBuf,
        /// B (k×n, i8 .npy).
        #[arg(long)]
        b: PathBuf,
        /// C (m×n, i32 .npy).
        #[arg(long)]
        c: PathBuf,
        /// Tile shape `TMxTN`.
        #[arg(long, default_value = "4x4")]
        tile: String,
        /// Circuit depth kc (default: k).
        #[arg(long)]
        kc: Option<usize>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Freivalds check of C = A·B (exit 1 and the first bad row on mismatch).
    Check {
        /// A (m×k, i8 .npy).
        #[arg(long)]
        a: PathBuf,
        /// B (k×n, i8 .npy).
        #[arg(long)]
        b: PathBuf,
        /// C (m×n, i32 .npy).
        #[arg(long)]
        c: PathBuf,
        /// Rounds (each lets a wrong C pass with probability ≤ 2^-61).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
        rounds: u32,
    },
    /// Generate development Groth16 keys for a tile shape (single-party: not for production).
    Setup {
        /// Tile shape `TMxTN`.
        #[arg(long, default_value = "8x8")]
        tile: String,
        /// Circuit depth kc (the largest k the keys serve).
        #[arg(long, default_value_t = 512)]
        k: usize,
        /// Directory for the key files (default: the user cache, ~/.cache/matproof/keys).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-check a receipt offline: signatures, challenge, openings, proofs, bounds (and data).
    Audit(audit::AuditArgs),
    /// Verifier node: serve it (gRPC + escrow ledger), fund ledger accounts.
    Verifier {
        #[command(subcommand)]
        command: verifier_cmd::VerifierCommand,
    },
    /// Prover sidecar: serve it (gRPC), or run one job from a job file.
    Prover {
        #[command(subcommand)]
        command: prover_cmd::ProverCommand,
    },
    /// Providers' records on a verifier node's network: one, or a ranked list.
    Provider {
        #[command(subcommand)]
        command: provider_cmd::ProviderCommand,
    },
    /// Consumer side: open a job on a verifier node, ask for its status.
    Job {
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// CUDA: what was found and which backend will run (`matproof gpu info`).
    Gpu {
        #[command(subcommand)]
        command: gpu::GpuCommand,
    },
    /// Benchmarks (median of repeated runs on seeded data).
    Bench {
        /// What to measure.
        #[arg(value_enum)]
        what: bench::BenchKind,
        /// Square size n (m = k = n).
        #[arg(long, default_value_t = 2048)]
        n: usize,
        /// Timed runs (the median is reported).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(5..=1000))]
        runs: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Tile shape `TMxTN` (bench prove; and the C tiles whose leaf hashes bench gemm --backend cuda times).
        #[arg(long, default_value = "8x8")]
        tile: String,
        /// Circuit depth kc (bench prove).
        #[arg(long, default_value_t = 512)]
        k: usize,
        /// Backend for bench gemm: cpu, cuda, or auto (the best available).
        #[arg(long, value_enum, default_value_t = bench::BackendChoice::Cpu)]
        backend: bench::BackendChoice,
        /// Verification mode (bench job): full or succinct.
        #[arg(long, default_value = "full", value_parser = ["full", "succinct"])]
        mode: String,
        /// Sampled tiles (bench job; 0: no tile proofs, sha256 input commitments).
        #[arg(long, default_value_t = 0)]
        samples: u32,
        /// Key directory (bench job with --samples > 0), from `matproof setup --tile .. --k N`.
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
        /// bench commit: `c` (R_C at --tile) or `sha256-inputs` (R_A, R_B of the sha256 scheme).
        #[arg(long, value_enum)]
        scheme: Option<bench::CommitScheme>,
    },
}

/// Which CPU GEMM kernel to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelChoice {
    /// The best available.
    Auto,
    /// AVX-512 VNNI.
    Avx512Vnni,
    /// AVX2.
    Avx2,
    /// Portable Rust.
    Portable,
    /// The naive triple loop (reference).
    Naive,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo::run(),
        Command::Gen { rows, cols, seed, out } => commands::gen_matrix(rows, cols, seed, &out),
        Command::Gemm { a, b, out, kernel } => commands::gemm(&a, &b, &out, kernel),
        Command::Commit { a, b, c, tile, kc, json } => commands::commit(&a, &b, &c, &tile, kc, json),
        Command::Check { a, b, c, rounds } => commands::check(&a, &b, &c, rounds),
        Command::Setup { tile, k, out } => setup::run(&tile, k, out),
        Command::Verifier { command } => verifier_cmd::dispatch(command),
        Command::Prover { command } => prover_cmd::dispatch(command),
        Command::Job { command } => job::dispatch(command),
        Command::Provider { command } => provider_cmd::dispatch(command),
        Command::Audit(args) => audit::run(&args),
        Command::Bench { what: bench::BenchKind::Job, n, runs, tile, mode, samples, keys, .. } => {
            let mode = if mode == "succinct" { VerificationMode::Succinct } else { VerificationMode::Full };
            // The GEMM alone is the reference: a few runs (at n = 8192 each is a second).
            let gemm_runs = (runs as usize).min(3);
            bench_job::run(&bench_job::JobBench { n, mode, samples, tile, keys, gemm_runs })
        }
        Command::Bench { what, n, runs, json, tile, k, backend, scheme, .. } => {
            let args = bench::BenchArgs { n, runs: runs as usize, json_output: json, tile: &tile, k, backend, scheme };
            bench::run(what, &args)
        }
        Command::Gpu { command } => gpu::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
