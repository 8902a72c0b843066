//! Portable micro-kernel: plain Rust over `i16`-packed panels, written so that LLVM
//! vectorises the `NR`-wide inner loop for whatever SIMD the target has.

use super::blocked::MicroKernel;

const MR: usize = 4;
const NR: usize = 16;

/// The portable kernel (always available).
pub(crate) struct PortableKernel;

impl MicroKernel for PortableKernel {
    const MR: usize = MR;
    const NR: usize = NR;
    const KG: usize = 1;
    const KC_GROUPS: usize = 512;
    const MC: usize = 64;
    const BIAS_B: bool = false;
    type PA = i16;
    type PB = i16;

    fn conv_a(x: i8) -> i16 {
        i16::from(x)
    }

    fn conv_b(x: i8) -> i16 {
        i16::from(x)
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
        let mut acc = [[0i32; NR]; MR];
        for (a, b) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)).take(groups) {
            let b: &[i16; NR] = b.try_into().expect("chunk of NR");
            for (accr, &av) in acc.iter_mut().zip(a) {
                for (x, &bv) in accr.iter_mut().zip(b) {
                    // |av·bv| ≤ 2^14: the `i16` product cannot overflow; the `i32` sum wraps.
                    *x = x.wrapping_add(i32::from(av * bv));
                }
            }
        }
        for (r, accr) in acc.iter().enumerate().take(rows) {
            let crow = &mut c[r * ldc..r * ldc + cols];
            if first {
                for (d, &x) in crow.iter_mut().zip(accr) {
                    *d = x.wrapping_sub(corr[r]);
                }
            } else {
                for (d, &x) in crow.iter_mut().zip(accr) {
                    *d = d.wrapping_add(x);
                }
            }
        }
    }
}
