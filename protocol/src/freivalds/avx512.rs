//! AVX-512 kernels: VNNI `vpdpbusd` for the `i8` matrices, IFMA `vpmadd52{l,h}uq` for `C`.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{mul_mod, reduce_i128, reduce_u128, rows_per_task, sub_mod};

/// Whether the CPU has every feature the kernels here use.
pub(super) fn supported() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("avx512ifma")
}

/// Bytes of the byte-plane table per 64 columns: 8 limbs × 64 bytes.
const PLANE_CHUNK: usize = 8 * 64;

/// `out[row·R + round] = (matrix row) · vectors[round] mod q`. `cols ≥ 1`, every vector has
/// length `cols` and entries below `q`, `cols ≤ 2^17`. Falls back to the portable kernel if the
/// CPU lacks a feature (callers check first, so that does not happen).
pub(super) fn project_i8(matrix: &[i8], cols: usize, vectors: &[Vec<u64>], out: &mut [u64]) {
    if !supported() {
        return super::portable::project_i8(matrix, cols, vectors, out);
    }
    let rounds = vectors.len();
    let chunks = cols.div_ceil(64);
    // planes[round][chunk][p][lane] = byte p of vectors[round][64·chunk + lane], zero-padded.
    let mut planes = vec![0u8; rounds * chunks * PLANE_CHUNK];
    for (v, table) in vectors.iter().zip(planes.chunks_mut(chunks * PLANE_CHUNK)) {
        for (j, &e) in v.iter().enumerate() {
            let base = (j / 64) * PLANE_CHUNK + j % 64;
            for p in 0..8 {
                table[base + p * 64] = (e >> (8 * p)) as u8;
            }
        }
    }
    let per_task = rows_per_task(cols);
    out.par_chunks_mut(per_task * rounds).zip(matrix.par_chunks(per_task * cols)).for_each(|(out, block)| {
        let mut pairs = block.chunks_exact(2 * cols);
        let mut outs = out.chunks_exact_mut(2 * rounds);
        for (pair, out) in (&mut pairs).zip(&mut outs) {
            let (r0, r1) = pair.split_at(cols);
            for (round, table) in planes.chunks_exact(chunks * PLANE_CHUNK).enumerate() {
                // SAFETY: `supported()` returned true above, so the CPU has avx512f/bw/vnni; both
                // rows have `cols` entries and `table` holds `cols.div_ceil(64)` plane chunks.
                let [s0, s1] = unsafe { dot_i8::<2>([r0, r1], table) };
                out[round] = reduce_i128(s0);
                out[rounds + round] = reduce_i128(s1);
            }
        }
        let row = pairs.remainder();
        if !row.is_empty() {
            let out = outs.into_remainder();
            for (round, table) in planes.chunks_exact(chunks * PLANE_CHUNK).enumerate() {
                // SAFETY: as above, for the single leftover row of length `cols`.
                let [s] = unsafe { dot_i8::<1>([row], table) };
                out[round] = reduce_i128(s);
            }
        }
    });
}

/// Exact `Σ_j row[j]·v[j]` for each row, where `table` holds the 8 byte planes of `v`.
///
/// Per 64 columns and limb `p`, `vpdpbusd` adds to each i32 lane four products of a byte
/// (≤ 255) and an i8 (|·| ≤ 128): at most `4·255·128 < 2^17` in absolute value. A lane sees
/// `cols/64 ≤ 2^11` instructions, so `|lane| < 2^28`: no i32 overflow. Each limb sum
/// `s_p = Σ_lanes` is at most `2^17·255·128 < 2^32` (summed in i64), and
/// `Σ_p 2^{8p}·s_p < 2^89` fits the returned i128.
///
/// # Safety
/// The CPU must support avx512f, avx512bw and avx512vnni. All rows must have the same length
/// `cols` and `table.len() ≥ cols.div_ceil(64)·512`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_i8<const ROWS: usize>(rows: [&[i8]; ROWS], table: &[u8]) -> [i128; ROWS] {
    let cols = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == cols) && table.len() >= cols.div_ceil(64) * PLANE_CHUNK);
    let full = cols / 64;
    let mut acc = [[_mm512_setzero_si512(); 8]; ROWS];
    let tp = table.as_ptr();
    for c in 0..full {
        let mut w = [_mm512_setzero_si512(); ROWS];
        for (w, row) in w.iter_mut().zip(&rows) {
            // SAFETY: 64·c + 64 ≤ 64·full ≤ cols = row.len().
            *w = unsafe { _mm512_loadu_si512(row.as_ptr().add(64 * c).cast()) };
        }
        for p in 0..8 {
            // SAFETY: (c·8 + p)·64 + 64 ≤ full·512 ≤ table.len().
            let v = unsafe { _mm512_loadu_si512(tp.add(c * PLANE_CHUNK + p * 64).cast()) };
            for (acc, w) in acc.iter_mut().zip(&w) {
                acc[p] = _mm512_dpbusd_epi32(acc[p], v, *w);
            }
        }
    }
    let rem = cols - 64 * full;
    if rem > 0 {
        let mask: __mmask64 = (1u64 << rem) - 1;
        let mut w = [_mm512_setzero_si512(); ROWS];
        for (w, row) in w.iter_mut().zip(&rows) {
            // SAFETY: only the first `rem` bytes from offset 64·full are read (masked load,
            // masked-off bytes are not accessed), and 64·full + rem = cols = row.len().
            *w = unsafe { _mm512_maskz_loadu_epi8(mask, row.as_ptr().add(64 * full)) };
        }
        for p in 0..8 {
            // SAFETY: the table has `full + 1` chunks here, zero-padded past `cols`.
            let v = unsafe { _mm512_loadu_si512(tp.add(full * PLANE_CHUNK + p * 64).cast()) };
            for (acc, w) in acc.iter_mut().zip(&w) {
                acc[p] = _mm512_dpbusd_epi32(acc[p], v, *w);
            }
        }
    }
    let mut result = [0i128; ROWS];
    for (res, acc) in result.iter_mut().zip(&acc) {
        for (p, &a) in acc.iter().enumerate() {
            let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(a));
            let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(a));
            let s = _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi));
            *res += i128::from(s) << (8 * p);
        }
    }
    result
}

/// IFMA iterations (8 columns each) between folds of the low accumulators.
const FOLD: usize = 1024;

/// As [`project_i8`] for an `i32` matrix.
pub(super) fn project_i32(matrix: &[i32], cols: usize, vectors: &[Vec<u64>], out: &mut [u64]) {
    if !supported() {
        return super::portable::project_i32(matrix, cols, vectors, out);
    }
    let rounds = vectors.len();
    // c + 2^31 = c ^ 2^31 (as u32), so Σ c·r = Σ (c ^ 2^31)·r − 2^31·Σ r.
    let bias: Vec<u64> =
        vectors.iter().map(|v| mul_mod(1 << 31, reduce_u128(v.iter().map(|&e| u128::from(e)).sum()))).collect();
    let per_task = rows_per_task(cols * 4);
    out.par_chunks_mut(per_task * rounds).zip(matrix.par_chunks(per_task * cols)).for_each(|(out, block)| {
        for (out, row) in out.chunks_mut(rounds).zip(block.chunks(cols)) {
            let mut g = 0;
            while g < rounds {
                let group = (rounds - g).min(4);
                let sums: [u128; 4] = match group {
                    1 => pad(dot_i32_group::<1>(row, vectors, g)),
                    2 => pad(dot_i32_group::<2>(row, vectors, g)),
                    3 => pad(dot_i32_group::<3>(row, vectors, g)),
                    _ => dot_i32_group::<4>(row, vectors, g),
                };
                for i in 0..group {
                    out[g + i] = sub_mod(reduce_u128(sums[i]), bias[g + i]);
                }
                g += group;
            }
        }
    });
}

fn pad<const R: usize>(s: [u128; R]) -> [u128; 4] {
    let mut out = [0; 4];
    out[..R].copy_from_slice(&s);
    out
}

fn dot_i32_group<const R: usize>(row: &[i32], vectors: &[Vec<u64>], g: usize) -> [u128; R] {
    let vs: [&[u64]; R] = std::array::from_fn(|i| vectors[g + i].as_slice());
    // SAFETY: only reached from `project_i32` after `supported()` returned true (avx512f and
    // avx512ifma present); every vector has the row's length.
    unsafe { dot_i32::<R>(row, vs) }
}

/// Exact `Σ_j (row[j] + 2^31)·v[j]` for each `v` (entries below 2^61).
///
/// With `c = row[j] ^ 2^31 < 2^32` and `v = v0 + 2^52·v1` (`v0 < 2^52`, `v1 < 2^9`):
/// `c·v = lo52(c·v0) + 2^52·(hi52(c·v0) + c·v1)`, where `lo52 < 2^52`, `hi52 < 2^32` and
/// `c·v1 < 2^41 < 2^52` (so `vpmadd52luq` yields it exactly). A 64-bit lane sees
/// `cols/8 ≤ 2^14` columns. `acc_h` and `acc_r` grow by `< 2^32` and `< 2^41` per column:
/// `< 2^56` in total, plus the folds. `acc_l` grows by `< 2^52` per column; every [`FOLD`] = 1024
/// columns its bits from 52 up move into `acc_h` (adding `< 2^12` there), so
/// `acc_l < 2^52 + 1025·2^52 < 2^63` always.
///
/// # Safety
/// The CPU must support avx512f and avx512ifma; every `v` must have `row.len()` entries.
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn dot_i32<const R: usize>(row: &[i32], vs: [&[u64]; R]) -> [u128; R] {
    let cols = row.len();
    assert!(vs.iter().all(|v| v.len() == cols));
    let bias = _mm256_set1_epi32(i32::MIN);
    let mask52 = _mm512_set1_epi64((1 << 52) - 1);
    let mut acc_l = [_mm512_setzero_si512(); R];
    let mut acc_h = [_mm512_setzero_si512(); R];
    let mut acc_r = [_mm512_setzero_si512(); R];
    let full = cols / 8;
    let mut c = 0;
    while c < full {
        let end = (c + FOLD).min(full);
        for c in c..end {
            // SAFETY: 8·c + 8 ≤ 8·full ≤ cols.
            let raw = unsafe { _mm256_loadu_si256(row.as_ptr().add(8 * c).cast()) };
            let x = _mm512_cvtepu32_epi64(_mm256_xor_si256(raw, bias));
            for i in 0..R {
                // SAFETY: 8·c + 8 ≤ cols = vs[i].len().
                let v = unsafe { _mm512_loadu_si512(vs[i].as_ptr().add(8 * c).cast()) };
                acc_l[i] = _mm512_madd52lo_epu64(acc_l[i], x, v);
                acc_h[i] = _mm512_madd52hi_epu64(acc_h[i], x, v);
                acc_r[i] = _mm512_madd52lo_epu64(acc_r[i], x, _mm512_srli_epi64::<52>(v));
            }
        }
        for i in 0..R {
            acc_h[i] = _mm512_add_epi64(acc_h[i], _mm512_srli_epi64::<52>(acc_l[i]));
            acc_l[i] = _mm512_and_si512(acc_l[i], mask52);
        }
        c = end;
    }
    let rem = cols - 8 * full;
    if rem > 0 {
        let mask8: __mmask8 = (1u8 << rem) - 1;
        // SAFETY: masked loads read only the first `rem` elements from offset 8·full, and
        // 8·full + rem = cols; masked-off lanes are zero (their `v` is zero, so they add 0).
        let raw = unsafe { _mm512_maskz_loadu_epi32(u16::from(mask8), row.as_ptr().add(8 * full)) };
        let x = _mm512_cvtepu32_epi64(_mm256_xor_si256(_mm512_castsi512_si256(raw), bias));
        for i in 0..R {
            // SAFETY: as above.
            let v = unsafe { _mm512_maskz_loadu_epi64(mask8, vs[i].as_ptr().add(8 * full).cast()) };
            acc_l[i] = _mm512_madd52lo_epu64(acc_l[i], x, v);
            acc_h[i] = _mm512_madd52hi_epu64(acc_h[i], x, v);
            acc_r[i] = _mm512_madd52lo_epu64(acc_r[i], x, _mm512_srli_epi64::<52>(v));
        }
    }
    let mut result = [0u128; R];
    for i in 0..R {
        result[i] = lanes(acc_l[i]) + ((lanes(acc_h[i]) + lanes(acc_r[i])) << 52);
    }
    result
}

/// Sum of the eight u64 lanes, as u128.
#[target_feature(enable = "avx512f")]
fn lanes(a: __m512i) -> u128 {
    let mut buf = [0u64; 8];
    // SAFETY: `buf` is 64 writable bytes; unaligned store.
    unsafe { _mm512_storeu_si512(buf.as_mut_ptr().cast(), a) };
    buf.iter().map(|&x| u128::from(x)).sum()
}
