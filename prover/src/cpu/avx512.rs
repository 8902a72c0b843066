//! AVX-512 VNNI micro-kernel (`vpdpbusd`: `u8 × i8 → i32`, sums of 4).
//!
//! `vpdpbusd` needs one unsigned operand. `B` is packed biased, `b' = b + 128 ∈ 0..=255` (as
//! `u8`), and `A` is broadcast as signed `i8`; then `Σ a·b' = Σ a·b + 128·Σ a`, so the kernel
//! subtracts `128·rowsum(A)` (computed by the driver) when it first writes a tile. All of this
//! is wrapping `i32` arithmetic (`vpdpbusd` wraps, it does not saturate), so the result is the
//! exact product mod `2^32`, bit-identical to every other path.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512i, __mmask16, _mm512_add_epi32, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_mask_storeu_epi32,
    _mm512_maskz_loadu_epi32, _mm512_set1_epi32, _mm512_setzero_si512, _mm512_sub_epi32,
};

use super::blocked::MicroKernel;

/// Rows of the register block.
const MR: usize = 4;
/// `zmm` vectors (of 16 `i32` columns) per row of the register block.
const NV: usize = 6;
const NR: usize = 16 * NV;

/// The VNNI kernel; only constructible when the CPU has the features it needs.
pub(crate) struct VnniKernel {
    _detected: (),
}

impl VnniKernel {
    /// `Some` iff the CPU supports AVX-512 F, BW and VNNI.
    pub(crate) fn new() -> Option<Self> {
        let ok = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni");
        ok.then_some(Self { _detected: () })
    }
}

impl MicroKernel for VnniKernel {
    const MR: usize = MR;
    const NR: usize = NR;
    const KG: usize = 4;
    const KC_GROUPS: usize = 512;
    const MC: usize = 128;
    const BIAS_B: bool = true;
    type PA = i8;
    type PB = u8;

    fn conv_a(x: i8) -> i8 {
        x
    }

    fn conv_b(x: i8) -> u8 {
        (x as u8) ^ 0x80
    }

    fn run(
        &self,
        ap: &[i8],
        bp: &[u8],
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
                && ap.len() >= groups * MR * 4
                && bp.len() >= groups * NR * 4
                && corr.len() >= rows
                && c.len() >= (rows - 1) * ldc + cols,
            "VNNI micro-kernel called with inconsistent panel sizes"
        );
        // SAFETY: `self` exists only if `new` detected avx512f/bw/vnni on this CPU. The assert
        // above bounds every access the kernel makes: it reads `groups·MR·4` bytes of `ap`,
        // `groups·NR·4` bytes of `bp`, `corr[..rows]`, and reads/writes only `c[r·ldc + j]`
        // for `r < rows`, `j < cols` (masked loads/stores suppress the other lanes).
        unsafe { kernel(ap.as_ptr(), bp.as_ptr(), groups, c.as_mut_ptr(), ldc, rows, cols, first, corr.as_ptr()) }
    }
}

/// The `MR×NR` register-blocked product; see [`MicroKernel::run`].
///
/// # Safety
/// The CPU must support avx512f/bw/vnni; `ap` must be valid for `groups·MR·4` reads, `bp`
/// for `groups·NR·4`, `corr` for `rows`, and `c[r·ldc + j]` for `r < rows ≤ MR`,
/// `j < cols ≤ NR` for reads and writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    ap: *const i8,
    bp: *const u8,
    groups: usize,
    c: *mut i32,
    ldc: usize,
    rows: usize,
    cols: usize,
    first: bool,
    corr: *const i32,
) {
    let mut acc: [[__m512i; NV]; MR] = [[_mm512_setzero_si512(); NV]; MR];
    let mut a = ap;
    let mut b = bp;
    for _ in 0..groups {
        let mut bv = [_mm512_setzero_si512(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            // SAFETY: group `g` of the B micro-panel is `NR·4 = NV·64` bytes at `b`, in bounds.
            *x = unsafe { _mm512_loadu_si512(b.add(v * 64).cast()) };
        }
        for (r, accr) in acc.iter_mut().enumerate() {
            // SAFETY: group `g` of the A micro-panel is `MR·4` bytes at `a`, in bounds.
            let av = _mm512_set1_epi32(unsafe { a.add(r * 4).cast::<i32>().read_unaligned() });
            for (x, &bvv) in accr.iter_mut().zip(&bv) {
                *x = _mm512_dpbusd_epi32(*x, bvv, av);
            }
        }
        // SAFETY: advancing to the next group stays within (or one past) the panels.
        unsafe {
            a = a.add(MR * 4);
            b = b.add(NR * 4);
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        if r >= rows {
            break;
        }
        // SAFETY: `r < rows`, so `corr[r]` is in bounds.
        let cv = _mm512_set1_epi32(unsafe { corr.add(r).read() });
        for (v, &x) in accr.iter().enumerate() {
            let col0 = v * 16;
            if col0 >= cols {
                break;
            }
            let rem = cols - col0;
            let mask: __mmask16 = if rem >= 16 { 0xFFFF } else { (1u16 << rem) - 1 };
            // SAFETY: `r < rows`, and the mask enables only columns `col0 + i < cols`; masked-off
            // lanes are neither read nor written (no fault).
            unsafe {
                let p = c.add(r * ldc + col0);
                let val = if first {
                    _mm512_sub_epi32(x, cv)
                } else {
                    _mm512_add_epi32(x, _mm512_maskz_loadu_epi32(mask, p))
                };
                _mm512_mask_storeu_epi32(p, mask, val);
            }
        }
    }
}
