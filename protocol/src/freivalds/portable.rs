//! Portable kernels: plain `i64` limb accumulation, one reduction per dot product.

use rayon::prelude::*;

use super::{reduce_i128, rows_per_task};

/// `out[row·R + round] = (matrix row) · vectors[round] mod q`. `cols ≥ 1`, every vector has
/// length `cols` and entries below `q`, `cols ≤ 2^17`.
pub(super) fn project_i8(matrix: &[i8], cols: usize, vectors: &[Vec<u64>], out: &mut [u64]) {
    let rounds = vectors.len();
    // Each entry v < 2^61 splits into 31-bit limbs: v = lo + 2^31·hi, lo < 2^31, hi < 2^30.
    let limbs: Vec<(Vec<i64>, Vec<i64>)> =
        vectors.iter().map(|v| v.iter().map(|&e| ((e & 0x7FFF_FFFF) as i64, (e >> 31) as i64)).unzip()).collect();
    let per_task = rows_per_task(cols);
    out.par_chunks_mut(per_task * rounds).zip(matrix.par_chunks(per_task * cols)).for_each(|(out, block)| {
        for (out, row) in out.chunks_mut(rounds).zip(block.chunks(cols)) {
            for (o, (lo, hi)) in out.iter_mut().zip(&limbs) {
                // |w·limb| ≤ 128·(2^31 − 1) < 2^38 and cols ≤ 2^17, so |s| < 2^55: exact in i64.
                let (mut s0, mut s1) = (0i64, 0i64);
                for ((&w, &l0), &l1) in row.iter().zip(lo).zip(hi) {
                    s0 += i64::from(w) * l0;
                    s1 += i64::from(w) * l1;
                }
                *o = reduce_i128(i128::from(s0) + (i128::from(s1) << 31));
            }
        }
    });
}

/// As [`project_i8`] for an `i32` matrix.
pub(super) fn project_i32(matrix: &[i32], cols: usize, vectors: &[Vec<u64>], out: &mut [u64]) {
    let rounds = vectors.len();
    let limbs: Vec<(Vec<u64>, Vec<u64>)> =
        vectors.iter().map(|v| v.iter().map(|&e| (e & 0x7FFF_FFFF, e >> 31)).unzip()).collect();
    let per_task = rows_per_task(cols * 4);
    out.par_chunks_mut(per_task * rounds).zip(matrix.par_chunks(per_task * cols)).for_each(|(out, block)| {
        for (out, row) in out.chunks_mut(rounds).zip(block.chunks(cols)) {
            for (o, (l0, l1)) in out.iter_mut().zip(&limbs) {
                *o = dot_i32(row, l0, l1);
            }
        }
    });
}

/// `Σ c_j·(l0_j + 2^31·l1_j) mod q` with `c = lo + 2^16·hi`, `lo ∈ [0, 2^16)`, `hi ∈ [−2^15, 2^15)`.
///
/// Bounds for `cols ≤ 2^17`: `lo·l < 2^16·2^31 = 2^47`, so the unsigned sums stay below `2^64`;
/// `|hi·l| ≤ 2^15·(2^31 − 1)`, so the signed sums stay inside `(−2^63, 2^63)`.
fn dot_i32(row: &[i32], l0: &[u64], l1: &[u64]) -> u64 {
    let (mut a00, mut a01, mut a10, mut a11) = (0u64, 0u64, 0i64, 0i64);
    for ((&c, &x0), &x1) in row.iter().zip(l0).zip(l1) {
        let lo = u64::from(c as u32 & 0xFFFF);
        let hi = i64::from(c >> 16);
        a00 = a00.wrapping_add(lo * x0);
        a01 = a01.wrapping_add(lo * x1);
        a10 = a10.wrapping_add(hi * x0 as i64);
        a11 = a11.wrapping_add(hi * x1 as i64);
    }
    reduce_i128(i128::from(a00) + (i128::from(a01) << 31) + (i128::from(a10) << 16) + (i128::from(a11) << 47))
}
