//! AVX2 micro-kernel: `i16`-packed panels, pairs of `k` values multiplied and summed by
//! `vpmaddwd` (each pair sum is at most `2·128² = 2^15`, exact in `i32`), accumulated with
//! wrapping `i32` adds — bit-identical to every other path.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_cmpgt_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maskload_epi32,
    _mm256_maskstore_epi32, _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setzero_si256, _mm256_sub_epi32,
};

use std::arch::x86_64::{
    _mm_loadu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8, _mm256_cvtepi8_epi16, _mm256_storeu_si256,
};

use super::blocked::{MicroKernel, pack_b_scalar};

/// Rows of the register block.
const MR: usize = 6;
/// `ymm` vectors (of 8 `i32` columns) per row of the register block.
const NV: usize = 2;
const NR: usize = 8 * NV;

/// The AVX2 kernel; only constructible when the CPU supports AVX2.
pub(crate) struct Avx2Kernel {
    _detected: (),
}

impl Avx2Kernel {
    /// `Some` iff the CPU supports AVX2.
    pub(crate) fn new() -> Option<Self> {
        is_x86_feature_detected!("avx2").then_some(Self { _detected: () })
    }
}

impl MicroKernel for Avx2Kernel {
    const MR: usize = MR;
    const NR: usize = NR;
    const KG: usize = 2;
    const KC_GROUPS: usize = 512;
    const MC: usize = 96;
    const BIAS_B: bool = false;
    type PA = i16;
    type PB = i16;

    fn conv_a(x: i8) -> i16 {
        i16::from(x)
    }

    fn conv_b(x: i8) -> i16 {
        i16::from(x)
    }

    fn pack_b(&self, b: &[i8], k: usize, n: usize, jp: usize, g0: usize, out: &mut [i16]) {
        let j0 = jp * NR;
        for (g, grp) in out.chunks_exact_mut(NR * 2).enumerate() {
            let p0 = (g0 + g) * 2;
            if p0 + 2 > k || j0 + NR > n {
                // A group at the end of `k` or a panel at the end of `n`: zero padding, scalar.
                pack_b_scalar::<Self>(b, k, n, jp, g0 + g, grp);
                continue;
            }
            let pair = [&b[p0 * n + j0..][..NR], &b[(p0 + 1) * n + j0..][..NR]];
            // SAFETY: `self` exists only if AVX2 was detected.
            unsafe { interleave_pair(pair, grp) };
        }
    }

    fn run(
        &self,
        ap: &[i16],
        bp: &[i16],
        groups: usize,
        c: &mut [i32],
        ldc: usize,
        rows: usize,
        cols: usize,
        first: bool,
        corr: &[i32],
    ) {
        assert!(
            (1..=MR).contains(&rows)
                && (1..=NR).contains(&cols)
                && ap.len() >= groups * MR * 2
                && bp.len() >= groups * NR * 2
                && corr.len() >= rows
                && c.len() >= (rows - 1) * ldc + cols,
            "AVX2 micro-kernel called with inconsistent panel sizes"
        );
        // SAFETY: `self` exists only if `new` detected avx2 on this CPU. The assert above bounds
        // every access: `groups·MR·2` elements of `ap`, `groups·NR·2` of `bp`, `corr[..rows]`,
        // and only `c[r·ldc + j]` for `r < rows`, `j < cols` (masked loads/stores elsewhere).
        unsafe { kernel(ap.as_ptr(), bp.as_ptr(), groups, c.as_mut_ptr(), ldc, rows, cols, first, corr.as_ptr()) }
    }
}

/// Writes 2 rows × 16 columns of `B` as 16 pairs of `i16` (`dst[2c + t] = rows[t][c]`), the
/// packed layout of one group of the `B` micro-panel: a byte unpack and two sign extensions
/// instead of 32 scalar stores.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn interleave_pair(rows: [&[i8]; 2], dst: &mut [i16]) {
    assert!(rows.iter().all(|r| r.len() == NR) && dst.len() == 2 * NR, "interleave_pair: 2×16 in, 32 out");
    // SAFETY: the assert bounds the two 16-byte loads and the two 32-byte stores (unaligned).
    unsafe {
        let r0 = _mm_loadu_si128(rows[0].as_ptr().cast());
        let r1 = _mm_loadu_si128(rows[1].as_ptr().cast());
        let lo = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(r0, r1));
        let hi = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(r0, r1));
        _mm256_storeu_si256(dst.as_mut_ptr().cast(), lo);
        _mm256_storeu_si256(dst.as_mut_ptr().add(16).cast(), hi);
    }
}

/// The `MR×NR` register-blocked product; see [`MicroKernel::run`].
///
/// # Safety
/// The CPU must support avx2; `ap` must be valid for `groups·MR·2` reads, `bp` for
/// `groups·NR·2`, `corr` for `rows`, and `c[r·ldc + j]` for `r < rows ≤ MR`, `j < cols ≤ NR`
/// for reads and writes.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    ap: *const i16,
    bp: *const i16,
    groups: usize,
    c: *mut i32,
    ldc: usize,
    rows: usize,
    cols: usize,
    first: bool,
    corr: *const i32,
) {
    let mut acc: [[__m256i; NV]; MR] = [[_mm256_setzero_si256(); NV]; MR];
    let mut a = ap;
    let mut b = bp;
    for _ in 0..groups {
        let mut bv = [_mm256_setzero_si256(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            // SAFETY: group `g` of the B micro-panel is `NR·2 = NV·16` elements at `b`.
            *x = unsafe { _mm256_loadu_si256(b.add(v * 16).cast()) };
        }
        for (r, accr) in acc.iter_mut().enumerate() {
            // SAFETY: group `g` of the A micro-panel is `MR·2` elements at `a`.
            let av = _mm256_set1_epi32(unsafe { a.add(r * 2).cast::<i32>().read_unaligned() });
            for (x, &bvv) in accr.iter_mut().zip(&bv) {
                *x = _mm256_add_epi32(*x, _mm256_madd_epi16(bvv, av));
            }
        }
        // SAFETY: advancing to the next group stays within (or one past) the panels.
        unsafe {
            a = a.add(MR * 2);
            b = b.add(NR * 2);
        }
    }
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (r, accr) in acc.iter().enumerate() {
        if r >= rows {
            break;
        }
        // SAFETY: `r < rows`, so `corr[r]` is in bounds.
        let cv = _mm256_set1_epi32(unsafe { corr.add(r).read() });
        for (v, &x) in accr.iter().enumerate() {
            let col0 = v * 8;
            if col0 >= cols {
                break;
            }
            let rem = (cols - col0).min(8) as i32;
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), lanes);
            // SAFETY: `r < rows`; the mask enables only columns `col0 + i < cols`, and masked-off
            // lanes are neither read nor written (no fault).
            unsafe {
                let p = c.add(r * ldc + col0);
                let val =
                    if first { _mm256_sub_epi32(x, cv) } else { _mm256_add_epi32(x, _mm256_maskload_epi32(p, mask)) };
                _mm256_maskstore_epi32(p, mask, val);
            }
        }
    }
}
