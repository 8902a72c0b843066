//! The `sha256` input commitment scheme (DESIGN §3, "Two input commitment schemes"): `R_A`
//! (`R_B`) as RFC 9162 roots over the leaves `"matproof/v1/a" ‖ u64le(I) ‖ A_I bytes`
//! (`"matproof/v1/b" ‖ u64le(J) ‖ B_J bytes`), blocks laid out as in DESIGN §2 (zero-padded
//! to `tm × kc` and `kc × tn`, `i8` as two's complement).
//!
//! The fast paths hash straight from the rows of `A` and from a transposed strip of `B`;
//! [`a_sha256_tree_reference`] and [`b_sha256_tree_reference`] build each block with
//! [`Tiling::a_block`] / [`Tiling::b_block`] and are what they are tested against.

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::check_operand;
use crate::matrix::MatrixI8;
use crate::merkle::{Digest, MerkleTree};
use crate::tiling::{Tiling, TilingError};

/// Prefix of every A leaf of the `sha256` input scheme.
pub const A_SHA256_LEAF_PREFIX: &[u8] = b"matproof/v1/a";
/// Prefix of every B leaf of the `sha256` input scheme.
pub const B_SHA256_LEAF_PREFIX: &[u8] = b"matproof/v1/b";

/// Bytes of input one parallel task hashes, at least.
const TASK_BYTES: usize = 64 << 10;

/// Bytes converted from `i8` per hasher update.
const CHUNK_BYTES: usize = 4096;

static ZEROS: [u8; CHUNK_BYTES] = [0; CHUNK_BYTES];

fn leaf_hasher(prefix: &[u8], index: u64) -> Sha256 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(prefix);
    h.update(index.to_le_bytes());
    h
}

/// Feeds `values` as two's-complement bytes.
fn update_i8(h: &mut Sha256, values: &[i8]) {
    let mut buf = [0u8; CHUNK_BYTES];
    for chunk in values.chunks(CHUNK_BYTES) {
        for (byte, value) in buf.iter_mut().zip(chunk) {
            *byte = *value as u8;
        }
        h.update(&buf[..chunk.len()]);
    }
}

/// Feeds `count` zero bytes.
fn update_zeros(h: &mut Sha256, mut count: usize) {
    while count > 0 {
        let now = count.min(CHUNK_BYTES);
        h.update(&ZEROS[..now]);
        count -= now;
    }
}

/// `SHA-256(0x00 ‖ "matproof/v1/a" ‖ u64le(I) ‖ block)`: the leaf hash of A row block `I`
/// given its `tm·kc` bytes (row by row, zero-padded).
pub fn a_sha256_leaf_hash(row_block: u64, block: &[i8]) -> Digest {
    let mut h = leaf_hasher(A_SHA256_LEAF_PREFIX, row_block);
    update_i8(&mut h, block);
    h.finalize().into()
}

/// `SHA-256(0x00 ‖ "matproof/v1/b" ‖ u64le(J) ‖ block)`: the leaf hash of B column block `J`
/// given its `kc·tn` bytes (column by column, zero-padded).
pub fn b_sha256_leaf_hash(col_block: u64, block: &[i8]) -> Digest {
    let mut h = leaf_hasher(B_SHA256_LEAF_PREFIX, col_block);
    update_i8(&mut h, block);
    h.finalize().into()
}

/// The leaf hash of A row block `I` read from `a`'s rows.
fn a_block_leaf(tiling: &Tiling, a: &MatrixI8, row_block: usize) -> Digest {
    let (tm, kc, k) = (tiling.shape.tm, tiling.shape.kc, tiling.k);
    let mut h = leaf_hasher(A_SHA256_LEAF_PREFIX, row_block as u64);
    for local in 0..tm {
        match a.row(row_block * tm + local) {
            Some(row) => {
                update_i8(&mut h, row);
                update_zeros(&mut h, kc - k);
            }
            None => update_zeros(&mut h, kc),
        }
    }
    h.finalize().into()
}

/// Leaf hashes of every A row block in the `sha256` scheme, in parallel.
pub fn a_sha256_leaf_hashes(tiling: &Tiling, a: &MatrixI8) -> Result<Vec<Digest>, TilingError> {
    check_operand("A", a, tiling.m, tiling.k)?;
    let block_bytes = tiling.shape.tm * tiling.shape.kc;
    let min_len = (TASK_BYTES / block_bytes.max(1)).max(1);
    Ok((0..tiling.row_blocks()).into_par_iter().with_min_len(min_len).map(|i| a_block_leaf(tiling, a, i)).collect())
}

/// The Merkle tree behind `R_A` in the `sha256` input scheme.
pub fn a_sha256_tree(tiling: &Tiling, a: &MatrixI8) -> Result<MerkleTree, TilingError> {
    Ok(MerkleTree::from_leaf_hashes(a_sha256_leaf_hashes(tiling, a)?))
}

/// Leaf hashes of the B column blocks `first_block, first_block + 1, …` (one per entry of
/// `out`): their columns are gathered row by row into one strip, column-major (each column
/// its `k` entries), then each block is hashed with the padding `kc − k` (and columns past
/// `n`) fed as zeros.
fn b_strip_leaves(tiling: &Tiling, b: &MatrixI8, first_block: usize, out: &mut [Digest]) {
    let (k, n, tn, kc) = (tiling.k, tiling.n, tiling.shape.tn, tiling.shape.kc);
    let first_col = first_block * tn;
    let cols_here = (out.len() * tn).min(n - first_col);
    let mut strip = vec![0u8; cols_here * k];
    for (t, row) in b.as_slice().chunks_exact(n).enumerate() {
        for (col, value) in row[first_col..first_col + cols_here].iter().enumerate() {
            strip[col * k + t] = *value as u8;
        }
    }
    for (offset, slot) in out.iter_mut().enumerate() {
        let mut h = leaf_hasher(B_SHA256_LEAF_PREFIX, (first_block + offset) as u64);
        for local in offset * tn..(offset + 1) * tn {
            match strip.get(local * k..(local + 1) * k) {
                Some(column) => {
                    h.update(column);
                    update_zeros(&mut h, kc - k);
                }
                None => update_zeros(&mut h, kc),
            }
        }
        *slot = h.finalize().into();
    }
}

/// Leaf hashes of every B column block in the `sha256` scheme, in parallel over strips of
/// at least 64 columns (so that each row of B is read a cache line at a time).
pub fn b_sha256_leaf_hashes(tiling: &Tiling, b: &MatrixI8) -> Result<Vec<Digest>, TilingError> {
    check_operand("B", b, tiling.k, tiling.n)?;
    let blocks_per_strip = 64usize.div_ceil(tiling.shape.tn);
    let mut out = vec![[0u8; 32]; tiling.col_blocks()];
    out.par_chunks_mut(blocks_per_strip)
        .enumerate()
        .for_each(|(strip, leaves)| b_strip_leaves(tiling, b, strip * blocks_per_strip, leaves));
    Ok(out)
}

/// The Merkle tree behind `R_B` in the `sha256` input scheme.
pub fn b_sha256_tree(tiling: &Tiling, b: &MatrixI8) -> Result<MerkleTree, TilingError> {
    Ok(MerkleTree::from_leaf_hashes(b_sha256_leaf_hashes(tiling, b)?))
}

/// [`a_sha256_tree`] written plainly: each block built by [`Tiling::a_block`], then hashed.
pub fn a_sha256_tree_reference(tiling: &Tiling, a: &MatrixI8) -> Result<MerkleTree, TilingError> {
    check_operand("A", a, tiling.m, tiling.k)?;
    let leaves = (0..tiling.row_blocks())
        .map(|i| Ok(a_sha256_leaf_hash(i as u64, &tiling.a_block(a, i)?)))
        .collect::<Result<Vec<_>, TilingError>>()?;
    Ok(MerkleTree::from_leaf_hashes(leaves))
}

/// [`b_sha256_tree`] written plainly: each block built by [`Tiling::b_block`], then hashed.
pub fn b_sha256_tree_reference(tiling: &Tiling, b: &MatrixI8) -> Result<MerkleTree, TilingError> {
    check_operand("B", b, tiling.k, tiling.n)?;
    let leaves = (0..tiling.col_blocks())
        .map(|j| Ok(b_sha256_leaf_hash(j as u64, &tiling.b_block(b, j)?)))
        .collect::<Result<Vec<_>, TilingError>>()?;
    Ok(MerkleTree::from_leaf_hashes(leaves))
}
