//! The backend trait and the CPU backend.

use matproof_protocol::commit::{c_leaf_hash, c_leaf_hashes};
use matproof_protocol::freivalds::{self, FreivaldsError, Path as FreivaldsPath};
use matproof_protocol::matrix::{MatrixError, MatrixI8, MatrixI32, product_dims};
use matproof_protocol::merkle::{Digest, MerkleTree};
use matproof_protocol::tiling::{Tiling, TilingError};

use crate::cpu::{GemmError, GemmPath, gemm_i8};

/// A backend failure.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Operand shapes are wrong.
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    /// The GEMM kernel refused its input.
    #[error(transparent)]
    Gemm(#[from] GemmError),
    /// Tiling problem.
    #[error(transparent)]
    Tiling(#[from] TilingError),
    /// Projection or self-check failure.
    #[error(transparent)]
    Freivalds(#[from] FreivaldsError),
    /// The device failed and the backend was told not to fall back to the CPU.
    #[error("{backend}: device failure during {operation}: {message}")]
    Device {
        /// The backend's name.
        backend: String,
        /// What it was doing.
        operation: &'static str,
        /// The device's error.
        message: String,
    },
    /// A leaf hash from the backend differs from the CPU's hash of the same C tile: the
    /// backend is faulty, and committing to its tree would cost the provider its stake.
    #[error("leaf hash of C tile ({row_block}, {col_block}) from {backend} differs from the CPU's")]
    LeafMismatch {
        /// The backend's name.
        backend: String,
        /// Tile row.
        row_block: usize,
        /// Tile column.
        col_block: usize,
    },
}

/// What a backend computes for the prover. Every backend gives bit-identical results: the
/// product is exact integer arithmetic, so any disagreement is a bug (or a faulty device).
pub trait Backend: Send + Sync {
    /// A name for logs and the CLI, e.g. `cpu/avx512-vnni`.
    fn name(&self) -> String;

    /// `C = A·B`, exact.
    fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32, BackendError>;

    /// Leaf hashes of every C tile, row-major over tiles (DESIGN §3).
    fn c_leaf_hashes(&self, tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, BackendError>;

    /// `C = A·B` and the leaf hashes of its tiles. A backend that can hash C where it computed
    /// it (the CUDA backend, on the device) overrides this so the hashing does not wait for C
    /// to reach the host; the default is [`Backend::gemm`] then [`Backend::c_leaf_hashes`].
    fn gemm_with_leaf_hashes(
        &self,
        tiling: &Tiling,
        a: &MatrixI8,
        b: &MatrixI8,
    ) -> Result<(MatrixI32, Vec<Digest>), BackendError> {
        let start = std::time::Instant::now();
        let c = self.gemm(a, b)?;
        matproof_protocol::phase::phase("provider.gemm", start, (a.as_slice().len() + b.as_slice().len()) as u64);
        let start = std::time::Instant::now();
        let leaves = self.c_leaf_hashes(tiling, &c)?;
        matproof_protocol::phase::phase("provider.c_leaves", start, 4 * c.as_slice().len() as u64);
        Ok((c, leaves))
    }

    /// `C·r` mod `2^61 − 1` for each vector (the Freivalds projections).
    fn project_c(&self, c: &MatrixI32, vectors: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, BackendError>;

    /// The Merkle tree behind `R_C`.
    fn c_tree(&self, tiling: &Tiling, c: &MatrixI32) -> Result<MerkleTree, BackendError> {
        Ok(MerkleTree::from_leaf_hashes(self.c_leaf_hashes(tiling, c)?))
    }
}

/// The CPU backend: rayon over all cores, the best SIMD kernel this CPU has.
#[derive(Debug, Clone, Copy)]
pub struct CpuBackend {
    gemm_path: GemmPath,
    freivalds_path: FreivaldsPath,
}

impl CpuBackend {
    /// The fastest kernels this CPU supports.
    pub fn best() -> Self {
        Self { gemm_path: GemmPath::detect(), freivalds_path: FreivaldsPath::detect() }
    }

    /// A specific GEMM kernel; an error if this CPU lacks it.
    pub fn with_gemm_path(gemm_path: GemmPath) -> Result<Self, BackendError> {
        if !GemmPath::available().contains(&gemm_path) {
            return Err(GemmError::PathUnavailable { path: gemm_path.name() }.into());
        }
        Ok(Self { gemm_path, ..Self::best() })
    }

    /// The GEMM kernel in use.
    pub fn gemm_path(&self) -> GemmPath {
        self.gemm_path
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu/{}", self.gemm_path.name())
    }

    fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32, BackendError> {
        let (m, k, n) = product_dims(a, b)?;
        let data = gemm_i8(a.as_slice(), b.as_slice(), m, k, n, self.gemm_path)?;
        Ok(MatrixI32::from_vec(m, n, data)?)
    }

    fn c_leaf_hashes(&self, tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, BackendError> {
        Ok(c_leaf_hashes(tiling, c)?)
    }

    fn project_c(&self, c: &MatrixI32, vectors: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, BackendError> {
        Ok(freivalds::project_i32(c.as_slice(), c.rows(), c.cols(), vectors, self.freivalds_path)?)
    }
}

/// The product, self-checked, with its commitment tree.
#[derive(Debug)]
pub struct Execution {
    /// `C = A·B`.
    pub c: MatrixI32,
    /// The tree behind `R_C`.
    pub c_tree: MerkleTree,
}

/// Leaf hashes [`execute`] recomputes on the CPU to cross-check a backend's tree (besides the
/// first and the last): enough that a backend hashing wrongly everywhere, or on any fixed
/// share of tiles above a few percent, is caught before it commits, for a few microseconds.
pub const LEAF_SPOT_CHECKS: usize = 64;

/// Runs `A·B` on `backend`, checks the result with Freivalds (`self_check_vectors`, drawn by
/// the caller from a CSPRNG) before anything is committed, cross-checks [`LEAF_SPOT_CHECKS`]
/// of the backend's leaf hashes against the CPU's, and builds the `R_C` tree. A faulty device
/// is caught here, before it can cost the provider its stake.
pub fn execute(
    backend: &dyn Backend,
    tiling: &Tiling,
    a: &MatrixI8,
    b: &MatrixI8,
    self_check_vectors: &[Vec<u64>],
) -> Result<Execution, BackendError> {
    tiling.check_matrices(a, b, None)?;
    let (c, leaves) = backend.gemm_with_leaf_hashes(tiling, a, b)?;
    let start = std::time::Instant::now();
    let dims = freivalds::Dims { m: tiling.m, k: tiling.k, n: tiling.n };
    freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), dims, self_check_vectors)?;
    spot_check_leaves(backend, tiling, &c, &leaves, self_check_vectors)?;
    matproof_protocol::phase::phase(
        "provider.self_check",
        start,
        (a.as_slice().len() + b.as_slice().len() + 4 * c.as_slice().len()) as u64,
    );
    let start = std::time::Instant::now();
    let c_tree = MerkleTree::from_leaf_hashes(leaves);
    matproof_protocol::phase::phase("provider.c_tree", start, 0);
    Ok(Execution { c_tree, c })
}

/// Recomputes the first, the last and [`LEAF_SPOT_CHECKS`] other leaves of `leaves` on the
/// CPU from `c`, at positions drawn from `entropy` (the caller's CSPRNG vectors, so a device
/// cannot predict which tiles are checked).
fn spot_check_leaves(
    backend: &dyn Backend,
    tiling: &Tiling,
    c: &MatrixI32,
    leaves: &[Digest],
    entropy: &[Vec<u64>],
) -> Result<(), BackendError> {
    let count = tiling.tile_count();
    if leaves.len() != count {
        return Err(BackendError::Device {
            backend: backend.name(),
            operation: "leaf hashing",
            message: format!("{} leaf hashes for {count} tiles", leaves.len()),
        });
    }
    if count == 0 {
        return Ok(());
    }
    let drawn = entropy.iter().flatten().map(|&e| (e % count as u64) as usize);
    for index in [0, count - 1].into_iter().chain(drawn.take(LEAF_SPOT_CHECKS)) {
        let (row_block, col_block) = tiling.tile_coords(index)?;
        let tile = tiling.c_tile(c, row_block, col_block)?;
        if c_leaf_hash(row_block as u64, col_block as u64, &tile) != leaves[index] {
            return Err(BackendError::LeafMismatch { backend: backend.name(), row_block, col_block });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use matproof_protocol::commit::c_tree;
    use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
    use matproof_protocol::matrix::{naive_product, random_i8};
    use matproof_protocol::tiling::CircuitShape;
    use matproof_protocol::transcript::Challenge;

    #[test]
    fn every_available_path_agrees_with_the_reference_end_to_end() {
        let a = random_i8(37, 70, 1).unwrap();
        let b = random_i8(70, 29, 2).unwrap();
        let expected = naive_product(&a, &b).unwrap();
        let tiling = Tiling::new(37, 70, 29, CircuitShape { tm: 4, tn: 8, kc: 72 }).unwrap();
        let vectors = Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed([5; 32]) }
            .freivalds_vectors(2, 29)
            .unwrap();
        let reference_root = c_tree(&tiling, &expected).unwrap().root();
        for path in GemmPath::available() {
            let backend = CpuBackend::with_gemm_path(path).unwrap();
            let run = execute(&backend, &tiling, &a, &b, &vectors).unwrap();
            assert_eq!(run.c, expected, "{}", backend.name());
            assert_eq!(run.c_tree.root(), reference_root, "{}", backend.name());
            let projections = backend.project_c(&run.c, &vectors).unwrap();
            let reference = freivalds::reference::project_i32(expected.as_slice(), 37, 29, &vectors);
            assert_eq!(projections, reference);
        }
    }

    /// The CPU backend with one leaf hash replaced, or one dropped.
    struct FaultyLeaves {
        corrupt: Option<usize>,
        drop_last: bool,
    }

    impl Backend for FaultyLeaves {
        fn name(&self) -> String {
            "faulty".into()
        }
        fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32, BackendError> {
            CpuBackend::best().gemm(a, b)
        }
        fn c_leaf_hashes(&self, tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, BackendError> {
            let mut leaves = CpuBackend::best().c_leaf_hashes(tiling, c)?;
            if let Some(index) = self.corrupt {
                leaves[index][7] ^= 0x10;
            }
            if self.drop_last {
                leaves.pop();
            }
            Ok(leaves)
        }
        fn project_c(&self, c: &MatrixI32, vectors: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, BackendError> {
            CpuBackend::best().project_c(c, vectors)
        }
    }

    #[test]
    fn a_wrong_leaf_hash_is_caught_before_commitment() {
        let a = random_i8(12, 40, 3).unwrap();
        let b = random_i8(40, 9, 4).unwrap();
        // 3 × 3 = 9 tiles: with the first, the last and 64 drawn positions every tile is checked
        // (the draws are fixed by the vectors, so this is deterministic).
        let tiling = Tiling::new(12, 40, 9, CircuitShape { tm: 4, tn: 4, kc: 40 }).unwrap();
        let vectors = Challenge { job_id: JobId([1; 32]), r_c: MerkleRoot([2; 32]), seed: Seed([3; 32]) }
            .freivalds_vectors(2, 9)
            .unwrap();
        assert!(execute(&FaultyLeaves { corrupt: None, drop_last: false }, &tiling, &a, &b, &vectors).is_ok());
        for index in 0..tiling.tile_count() {
            let faulty = FaultyLeaves { corrupt: Some(index), drop_last: false };
            match execute(&faulty, &tiling, &a, &b, &vectors) {
                Err(BackendError::LeafMismatch { row_block, col_block, .. }) => {
                    assert_eq!(tiling.tile_index(row_block, col_block).unwrap(), index);
                }
                other => panic!("tile {index}: expected LeafMismatch, got {other:?}"),
            }
        }
        let short = FaultyLeaves { corrupt: None, drop_last: true };
        assert!(matches!(execute(&short, &tiling, &a, &b, &vectors), Err(BackendError::Device { .. })));
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let backend = CpuBackend::best();
        let a = random_i8(3, 4, 1).unwrap();
        let b = random_i8(5, 2, 2).unwrap();
        assert!(matches!(backend.gemm(&a, &b), Err(BackendError::Matrix(_))));
    }
}
