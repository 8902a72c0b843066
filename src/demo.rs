//! `matproof demo`: what of the pipeline exists so far, run on embedded defaults.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use matproof_protocol::commit::{a_digests, b_digests, digest_tree};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_prover::{Backend, CpuBackend, execute};

use crate::commands::random_vectors;

pub fn run() -> Result<ExitCode> {
    let (m, k, n) = (256, 256, 256);
    let tiling = Tiling::new(m, k, n, CircuitShape { tm: 4, tn: 4, kc: 256 })?;
    let backend = CpuBackend::best();
    println!("matproof demo: {m}×{k}×{n} int8 GEMM, tile 4x4, kc 256");
    println!("backend: {} (no GPU backend in this build: using the CPU)", backend.name());

    let start = Instant::now();
    let a = random_i8(m, k, 1)?;
    let b = random_i8(k, n, 2)?;
    let r_a = digest_tree(&a_digests(&tiling, &a)?).root();
    let r_b = digest_tree(&b_digests(&tiling, &b)?).root();
    println!("consumer: committed R_A {} R_B {} in {:.3} s", hex::encode(r_a), hex::encode(r_b), start.elapsed().as_secs_f64());

    let start = Instant::now();
    let vectors = random_vectors(2, n)?;
    let run = execute(&backend, &tiling, &a, &b, &vectors)?;
    println!(
        "provider: computed C, self-checked (Freivalds, 2 rounds), committed R_C {} over {} tiles in {:.3} s",
        hex::encode(run.c_tree.root()),
        tiling.tile_count(),
        start.elapsed().as_secs_f64()
    );
    println!(
        "not yet: the verifier node, escrow ledger, tile proofs and receipt audit land with the \
         Groth16 and gRPC issues; this demo stops after the provider's commitment."
    );
    Ok(ExitCode::SUCCESS)
}
