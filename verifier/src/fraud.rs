//! Building and checking fraud proofs (DESIGN §5.1).
//!
//! A full-mode verifier whose Freivalds check fails knows a bad row; it recomputes that row
//! of `A·B`, finds a wrong entry and packages the evidence. Anyone can then check the
//! evidence against the job's commitments alone: recompute the two blocks' leaves (Poseidon
//! digests, or SHA-256 under the `sha256` input scheme, over `(tm + tn)·kc` bytes), check
//! three Merkle paths and one dot product of length `kc`.

use matproof_protocol::commit::{
    a_input_tree, a_sha256_leaf_hash, b_input_tree, b_sha256_leaf_hash, c_leaf_hash, c_tree,
};
use matproof_protocol::fraud::FraudProof;
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::merkle::{Digest, MerkleError, MerkleRoot, leaf_hash};
use matproof_protocol::poseidon::{BlockKind, block_digest, fr_to_bytes};
use matproof_protocol::spec::{InputScheme, JobSpec, SpecError};
use matproof_protocol::tiling::TilingError;

/// Why a fraud proof could not be built, or does not prove fraud.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FraudError {
    /// The job spec is invalid.
    #[error("job spec: {0}")]
    Spec(#[from] SpecError),
    /// A matrix does not fit the job.
    #[error("tiling: {0}")]
    Tiling(#[from] TilingError),
    /// Building a path failed.
    #[error("merkle: {0}")]
    Merkle(#[from] MerkleError),
    /// The named row of `C` is correct: there is nothing to prove.
    #[error("row {row} of C equals the row of A·B: no fraud there")]
    RowCorrect {
        /// The row.
        row: usize,
    },
    /// The entry lies outside the matrix.
    #[error("entry ({row}, {col}) lies outside the {m}×{n} result")]
    OutOfRange {
        /// Row.
        row: u64,
        /// Column.
        col: u64,
        /// Rows.
        m: usize,
        /// Columns.
        n: usize,
    },
    /// A block or tile has the wrong size.
    #[error("{what} has {got} entries, expected {expected}")]
    Length {
        /// Which part.
        what: &'static str,
        /// Expected.
        expected: usize,
        /// Found.
        got: usize,
    },
    /// A path does not lead to its commitment, or names the wrong leaf.
    #[error("the {which} opening does not match the commitment: {reason}")]
    Opening {
        /// `A`, `B` or `C`.
        which: &'static str,
        /// Why.
        reason: String,
    },
    /// The committed entry equals the product: the accusation is false.
    #[error("entry ({row}, {col}) is correct ({value}): the fraud proof is false")]
    EntryCorrect {
        /// Row.
        row: u64,
        /// Column.
        col: u64,
        /// The (correct) value.
        value: i32,
    },
}

/// Builds a fraud proof for the first wrong entry of row `row` of `c`. The caller (a
/// full-mode verifier) holds `A`, `B` and the streamed `C`, and has just seen Freivalds
/// fail on `row`.
pub fn build_fraud_proof(
    spec: &JobSpec,
    a: &MatrixI8,
    b: &MatrixI8,
    c: &MatrixI32,
    row: usize,
) -> Result<FraudProof, FraudError> {
    let tiling = spec.tiling()?;
    tiling.check_matrices(a, b, Some(c))?;
    let shape = tiling.shape;
    let a_row = a.row(row).ok_or(FraudError::OutOfRange { row: row as u64, col: 0, m: tiling.m, n: tiling.n })?;
    let c_row = c.row(row).unwrap_or_default();
    let col = (0..tiling.n)
        .find(|&j| {
            let expected = (0..tiling.k)
                .fold(0i32, |acc, t| acc.wrapping_add(i32::from(a_row[t]) * i32::from(b.as_slice()[t * tiling.n + j])));
            expected != c_row[j]
        })
        .ok_or(FraudError::RowCorrect { row })?;
    let (i, j) = (row / shape.tm, col / shape.tn);
    let scheme = spec.policy.input_scheme;
    let a_tree = a_input_tree(scheme, &tiling, a)?;
    let b_tree = b_input_tree(scheme, &tiling, b)?;
    let tree = c_tree(&tiling, c)?;
    Ok(FraudProof {
        row: row as u64,
        col: col as u64,
        a_block: tiling.a_block(a, i)?,
        a_path: a_tree.prove(i as u64)?,
        b_block: tiling.b_block(b, j)?,
        b_path: b_tree.prove(j as u64)?,
        c_tile: tiling.c_tile(c, i, j)?,
        c_path: tree.prove(tiling.tile_index(i, j)? as u64)?,
    })
}

/// The leaf hashes of the proof's A and B blocks under the job's input scheme.
fn input_leaves(spec: &JobSpec, (i, j): (usize, usize), proof: &FraudProof) -> (Digest, Digest) {
    let shape = spec.shape;
    match spec.policy.input_scheme {
        InputScheme::Poseidon => {
            let d_a = block_digest(BlockKind::A, shape.tm, shape.kc, &proof.a_block);
            let d_b = block_digest(BlockKind::B, shape.tn, shape.kc, &proof.b_block);
            (leaf_hash(&fr_to_bytes(&d_a)), leaf_hash(&fr_to_bytes(&d_b)))
        }
        InputScheme::Sha256 => {
            (a_sha256_leaf_hash(i as u64, &proof.a_block), b_sha256_leaf_hash(j as u64, &proof.b_block))
        }
    }
}

/// Checks that `proof` shows a wrong entry in the `C` committed as `r_c` for `spec`.
/// `Ok(())` means fraud is proven.
pub fn check_fraud_proof(spec: &JobSpec, r_c: &MerkleRoot, proof: &FraudProof) -> Result<(), FraudError> {
    let tiling = spec.tiling()?;
    let shape = tiling.shape;
    let (row, col) = (proof.row, proof.col);
    if row >= tiling.m as u64 || col >= tiling.n as u64 {
        return Err(FraudError::OutOfRange { row, col, m: tiling.m, n: tiling.n });
    }
    let (row, col) = (row as usize, col as usize);
    let (i, j) = (row / shape.tm, col / shape.tn);
    for (what, expected, got) in [
        ("A block", shape.tm * shape.kc, proof.a_block.len()),
        ("B block", shape.kc * shape.tn, proof.b_block.len()),
        ("C tile", shape.tm * shape.tn, proof.c_tile.len()),
    ] {
        if expected != got {
            return Err(FraudError::Length { what, expected, got });
        }
    }
    let opening = |which: &'static str| move |e: MerkleError| FraudError::Opening { which, reason: e.to_string() };
    let names = |which: &'static str, path: &matproof_protocol::merkle::InclusionProof, leaf: usize, size: usize| {
        if path.leaf_index != leaf as u64 || path.tree_size != size as u64 {
            return Err(FraudError::Opening { which, reason: "path names another leaf or tree".into() });
        }
        Ok(())
    };
    names("A", &proof.a_path, i, tiling.row_blocks())?;
    names("B", &proof.b_path, j, tiling.col_blocks())?;
    names("C", &proof.c_path, tiling.tile_index(i, j)?, tiling.tile_count())?;
    let (a_leaf, b_leaf) = input_leaves(spec, (i, j), proof);
    proof.a_path.verify(&a_leaf, &spec.r_a).map_err(opening("A"))?;
    proof.b_path.verify(&b_leaf, &spec.r_b).map_err(opening("B"))?;
    proof.c_path.verify(&c_leaf_hash(i as u64, j as u64, &proof.c_tile), r_c).map_err(opening("C"))?;
    let (local_row, local_col) = (row % shape.tm, col % shape.tn);
    let a_row = &proof.a_block[local_row * shape.kc..(local_row + 1) * shape.kc];
    let b_col = &proof.b_block[local_col * shape.kc..(local_col + 1) * shape.kc];
    let expected = a_row.iter().zip(b_col).fold(0i32, |acc, (&x, &y)| acc.wrapping_add(i32::from(x) * i32::from(y)));
    let committed = proof.c_tile[local_row * shape.tn + local_col];
    if committed == expected {
        return Err(FraudError::EntryCorrect { row: proof.row, col: proof.col, value: committed });
    }
    Ok(())
}
