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
use crate::matrix::MatrixView;
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
fn a_block_leaf(tiling: &Tiling, a: MatrixView<'_, i8>, row_block: usize) -> Digest {
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
pub fn a_sha256_leaf_hashes<'a>(tiling: &Tiling, a: impl Into<MatrixView<'a, i8>>) -> Result<Vec<Digest>, TilingError> {
    let a = a.into();
    check_operand("A", a, tiling.m, tiling.k)?;
    let block_bytes = tiling.shape.tm * tiling.shape.kc;
    let min_len = (TASK_BYTES / block_bytes.max(1)).max(1);
    Ok((0..tiling.row_blocks()).into_par_iter().with_min_len(min_len).map(|i| a_block_leaf(tiling, a, i)).collect())
}

/// The Merkle tree behind `R_A` in the `sha256` input scheme.
pub fn a_sha256_tree<'a>(tiling: &Tiling, a: impl Into<MatrixView<'a, i8>>) -> Result<MerkleTree, TilingError> {
    Ok(MerkleTree::from_leaf_hashes(a_sha256_leaf_hashes(tiling, a)?))
}

/// Leaf hashes of the B column blocks `first_block, first_block + 1, …` (one per entry of
/// `out`): their columns are gathered row by row into one strip, column-major (each column
/// its `k` entries), then each block is hashed with the padding `kc − k` (and columns past
/// `n`) fed as zeros.
fn b_strip_leaves(tiling: &Tiling, b: MatrixView<'_, i8>, first_block: usize, strip: &mut Vec<u8>, out: &mut [Digest]) {
    let (k, n, tn, kc) = (tiling.k, tiling.n, tiling.shape.tn, tiling.shape.kc);
    let first_col = first_block * tn;
    let cols_here = (out.len() * tn).min(n - first_col);
    gather_columns(b.as_slice(), n, (first_col, cols_here), strip);
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

/// Columns `first_col..first_col + cols` of the row-major `rows × n` matrix `b` into
/// `strip`, each column contiguous (`rows` bytes, `i8` as two's complement). Transposed an
/// 8 × 8 piece at a time in eight `u64` words ([`transpose_8x8`]), so that each write to the
/// strip is 8 bytes of one column (scattering single bytes at a stride of `rows` took more
/// time than the hashing, in profiles at n = 2048).
fn gather_columns(b: &[i8], n: usize, (first_col, cols): (usize, usize), strip: &mut Vec<u8>) {
    let rows = b.len() / n;
    strip.resize(cols * rows, 0); // every byte is written below
    // Eight rows at a time across the strip: each row of B is read once, a cache line after
    // the other (column-major order re-reads them from far caches: at a power-of-two `n`
    // they all fall in a few cache sets).
    for row0 in (0..rows).step_by(8) {
        let height = 8.min(rows - row0);
        for col0 in (0..cols).step_by(8) {
            let width = 8.min(cols - col0);
            let mut words = [0u64; 8];
            for (r, word) in words.iter_mut().take(height).enumerate() {
                let start = (row0 + r) * n + first_col + col0;
                let mut bytes = [0u8; 8];
                if width == 8 {
                    // A fixed-length copy: inlined, where a variable one calls memmove.
                    let piece: &[i8; 8] = b[start..start + 8].try_into().unwrap_or(&[0; 8]);
                    bytes = piece.map(|value| value as u8);
                } else {
                    for (byte, value) in bytes.iter_mut().zip(&b[start..start + width]) {
                        *byte = *value as u8;
                    }
                }
                *word = u64::from_le_bytes(bytes);
            }
            transpose_8x8(&mut words);
            for (c, word) in words.iter().take(width).enumerate() {
                let at = (col0 + c) * rows + row0;
                if height == 8 {
                    strip[at..at + 8].copy_from_slice(&word.to_le_bytes());
                } else {
                    strip[at..at + height].copy_from_slice(&word.to_le_bytes()[..height]);
                }
            }
        }
    }
}

/// Transposes the 8 × 8 byte matrix whose row `r` is the little-endian bytes of `words[r]`:
/// afterwards byte `r` of `words[c]` is what byte `c` of `words[r]` was. Three rounds swap
/// the off-diagonal halves of 2 × 2, 4 × 4, then 8 × 8 blocks.
pub(super) fn transpose_8x8(words: &mut [u64; 8]) {
    for (shift, mask, pairs) in [
        (8, 0x00ff_00ff_00ff_00ffu64, [(0, 1), (2, 3), (4, 5), (6, 7)]),
        (16, 0x0000_ffff_0000_ffff, [(0, 2), (1, 3), (4, 6), (5, 7)]),
        (32, 0x0000_0000_ffff_ffff, [(0, 4), (1, 5), (2, 6), (3, 7)]),
    ] {
        for (low, high) in pairs {
            let t = ((words[low] >> shift) ^ words[high]) & mask;
            words[high] ^= t;
            words[low] ^= t << shift;
        }
    }
}

/// Columns of B one task gathers, at least: each row of B is then read 256 contiguous bytes
/// at a time (rows a power of two apart fall in a few cache sets and defeat the
/// prefetcher, so short pieces of many rows are read at memory latency).
const STRIP_COLS: usize = 256;

/// Leaf hashes of every B column block in the `sha256` scheme, in parallel over strips of
/// at least [`STRIP_COLS`] columns; each thread reuses one strip buffer.
pub fn b_sha256_leaf_hashes<'b>(tiling: &Tiling, b: impl Into<MatrixView<'b, i8>>) -> Result<Vec<Digest>, TilingError> {
    let b = b.into();
    check_operand("B", b, tiling.k, tiling.n)?;
    let blocks_per_strip = STRIP_COLS.div_ceil(tiling.shape.tn);
    let mut out = vec![[0u8; 32]; tiling.col_blocks()];
    out.par_chunks_mut(blocks_per_strip).enumerate().for_each_init(Vec::new, |strip, (index, leaves)| {
        b_strip_leaves(tiling, b, index * blocks_per_strip, strip, leaves);
    });
    Ok(out)
}

/// The Merkle tree behind `R_B` in the `sha256` input scheme.
pub fn b_sha256_tree<'b>(tiling: &Tiling, b: impl Into<MatrixView<'b, i8>>) -> Result<MerkleTree, TilingError> {
    Ok(MerkleTree::from_leaf_hashes(b_sha256_leaf_hashes(tiling, b)?))
}

/// [`a_sha256_tree`] written plainly: each block built by [`Tiling::a_block`], then hashed.
pub fn a_sha256_tree_reference<'a>(
    tiling: &Tiling,
    a: impl Into<MatrixView<'a, i8>>,
) -> Result<MerkleTree, TilingError> {
    let a = a.into();
    check_operand("A", a, tiling.m, tiling.k)?;
    let leaves = (0..tiling.row_blocks())
        .map(|i| Ok(a_sha256_leaf_hash(i as u64, &tiling.a_block(a, i)?)))
        .collect::<Result<Vec<_>, TilingError>>()?;
    Ok(MerkleTree::from_leaf_hashes(leaves))
}

/// [`b_sha256_tree`] written plainly: each block built by [`Tiling::b_block`], then hashed.
pub fn b_sha256_tree_reference<'b>(
    tiling: &Tiling,
    b: impl Into<MatrixView<'b, i8>>,
) -> Result<MerkleTree, TilingError> {
    let b = b.into();
    check_operand("B", b, tiling.k, tiling.n)?;
    let leaves = (0..tiling.col_blocks())
        .map(|j| Ok(b_sha256_leaf_hash(j as u64, &tiling.b_block(b, j)?)))
        .collect::<Result<Vec<_>, TilingError>>()?;
    Ok(MerkleTree::from_leaf_hashes(leaves))
}
