//! C leaf hashes straight from rows of C (the layout of DESIGN §3, unchanged): each tile's
//! leaf is assembled in one buffer per parallel task (reused for every tile of the task, no
//! allocation per tile) and hashed in one pass.

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::C_LEAF_PREFIX;
use crate::merkle::Digest;
use crate::tiling::Tiling;

/// Bytes of C one parallel task hashes when there is enough work to split this finely.
const TASK_BYTES: usize = 256 << 10;

/// Bytes in front of a tile's entries: `0x00` (RFC 9162 leaf), the prefix, `I`, `J`.
const HEADER_BYTES: usize = 1 + C_LEAF_PREFIX.len() + 16;

/// One leaf, `0x00 ‖ "matproof/v1/c" ‖ u64le(I) ‖ u64le(J) ‖ tile bytes`, built in place.
pub(crate) struct LeafBuffer {
    bytes: Vec<u8>,
}

impl LeafBuffer {
    /// A buffer for tiles of `entries` entries.
    pub(crate) fn new(entries: usize) -> Self {
        let mut bytes = vec![0u8; HEADER_BYTES + 4 * entries];
        bytes[1..1 + C_LEAF_PREFIX.len()].copy_from_slice(C_LEAF_PREFIX);
        Self { bytes }
    }

    fn set_coords(&mut self, row_block: u64, col_block: u64) {
        let at = 1 + C_LEAF_PREFIX.len();
        self.bytes[at..at + 8].copy_from_slice(&row_block.to_le_bytes());
        self.bytes[at + 8..HEADER_BYTES].copy_from_slice(&col_block.to_le_bytes());
    }

    fn entries_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[HEADER_BYTES..]
    }

    /// The leaf hash of a tile given as its entries (row-major, already padded).
    pub(crate) fn hash_entries(&mut self, row_block: u64, col_block: u64, tile: &[i32]) -> Digest {
        self.set_coords(row_block, col_block);
        write_le(self.entries_mut(), tile);
        Sha256::digest(&self.bytes).into()
    }

    /// The leaf hash of tile `(I, J)` read from `rows`, the rows of row block `I` present in
    /// C (`rows.len() / n ≤ tm`; missing rows and columns past `n` are zero padding).
    fn hash_tile(&mut self, tiling: &Tiling, (row_block, col_block): (usize, usize), rows: &[i32]) -> Digest {
        let (n, tm, tn) = (tiling.n, tiling.shape.tm, tiling.shape.tn);
        self.set_coords(row_block as u64, col_block as u64);
        let first_col = col_block * tn;
        let cols_here = tn.min(n - first_col);
        let entries = self.entries_mut();
        for (local, out_row) in entries.chunks_exact_mut(4 * tn).take(tm).enumerate() {
            let (values, padding) = out_row.split_at_mut(4 * cols_here);
            match rows.get(local * n..(local + 1) * n) {
                Some(row) => {
                    write_le(values, &row[first_col..first_col + cols_here]);
                    padding.fill(0);
                }
                None => out_row.fill(0),
            }
        }
        Sha256::digest(&self.bytes).into()
    }
}

/// `out[4·i..4·i + 4] = values[i].to_le_bytes()` (a plain copy on little-endian machines).
fn write_le(out: &mut [u8], values: &[i32]) {
    for (bytes, value) in out.chunks_exact_mut(4).zip(values) {
        bytes.copy_from_slice(&value.to_le_bytes());
    }
}

/// Hashes every tile of the row blocks `first_row_block, first_row_block + 1, …` whose rows
/// are `rows` (row-major, `n` per row: whole row blocks, the last of which may stop at row
/// `m`), in parallel, into `out` (one leaf per tile, row-major over tiles; `out.len()` is
/// the number of row blocks in `rows` times `⌈n/tn⌉`).
pub(crate) fn hash_row_blocks(tiling: &Tiling, first_row_block: usize, rows: &[i32], out: &mut [Digest]) {
    let (n, tm, tn) = (tiling.n, tiling.shape.tm, tiling.shape.tn);
    let col_blocks = tiling.col_blocks();
    debug_assert_eq!(rows.len() % n, 0);
    debug_assert_eq!(out.len(), (rows.len() / n).div_ceil(tm) * col_blocks);
    let per_task = tiles_per_task(4 * tm * tn, out.len());
    let block_values = tm * n;
    out.par_chunks_mut(per_task).enumerate().for_each(|(task, leaves)| {
        let mut leaf = LeafBuffer::new(tm * tn);
        for (offset, slot) in leaves.iter_mut().enumerate() {
            let index = task * per_task + offset;
            let (local_block, col_block) = (index / col_blocks, index % col_blocks);
            let start = local_block * block_values;
            let block_rows = &rows[start..rows.len().min(start + block_values)];
            *slot = leaf.hash_tile(tiling, (first_row_block + local_block, col_block), block_rows);
        }
    });
}

/// Tiles per parallel task: about [`TASK_BYTES`] of C, but at least eight tasks per thread
/// when there are few tiles.
fn tiles_per_task(tile_bytes: usize, tiles: usize) -> usize {
    let by_bytes = (TASK_BYTES / tile_bytes.max(1)).max(1);
    let by_balance = tiles.div_ceil(8 * rayon::current_num_threads()).max(1);
    by_bytes.min(by_balance)
}
