//! AMX-INT8 micro-kernel (`tdpbssd`: `i8 × i8 → i32` on 16×16 tiles, sums of 4 per step,
//! 64 `k` values per instruction), for CPUs with Intel AMX (Sapphire Rapids and later).
//!
//! `tdpbssd` multiplies signed by signed bytes, so no `+128` bias is needed. Its `i32`
//! accumulation wraps (no saturation), like `vpdpbusd`, so the result is the exact product
//! mod `2^32`, bit-identical to every other path.
//!
//! Register tile: 32 rows × 32 columns of `C` in the four accumulator tiles `tmm0..tmm3` (2×2),
//! `A` in `tmm4`, `tmm5` (16 rows × 64 `k` each), `B` in `tmm6`, `tmm7` (16 quads of `k` × 16
//! columns each): per 64 `k`, four tile loads and four `tdpbssd`. Stable Rust has no AMX
//! intrinsics, so the tile instructions are inline assembly; the operating system must grant
//! the process the AMX tile state first (Linux `arch_prctl(ARCH_REQ_XCOMP_PERM)`), which
//! [`AmxKernel::new`] requests once.
#![allow(unsafe_code)]

use std::arch::asm;
use std::sync::OnceLock;

use super::avx512::interleave_16_columns;
use super::blocked::MicroKernel;

const MR: usize = 32;
const NR: usize = 32;
/// `k` values per group: one `A` tile row (64 bytes).
const KG: usize = 64;
/// Bytes of one packed group of an `A` or a `B` micro-panel (32 × 64).
const GROUP_BYTES: usize = MR * KG;

/// The AMX kernel; only constructible when the CPU has AMX-TILE and AMX-INT8 and the OS has
/// granted this process the tile state.
pub(crate) struct AmxKernel {
    _granted: (),
}

/// Whether the CPU reports AMX-TILE and AMX-INT8 (CPUID leaf 7, EDX bits 24 and 25); feature
/// detection for AMX is not yet stable in `is_x86_feature_detected!`.
fn cpu_has_amx_int8() -> bool {
    let leaf0 = std::arch::x86_64::__cpuid(0);
    if leaf0.eax < 7 {
        return false;
    }
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    (leaf7.edx >> 24) & 1 == 1 && (leaf7.edx >> 25) & 1 == 1
}

/// Asks Linux for the AMX tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`); `true` if granted. Once granted it holds for every thread of the
/// process.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain system call with integer arguments; it reads and writes no memory of
    // ours, and `syscall` clobbers only rcx and r11 (declared) besides rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

thread_local! {
    /// Whether this thread is inside [`AmxKernel`]'s `with_session`, i.e. holds our tile
    /// configuration (loaded by us, released when the session ends).
    static IN_SESSION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Ends a tile session, on return or unwind: releases the tiles and clears the flag.
struct SessionGuard;

impl Drop for SessionGuard {
    fn drop(&mut self) {
        // SAFETY: only created after this thread loaded a tile configuration.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
        IN_SESSION.set(false);
    }
}

impl AmxKernel {
    /// `Some` iff the CPU has AMX-INT8 and the OS granted the tile state.
    pub(crate) fn new() -> Option<Self> {
        static GRANTED: OnceLock<bool> = OnceLock::new();
        let granted = *GRANTED.get_or_init(|| cpu_has_amx_int8() && request_tile_state());
        granted.then_some(Self { _granted: () })
    }
}

/// `ldtilecfg` operand: palette 1; tiles 0..8 all 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> Self {
        let mut cfg = [0u8; 64];
        cfg[0] = 1;
        for t in 0..8 {
            cfg[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            cfg[48 + t] = 16; // rows
        }
        Self(cfg)
    }
}

/// The 32×32 `i32` result of one micro-kernel call, row-major.
#[repr(C, align(64))]
struct TileResult([i32; MR * NR]);

/// Packs groups `g0..` of `B` panel `jp` for the AMX kernel: per group of 64 `k`, 16 quads
/// `q`, each 32 columns × 4 bytes (`out[g·2048 + q·128 + 4c + t] = B[64(g0+g) + 4q + t, 32jp + c]`),
/// i.e. two `B` tiles with a row stride of 128 bytes; zero past `k` and `n`.
fn pack_b_amx(b: &[i8], k: usize, n: usize, jp: usize, g0: usize, out: &mut [u8]) {
    let j0 = jp * NR;
    for (g, grp) in out.chunks_exact_mut(GROUP_BYTES).enumerate() {
        for (q, quad) in grp.chunks_exact_mut(NR * 4).enumerate() {
            let p0 = (g0 + g) * KG + 4 * q;
            if p0 + 4 <= k && j0 + NR <= n {
                let rows: [&[i8]; 4] = std::array::from_fn(|t| &b[(p0 + t) * n + j0..][..NR]);
                for (v, dst) in quad.chunks_exact_mut(64).enumerate() {
                    interleave_16_columns(rows.map(|row| &row[16 * v..16 * v + 16]), dst, 0);
                }
                continue;
            }
            for (c, word) in quad.chunks_exact_mut(4).enumerate() {
                for (t, x) in word.iter_mut().enumerate() {
                    let (p, j) = (p0 + t, j0 + c);
                    *x = if p < k && j < n { b[p * n + j] as u8 } else { 0 };
                }
            }
        }
    }
}

impl MicroKernel for AmxKernel {
    const MR: usize = MR;
    const NR: usize = NR;
    const KG: usize = KG;
    /// 4096 `k` per block: the `A` and `B` micro-panels (128 KiB each) stream from L2, and the
    /// accumulator tiles cover all of `k` up to 4096 in one call. Blocks of 1024 (`B` in L1)
    /// ran at about 0.8× this at n = 2048 and 4096 (CPU-time figures): each call's fixed cost
    /// (load and store the accumulator tiles) weighs more than the L2 stream.
    const KC_GROUPS: usize = 64;
    const MC: usize = 8 * MR;
    const BIAS_B: bool = false;
    type PA = i8;
    type PB = u8;

    fn conv_a(x: i8) -> i8 {
        x
    }

    fn conv_b(x: i8) -> u8 {
        x as u8
    }

    fn pack_b(&self, b: &[i8], k: usize, n: usize, jp: usize, g0: usize, out: &mut [u8]) {
        pack_b_amx(b, k, n, jp, g0, out);
    }

    /// Loads the tile configuration once for the session: `ldtilecfg` and `tilerelease` cost
    /// about 200 ns per call, as much as 8 groups of products.
    fn with_session<R>(&self, f: impl FnOnce() -> R) -> R {
        if IN_SESSION.get() {
            return f();
        }
        let cfg = TileConfig::new();
        // SAFETY: `self` exists only if the CPU has AMX-INT8 and the OS granted the tile state;
        // `cfg` is a valid 64-byte palette-1 configuration.
        unsafe { asm!("ldtilecfg [{cfg}]", cfg = in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
        IN_SESSION.set(true);
        let _guard = SessionGuard;
        f()
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
                && ap.len() >= groups * GROUP_BYTES
                && bp.len() >= groups * GROUP_BYTES
                && corr.len() >= rows
                && c.len() >= (rows - 1) * ldc + cols,
            "AMX micro-kernel called with inconsistent panel sizes"
        );
        if rows == MR && cols == NR && corr[..rows].iter().all(|&x| x == 0) {
            // SAFETY: `self` exists only if the CPU has AMX-INT8 and the OS granted the tile
            // state. The assert bounds the tile loads (per group, 32 rows × 64 bytes of `ap` and
            // 16 rows × 128 bytes of `bp`, `groups · 2048` bytes of each) and, with a full
            // 32×32 tile, `c[r·ldc + j]` for `r, j < 32`.
            unsafe { tile_product(ap.as_ptr(), bp.as_ptr(), groups, c.as_mut_ptr(), ldc * 4, first) };
            return;
        }
        // An edge tile: compute into a 32×32 buffer, then copy the `rows×cols` corner.
        let mut tile = TileResult([0; MR * NR]);
        // SAFETY: as above for `ap`, `bp`; `tile` is a full 32×32 block with stride 128 bytes.
        unsafe { tile_product(ap.as_ptr(), bp.as_ptr(), groups, tile.0.as_mut_ptr(), NR * 4, true) };
        for (r, src) in tile.0.chunks_exact(NR).take(rows).enumerate() {
            let dst = &mut c[r * ldc..r * ldc + cols];
            if first {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s.wrapping_sub(corr[r]);
                }
            } else {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = d.wrapping_add(s);
                }
            }
        }
    }
}

/// `C = A·B` (`first`) or `C += A·B` over `groups` packed groups (32 rows of `A`, 32 columns
/// of `B`), `C` a 32×32 block of `i32` at `c` with a row stride of `ldc_bytes`, all wrapping.
///
/// The accumulators are loaded from and stored to `C` by the tile unit itself: staging them
/// through a buffer and adding in vector code cost about 400 ns per call (the tile stores do
/// not forward to ordinary loads).
///
/// Inside a session (`with_session`) the tile configuration is already ours; outside one it
/// is loaded and released here.
///
/// # Safety
/// The CPU must support AMX-INT8 with the tile state granted; `ap` and `bp` must be valid for
/// `groups · 2048` byte reads, `c` for reads and writes of 32 rows of 128 bytes at stride
/// `ldc_bytes`.
unsafe fn tile_product(ap: *const i8, bp: *const u8, groups: usize, c: *mut i32, ldc_bytes: usize, first: bool) {
    let own_config = !IN_SESSION.get();
    let cfg = TileConfig::new();
    // SAFETY: the caller guarantees AMX and the bounds of `C`; `cfg` is a valid 64-byte
    // palette-1 configuration. Accumulator (i, j) is rows 16i.., columns 16j.. of `C`.
    unsafe {
        let (c01, c10) = (c.add(16), c.byte_add(16 * ldc_bytes));
        let c11 = c10.add(16);
        if own_config {
            asm!("ldtilecfg [{cfg}]", cfg = in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        }
        if first {
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        } else {
            asm!(
                "tileloadd tmm0, [{c00} + {stride}]",
                "tileloadd tmm1, [{c01} + {stride}]",
                "tileloadd tmm2, [{c10} + {stride}]",
                "tileloadd tmm3, [{c11} + {stride}]",
                c00 = in(reg) c, c01 = in(reg) c01, c10 = in(reg) c10, c11 = in(reg) c11,
                stride = in(reg) ldc_bytes,
                options(nostack, readonly),
            );
        }
    }
    for g in 0..groups {
        // SAFETY: group `g` of each micro-panel is 2048 bytes at `g · 2048`, in bounds by the
        // caller's guarantee: `A` rows 0..16 at `+0` and 16..32 at `+1024` (stride 64), `B`
        // columns 0..16 at `+0` and 16..32 at `+64` (stride 128), 16 rows each. Each operand
        // tile is loaded right before its first use so that the next group's load into it
        // waits only for the products that read it (tiles are not renamed).
        unsafe {
            let (a, b) = (ap.add(g * GROUP_BYTES), bp.add(g * GROUP_BYTES));
            asm!(
                "tileloadd tmm4, [{a} + {a_stride}]",
                "tileloadd tmm6, [{b} + {b_stride}]",
                "tdpbssd tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{b_hi} + {b_stride}]",
                "tdpbssd tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{a_hi} + {a_stride}]",
                "tdpbssd tmm2, tmm5, tmm6",
                "tdpbssd tmm3, tmm5, tmm7",
                a = in(reg) a,
                a_hi = in(reg) a.add(16 * KG),
                b = in(reg) b,
                b_hi = in(reg) b.add(64),
                a_stride = in(reg) KG,
                b_stride = in(reg) NR * 4,
                options(nostack, readonly),
            );
        }
    }
    // SAFETY: each store writes 16 rows × 64 bytes of `C` at stride `ldc_bytes`, in bounds by
    // the caller's guarantee.
    unsafe {
        asm!(
            "tilestored [{c00} + {stride}], tmm0",
            "tilestored [{c01} + {stride}], tmm1",
            "tilestored [{c10} + {stride}], tmm2",
            "tilestored [{c11} + {stride}], tmm3",
            c00 = in(reg) c,
            c01 = in(reg) c.add(16),
            c10 = in(reg) c.byte_add(16 * ldc_bytes),
            c11 = in(reg) c.byte_add(16 * ldc_bytes).add(16),
            stride = in(reg) ldc_bytes,
            options(nostack),
        );
        if own_config {
            asm!("tilerelease", options(nostack, nomem));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{GemmPath, blocked, gemm_i8};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// The AMX kernel itself at any row count (the dispatcher gives small products to VNNI).
    fn amx_matches_naive(m: usize, k: usize, n: usize, a: &[i8], b: &[i8]) -> Result<(), TestCaseError> {
        let Some(kern) = AmxKernel::new() else { return Ok(()) };
        let mut got = vec![7i32; m * n];
        blocked::gemm(&kern, a, b, m, k, n, &mut got).unwrap();
        let want = gemm_i8(a, b, m, k, n, GemmPath::Naive).unwrap();
        prop_assert!(got == want, "AMX kernel differs at m={} k={} n={}", m, k, n);
        Ok(())
    }

    #[test]
    fn amx_kernel_wrapping_edge_and_extremes() {
        let (m, k, n) = (3, crate::cpu::MAX_K, 5);
        amx_matches_naive(m, k, n, &vec![-128; m * k], &vec![-128; k * n]).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        for &(m, k, n) in &[(33, 4099, 65), (70, 63, 31), (1, 129, 1), (100, 8200, 40), (64, 4096, 2000)] {
            let a: Vec<i8> = (0..m * k).map(|_| if rng.r#gen::<bool>() { 127 } else { -128 }).collect();
            let b: Vec<i8> = (0..k * n).map(|_| rng.r#gen::<i8>()).collect();
            amx_matches_naive(m, k, n, &a, &b).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn amx_kernel_matches_naive(m in 1usize..=80, k in prop_oneof![1usize..=70, 120usize..=136, 4090usize..=4100], n in 1usize..=80, seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let a: Vec<i8> = (0..m * k).map(|_| rng.r#gen()).collect();
            let b: Vec<i8> = (0..k * n).map(|_| rng.r#gen()).collect();
            amx_matches_naive(m, k, n, &a, &b)?;
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p matproof-prover -- --ignored --nocapture amx_call_cost`: one
    /// thread, the time of one micro-kernel call against its number of groups (the slope is the
    /// steady-state `tdpbssd` rate, the intercept the fixed cost of a call).
    #[test]
    #[ignore]
    fn amx_call_cost() {
        let Some(kern) = AmxKernel::new() else { return };
        let ap = vec![1i8; 64 * GROUP_BYTES];
        let bp = vec![1u8; 64 * GROUP_BYTES];
        let mut c = vec![0i32; MR * NR];
        let corr = vec![0i32; MR];
        for groups in [1, 4, 16, 64] {
            let calls = 20_000 / groups;
            let best = (0..15)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..calls {
                        kern.run(&ap, &bp, groups, &mut c, NR, MR, NR, false, &corr);
                    }
                    start.elapsed().as_secs_f64() / calls as f64
                })
                .fold(f64::INFINITY, f64::min);
            println!(
                "groups {groups:3}: {:8.1} ns per call, {:6.2} ns per tdpbssd",
                best * 1e9,
                best * 1e9 / (4 * groups) as f64
            );
        }
    }
}
