//! Tiling and zero padding (DESIGN §2).
//!
//! A job fixes a circuit shape `(tm, tn, kc)` with `kc ≥ k`. `A` is conceptually padded with
//! zeros to `⌈m/tm⌉·tm × kc`, `B` to `kc × ⌈n/tn⌉·tn`, `C` to `⌈m/tm⌉·tm × ⌈n/tn⌉·tn`.

use crate::limits::{MAX_DIM, MAX_K, MAX_TILE_SIDE, MAX_TILES};
use crate::matrix::{MatrixI8, MatrixI32, MatrixView};

/// A problem with a circuit shape or a block index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilingError {
    /// `tm` or `tn` is zero or above [`MAX_TILE_SIDE`].
    #[error("tile side {name} = {value} must be in 1..={max}")]
    TileSide {
        /// `tm` or `tn`.
        name: &'static str,
        /// The value.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// `kc` is smaller than `k` or above [`MAX_K`].
    #[error("circuit depth kc = {kc} must satisfy k = {k} ≤ kc ≤ {max}")]
    Depth {
        /// The circuit depth.
        kc: usize,
        /// The job's inner dimension.
        k: usize,
        /// The limit.
        max: usize,
    },
    /// A job dimension is zero or above [`MAX_DIM`].
    #[error("job dimension {name} = {value} must be in 1..={max}")]
    Dimension {
        /// `m`, `k` or `n`.
        name: &'static str,
        /// The value.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// More tiles than [`MAX_TILES`].
    #[error("{tiles} tiles exceed the limit {max}: use larger tiles")]
    TooManyTiles {
        /// Tile count.
        tiles: usize,
        /// The limit.
        max: usize,
    },
    /// A block or tile index beyond the grid.
    #[error("{what} index {index} out of range (grid has {count})")]
    IndexOutOfRange {
        /// Which kind of block.
        what: &'static str,
        /// The index.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// A matrix does not have the job's shape.
    #[error("{what} is {rows}×{cols}, the job says {expected_rows}×{expected_cols}")]
    MatrixShape {
        /// Which matrix.
        what: &'static str,
        /// Its rows.
        rows: usize,
        /// Its columns.
        cols: usize,
        /// Expected rows.
        expected_rows: usize,
        /// Expected columns.
        expected_cols: usize,
    },
}

/// The circuit shape `(tm, tn, kc)` of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CircuitShape {
    /// Rows per C tile and per A row block.
    pub tm: usize,
    /// Columns per C tile and per B column block.
    pub tn: usize,
    /// Padded inner dimension, `kc ≥ k`.
    pub kc: usize,
}

/// A job's dimensions with its circuit shape, checked against the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
    /// The circuit shape.
    pub shape: CircuitShape,
}

impl Tiling {
    /// Checks dimensions and shape: `1 ≤ m, k, n ≤ MAX_DIM`, `1 ≤ tm, tn ≤ MAX_TILE_SIDE`,
    /// `k ≤ kc ≤ MAX_K`, at most `MAX_TILES` tiles.
    pub fn new(m: usize, k: usize, n: usize, shape: CircuitShape) -> Result<Self, TilingError> {
        for (name, value) in [("m", m), ("k", k), ("n", n)] {
            if value == 0 || value > MAX_DIM {
                return Err(TilingError::Dimension { name, value, max: MAX_DIM });
            }
        }
        for (name, value) in [("tm", shape.tm), ("tn", shape.tn)] {
            if value == 0 || value > MAX_TILE_SIDE {
                return Err(TilingError::TileSide { name, value, max: MAX_TILE_SIDE });
            }
        }
        if shape.kc < k || shape.kc > MAX_K {
            return Err(TilingError::Depth { kc: shape.kc, k, max: MAX_K });
        }
        let tiles = m.div_ceil(shape.tm) * n.div_ceil(shape.tn);
        if tiles > MAX_TILES {
            return Err(TilingError::TooManyTiles { tiles, max: MAX_TILES });
        }
        Ok(Self { m, k, n, shape })
    }

    /// Number of A row blocks, `⌈m/tm⌉`.
    pub fn row_blocks(&self) -> usize {
        self.m.div_ceil(self.shape.tm)
    }

    /// Number of B column blocks, `⌈n/tn⌉`.
    pub fn col_blocks(&self) -> usize {
        self.n.div_ceil(self.shape.tn)
    }

    /// Number of C tiles, `T = ⌈m/tm⌉·⌈n/tn⌉`.
    pub fn tile_count(&self) -> usize {
        self.row_blocks() * self.col_blocks()
    }

    /// `(I, J)` of tile number `index` (row-major over tiles).
    pub fn tile_coords(&self, index: usize) -> Result<(usize, usize), TilingError> {
        if index >= self.tile_count() {
            return Err(TilingError::IndexOutOfRange { what: "tile", index, count: self.tile_count() });
        }
        Ok((index / self.col_blocks(), index % self.col_blocks()))
    }

    /// Tile number of `(I, J)` (row-major over tiles).
    pub fn tile_index(&self, row_block: usize, col_block: usize) -> Result<usize, TilingError> {
        self.check_row_block(row_block)?;
        self.check_col_block(col_block)?;
        Ok(row_block * self.col_blocks() + col_block)
    }

    fn check_row_block(&self, index: usize) -> Result<(), TilingError> {
        if index >= self.row_blocks() {
            return Err(TilingError::IndexOutOfRange { what: "A row block", index, count: self.row_blocks() });
        }
        Ok(())
    }

    fn check_col_block(&self, index: usize) -> Result<(), TilingError> {
        if index >= self.col_blocks() {
            return Err(TilingError::IndexOutOfRange { what: "B column block", index, count: self.col_blocks() });
        }
        Ok(())
    }

    /// Checks that `a`, `b` (and `c`, if given) have this job's shapes.
    pub fn check_matrices(&self, a: &MatrixI8, b: &MatrixI8, c: Option<&MatrixI32>) -> Result<(), TilingError> {
        let mut checks = vec![("A", a.rows(), a.cols(), self.m, self.k), ("B", b.rows(), b.cols(), self.k, self.n)];
        if let Some(c) = c {
            checks.push(("C", c.rows(), c.cols(), self.m, self.n));
        }
        for (what, rows, cols, expected_rows, expected_cols) in checks {
            if rows != expected_rows || cols != expected_cols {
                return Err(TilingError::MatrixShape { what, rows, cols, expected_rows, expected_cols });
            }
        }
        Ok(())
    }

    /// Bytes of A row block `I`: rows `[I·tm, (I+1)·tm)`, all `kc` columns, row by row,
    /// zero-padded (`tm·kc` bytes).
    pub fn a_block<'a>(&self, a: impl Into<MatrixView<'a, i8>>, row_block: usize) -> Result<Vec<i8>, TilingError> {
        let a = a.into();
        self.check_row_block(row_block)?;
        let (tm, kc) = (self.shape.tm, self.shape.kc);
        let mut out = vec![0i8; tm * kc];
        for (local, out_row) in out.chunks_exact_mut(kc).enumerate() {
            if let Some(row) = a.row(row_block * tm + local) {
                out_row[..row.len()].copy_from_slice(row);
            }
        }
        Ok(out)
    }

    /// Bytes of B column block `J`: columns `[J·tn, (J+1)·tn)`, all `kc` rows, column by
    /// column (each column contiguous along k), zero-padded (`kc·tn` bytes).
    pub fn b_block<'b>(&self, b: impl Into<MatrixView<'b, i8>>, col_block: usize) -> Result<Vec<i8>, TilingError> {
        let b = b.into();
        self.check_col_block(col_block)?;
        let (tn, kc) = (self.shape.tn, self.shape.kc);
        let mut out = vec![0i8; tn * kc];
        let first_col = col_block * tn;
        let cols_here = tn.min(b.cols().saturating_sub(first_col));
        for t in 0..b.rows() {
            let row = &b.as_slice()[t * b.cols()..(t + 1) * b.cols()];
            for local in 0..cols_here {
                out[local * kc + t] = row[first_col + local];
            }
        }
        Ok(out)
    }

    /// C tile `(I, J)`: `tm × tn` entries, row-major, zero-padded.
    pub fn c_tile(&self, c: &MatrixI32, row_block: usize, col_block: usize) -> Result<Vec<i32>, TilingError> {
        self.check_row_block(row_block)?;
        self.check_col_block(col_block)?;
        let (tm, tn) = (self.shape.tm, self.shape.tn);
        let mut out = vec![0i32; tm * tn];
        let first_col = col_block * tn;
        let cols_here = tn.min(c.cols().saturating_sub(first_col));
        for (local, out_row) in out.chunks_exact_mut(tn).enumerate() {
            if let Some(row) = c.row(row_block * tm + local) {
                out_row[..cols_here].copy_from_slice(&row[first_col..first_col + cols_here]);
            }
        }
        Ok(out)
    }

    /// Whether entry `(local_row, local_col)` of tile `(I, J)` lies in the zero padding.
    pub fn is_padding(&self, row_block: usize, col_block: usize, local_row: usize, local_col: usize) -> bool {
        row_block * self.shape.tm + local_row >= self.m || col_block * self.shape.tn + local_col >= self.n
    }
}

/// Little-endian bytes of a C tile (`4·tm·tn` bytes).
pub fn tile_bytes(tile: &[i32]) -> Vec<u8> {
    tile.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiling() -> Tiling {
        Tiling::new(5, 3, 7, CircuitShape { tm: 2, tn: 4, kc: 4 }).unwrap()
    }

    #[test]
    fn grid_counts_and_coords() {
        let t = tiling();
        assert_eq!((t.row_blocks(), t.col_blocks(), t.tile_count()), (3, 2, 6));
        assert_eq!(t.tile_coords(3).unwrap(), (1, 1));
        assert_eq!(t.tile_index(2, 1).unwrap(), 5);
        assert!(t.tile_coords(6).is_err());
        assert!(t.tile_index(3, 0).is_err());
    }

    #[test]
    fn blocks_are_padded_and_laid_out_as_designed() {
        let t = tiling();
        let a = MatrixI8::from_vec(5, 3, (0..15).map(|v| v as i8).collect()).unwrap();
        // Block 2 = row 4 then a padding row; each row 3 values + 1 zero (kc = 4).
        assert_eq!(t.a_block(&a, 2).unwrap(), vec![12, 13, 14, 0, 0, 0, 0, 0]);
        let b = MatrixI8::from_vec(3, 7, (0..21).map(|v| v as i8).collect()).unwrap();
        // Block 1 = columns 4..8: column 4 is (4, 11, 18), then padding in k and columns.
        assert_eq!(t.b_block(&b, 1).unwrap(), vec![4, 11, 18, 0, 5, 12, 19, 0, 6, 13, 20, 0, 0, 0, 0, 0]);
        let c = MatrixI32::from_vec(5, 7, (0..35).collect()).unwrap();
        assert_eq!(t.c_tile(&c, 2, 1).unwrap(), vec![32, 33, 34, 0, 0, 0, 0, 0]);
        assert!(t.is_padding(2, 1, 0, 3));
        assert!(!t.is_padding(2, 1, 0, 2));
        assert!(t.is_padding(2, 0, 1, 0));
    }

    #[test]
    fn shape_errors() {
        let s = CircuitShape { tm: 2, tn: 2, kc: 2 };
        assert!(matches!(Tiling::new(4, 3, 4, s), Err(TilingError::Depth { .. })));
        assert!(matches!(Tiling::new(0, 2, 4, s), Err(TilingError::Dimension { name: "m", .. })));
        assert!(matches!(
            Tiling::new(4, 2, 4, CircuitShape { tm: 0, ..s }),
            Err(TilingError::TileSide { name: "tm", .. })
        ));
        assert!(matches!(
            Tiling::new(1 << 17, 2, 1 << 17, CircuitShape { tm: 1, tn: 1, kc: 2 }),
            Err(TilingError::TooManyTiles { .. })
        ));
    }
}
