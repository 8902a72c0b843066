//! Freivalds check of an integer matrix product over `F_q`, `q = 2^61 − 1`.
//!
//! `C = A·B` with `A: m×k` (`i8`), `B: k×n` (`i8`) and `C: m×n` (`i32`), all row-major. For
//! each caller-supplied random vector `r ∈ F_q^n` the verifier computes `x = B·r`, `y = A·x` and
//! `z = C·r` and accepts iff `y == z` for every round. All rounds share one pass over each
//! matrix. Signed entries map to `F_q` as `v mod q`.
//!
//! The kernels are exact integer SIMD with one modular reduction per dot product: an AVX-512
//! path (`vpdpbusd` for the `i8` matrices, IFMA `vpmadd52{l,h}uq` for `C`), an AVX2 path
//! (`vpmaddwd` with balanced 16-bit digits, `vpmul{u,}dq` with 31-bit limbs) and a portable path
//! (plain `i64` limb accumulation). The path is picked at run time ([`Path::detect`]); rows are
//! spread over threads with rayon. Every kernel relies on every dimension being at most
//! [`MAX_DIM`] for its overflow bounds; larger shapes are rejected with an error.

mod portable;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// The field modulus `q = 2^61 − 1`.
pub const MODULUS: u64 = (1 << 61) - 1;

/// Largest allowed value of `m`, `k` and `n` (and of a projected matrix's rows and columns).
pub const MAX_DIM: usize = crate::limits::MAX_DIM;

/// Which implementation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// AVX-512 F/BW with VNNI and IFMA.
    Avx512,
    /// AVX2.
    Avx2,
    /// Plain Rust, any architecture.
    Portable,
}

impl Path {
    /// The fastest path this CPU supports.
    pub fn detect() -> Path {
        if Path::Avx512.is_available() {
            Path::Avx512
        } else if Path::Avx2.is_available() {
            Path::Avx2
        } else {
            Path::Portable
        }
    }

    /// Every path this CPU supports, fastest first (always ends with [`Path::Portable`]).
    pub fn available() -> Vec<Path> {
        [Path::Avx512, Path::Avx2, Path::Portable].into_iter().filter(|p| p.is_available()).collect()
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => avx512::supported(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => avx2::supported(),
            #[cfg(not(target_arch = "x86_64"))]
            Path::Avx512 | Path::Avx2 => false,
        }
    }

    /// Short lowercase name: `"avx512"`, `"avx2"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self {
            Path::Avx512 => "avx512",
            Path::Avx2 => "avx2",
            Path::Portable => "portable",
        }
    }
}

/// Shape of the product `C (m×n) = A (m×k) · B (k×n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
}

/// Why a check or projection did not accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FreivaldsError {
    /// `A·(B·r)` and `C·r` differ: the first (smallest) row, and the first round for that row.
    #[error("Freivalds check failed: row {row}, round {round}: A·(B·r) = {expected} but C·r = {found} (mod 2^61-1)")]
    Mismatch {
        /// Row of `C` (absolute index).
        row: usize,
        /// Index of the random vector.
        round: usize,
        /// `(A·(B·r))[row]`.
        expected: u64,
        /// `(C·r)[row]`.
        found: u64,
    },
    /// A dimension exceeds [`MAX_DIM`].
    #[error("dimension {name} = {value} exceeds the maximum {max}")]
    DimensionTooLarge {
        /// Which dimension.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// A slice has the wrong length.
    #[error("{what} has length {actual}, expected {expected}")]
    LengthMismatch {
        /// Which slice.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        actual: usize,
    },
    /// A random-vector entry is not below the modulus.
    #[error("random vector {round} has entry {index} not reduced below 2^61-1")]
    VectorEntryNotReduced {
        /// Index of the vector.
        round: usize,
        /// Index of the entry.
        index: usize,
    },
    /// No random vectors were given to a check.
    #[error("a Freivalds check needs at least one random vector")]
    NoRounds,
    /// The requested path cannot run on this CPU.
    #[error("the {path} path is not available on this CPU")]
    PathUnavailable {
        /// Name of the path.
        path: &'static str,
    },
    /// Streamed data is not a whole number of rows.
    #[error("streamed chunk of {len} entries is not a whole number of rows of {row_len}")]
    PartialRow {
        /// Entries in the chunk.
        len: usize,
        /// Entries per row (`n`).
        row_len: usize,
    },
    /// More rows were streamed than `C` has.
    #[error("streamed {actual} rows of C but it has only {expected}")]
    TooManyRows {
        /// `m`.
        expected: usize,
        /// Rows streamed including the rejected chunk.
        actual: usize,
    },
    /// The stream finished before every row of `C` arrived.
    #[error("stream finished after {actual} rows of C, expected {expected}")]
    MissingRows {
        /// `m`.
        expected: usize,
        /// Rows streamed.
        actual: usize,
    },
}

/// Reduce any `u128` modulo `q`.
#[inline]
pub fn reduce_u128(x: u128) -> u64 {
    let q = MODULUS as u128;
    let x = (x & q) + (x >> 61); // < 2^61 + 2^67
    let x = ((x & q) + (x >> 61)) as u64; // < 2^61 + 2^7 < 2q
    if x >= MODULUS { x - MODULUS } else { x }
}

/// Reduce any `i128` modulo `q` into `[0, q)`.
#[inline]
pub fn reduce_i128(x: i128) -> u64 {
    let r = reduce_u128(x.unsigned_abs());
    if x < 0 { neg_mod(r) } else { r }
}

/// `v mod q` for a signed integer.
#[inline]
pub fn to_field_i64(v: i64) -> u64 {
    reduce_i128(i128::from(v))
}

/// `−a mod q` for `a < q`.
#[inline]
pub fn neg_mod(a: u64) -> u64 {
    if a == 0 { 0 } else { MODULUS - a }
}

/// `a + b mod q` for `a, b < q`.
#[inline]
pub fn add_mod(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= MODULUS { s - MODULUS } else { s }
}

/// `a − b mod q` for `a, b < q`.
#[inline]
pub fn sub_mod(a: u64, b: u64) -> u64 {
    add_mod(a, neg_mod(b))
}

/// `a · b mod q` for any `a, b`.
#[inline]
pub fn mul_mod(a: u64, b: u64) -> u64 {
    reduce_u128(u128::from(a) * u128::from(b))
}

/// Rows per rayon task: about 64 KiB of matrix data, always even (the `i8` kernels take rows in
/// pairs), at least 2.
pub(crate) fn rows_per_task(row_bytes: usize) -> usize {
    let rows = ((1 << 16) / row_bytes.max(1)).clamp(2, 1024);
    rows & !1
}

fn check_dim(name: &'static str, value: usize) -> Result<(), FreivaldsError> {
    if value > MAX_DIM { Err(FreivaldsError::DimensionTooLarge { name, value, max: MAX_DIM }) } else { Ok(()) }
}

fn check_len(what: &'static str, actual: usize, rows: usize, cols: usize) -> Result<(), FreivaldsError> {
    // rows, cols ≤ 2^17 were checked first, so the product cannot overflow a 64-bit usize; on
    // narrower targets a failed multiplication can only mean the slice cannot be that long.
    let expected = rows.checked_mul(cols).ok_or(FreivaldsError::DimensionTooLarge {
        name: what,
        value: rows,
        max: usize::MAX / cols.max(1),
    })?;
    if actual != expected { Err(FreivaldsError::LengthMismatch { what, expected, actual }) } else { Ok(()) }
}

fn check_vectors(vectors: &[Vec<u64>], len: usize) -> Result<(), FreivaldsError> {
    for (round, v) in vectors.iter().enumerate() {
        if v.len() != len {
            return Err(FreivaldsError::LengthMismatch { what: "random vector", expected: len, actual: v.len() });
        }
        if let Some(index) = v.iter().position(|&e| e >= MODULUS) {
            return Err(FreivaldsError::VectorEntryNotReduced { round, index });
        }
    }
    Ok(())
}

fn check_path(path: Path) -> Result<(), FreivaldsError> {
    if path.is_available() { Ok(()) } else { Err(FreivaldsError::PathUnavailable { path: path.name() }) }
}

/// `matrix·v` for every `v`, row-major `[row][round]`. Inputs already validated, `vectors`
/// non-empty.
fn raw_i8(matrix: &[i8], rows: usize, cols: usize, vectors: &[Vec<u64>], path: Path) -> Vec<u64> {
    let mut out = vec![0u64; rows * vectors.len()];
    if rows == 0 || cols == 0 || vectors.is_empty() {
        return out;
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => avx512::project_i8(matrix, cols, vectors, &mut out),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => avx2::project_i8(matrix, cols, vectors, &mut out),
        _ => portable::project_i8(matrix, cols, vectors, &mut out),
    }
    out
}

/// As [`raw_i8`] for an `i32` matrix.
fn raw_i32(matrix: &[i32], rows: usize, cols: usize, vectors: &[Vec<u64>], path: Path) -> Vec<u64> {
    let mut out = vec![0u64; rows * vectors.len()];
    if rows == 0 || cols == 0 || vectors.is_empty() {
        return out;
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => avx512::project_i32(matrix, cols, vectors, &mut out),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => avx2::project_i32(matrix, cols, vectors, &mut out),
        _ => portable::project_i32(matrix, cols, vectors, &mut out),
    }
    out
}

/// Row-major `[row][round]` to one vector per round.
fn split_rounds(flat: &[u64], rounds: usize) -> Vec<Vec<u64>> {
    (0..rounds).map(|round| flat.iter().skip(round).step_by(rounds).copied().collect()).collect()
}

fn validate_projection(
    len: usize,
    rows: usize,
    cols: usize,
    vectors: &[Vec<u64>],
    path: Path,
) -> Result<(), FreivaldsError> {
    check_dim("rows", rows)?;
    check_dim("cols", cols)?;
    check_len("matrix", len, rows, cols)?;
    check_vectors(vectors, cols)?;
    check_path(path)
}

/// `matrix·v mod q` for each `v` in `vectors`, in one pass over the `rows×cols` row-major `i8`
/// matrix. Returns one vector of length `rows` per input vector.
pub fn project_i8(
    matrix: &[i8],
    rows: usize,
    cols: usize,
    vectors: &[Vec<u64>],
    path: Path,
) -> Result<Vec<Vec<u64>>, FreivaldsError> {
    validate_projection(matrix.len(), rows, cols, vectors, path)?;
    Ok(split_rounds(&raw_i8(matrix, rows, cols, vectors, path), vectors.len()))
}

/// `matrix·v mod q` for each `v` in `vectors`, in one pass over the `rows×cols` row-major `i32`
/// matrix. Returns one vector of length `rows` per input vector.
pub fn project_i32(
    matrix: &[i32],
    rows: usize,
    cols: usize,
    vectors: &[Vec<u64>],
    path: Path,
) -> Result<Vec<Vec<u64>>, FreivaldsError> {
    validate_projection(matrix.len(), rows, cols, vectors, path)?;
    Ok(split_rounds(&raw_i32(matrix, rows, cols, vectors, path), vectors.len()))
}

fn validate_dims(dims: Dims) -> Result<(), FreivaldsError> {
    check_dim("m", dims.m)?;
    check_dim("k", dims.k)?;
    check_dim("n", dims.n)
}

/// Validate everything but `C`.
fn validate_left(a: &[i8], b: &[i8], dims: Dims, vectors: &[Vec<u64>], path: Path) -> Result<(), FreivaldsError> {
    validate_dims(dims)?;
    check_len("A", a.len(), dims.m, dims.k)?;
    check_len("B", b.len(), dims.k, dims.n)?;
    if vectors.is_empty() {
        return Err(FreivaldsError::NoRounds);
    }
    check_vectors(vectors, dims.n)?;
    check_path(path)
}

/// `y = A·(B·r)`, row-major `[row][round]`, on validated inputs.
fn left_side(a: &[i8], b: &[i8], dims: Dims, vectors: &[Vec<u64>], path: Path) -> Vec<u64> {
    let x = split_rounds(&raw_i8(b, dims.k, dims.n, vectors, path), vectors.len());
    raw_i8(a, dims.m, dims.k, &x, path)
}

/// First `(row, round)` where the row-major `[row][round]` tables differ.
fn first_mismatch(y: &[u64], z: &[u64], rounds: usize, row_offset: usize) -> Result<(), FreivaldsError> {
    match y.iter().zip(z).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(FreivaldsError::Mismatch {
            row: row_offset + i / rounds,
            round: i % rounds,
            expected: y[i],
            found: z[i],
        }),
    }
}

/// Freivalds check of `C = A·B` with one round per vector in `vectors` (each of length `n`,
/// entries below [`MODULUS`]), on the fastest available path.
pub fn check(a: &[i8], b: &[i8], c: &[i32], dims: Dims, vectors: &[Vec<u64>]) -> Result<(), FreivaldsError> {
    check_with_path(a, b, c, dims, vectors, Path::detect())
}

/// [`check`] on a chosen path.
pub fn check_with_path(
    a: &[i8],
    b: &[i8],
    c: &[i32],
    dims: Dims,
    vectors: &[Vec<u64>],
    path: Path,
) -> Result<(), FreivaldsError> {
    validate_dims(dims)?;
    check_len("C", c.len(), dims.m, dims.n)?;
    validate_left(a, b, dims, vectors, path)?;
    // Each pass is rayon-parallel over rows and bandwidth-bound; running them one after the
    // other measured as fast as overlapping them (docs/benchmarks.md) and is simpler.
    let y = left_side(a, b, dims, vectors, path);
    let z = raw_i32(c, dims.m, dims.n, vectors, path);
    first_mismatch(&y, &z, vectors.len(), 0)
}

/// Streaming form of [`check`]: `y = A·(B·r)` is computed up front and `C` arrives in chunks of
/// whole rows.
///
/// When `n = 0` every row of `C` is empty, so all `m` rows count as already streamed.
#[derive(Debug)]
pub struct StreamingCheck {
    dims: Dims,
    vectors: Vec<Vec<u64>>,
    path: Path,
    /// `A·(B·r)`, row-major `[row][round]`.
    y: Vec<u64>,
    rows_checked: usize,
}

impl StreamingCheck {
    /// Validate the inputs and compute `A·(B·r)` on the fastest available path.
    pub fn new(a: &[i8], b: &[i8], dims: Dims, vectors: Vec<Vec<u64>>) -> Result<Self, FreivaldsError> {
        Self::with_path(a, b, dims, vectors, Path::detect())
    }

    /// [`StreamingCheck::new`] on a chosen path.
    pub fn with_path(
        a: &[i8],
        b: &[i8],
        dims: Dims,
        vectors: Vec<Vec<u64>>,
        path: Path,
    ) -> Result<Self, FreivaldsError> {
        validate_left(a, b, dims, &vectors, path)?;
        let y = left_side(a, b, dims, &vectors, path);
        let rows_checked = if dims.n == 0 { dims.m } else { 0 };
        Ok(StreamingCheck { dims, vectors, path, y, rows_checked })
    }

    /// Check the next rows of `C` (`rows.len()` a multiple of `n`). On a mismatch the error
    /// names the first bad row by its absolute index; a rejected chunk does not count as
    /// streamed.
    pub fn absorb_rows(&mut self, rows: &[i32]) -> Result<(), FreivaldsError> {
        let n = self.dims.n;
        if n == 0 {
            return if rows.is_empty() {
                Ok(())
            } else {
                Err(FreivaldsError::PartialRow { len: rows.len(), row_len: 0 })
            };
        }
        if !rows.len().is_multiple_of(n) {
            return Err(FreivaldsError::PartialRow { len: rows.len(), row_len: n });
        }
        let count = rows.len() / n;
        let total = self.rows_checked + count;
        if total > self.dims.m {
            return Err(FreivaldsError::TooManyRows { expected: self.dims.m, actual: total });
        }
        let rounds = self.vectors.len();
        let z = raw_i32(rows, count, n, &self.vectors, self.path);
        let y = &self.y[self.rows_checked * rounds..total * rounds];
        first_mismatch(y, &z, rounds, self.rows_checked)?;
        self.rows_checked = total;
        Ok(())
    }

    /// Rows of `C` accepted so far.
    pub fn rows_checked(&self) -> usize {
        self.rows_checked
    }

    /// Accept iff all `m` rows arrived and matched.
    pub fn finish(self) -> Result<(), FreivaldsError> {
        if self.rows_checked < self.dims.m {
            Err(FreivaldsError::MissingRows { expected: self.dims.m, actual: self.rows_checked })
        } else {
            Ok(())
        }
    }
}

/// Plain scalar `u128` reference, for tests. Panics on malformed input.
pub mod reference {
    use super::{add_mod, mul_mod, to_field_i64};

    fn project<T: Copy + Into<i64>>(matrix: &[T], rows: usize, cols: usize, vectors: &[Vec<u64>]) -> Vec<Vec<u64>> {
        vectors
            .iter()
            .map(|v| {
                (0..rows)
                    .map(|i| {
                        matrix[i * cols..(i + 1) * cols]
                            .iter()
                            .zip(v)
                            .fold(0, |acc, (&w, &r)| add_mod(acc, mul_mod(to_field_i64(w.into()), r)))
                    })
                    .collect()
            })
            .collect()
    }

    /// `matrix·v mod q` for each `v`, one vector of length `rows` per `v`.
    pub fn project_i8(matrix: &[i8], rows: usize, cols: usize, vectors: &[Vec<u64>]) -> Vec<Vec<u64>> {
        project(matrix, rows, cols, vectors)
    }

    /// `matrix·v mod q` for each `v`, one vector of length `rows` per `v`.
    pub fn project_i32(matrix: &[i32], rows: usize, cols: usize, vectors: &[Vec<u64>]) -> Vec<Vec<u64>> {
        project(matrix, rows, cols, vectors)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// How matrix entries are drawn.
    #[derive(Clone, Copy, Debug)]
    enum Fill {
        Random,
        Min,
        Max,
        Extremes,
    }

    fn fill_strategy() -> impl Strategy<Value = Fill> {
        prop_oneof![3 => Just(Fill::Random), 1 => Just(Fill::Min), 1 => Just(Fill::Max), 1 => Just(Fill::Extremes)]
    }

    /// How vector entries are drawn: random in [0, q), all q − 1, or a mix of 0, 1, q − 1.
    fn vectors(rng: &mut StdRng, rounds: usize, len: usize, mode: u8) -> Vec<Vec<u64>> {
        (0..rounds)
            .map(|_| {
                (0..len)
                    .map(|_| match mode {
                        0 => rng.gen_range(0..MODULUS),
                        1 => MODULUS - 1,
                        _ => [0, 1, MODULUS - 1, MODULUS - 2, 1 << 60][rng.gen_range(0..5)],
                    })
                    .collect()
            })
            .collect()
    }

    fn matrix_i8(rng: &mut StdRng, len: usize, fill: Fill) -> Vec<i8> {
        (0..len)
            .map(|_| match fill {
                Fill::Random => rng.r#gen(),
                Fill::Min => i8::MIN,
                Fill::Max => i8::MAX,
                Fill::Extremes => [i8::MIN, i8::MAX, -1, 0][rng.gen_range(0..4)],
            })
            .collect()
    }

    fn matrix_i32(rng: &mut StdRng, len: usize, fill: Fill) -> Vec<i32> {
        (0..len)
            .map(|_| match fill {
                Fill::Random => rng.r#gen(),
                Fill::Min => i32::MIN,
                Fill::Max => i32::MAX,
                Fill::Extremes => [i32::MIN, i32::MAX, -1, 0, 1 << 16, -(1 << 16)][rng.gen_range(0..6)],
            })
            .collect()
    }

    /// Column counts: small, around multiples of 8/16/64, and across the 2048-column AVX2 flush
    /// and 8192-column AVX-512 IFMA fold boundaries.
    fn cols_strategy() -> impl Strategy<Value = usize> {
        prop_oneof![4 => 0usize..200, 1 => 1990usize..2110, 1 => 4000usize..5200, 1 => 8150usize..8300]
    }

    fn naive_product(a: &[i8], b: &[i8], dims: Dims) -> Vec<i32> {
        let mut c = vec![0i32; dims.m * dims.n];
        for i in 0..dims.m {
            for l in 0..dims.k {
                let x = i32::from(a[i * dims.k + l]);
                for j in 0..dims.n {
                    c[i * dims.n + j] += x * i32::from(b[l * dims.n + j]);
                }
            }
        }
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]

        #[test]
        fn projections_match_reference(
            rows in 0usize..6,
            cols in cols_strategy(),
            rounds in 1usize..6,
            fill in fill_strategy(),
            vmode in 0u8..3,
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let vs = vectors(&mut rng, rounds, cols, vmode);
            let m8 = matrix_i8(&mut rng, rows * cols, fill);
            let m32 = matrix_i32(&mut rng, rows * cols, fill);
            let want8 = reference::project_i8(&m8, rows, cols, &vs);
            let want32 = reference::project_i32(&m32, rows, cols, &vs);
            for path in Path::available() {
                prop_assert_eq!(&project_i8(&m8, rows, cols, &vs, path).unwrap(), &want8, "i8 {}", path.name());
                prop_assert_eq!(&project_i32(&m32, rows, cols, &vs, path).unwrap(), &want32, "i32 {}", path.name());
            }
        }

        #[test]
        fn check_accepts_correct_and_rejects_single_corruption(
            m in 1usize..12,
            k in 0usize..80,
            n in 1usize..80,
            rounds in 1usize..4,
            fill in fill_strategy(),
            seed in any::<u64>(),
            delta_kind in 0u8..4,
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let dims = Dims { m, k, n };
            let a = matrix_i8(&mut rng, m * k, fill);
            let b = matrix_i8(&mut rng, k * n, fill);
            let mut c = naive_product(&a, &b, dims);
            // Entries in [1, q): a single corrupted entry e·r_j ≠ 0 is then always caught.
            let vs: Vec<Vec<u64>> = (0..rounds).map(|_| (0..n).map(|_| rng.gen_range(1..MODULUS)).collect()).collect();
            for path in Path::available() {
                prop_assert_eq!(check_with_path(&a, &b, &c, dims, &vs, path), Ok(()));
            }
            prop_assert_eq!(check(&a, &b, &c, dims, &vs), Ok(()));
            let (row, col) = (rng.gen_range(0..m), rng.gen_range(0..n));
            let delta = match delta_kind {
                0 => 1,
                1 => -1,
                2 => i32::MIN, // ±2^31 under wrapping
                _ => loop { let d: i32 = rng.r#gen(); if d != 0 { break d; } },
            };
            c[row * n + col] = c[row * n + col].wrapping_add(delta);
            for path in Path::available() {
                match check_with_path(&a, &b, &c, dims, &vs, path) {
                    Err(FreivaldsError::Mismatch { row: r, round: 0, expected, found }) => {
                        prop_assert_eq!(r, row);
                        prop_assert_ne!(expected, found);
                    }
                    other => prop_assert!(false, "{}: expected mismatch in row {row}, got {other:?}", path.name()),
                }
            }
        }

        #[test]
        fn streaming_matches_check(
            m in 0usize..20,
            k in 0usize..40,
            n in 1usize..40,
            corrupt in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let dims = Dims { m, k, n };
            let a = matrix_i8(&mut rng, m * k, Fill::Random);
            let b = matrix_i8(&mut rng, k * n, Fill::Random);
            let mut c = naive_product(&a, &b, dims);
            if corrupt && m > 0 {
                let i = rng.gen_range(0..m * n);
                c[i] = c[i].wrapping_add(rng.gen_range(1..1000));
            }
            let vs = vectors(&mut rng, 2, n, 0);
            let want = check(&a, &b, &c, dims, &vs);
            for path in Path::available() {
                let mut s = StreamingCheck::with_path(&a, &b, dims, vs.clone(), path).unwrap();
                let mut got = Ok(());
                let mut start = 0;
                while start < m {
                    let take = rng.gen_range(1..=m - start);
                    if let Err(e) = s.absorb_rows(&c[start * n..(start + take) * n]) {
                        got = Err(e);
                        break;
                    }
                    start += take;
                    prop_assert_eq!(s.rows_checked(), start);
                }
                if got.is_ok() {
                    prop_assert_eq!(s.absorb_rows(&vec![0; n]), Err(FreivaldsError::TooManyRows { expected: m, actual: m + 1 }));
                    got = s.finish();
                }
                prop_assert_eq!(&got, &want, "{}", path.name());
            }
        }
    }

    #[test]
    fn streaming_too_few_rows_and_ragged_chunks() {
        let dims = Dims { m: 3, k: 2, n: 2 };
        let (a, b) = (vec![1i8; 6], vec![1i8; 4]);
        let c = naive_product(&a, &b, dims);
        let vs = vec![vec![5, 7]];
        let mut s = StreamingCheck::new(&a, &b, dims, vs).unwrap();
        assert_eq!(s.absorb_rows(&c[..3]), Err(FreivaldsError::PartialRow { len: 3, row_len: 2 }));
        s.absorb_rows(&c[..4]).unwrap();
        assert_eq!(s.rows_checked(), 2);
        assert_eq!(s.finish(), Err(FreivaldsError::MissingRows { expected: 3, actual: 2 }));
    }

    #[test]
    fn streaming_reports_absolute_row() {
        let dims = Dims { m: 4, k: 3, n: 2 };
        let (a, b) = (vec![2i8; 12], vec![-3i8; 6]);
        let mut c = naive_product(&a, &b, dims);
        c[3 * 2 + 1] += 1;
        let mut s = StreamingCheck::new(&a, &b, dims, vec![vec![1, 2]]).unwrap();
        s.absorb_rows(&c[..4]).unwrap();
        assert!(matches!(s.absorb_rows(&c[4..]), Err(FreivaldsError::Mismatch { row: 3, round: 0, .. })));
        assert_eq!(s.rows_checked(), 2);
    }

    #[test]
    fn empty_dims_accept() {
        for path in Path::available() {
            for (m, k, n) in [(0, 0, 0), (0, 3, 2), (2, 0, 3), (2, 3, 0), (0, 0, 5)] {
                let dims = Dims { m, k, n };
                let (a, b, c) = (vec![1i8; m * k], vec![1i8; k * n], vec![0i32; m * n].into_iter().collect::<Vec<_>>());
                let c: Vec<i32> = if k == 0 { c } else { naive_product(&a, &b, dims) };
                let vs = vec![vec![3u64; n]];
                assert_eq!(check_with_path(&a, &b, &c, dims, &vs, path), Ok(()));
                let s = StreamingCheck::with_path(&a, &b, dims, vs, path).unwrap();
                if n == 0 || m == 0 {
                    assert_eq!(s.finish(), Ok(()));
                }
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dims = Dims { m: 2, k: 2, n: 2 };
        let (a, b, c) = (vec![0i8; 4], vec![0i8; 4], vec![0i32; 4]);
        let ok = vec![vec![1u64, 2]];
        assert_eq!(check(&a, &b, &c, dims, &[]), Err(FreivaldsError::NoRounds));
        assert_eq!(
            check(&a, &b, &c, dims, &[vec![1, MODULUS]]),
            Err(FreivaldsError::VectorEntryNotReduced { round: 0, index: 1 })
        );
        assert_eq!(
            check(&a, &b, &c, dims, &[vec![1]]),
            Err(FreivaldsError::LengthMismatch { what: "random vector", expected: 2, actual: 1 })
        );
        assert_eq!(
            check(&a[..3], &b, &c, dims, &ok),
            Err(FreivaldsError::LengthMismatch { what: "A", expected: 4, actual: 3 })
        );
        assert_eq!(
            check(&a, &b, &c[..3], dims, &ok),
            Err(FreivaldsError::LengthMismatch { what: "C", expected: 4, actual: 3 })
        );
        let big = Dims { m: MAX_DIM + 1, k: 1, n: 1 };
        assert_eq!(
            check(&[], &[], &[], big, &ok),
            Err(FreivaldsError::DimensionTooLarge { name: "m", value: MAX_DIM + 1, max: MAX_DIM })
        );
        assert!(matches!(
            project_i8(&[], 0, MAX_DIM + 1, &[], Path::Portable),
            Err(FreivaldsError::DimensionTooLarge { name: "cols", .. })
        ));
        assert!(matches!(StreamingCheck::new(&a, &b, dims, vec![]), Err(FreivaldsError::NoRounds)));
        assert_eq!(project_i32(&c, 2, 2, &[], Path::Portable), Ok(vec![]));
        for path in [Path::Avx512, Path::Avx2] {
            if !path.is_available() {
                assert_eq!(
                    check_with_path(&a, &b, &c, dims, &ok, path),
                    Err(FreivaldsError::PathUnavailable { path: path.name() })
                );
            }
        }
        assert_eq!(Path::available().last(), Some(&Path::Portable));
        assert_eq!(Path::available()[0], Path::detect());
    }

    #[test]
    fn field_helpers() {
        assert_eq!(to_field_i64(-1), MODULUS - 1);
        assert_eq!(to_field_i64(i64::MIN), reduce_i128(-(1i128 << 63)));
        assert_eq!(reduce_u128(u128::MAX), (u128::MAX % u128::from(MODULUS)) as u64);
        assert_eq!(reduce_i128(i128::MIN), MODULUS - (i128::MIN.unsigned_abs() % u128::from(MODULUS)) as u64);
        assert_eq!(reduce_u128(u128::from(MODULUS)), 0);
        assert_eq!(mul_mod(MODULUS - 1, MODULUS - 1), 1);
        assert_eq!(add_mod(MODULUS - 1, 1), 0);
        assert_eq!(sub_mod(0, 1), MODULUS - 1);
    }

    /// The longest allowed rows, with the entries that maximise every accumulator.
    #[test]
    fn longest_rows_are_exact() {
        let cols = MAX_DIM;
        let vs = vec![vec![MODULUS - 1; cols], vec![(1 << 61) - 2 - (1 << 52); cols]];
        let m8 = vec![i8::MIN; 2 * cols];
        let want8 = reference::project_i8(&m8, 2, cols, &vs);
        let mut m32 = vec![i32::MIN; cols];
        m32.extend(vec![i32::MAX; cols]);
        let want32 = reference::project_i32(&m32, 2, cols, &vs);
        for path in Path::available() {
            assert_eq!(project_i8(&m8, 2, cols, &vs, path).unwrap(), want8, "{}", path.name());
            assert_eq!(project_i32(&m32, 2, cols, &vs, path).unwrap(), want32, "{}", path.name());
        }
    }
}
