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

use std::arch::x86_64::{
    __m128i, _MM_HINT_T0, _mm_loadu_si128, _mm_prefetch, _mm_set1_epi8, _mm_storeu_si128, _mm_unpackhi_epi8,
    _mm_unpackhi_epi16, _mm_unpacklo_epi8, _mm_unpacklo_epi16, _mm_xor_si128,
};

use super::blocked::{MicroKernel, pack_b_scalar};

/// The VNNI kernel with an `MR×(16·NV)` register tile and k-blocks of `KC_GROUPS·4`; only
/// constructible when the CPU has the features it needs.
pub(crate) struct VnniTile<const MR: usize, const NV: usize, const KC_GROUPS: usize> {
    _detected: (),
}

/// The tile the dispatcher uses: 6 rows × 64 columns (24 `zmm` accumulators, 4 `B` vectors
/// and a broadcast `A` value), k-blocks of 2048. Measured (one thread, CPU time, 1024×2048²):
/// 6×64 beat 4×96 and 8×48 on L1-resident panels (6.0 against 5.3 and 6.0 `vpdpbusd`/ns) and
/// in whole products; long k-blocks streaming `B` from L2 with a prefetch beat short ones
/// keeping it in L1 (665 against 581 GOP/s), the `C` tile's load and store per call costing
/// more than the L2 stream.
pub(crate) type VnniKernel = VnniTile<6, 4, 512>;

impl<const MR: usize, const NV: usize, const KC_GROUPS: usize> VnniTile<MR, NV, KC_GROUPS> {
    /// `Some` iff the CPU supports AVX-512 F, BW and VNNI.
    pub(crate) fn new() -> Option<Self> {
        let ok = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni");
        ok.then_some(Self { _detected: () })
    }
}

impl<const MR: usize, const NV: usize, const KC_GROUPS: usize> MicroKernel for VnniTile<MR, NV, KC_GROUPS> {
    const MR: usize = MR;
    const NR: usize = 16 * NV;
    const KG: usize = 4;
    const KC_GROUPS: usize = KC_GROUPS;
    const MC: usize = 32 * MR;
    const BIAS_B: bool = true;
    type PA = i8;
    type PB = u8;

    fn conv_a(x: i8) -> i8 {
        x
    }

    fn conv_b(x: i8) -> u8 {
        (x as u8) ^ 0x80
    }

    fn pack_b(&self, b: &[i8], k: usize, n: usize, jp: usize, g0: usize, out: &mut [u8]) {
        let nr = 16 * NV;
        let j0 = jp * nr;
        for (g, grp) in out.chunks_exact_mut(nr * 4).enumerate() {
            let p0 = (g0 + g) * 4;
            if p0 + 4 > k || j0 + nr > n {
                // A group at the end of `k` or a panel at the end of `n`: zero padding, scalar.
                pack_b_scalar::<Self>(b, k, n, jp, g0 + g, grp);
                continue;
            }
            let rows: [&[i8]; 4] = std::array::from_fn(|t| &b[(p0 + t) * n + j0..][..nr]);
            for (v, dst) in grp.chunks_exact_mut(64).enumerate() {
                interleave_16_columns(rows.map(|row| &row[16 * v..16 * v + 16]), dst, i8::MIN);
            }
        }
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
                && (1..=16 * NV).contains(&cols)
                && ap.len() >= groups * MR * 4
                && bp.len() >= groups * 16 * NV * 4
                && corr.len() >= rows
                && c.len() >= (rows - 1) * ldc + cols,
            "VNNI micro-kernel called with inconsistent panel sizes"
        );
        // SAFETY: `self` exists only if `new` detected avx512f/bw/vnni on this CPU. The assert
        // above bounds every access the kernel makes: it reads `groups·MR·4` bytes of `ap`,
        // `groups·NR·4` bytes of `bp`, `corr[..rows]`, and reads/writes only `c[r·ldc + j]`
        // for `r < rows`, `j < cols` (masked loads/stores suppress the other lanes).
        unsafe {
            kernel::<MR, NV>(ap.as_ptr(), bp.as_ptr(), groups, c.as_mut_ptr(), ldc, rows, cols, first, corr.as_ptr())
        }
    }
}

/// Writes 16 columns × 4 rows of `B` as 16 groups of 4 bytes (`dst[4c + t] = rows[t][c] ^ bias`:
/// a `bias` of `i8::MIN` adds 128, 0 keeps the bytes), the packed layout of one `zmm` of `B`
/// (and of one AMX `B` tile row): two rounds of byte/word unpacks instead of 64 scalar stores
/// (one byte at a time took 16 instructions a byte, half as many instructions as the whole
/// micro-kernel spends on a 2048³ product).
pub(crate) fn interleave_16_columns(rows: [&[i8]; 4], dst: &mut [u8], bias: i8) {
    assert!(rows.iter().all(|r| r.len() == 16) && dst.len() == 64, "interleave_16_columns: 4×16 in, 64 out");
    // SAFETY: SSE2 is part of the x86-64 baseline; the assert bounds the four 16-byte loads and
    // the four 16-byte stores (unaligned forms).
    unsafe {
        let [r0, r1, r2, r3] = rows.map(|r| _mm_loadu_si128(r.as_ptr().cast()));
        let (lo01, hi01) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
        let (lo23, hi23) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
        let bias = _mm_set1_epi8(bias);
        let quads: [__m128i; 4] = [
            _mm_unpacklo_epi16(lo01, lo23),
            _mm_unpackhi_epi16(lo01, lo23),
            _mm_unpacklo_epi16(hi01, hi23),
            _mm_unpackhi_epi16(hi01, hi23),
        ];
        for (q, quad) in quads.into_iter().enumerate() {
            _mm_storeu_si128(dst.as_mut_ptr().add(16 * q).cast(), _mm_xor_si128(quad, bias));
        }
    }
}

/// How far ahead (in groups of 4 `k`) the kernel prefetches `B` into L1: a k-block's `B`
/// micro-panel (2048 × 64 bytes) lives in L2, and the hardware prefetcher alone left the
/// kernel waiting on it (+5% for 6×64, +10% for 4×96 with it).
const PREFETCH_GROUPS: usize = 8;

/// The `MR×NR` register-blocked product; see [`MicroKernel::run`].
///
/// # Safety
/// The CPU must support avx512f/bw/vnni; `ap` must be valid for `groups·MR·4` reads, `bp`
/// for `groups·NR·4`, `corr` for `rows`, and `c[r·ldc + j]` for `r < rows ≤ MR`,
/// `j < cols ≤ NR` for reads and writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const MR: usize, const NV: usize>(
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
        if PREFETCH_GROUPS > 0 {
            for v in 0..NV {
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_GROUPS * NV * 64 + v * 64).cast());
            }
        }
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
            b = b.add(NV * 64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::blocked;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::time::Instant;

    fn random(len: usize, seed: u64) -> Vec<i8> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.r#gen::<i8>()).collect()
    }

    /// Minimum and median of `runs` timings of `f`, in seconds (the minimum is the figure least
    /// disturbed by other processes on a shared machine).
    fn timings(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
        f();
        let mut t: Vec<f64> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        (t[0], t[runs / 2])
    }

    /// CPU time of all this process's threads, in seconds (`/proc/self/task/*/schedstat`:
    /// nanoseconds on a CPU), which unlike wall time does not count waiting for a CPU on a
    /// shared, loaded machine.
    fn cpu_seconds() -> f64 {
        let tasks = std::fs::read_dir("/proc/self/task").map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
        let ns: u64 = tasks
            .iter()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        ns as f64 * 1e-9
    }

    fn tile_speed<const MR: usize, const NV: usize, const KCG: usize>(s: (usize, usize, usize)) {
        let Some(kern) = VnniTile::<MR, NV, KCG>::new() else { return };
        let (m, k, n) = s;
        let a = random(m * k, 1);
        let b = random(k * n, 2);
        let mut out = vec![0i32; m * n];
        let runs = 9;
        let cpu0 = cpu_seconds();
        let (best, median) = timings(runs, || blocked::gemm(&kern, &a, &b, m, k, n, &mut out).unwrap());
        let cpu = (cpu_seconds() - cpu0) / (runs + 1) as f64 / rayon::current_num_threads() as f64;
        let ops = 2.0 * (m * k * n) as f64;
        println!(
            "{MR}x{} kc={:4} {m}x{k}x{n}: best {:7.1} GOP/s, median {:7.1}, per CPU time {:7.1}",
            16 * NV,
            KCG * 4,
            ops / best / 1e9,
            ops / median / 1e9,
            ops / cpu / 1e9
        );
    }

    fn inner_speed<const MR: usize, const NV: usize>() {
        let Some(kern) = VnniTile::<MR, NV, 64>::new() else { return };
        let groups = 64;
        let ap: Vec<i8> = random(groups * MR * 4, 3);
        let bp: Vec<u8> = random(groups * NV * 64, 4).into_iter().map(|x| x as u8).collect();
        let ldc = 16 * NV;
        let mut c = vec![0i32; MR * ldc];
        let corr = vec![0i32; MR];
        let calls = 20_000;
        let (best, _) = timings(15, || {
            for _ in 0..calls {
                kern.run(&ap, &bp, groups, &mut c, ldc, MR, ldc, false, &corr);
            }
        });
        let instrs = (calls * groups * MR * NV) as f64;
        println!("inner {MR}x{}: {:.2} vpdpbusd/ns (L1-resident panels, one thread)", 16 * NV, instrs / best / 1e9);
    }

    /// `cargo test --release -p matproof-prover -- --ignored --nocapture vnni_tile_speed`: the
    /// inner kernel of three tile shapes on L1-resident panels (one thread), then whole
    /// products per tile shape and k-block (wall time and per CPU time); `TILE_SHAPES=MxKxN,…`
    /// picks the products (`RAYON_NUM_THREADS=1` for one thread). How the tile and k-block of
    /// [`VnniKernel`] were chosen.
    #[test]
    #[ignore]
    fn vnni_tile_speed() {
        inner_speed::<4, 6>();
        inner_speed::<6, 4>();
        inner_speed::<8, 3>();
        let shapes: Vec<(usize, usize, usize)> = match std::env::var("TILE_SHAPES") {
            Ok(v) => v
                .split(',')
                .map(|t| {
                    let d: Vec<usize> = t.split('x').map(|x| x.parse().unwrap()).collect();
                    (d[0], d[1], d[2])
                })
                .collect(),
            Err(_) => vec![(2048, 2048, 2048), (4096, 4096, 4096), (64, 4096, 4096)],
        };
        for s in shapes {
            tile_speed::<4, 6, 64>(s);
            tile_speed::<4, 6, 512>(s);
            tile_speed::<6, 4, 96>(s);
            tile_speed::<6, 4, 256>(s);
            tile_speed::<6, 4, 512>(s);
            tile_speed::<8, 3, 128>(s);
            tile_speed::<8, 3, 512>(s);
        }
    }
}
