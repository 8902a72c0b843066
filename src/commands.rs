//! The data commands: gen, gemm, commit, check.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use matproof_protocol::commit::commit_all;
use matproof_protocol::freivalds::{self, Dims, FreivaldsError};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::matrix::{MatrixI8, MatrixI32, check_product_shapes, random_i8};
use matproof_protocol::npy::{read_matrix_file, write_matrix_file};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_prover::cpu::GemmPath;
use matproof_prover::{Backend, CpuBackend};

use crate::KernelChoice;

pub fn read_i8(path: &Path) -> Result<MatrixI8> {
    read_matrix_file::<i8>(path).with_context(|| format!("reading {}", path.display()))
}

pub fn read_i32(path: &Path) -> Result<MatrixI32> {
    read_matrix_file::<i32>(path).with_context(|| format!("reading {}", path.display()))
}

/// The CPU backend for a kernel choice, announced on stderr.
pub fn cpu_backend(choice: KernelChoice) -> Result<CpuBackend> {
    let path = match choice {
        KernelChoice::Auto => GemmPath::detect(),
        KernelChoice::Avx512Vnni => GemmPath::Avx512Vnni,
        KernelChoice::Avx2 => GemmPath::Avx2,
        KernelChoice::Portable => GemmPath::Portable,
        KernelChoice::Naive => GemmPath::Naive,
    };
    let backend = CpuBackend::with_gemm_path(path)?;
    eprintln!("backend: {} (no GPU backend in this build: using the CPU)", backend.name());
    Ok(backend)
}

/// Fresh Freivalds vectors from the OS CSPRNG.
pub fn random_vectors(rounds: usize, n: usize) -> Result<Vec<Vec<u64>>> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS random number generator: {e}"))?;
    Ok(Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed(seed) }.freivalds_vectors(rounds, n)?)
}

pub fn parse_tile(tile: &str) -> Result<(usize, usize)> {
    let (tm, tn) = tile.split_once(['x', 'X']).with_context(|| format!("tile {tile:?} is not of the form TMxTN"))?;
    let tm = tm.trim().parse().with_context(|| format!("tile rows {tm:?}"))?;
    let tn = tn.trim().parse().with_context(|| format!("tile cols {tn:?}"))?;
    Ok((tm, tn))
}

pub fn gen_matrix(rows: usize, cols: usize, seed: u64, out: &Path) -> Result<ExitCode> {
    let matrix = random_i8(rows, cols, seed)?;
    write_matrix_file(out, &matrix)?;
    println!("wrote {} ({rows}×{cols} i8, seed {seed})", out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn gemm(a: &Path, b: &Path, out: &Path, kernel: KernelChoice) -> Result<ExitCode> {
    let a = read_i8(a)?;
    let b = read_i8(b)?;
    let backend = cpu_backend(kernel)?;
    let start = Instant::now();
    let c = backend.gemm(&a, &b)?;
    let seconds = start.elapsed().as_secs_f64();
    write_matrix_file(out, &c)?;
    let ops = 2.0 * a.rows() as f64 * a.cols() as f64 * b.cols() as f64;
    println!(
        "wrote {} ({}×{} i32) in {:.3} s ({:.1} GOP/s)",
        out.display(),
        c.rows(),
        c.cols(),
        seconds,
        ops / seconds / 1e9
    );
    Ok(ExitCode::SUCCESS)
}

pub fn commit(a: &Path, b: &Path, c: &Path, tile: &str, kc: Option<usize>, json: bool) -> Result<ExitCode> {
    let (a, b, c) = (read_i8(a)?, read_i8(b)?, read_i32(c)?);
    let (m, k, n) = check_product_shapes(&a, &b, &c)?;
    let (tm, tn) = parse_tile(tile)?;
    let tiling = Tiling::new(m, k, n, CircuitShape { tm, tn, kc: kc.unwrap_or(k) })?;
    let roots = commit_all(&tiling, &a, &b, &c)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "m": m, "k": k, "n": n, "tm": tm, "tn": tn, "kc": tiling.shape.kc,
                "tiles": tiling.tile_count(),
                "r_a": hex::encode(roots.r_a), "r_b": hex::encode(roots.r_b), "r_c": hex::encode(roots.r_c),
            })
        );
    } else {
        println!("shape: {m}×{k}×{n}, tile {tm}x{tn}, kc {}, {} tiles", tiling.shape.kc, tiling.tile_count());
        println!("R_A: {}", hex::encode(roots.r_a));
        println!("R_B: {}", hex::encode(roots.r_b));
        println!("R_C: {}", hex::encode(roots.r_c));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(a: &Path, b: &Path, c: &Path, rounds: u32) -> Result<ExitCode> {
    let (a, b, c) = (read_i8(a)?, read_i8(b)?, read_i32(c)?);
    let (m, k, n) = check_product_shapes(&a, &b, &c)?;
    let vectors = random_vectors(rounds as usize, n)?;
    let start = Instant::now();
    let verdict = freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), Dims { m, k, n }, &vectors);
    let seconds = start.elapsed().as_secs_f64();
    match verdict {
        Ok(()) => {
            println!(
                "ok: C = A·B ({rounds} Freivalds rounds over 2^61-1, a wrong C passes with probability ≤ 2^-{}; {:.3} s, {})",
                61 * rounds,
                seconds,
                freivalds::Path::detect().name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(FreivaldsError::Mismatch { row, round, .. }) => {
            println!("mismatch: C ≠ A·B, first bad row {row} (round {round})");
            Ok(ExitCode::from(1))
        }
        Err(other) => bail!(other),
    }
}
