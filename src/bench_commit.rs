//! `matproof bench commit --scheme c|sha256-inputs`: the SHA-256 commitments at one tile
//! shape, fast path against the plain reference, beside a single SHA-256 over the same bytes.

use anyhow::Result;
use matproof_protocol::commit::{
    CTreeBuilder, a_sha256_tree, a_sha256_tree_reference, b_sha256_tree, b_sha256_tree_reference, c_leaf_hashes,
    c_leaf_hashes_reference, c_tree,
};
use matproof_protocol::matrix::{MatrixI32, random_i8};
use matproof_protocol::merkle::{MerkleTree, leaf_hash};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_prover::{Backend, CpuBackend};
use rayon::prelude::*;
use serde_json::json;

use crate::bench::{CommitScheme, median_seconds};
use crate::commands::parse_tile;

/// Bytes of C per pushed chunk when streaming whole rows (rounded to whole rows).
const STREAM_CHUNK_BYTES: usize = 1 << 20;

pub fn run(scheme: CommitScheme, n: usize, runs: usize, tile: &str) -> Result<serde_json::Value> {
    if n == 0 || n > 16384 {
        anyhow::bail!("--n must be in 1..=16384 for benchmarks (got {n})");
    }
    let (tm, tn) = parse_tile(tile)?;
    let tiling = Tiling::new(n, n, n, CircuitShape { tm, tn, kc: n })?;
    match scheme {
        CommitScheme::C => bench_c(&tiling, runs),
        CommitScheme::Sha256Inputs => bench_inputs(&tiling, runs),
    }
}

/// SHA-256 over `bytes` on one thread and split in 1 MiB pieces over every thread: the
/// hashing ceiling (GB/s) the commitments are compared with.
fn sha256_ceiling(bytes: &[u8], runs: usize) -> (f64, f64) {
    let one = median_seconds(runs, || leaf_hash(bytes));
    let all = median_seconds(runs, || bytes.par_chunks(1 << 20).map(leaf_hash).collect::<Vec<_>>());
    (bytes.len() as f64 / one / 1e9, bytes.len() as f64 / all / 1e9)
}

fn streamed_root(tiling: &Tiling, c: &MatrixI32) -> Result<MerkleTree> {
    let chunk_rows = (STREAM_CHUNK_BYTES / (4 * tiling.n)).max(1);
    let mut builder = CTreeBuilder::new(tiling);
    for (index, rows) in c.as_slice().chunks(chunk_rows * tiling.n).enumerate() {
        builder.push_rows(index * chunk_rows, rows)?;
    }
    Ok(builder.finish()?)
}

fn bench_c(tiling: &Tiling, runs: usize) -> Result<serde_json::Value> {
    let n = tiling.n;
    let c = CpuBackend::best().gemm(&random_i8(n, n, 1)?, &random_i8(n, n, 2)?)?;
    let root = c_tree(tiling, &c)?.root();
    let reference_root = MerkleTree::from_leaf_hashes(c_leaf_hashes_reference(tiling, &c)?).root();
    anyhow::ensure!(root == reference_root, "fast R_C differs from the reference");
    anyhow::ensure!(streamed_root(tiling, &c)?.root() == root, "streamed R_C differs");
    let r_c_s = median_seconds(runs, || c_tree(tiling, &c).map(|t| t.root()));
    let leaves_s = median_seconds(runs, || c_leaf_hashes(tiling, &c));
    let leaves = c_leaf_hashes(tiling, &c)?;
    let tree_s = median_seconds(runs, || MerkleTree::from_leaf_hashes(leaves.clone()).root());
    let stream_s = median_seconds(runs, || streamed_root(tiling, &c).map(|t| t.root()));
    let reference_s = median_seconds(runs, || {
        c_leaf_hashes_reference(tiling, &c).map(|leaves| MerkleTree::from_leaf_hashes(leaves).root())
    });
    let bytes: Vec<u8> = c.as_slice().iter().flat_map(|v| v.to_le_bytes()).collect();
    let (sha1_gbps, sha_all_gbps) = sha256_ceiling(&bytes, runs);
    let gb = bytes.len() as f64 / 1e9;
    Ok(json!({
        "bench": "commit", "scheme": "c", "n": n, "tile": format!("{}x{}", tiling.shape.tm, tiling.shape.tn),
        "tiles": tiling.tile_count(), "bytes": bytes.len(), "threads": rayon::current_num_threads(), "runs": runs,
        "r_c_s": r_c_s, "r_c_gbps": gb / r_c_s, "leaves_s": leaves_s, "tree_s": tree_s,
        "stream_s": stream_s, "stream_gbps": gb / stream_s,
        "reference_s": reference_s, "reference_gbps": gb / reference_s, "speedup": reference_s / r_c_s,
        "sha256_1t_gbps": sha1_gbps, "sha256_all_threads_gbps": sha_all_gbps,
    }))
}

fn bench_inputs(tiling: &Tiling, runs: usize) -> Result<serde_json::Value> {
    let n = tiling.n;
    let (a, b) = (random_i8(n, n, 1)?, random_i8(n, n, 2)?);
    anyhow::ensure!(
        a_sha256_tree(tiling, &a)? == a_sha256_tree_reference(tiling, &a)?
            && b_sha256_tree(tiling, &b)? == b_sha256_tree_reference(tiling, &b)?,
        "fast sha256 input trees differ from the reference"
    );
    let a_s = median_seconds(runs, || a_sha256_tree(tiling, &a).map(|t| t.root()));
    let b_s = median_seconds(runs, || b_sha256_tree(tiling, &b).map(|t| t.root()));
    let a_reference_s = median_seconds(runs, || a_sha256_tree_reference(tiling, &a).map(|t| t.root()));
    let b_reference_s = median_seconds(runs, || b_sha256_tree_reference(tiling, &b).map(|t| t.root()));
    let bytes: Vec<u8> = a.as_slice().iter().map(|v| *v as u8).collect();
    let (sha1_gbps, sha_all_gbps) = sha256_ceiling(&bytes, runs);
    let gb = (n * n) as f64 / 1e9;
    Ok(json!({
        "bench": "commit", "scheme": "sha256-inputs", "n": n,
        "tile": format!("{}x{}", tiling.shape.tm, tiling.shape.tn), "kc": tiling.shape.kc,
        "bytes_each": n * n, "threads": rayon::current_num_threads(), "runs": runs,
        "r_a_s": a_s, "r_a_gbps": gb / a_s, "r_b_s": b_s, "r_b_gbps": gb / b_s,
        "r_a_reference_s": a_reference_s, "r_b_reference_s": b_reference_s,
        "sha256_1t_gbps": sha1_gbps, "sha256_all_threads_gbps": sha_all_gbps,
    }))
}
