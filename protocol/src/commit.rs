//! Commitments `R_A`, `R_B`, `R_C` (DESIGN §3).
//!
//! - `R_C`: RFC 9162 root over leaves `"matproof/v1/c" ‖ u64le(I) ‖ u64le(J) ‖ tile bytes`,
//!   tiles in row-major order.
//! - `R_A` (`R_B`): RFC 9162 root over the 32-byte little-endian encodings of the Poseidon
//!   digests `d_A(I)` (`d_B(J)`), in block order; or, in the `sha256` input scheme, over the
//!   leaves `"matproof/v1/a" ‖ u64le(I) ‖ A_I bytes` (`…/b`, `J`, `B_J`): [`a_sha256_tree`],
//!   [`b_sha256_tree`].
//!
//! `R_C` is hashed straight from C's rows (one leaf buffer per parallel task, tiles in
//! parallel, the tree's levels in parallel): [`c_tree`] over a whole matrix, [`CTreeBuilder`]
//! over rows as they arrive. [`c_leaf_hashes_reference`] is the plain per-tile version both
//! are tested against.

use ark_bn254::Fr;
use rayon::prelude::*;

use crate::matrix::{MatrixI8, MatrixI32, MatrixView};
use crate::merkle::{Digest, MerkleRoot, MerkleTree, leaf_hash_parts};
use crate::poseidon::{BlockKind, block_digests, fr_to_bytes};
use crate::spec::InputScheme;
use crate::tiling::{Tiling, TilingError, tile_bytes};

mod leaves;
mod sha256_inputs;
mod stream;

pub use sha256_inputs::{
    A_SHA256_LEAF_PREFIX, B_SHA256_LEAF_PREFIX, a_sha256_leaf_hash, a_sha256_leaf_hashes, a_sha256_tree,
    a_sha256_tree_reference, b_sha256_leaf_hash, b_sha256_leaf_hashes, b_sha256_tree, b_sha256_tree_reference,
};
pub use stream::{CTreeBuilder, CommitStreamError};

/// Prefix of every C leaf.
pub const C_LEAF_PREFIX: &[u8] = b"matproof/v1/c";

/// The leaf hash of C tile `(I, J)` given its entries (row-major, zero-padded).
pub fn c_leaf_hash(row_block: u64, col_block: u64, tile: &[i32]) -> Digest {
    leaves::LeafBuffer::new(tile.len()).hash_entries(row_block, col_block, tile)
}

/// The leaf hash of C tile `(I, J)` given its little-endian bytes.
pub fn c_leaf_hash_bytes(row_block: u64, col_block: u64, tile_bytes: &[u8]) -> Digest {
    leaf_hash_parts(&[C_LEAF_PREFIX, &row_block.to_le_bytes(), &col_block.to_le_bytes(), tile_bytes])
}

/// Leaf hashes of every C tile, row-major over tiles, hashed straight from C's rows in
/// parallel.
pub fn c_leaf_hashes(tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, TilingError> {
    check_c(tiling, c)?;
    let mut out = vec![[0u8; 32]; tiling.tile_count()];
    leaves::hash_row_blocks(tiling, 0, c.as_slice(), &mut out);
    Ok(out)
}

/// [`c_leaf_hashes`] written plainly, one tile at a time: each tile copied out by
/// [`Tiling::c_tile`], converted to bytes, then hashed. The reference for the fast paths.
pub fn c_leaf_hashes_reference(tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, TilingError> {
    check_c(tiling, c)?;
    (0..tiling.tile_count())
        .into_par_iter()
        .map(|index| {
            let (i, j) = tiling.tile_coords(index)?;
            Ok(c_leaf_hash_bytes(i as u64, j as u64, &tile_bytes(&tiling.c_tile(c, i, j)?)))
        })
        .collect()
}

fn check_c(tiling: &Tiling, c: &MatrixI32) -> Result<(), TilingError> {
    if c.rows() != tiling.m || c.cols() != tiling.n {
        return Err(TilingError::MatrixShape {
            what: "C",
            rows: c.rows(),
            cols: c.cols(),
            expected_rows: tiling.m,
            expected_cols: tiling.n,
        });
    }
    Ok(())
}

/// The Merkle tree behind `R_C`.
pub fn c_tree(tiling: &Tiling, c: &MatrixI32) -> Result<MerkleTree, TilingError> {
    Ok(MerkleTree::from_leaf_hashes(c_leaf_hashes(tiling, c)?))
}

/// Poseidon digests `d_A(I)` of every A row block, in parallel.
pub fn a_digests<'a>(tiling: &Tiling, a: impl Into<MatrixView<'a, i8>>) -> Result<Vec<Fr>, TilingError> {
    let a = a.into();
    check_operand("A", a, tiling.m, tiling.k)?;
    let shape = tiling.shape;
    block_digests(BlockKind::A, shape.tm, shape.kc, tiling.row_blocks(), |i| tiling.a_block(a, i))
}

/// Poseidon digests `d_B(J)` of every B column block, in parallel.
pub fn b_digests<'b>(tiling: &Tiling, b: impl Into<MatrixView<'b, i8>>) -> Result<Vec<Fr>, TilingError> {
    let b = b.into();
    check_operand("B", b, tiling.k, tiling.n)?;
    let shape = tiling.shape;
    block_digests(BlockKind::B, shape.tn, shape.kc, tiling.col_blocks(), |j| tiling.b_block(b, j))
}

fn check_operand(what: &'static str, x: MatrixView<'_, i8>, rows: usize, cols: usize) -> Result<(), TilingError> {
    if x.rows() != rows || x.cols() != cols {
        return Err(TilingError::MatrixShape {
            what,
            rows: x.rows(),
            cols: x.cols(),
            expected_rows: rows,
            expected_cols: cols,
        });
    }
    Ok(())
}

/// The Merkle tree over block digests (behind `R_A` or `R_B`).
pub fn digest_tree(digests: &[Fr]) -> MerkleTree {
    let leaves: Vec<[u8; 32]> = digests.iter().map(fr_to_bytes).collect();
    MerkleTree::from_leaves(&leaves)
}

/// `R_A`'s tree under `scheme` (Poseidon block digests, or SHA-256 leaves of the blocks).
pub fn a_input_tree<'a>(
    scheme: InputScheme,
    tiling: &Tiling,
    a: impl Into<MatrixView<'a, i8>>,
) -> Result<MerkleTree, TilingError> {
    match scheme {
        InputScheme::Poseidon => Ok(digest_tree(&a_digests(tiling, a)?)),
        InputScheme::Sha256 => a_sha256_tree(tiling, a),
    }
}

/// `R_B`'s tree under `scheme`.
pub fn b_input_tree<'b>(
    scheme: InputScheme,
    tiling: &Tiling,
    b: impl Into<MatrixView<'b, i8>>,
) -> Result<MerkleTree, TilingError> {
    match scheme {
        InputScheme::Poseidon => Ok(digest_tree(&b_digests(tiling, b)?)),
        InputScheme::Sha256 => b_sha256_tree(tiling, b),
    }
}

/// `R_A`, `R_B` under `scheme`, in parallel.
pub fn input_roots<'a, 'b>(
    scheme: InputScheme,
    tiling: &Tiling,
    a: impl Into<MatrixView<'a, i8>>,
    b: impl Into<MatrixView<'b, i8>>,
) -> Result<(MerkleRoot, MerkleRoot), TilingError> {
    let (a, b) = (a.into(), b.into());
    let (r_a, r_b) = rayon::join(
        || a_input_tree(scheme, tiling, a).map(|t| t.root()),
        || b_input_tree(scheme, tiling, b).map(|t| t.root()),
    );
    Ok((r_a?, r_b?))
}

/// The three roots of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commitments {
    /// `R_A`.
    pub r_a: MerkleRoot,
    /// `R_B`.
    pub r_b: MerkleRoot,
    /// `R_C`.
    pub r_c: MerkleRoot,
}

/// Computes `R_A`, `R_B`, `R_C` from the matrices.
pub fn commit_all(tiling: &Tiling, a: &MatrixI8, b: &MatrixI8, c: &MatrixI32) -> Result<Commitments, TilingError> {
    tiling.check_matrices(a, b, Some(c))?;
    let ((r_a, r_b), r_c) = rayon::join(
        || {
            rayon::join(
                || a_digests(tiling, a).map(|d| digest_tree(&d).root()),
                || b_digests(tiling, b).map(|d| digest_tree(&d).root()),
            )
        },
        || c_tree(tiling, c).map(|t| t.root()),
    );
    Ok(Commitments { r_a: r_a?, r_b: r_b?, r_c: r_c? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{naive_product, random_i8};
    use crate::merkle::leaf_hash;
    use crate::tiling::CircuitShape;

    #[test]
    fn c_leaf_layout_is_as_designed() {
        let tile = [1i32, -2, 3, i32::MIN];
        let mut leaf = b"matproof/v1/c".to_vec();
        leaf.extend_from_slice(&3u64.to_le_bytes());
        leaf.extend_from_slice(&5u64.to_le_bytes());
        for v in tile {
            leaf.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(c_leaf_hash(3, 5, &tile), leaf_hash(&leaf));
    }

    #[test]
    fn known_answer_commitments() {
        // Pinned: a change here is a protocol change.
        let tiling = Tiling::new(6, 5, 7, CircuitShape { tm: 4, tn: 4, kc: 8 }).unwrap();
        let a = random_i8(6, 5, 1).unwrap();
        let b = random_i8(5, 7, 2).unwrap();
        let c = naive_product(&a, &b).unwrap();
        let roots = commit_all(&tiling, &a, &b, &c).unwrap();
        assert_eq!(hex::encode(roots.r_a), KNOWN_R_A);
        assert_eq!(hex::encode(roots.r_b), KNOWN_R_B);
        assert_eq!(hex::encode(roots.r_c), KNOWN_R_C);
    }

    const KNOWN_R_A: &str = "0fb4bcfb7246d01bae3a747a60a4ffcf2741bf8a02f46f08269367577d234f73";
    const KNOWN_R_B: &str = "79749045927da646c896d6d990116745c9300d619f4ea1746c53c467e634cd2b";
    const KNOWN_R_C: &str = "52d174c495e68886583ebda76aea0bc5ac1b2ef4fb4767ee7f796d3c37d7416e";

    #[test]
    fn any_changed_entry_changes_its_root() {
        let tiling = Tiling::new(5, 3, 6, CircuitShape { tm: 2, tn: 4, kc: 3 }).unwrap();
        let a = random_i8(5, 3, 7).unwrap();
        let b = random_i8(3, 6, 8).unwrap();
        let c = naive_product(&a, &b).unwrap();
        let base = commit_all(&tiling, &a, &b, &c).unwrap();
        for pos in 0..c.as_slice().len() {
            let mut c2 = c.clone();
            c2.as_mut_slice()[pos] ^= 1;
            assert_ne!(commit_all(&tiling, &a, &b, &c2).unwrap().r_c, base.r_c);
        }
        for pos in 0..a.as_slice().len() {
            let mut a2 = a.clone();
            a2.as_mut_slice()[pos] ^= 1;
            assert_ne!(commit_all(&tiling, &a2, &b, &c).unwrap().r_a, base.r_a);
        }
        let mut b2 = b.clone();
        b2.as_mut_slice()[17] ^= 1;
        assert_ne!(commit_all(&tiling, &a, &b2, &c).unwrap().r_b, base.r_b);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let tiling = Tiling::new(4, 4, 4, CircuitShape { tm: 2, tn: 2, kc: 4 }).unwrap();
        let a = random_i8(4, 3, 1).unwrap();
        assert!(a_digests(&tiling, &a).is_err());
        let c = MatrixI32::zeros(4, 5).unwrap();
        assert!(c_leaf_hashes(&tiling, &c).is_err());
    }
}

#[cfg(test)]
mod proptests;
