//! `R_C` from C arriving as whole rows in order (the consumer's and the node's view of a
//! streamed result): at most one row block of C is held, each completed row block's tiles
//! are hashed in parallel, and the tree equals [`super::c_tree`]'s.

use super::leaves::hash_row_blocks;
use crate::merkle::{Digest, MerkleTree};
use crate::tiling::Tiling;

/// Rows pushed to a [`CTreeBuilder`] that do not continue C.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitStreamError {
    /// The values are not a whole number of rows.
    #[error("{values} values are not whole rows of {cols} columns")]
    PartialRow {
        /// Values pushed.
        values: usize,
        /// Columns of C.
        cols: usize,
    },
    /// The rows do not start where the rows so far stopped.
    #[error("rows pushed from row {first_row}, but the next row of C is {expected_row}")]
    OutOfOrder {
        /// The first row pushed.
        first_row: usize,
        /// The rows pushed so far.
        expected_row: usize,
    },
    /// The rows run past the last row of C.
    #[error("rows {first_row}..{end_row} run past the {rows} rows of C")]
    PastEnd {
        /// The first row pushed.
        first_row: usize,
        /// One past the last row pushed.
        end_row: usize,
        /// Rows of C.
        rows: usize,
    },
    /// The stream ended before the last row.
    #[error("C has {rows} rows but only {rows_pushed} arrived")]
    MissingRows {
        /// Rows pushed.
        rows_pushed: usize,
        /// Rows of C.
        rows: usize,
    },
}

/// Builds the tree behind `R_C` from whole rows of C pushed in order.
#[derive(Debug, Clone)]
pub struct CTreeBuilder {
    tiling: Tiling,
    /// Rows of the current row block not hashed yet (fewer than `tm`).
    pending: Vec<i32>,
    /// Leaf hashes of the row blocks completed so far.
    leaves: Vec<Digest>,
    rows_pushed: usize,
}

impl CTreeBuilder {
    /// A builder for C of `tiling`'s shape.
    pub fn new(tiling: &Tiling) -> Self {
        Self { tiling: *tiling, pending: Vec::new(), leaves: Vec::with_capacity(tiling.tile_count()), rows_pushed: 0 }
    }

    /// Rows pushed so far.
    pub fn rows_pushed(&self) -> usize {
        self.rows_pushed
    }

    /// Pushes whole rows `first_row, first_row + 1, …` (row-major, `n` values each);
    /// `first_row` must equal [`CTreeBuilder::rows_pushed`]. Whole row blocks are hashed
    /// straight from `values`; a row block's first rows wait in the builder for its last.
    pub fn push_rows(&mut self, first_row: usize, values: &[i32]) -> Result<(), CommitStreamError> {
        let (m, n, tm) = (self.tiling.m, self.tiling.n, self.tiling.shape.tm);
        if !values.len().is_multiple_of(n) {
            return Err(CommitStreamError::PartialRow { values: values.len(), cols: n });
        }
        if first_row != self.rows_pushed {
            return Err(CommitStreamError::OutOfOrder { first_row, expected_row: self.rows_pushed });
        }
        let end_row = first_row + values.len() / n;
        if end_row > m {
            return Err(CommitStreamError::PastEnd { first_row, end_row, rows: m });
        }
        let mut rest = values;
        if !self.pending.is_empty() {
            let block_end = (first_row.div_ceil(tm) * tm).min(m);
            let take = (block_end - first_row).min(rest.len() / n) * n;
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.rows_pushed += take / n;
            if self.rows_pushed == block_end {
                let block = std::mem::take(&mut self.pending);
                self.hash_blocks(&block);
                self.pending = block;
                self.pending.clear();
            }
        }
        // Here `rows_pushed` is at a row block's start (or `rest` is empty).
        let rows_left = rest.len() / n;
        let whole_rows = if self.rows_pushed + rows_left == m { rows_left } else { rows_left / tm * tm };
        self.hash_blocks(&rest[..whole_rows * n]);
        self.rows_pushed += whole_rows;
        let tail = &rest[whole_rows * n..];
        if !tail.is_empty() {
            self.pending.reserve_exact(tm * n);
            self.pending.extend_from_slice(tail);
            self.rows_pushed += tail.len() / n;
        }
        Ok(())
    }

    /// Hashes the row blocks whose rows are `rows`, starting at the next one.
    fn hash_blocks(&mut self, rows: &[i32]) {
        if rows.is_empty() {
            return;
        }
        let (n, tm) = (self.tiling.n, self.tiling.shape.tm);
        let first_row_block = self.leaves.len() / self.tiling.col_blocks();
        let start = self.leaves.len();
        self.leaves.resize(start + (rows.len() / n).div_ceil(tm) * self.tiling.col_blocks(), [0; 32]);
        hash_row_blocks(&self.tiling, first_row_block, rows, &mut self.leaves[start..]);
    }

    /// The tree, once every row of C has been pushed.
    pub fn finish(self) -> Result<MerkleTree, CommitStreamError> {
        if self.rows_pushed != self.tiling.m {
            return Err(CommitStreamError::MissingRows { rows_pushed: self.rows_pushed, rows: self.tiling.m });
        }
        Ok(MerkleTree::from_leaf_hashes(self.leaves))
    }
}
