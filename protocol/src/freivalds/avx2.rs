//! AVX2 kernels: `vpmaddwd` against balanced 16-bit digits for the `i8` matrices, `vpmuludq` /
//! `vpmuldq` on 31-bit limbs for `C`.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{reduce_i128, rows_per_task};

/// Whether the CPU has every feature the kernels here use.
pub(super) fn supported() -> bool {
    is_x86_feature_detected!("avx2")
}

/// i16 entries of the digit table per 16 columns: 4 digits × 16 lanes.
const DIGIT_CHUNK: usize = 4 * 16;

/// 16-column steps between flushes of the i32 accumulators (see [`dot_i8`]).
const FLUSH: usize = 128;

/// `out[row·R + round] = (matrix row) · vectors[round] mod q`. `cols ≥ 1`, every vector has
/// length `cols` and entries below `q`, `cols ≤ 2^17`. Falls back to the portable kernel if the
/// CPU lacks AVX2 (callers check first, so that does not happen).
pub(super) fn project_i8(matrix: &[i8], cols: usize, vectors: &[Vec<u64>], out: &mut [u64]) {
    if !supported() {
        return super::portable::project_i8(matrix, cols, vectors, out);
    }
    let rounds = vectors.len();
    let chunks = cols.div_ceil(16);
    // digits[round][chunk][p][lane]: balanced base-2^16 digits d_p ∈ [−2^15, 2^15) with
    // v = Σ_p d_p·2^{16p}; four digits suffice for v < 2^61. Zero past `cols`.
    let mut digits = vec![0i16; rounds * chunks * DIGIT_CHUNK];
    for (v, table) in vectors.iter().zip(digits.chunks_mut(chunks * DIGIT_CHUNK)) {
        for (j, &e) in v.iter().enumerate() {
            let base = (j / 16) * DIGIT_CHUNK + j % 16;
            let mut rest = e as i64;
            for p in 0..4 {
                let d = rest as i16; // low 16 bits, read as signed: balanced digit
                table[base + p * 16] = d;
                rest = (rest - i64::from(d)) >> 16;
            }
            debug_assert_eq!(rest, 0);
        }
    }
    let per_task = rows_per_task(cols);
    out.par_chunks_mut(per_task * rounds).zip(matrix.par_chunks(per_task * cols)).for_each(|(out, block)| {
        let mut pairs = block.chunks_exact(2 * cols);
        let mut outs = out.chunks_exact_mut(2 * rounds);
        for (pair, out) in (&mut pairs).zip(&mut outs) {
            let (r0, r1) = pair.split_at(cols);
            for (round, table) in digits.chunks_exact(chunks * DIGIT_CHUNK).enumerate() {
                // SAFETY: `supported()` returned true above, so the CPU has AVX2; both rows have
                // `cols` entries and `table` holds `cols.div_ceil(16)` digit chunks.
                let [s0, s1] = unsafe { dot_i8::<2>([r0, r1], table) };
                out[round] = reduce_i128(s0);
                out[rounds + round] = reduce_i128(s1);
            }
        }
        let row = pairs.remainder();
        if !row.is_empty() {
            let out = outs.into_remainder();
            for (round, table) in digits.chunks_exact(chunks * DIGIT_CHUNK).enumerate() {
                // SAFETY: as above, for the single leftover row of length `cols`.
                let [s] = unsafe { dot_i8::<1>([row], table) };
                out[round] = reduce_i128(s);
            }
        }
    });
}

/// Exact `Σ_j row[j]·v[j]` for each row, where `table` holds the 4 balanced digits of `v`.
///
/// Per 16 columns and digit `p`, `vpmaddwd` adds to each i32 lane two products of an i8
/// (|·| ≤ 128) and a digit (|·| ≤ 2^15): at most `2^23` in absolute value. The i32
/// accumulators are flushed into i64 every [`FLUSH`] = 128 steps, so `|lane| ≤ 2^30`. Each
/// digit sum is below `2^17·2^22 = 2^39` and `Σ_p 2^{16p}·s_p < 2^88` fits the returned i128.
///
/// # Safety
/// The CPU must support AVX2. All rows must have the same length `cols` and
/// `table.len() ≥ cols.div_ceil(16)·64`.
#[target_feature(enable = "avx2")]
unsafe fn dot_i8<const ROWS: usize>(rows: [&[i8]; ROWS], table: &[i16]) -> [i128; ROWS] {
    let cols = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == cols) && table.len() >= cols.div_ceil(16) * DIGIT_CHUNK);
    let chunks = cols.div_ceil(16);
    let full = cols / 16;
    let mut acc = [[_mm256_setzero_si256(); 4]; ROWS];
    let mut sums = [[0i64; 4]; ROWS];
    let tp = table.as_ptr();
    let mut c = 0;
    while c < chunks {
        let end = (c + FLUSH).min(chunks);
        for c in c..end {
            let mut w = [_mm256_setzero_si256(); ROWS];
            for (w, row) in w.iter_mut().zip(&rows) {
                *w = if c < full {
                    // SAFETY: 16·c + 16 ≤ 16·full ≤ cols = row.len().
                    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(row.as_ptr().add(16 * c).cast()) })
                } else {
                    let mut buf = [0i8; 16];
                    buf[..cols - 16 * c].copy_from_slice(&row[16 * c..]);
                    // SAFETY: `buf` is 16 readable bytes.
                    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(buf.as_ptr().cast()) })
                };
            }
            for p in 0..4 {
                // SAFETY: (c·4 + p)·16 + 16 ≤ chunks·64 ≤ table.len().
                let v = unsafe { _mm256_loadu_si256(tp.add(c * DIGIT_CHUNK + p * 16).cast()) };
                for (acc, w) in acc.iter_mut().zip(&w) {
                    acc[p] = _mm256_add_epi32(acc[p], _mm256_madd_epi16(*w, v));
                }
            }
        }
        for (acc, sums) in acc.iter_mut().zip(sums.iter_mut()) {
            for (a, s) in acc.iter_mut().zip(sums.iter_mut()) {
                let mut buf = [0i32; 8];
                // SAFETY: `buf` is 32 writable bytes; unaligned store.
                unsafe { _mm256_storeu_si256(buf.as_mut_ptr().cast(), *a) };
                *s += buf.iter().map(|&x| i64::from(x)).sum::<i64>();
                *a = _mm256_setzero_si256();
            }
        }
        c = end;
    }
    let mut result = [0i128; ROWS];
    for (res, sums) in result.iter_mut().zip(&sums) {
        for (p, &s) in sums.iter().enumerate() {
            *res += i128::from(s) << (16 * p);
        }
    }
    result
}

/// As [`project_i8`] for an `i32` matrix.
pub(super) fn project_i32(matrix: &[i32], cols: usize, vectors: &[Vec<u64>], out: &mut [u64]) {
    if !supported() {
        return super::portable::project_i32(matrix, cols, vectors, out);
    }
    let rounds = vectors.len();
    let padded = cols.div_ceil(8) * 8;
    // 31-bit limbs v = l0 + 2^31·l1 (l0 < 2^31, l1 < 2^30) as u32, zero-padded to 8 columns.
    let limbs: Vec<(Vec<u32>, Vec<u32>)> = vectors
        .iter()
        .map(|v| {
            let mut l0 = vec![0u32; padded];
            let mut l1 = vec![0u32; padded];
            for (j, &e) in v.iter().enumerate() {
                l0[j] = (e & 0x7FFF_FFFF) as u32;
                l1[j] = (e >> 31) as u32;
            }
            (l0, l1)
        })
        .collect();
    let per_task = rows_per_task(cols * 4);
    out.par_chunks_mut(per_task * rounds).zip(matrix.par_chunks(per_task * cols)).for_each(|(out, block)| {
        for (out, row) in out.chunks_mut(rounds).zip(block.chunks(cols)) {
            let mut g = 0;
            while g < rounds {
                if rounds - g >= 2 {
                    let ls = [(&limbs[g].0[..], &limbs[g].1[..]), (&limbs[g + 1].0[..], &limbs[g + 1].1[..])];
                    // SAFETY: `supported()` returned true above; limbs have `padded` entries.
                    let s = unsafe { dot_i32::<2>(row, ls) };
                    out[g] = reduce_i128(s[0]);
                    out[g + 1] = reduce_i128(s[1]);
                    g += 2;
                } else {
                    // SAFETY: as above.
                    let [s] = unsafe { dot_i32::<1>(row, [(&limbs[g].0[..], &limbs[g].1[..])]) };
                    out[g] = reduce_i128(s);
                    g += 1;
                }
            }
        }
    });
}

/// Exact `Σ_j row[j]·(l0[j] + 2^31·l1[j])` for each limb pair.
///
/// `c = lo + 2^16·hi` with `lo ∈ [0, 2^16)` and `hi ∈ [−2^15, 2^15)`; four i64 accumulators per
/// round hold `Σ lo·l0`, `Σ lo·l1`, `Σ hi·l0`, `Σ hi·l1`. Each product is below `2^47` in
/// absolute value; each 64-bit lane takes two products (an even and an odd column) per 8
/// columns, so at most `2·2^17/8 = 2^15` products: `|lane| < 2^62`, exact in i64. The combination
/// `A00 + 2^31·A01 + 2^16·A10 + 2^47·A11` is below `2^112` in absolute value: exact in i128.
///
/// # Safety
/// The CPU must support AVX2; every limb slice must have at least `row.len().div_ceil(8)·8`
/// entries.
#[target_feature(enable = "avx2")]
unsafe fn dot_i32<const R: usize>(row: &[i32], ls: [(&[u32], &[u32]); R]) -> [i128; R] {
    let cols = row.len();
    let padded = cols.div_ceil(8) * 8;
    assert!(ls.iter().all(|(a, b)| a.len() >= padded && b.len() >= padded));
    let low16 = _mm256_set1_epi32(0xFFFF);
    let mut a00 = [_mm256_setzero_si256(); R];
    let mut a01 = [_mm256_setzero_si256(); R];
    let mut a10 = [_mm256_setzero_si256(); R];
    let mut a11 = [_mm256_setzero_si256(); R];
    for c in 0..padded / 8 {
        let cv = if 8 * c + 8 <= cols {
            // SAFETY: 8·c + 8 ≤ cols = row.len().
            unsafe { _mm256_loadu_si256(row.as_ptr().add(8 * c).cast()) }
        } else {
            let mut buf = [0i32; 8];
            buf[..cols - 8 * c].copy_from_slice(&row[8 * c..]);
            // SAFETY: `buf` is 32 readable bytes.
            unsafe { _mm256_loadu_si256(buf.as_ptr().cast()) }
        };
        let lo = _mm256_and_si256(cv, low16);
        let hi = _mm256_srai_epi32::<16>(cv);
        let lo_odd = _mm256_srli_epi64::<32>(lo);
        let hi_odd = _mm256_srli_epi64::<32>(hi);
        for i in 0..R {
            // SAFETY: 8·c + 8 ≤ padded ≤ the limb slices' lengths.
            let (l0, l1) = unsafe {
                (
                    _mm256_loadu_si256(ls[i].0.as_ptr().add(8 * c).cast()),
                    _mm256_loadu_si256(ls[i].1.as_ptr().add(8 * c).cast()),
                )
            };
            let l0_odd = _mm256_srli_epi64::<32>(l0);
            let l1_odd = _mm256_srli_epi64::<32>(l1);
            a00[i] =
                _mm256_add_epi64(a00[i], _mm256_add_epi64(_mm256_mul_epu32(lo, l0), _mm256_mul_epu32(lo_odd, l0_odd)));
            a01[i] =
                _mm256_add_epi64(a01[i], _mm256_add_epi64(_mm256_mul_epu32(lo, l1), _mm256_mul_epu32(lo_odd, l1_odd)));
            a10[i] =
                _mm256_add_epi64(a10[i], _mm256_add_epi64(_mm256_mul_epi32(hi, l0), _mm256_mul_epi32(hi_odd, l0_odd)));
            a11[i] =
                _mm256_add_epi64(a11[i], _mm256_add_epi64(_mm256_mul_epi32(hi, l1), _mm256_mul_epi32(hi_odd, l1_odd)));
        }
    }
    let mut result = [0i128; R];
    for i in 0..R {
        result[i] = lanes(a00[i]) + (lanes(a01[i]) << 31) + (lanes(a10[i]) << 16) + (lanes(a11[i]) << 47);
    }
    result
}

/// Sum of the four i64 lanes, as i128.
#[target_feature(enable = "avx2")]
fn lanes(a: __m256i) -> i128 {
    let mut buf = [0i64; 4];
    // SAFETY: `buf` is 32 writable bytes; unaligned store.
    unsafe { _mm256_storeu_si256(buf.as_mut_ptr().cast(), a) };
    buf.iter().map(|&x| i128::from(x)).sum()
}
