//! The backend trait and the CPU backend.

use matproof_protocol::commit::c_leaf_hashes;
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

/// Runs `A·B` on `backend`, checks the result with Freivalds (`self_check_vectors`, drawn by
/// the caller from a CSPRNG) before anything is committed, and builds the `R_C` tree. A
/// faulty device is caught here, before it can cost the provider its stake.
pub fn execute(
    backend: &dyn Backend,
    tiling: &Tiling,
    a: &MatrixI8,
    b: &MatrixI8,
    self_check_vectors: &[Vec<u64>],
) -> Result<Execution, BackendError> {
    tiling.check_matrices(a, b, None)?;
    let c = backend.gemm(a, b)?;
    let dims = freivalds::Dims { m: tiling.m, k: tiling.k, n: tiling.n };
    freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), dims, self_check_vectors)?;
    let c_tree = backend.c_tree(tiling, &c)?;
    Ok(Execution { c, c_tree })
}

#[cfg(test)]
mod tests {
    use super::*;
    use matproof_protocol::commit::c_tree;
    use matproof_protocol::matrix::{naive_product, random_i8};
    use matproof_protocol::tiling::CircuitShape;
    use matproof_protocol::transcript::Challenge;

    #[test]
    fn every_available_path_agrees_with_the_reference_end_to_end() {
        let a = random_i8(37, 70, 1).unwrap();
        let b = random_i8(70, 29, 2).unwrap();
        let expected = naive_product(&a, &b).unwrap();
        let tiling = Tiling::new(37, 70, 29, CircuitShape { tm: 4, tn: 8, kc: 72 }).unwrap();
        let vectors = Challenge { job_id: [0; 32], r_c: [0; 32], seed: [5; 32] }.freivalds_vectors(2, 29).unwrap();
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

    #[test]
    fn mismatched_shapes_are_errors() {
        let backend = CpuBackend::best();
        let a = random_i8(3, 4, 1).unwrap();
        let b = random_i8(5, 2, 2).unwrap();
        assert!(matches!(backend.gemm(&a, &b), Err(BackendError::Matrix(_))));
    }
}
