//! Exact `i8 × i8 → i32` GEMM on the CPU.
//!
//! `C = A·B` with `A` an `m×k` row-major `i8` matrix, `B` a `k×n` row-major `i8` matrix and `C`
//! an `m×n` row-major `i32` matrix. Several implementations ([`GemmPath`]) are selected at run
//! time; all of them give **bit-identical** results.
//!
//! # Exactness and the one wrapping edge
//!
//! The caller passes `k ≤ MAX_K = 2^17` and entries in `-128..=127` (any `i8`). Every dot
//! product then has `|Σ a·b| ≤ 128·128·2^17 = 2^31`, so the exact result lies in the `i32`
//! range **except** for the single value `+2^31`, reached only when `k = 2^17` and a whole row
//! of `A` and a whole column of `B` are `-128`. Every path computes the sum with wrapping
//! (two's complement, mod `2^32`) `i32` arithmetic, so every path returns the exact result
//! reduced mod `2^32` — in that one case `i32::MIN` — and all paths agree bit for bit, whatever
//! the order of their additions (wrapping addition is associative and commutative). The VNNI
//! path's intermediate sums (with its `+128` bias) may wrap too; the final value is still the
//! exact result mod `2^32`.
//!
//! # Paths
//!
//! * [`GemmPath::Naive`]: reference triple loop.
//! * [`GemmPath::Portable`]: cache-blocked, packed panels, auto-vectorised micro-kernel, rayon.
//! * [`GemmPath::Avx2`]: the same blocking with an AVX2 `vpmaddwd` micro-kernel.
//! * [`GemmPath::Avx512Vnni`]: the same blocking with an AVX-512 VNNI `vpdpbusd` micro-kernel.
//! * [`GemmPath::AmxInt8`]: the same blocking with an Intel AMX `tdpbssd` tile micro-kernel.

mod blocked;
mod portable;

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Largest supported inner dimension `k` (`2^17`): every dot product fits `i32` (see the
/// module docs for the one wrapping edge at exactly `k = 2^17`).
pub const MAX_K: usize = matproof_protocol::limits::MAX_K;
/// Largest supported `m` and `n`.
pub const MAX_DIM: usize = matproof_protocol::limits::MAX_DIM;

/// A GEMM implementation. All paths return bit-identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmPath {
    /// Intel AMX (`tdpbssd` on 16×16 tiles) micro-kernel; needs AMX-TILE, AMX-INT8 and the OS's
    /// grant of the tile state (Linux). Products of at most 64 rows run on the VNNI kernel.
    AmxInt8,
    /// AVX-512 VNNI (`vpdpbusd`) micro-kernel; needs `avx512f`, `avx512bw`, `avx512vnni`.
    Avx512Vnni,
    /// AVX2 (`vpmaddwd`) micro-kernel; needs `avx2`.
    Avx2,
    /// Cache-blocked portable Rust, auto-vectorised; always available.
    Portable,
    /// Reference triple loop; always available.
    Naive,
}

impl GemmPath {
    /// The fastest path available on this CPU.
    pub fn detect() -> GemmPath {
        Self::available().into_iter().next().unwrap_or(GemmPath::Portable)
    }

    /// Every path available on this CPU, fastest first.
    pub fn available() -> Vec<GemmPath> {
        [GemmPath::AmxInt8, GemmPath::Avx512Vnni, GemmPath::Avx2, GemmPath::Portable, GemmPath::Naive]
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// Whether this path can run on this CPU.
    pub fn is_available(self) -> bool {
        match self {
            GemmPath::Portable | GemmPath::Naive => true,
            #[cfg(target_arch = "x86_64")]
            GemmPath::Avx2 => avx2::Avx2Kernel::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            GemmPath::Avx512Vnni => avx512::VnniKernel::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            GemmPath::AmxInt8 => amx::AmxKernel::new().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            GemmPath::Avx2 | GemmPath::Avx512Vnni | GemmPath::AmxInt8 => false,
        }
    }

    /// A short stable name (`"amx-int8"`, `"avx512-vnni"`, `"avx2"`, `"portable"`, `"naive"`).
    pub fn name(self) -> &'static str {
        match self {
            GemmPath::AmxInt8 => "amx-int8",
            GemmPath::Avx512Vnni => "avx512-vnni",
            GemmPath::Avx2 => "avx2",
            GemmPath::Portable => "portable",
            GemmPath::Naive => "naive",
        }
    }
}

/// Why a GEMM call was refused. Nothing is computed (or allocated) when one is returned.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum GemmError {
    /// An operand's length does not match the dimensions.
    #[error("operand {operand}: expected {expected} elements, got {actual}")]
    LengthMismatch {
        /// `"a"`, `"b"` or `"out"`.
        operand: &'static str,
        /// `m·k`, `k·n` or `m·n`.
        expected: usize,
        /// The slice's length.
        actual: usize,
    },
    /// A dimension exceeds its limit ([`MAX_K`] or [`MAX_DIM`]).
    #[error("dimension {name} = {value} exceeds the maximum {max}")]
    DimensionTooLarge {
        /// `"m"`, `"k"` or `"n"`.
        name: &'static str,
        /// The value given.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// The requested path cannot run on this CPU.
    #[error("GEMM path {path} is not available on this CPU")]
    PathUnavailable {
        /// [`GemmPath::name`] of the path.
        path: &'static str,
    },
    /// A buffer (the output or a packed operand) could not be allocated.
    #[error("could not allocate {bytes} bytes for {what}")]
    AllocationFailed {
        /// What the buffer was for.
        what: &'static str,
        /// Its size in bytes.
        bytes: usize,
    },
}

/// Outputs of at least this many entries (4 MiB) are zeroed by all threads.
const PARALLEL_ZERO_LEN: usize = 1 << 20;

/// `C = A·B`, exact (wrapping `i32`, see the module docs), row-major; returns `C` (`m·n`).
///
/// `a` is `m×k`, `b` is `k×n`, both row-major. Requires `k ≤ MAX_K`, `m, n ≤ MAX_DIM`.
pub fn gemm_i8(a: &[i8], b: &[i8], m: usize, k: usize, n: usize, path: GemmPath) -> Result<Vec<i32>, GemmError> {
    let len = validate(a, b, m, k, n, path)?;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| GemmError::AllocationFailed { what: "output", bytes: len.saturating_mul(4) })?;
    if len >= PARALLEL_ZERO_LEN {
        // Zeroing a fresh output faults in every page. For 64 MiB (n = 4096) that took 41–53
        // ms on one thread on a 2-vCPU VM (about 2.5 µs a page), as long as the AMX product
        // itself; on both threads 28–39 ms.
        use rayon::iter::ParallelExtend;
        out.par_extend(rayon::iter::repeat_n(0i32, len));
    } else {
        out.resize(len, 0);
    }
    run(a, b, m, k, n, path, &mut out)?;
    Ok(out)
}

/// `C = A·B` into `out` (`m·n`, row-major; overwritten). See [`gemm_i8`].
pub fn gemm_i8_into(
    a: &[i8],
    b: &[i8],
    m: usize,
    k: usize,
    n: usize,
    path: GemmPath,
    out: &mut [i32],
) -> Result<(), GemmError> {
    let len = validate(a, b, m, k, n, path)?;
    if out.len() != len {
        return Err(GemmError::LengthMismatch { operand: "out", expected: len, actual: out.len() });
    }
    run(a, b, m, k, n, path, out)
}

/// Checks dimensions, operand lengths and path availability; returns `m·n`.
fn validate(a: &[i8], b: &[i8], m: usize, k: usize, n: usize, path: GemmPath) -> Result<usize, GemmError> {
    for (name, value, max) in [("m", m, MAX_DIM), ("k", k, MAX_K), ("n", n, MAX_DIM)] {
        if value > max {
            return Err(GemmError::DimensionTooLarge { name, value, max });
        }
    }
    // With the limits above none of these products can overflow a 64-bit `usize`, but check
    // anyway (32-bit targets).
    let too_large = |name, value| GemmError::DimensionTooLarge { name, value, max: usize::MAX };
    let mk = m.checked_mul(k).ok_or(too_large("m·k", m))?;
    let kn = k.checked_mul(n).ok_or(too_large("k·n", n))?;
    let mn = m.checked_mul(n).ok_or(too_large("m·n", m))?;
    if a.len() != mk {
        return Err(GemmError::LengthMismatch { operand: "a", expected: mk, actual: a.len() });
    }
    if b.len() != kn {
        return Err(GemmError::LengthMismatch { operand: "b", expected: kn, actual: b.len() });
    }
    if !path.is_available() {
        return Err(GemmError::PathUnavailable { path: path.name() });
    }
    Ok(mn)
}

/// Products with at most this many rows take the VNNI kernel on the AMX path (bit-identical):
/// they are bound by reading and packing `B`, and AMX's 32-row tiles then only add work
/// (measured at k = n = 4096: VNNI 1.2–1.7× faster for m = 8..32, about even at m = 64).
#[cfg(target_arch = "x86_64")]
const AMX_MIN_ROWS: usize = 64;

/// Dispatch; inputs already validated.
fn run(a: &[i8], b: &[i8], m: usize, k: usize, n: usize, path: GemmPath, out: &mut [i32]) -> Result<(), GemmError> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        out.fill(0);
        return Ok(());
    }
    match path {
        GemmPath::Naive => {
            naive(a, b, m, k, n, out);
            Ok(())
        }
        GemmPath::Portable => blocked::gemm(&portable::PortableKernel, a, b, m, k, n, out),
        #[cfg(target_arch = "x86_64")]
        GemmPath::Avx2 => match avx2::Avx2Kernel::new() {
            Some(kern) => blocked::gemm(&kern, a, b, m, k, n, out),
            None => Err(GemmError::PathUnavailable { path: path.name() }),
        },
        #[cfg(target_arch = "x86_64")]
        GemmPath::Avx512Vnni => match avx512::VnniKernel::new() {
            Some(kern) => blocked::gemm(&kern, a, b, m, k, n, out),
            None => Err(GemmError::PathUnavailable { path: path.name() }),
        },
        #[cfg(target_arch = "x86_64")]
        GemmPath::AmxInt8 => match (amx::AmxKernel::new(), avx512::VnniKernel::new()) {
            (Some(_), Some(vnni)) if m <= AMX_MIN_ROWS => blocked::gemm(&vnni, a, b, m, k, n, out),
            (Some(kern), _) => blocked::gemm(&kern, a, b, m, k, n, out),
            (None, _) => Err(GemmError::PathUnavailable { path: path.name() }),
        },
        #[cfg(not(target_arch = "x86_64"))]
        GemmPath::Avx2 | GemmPath::Avx512Vnni | GemmPath::AmxInt8 => {
            Err(GemmError::PathUnavailable { path: path.name() })
        }
    }
}

/// Reference product: for each row, `C[i,·] = Σ_p A[i,p]·B[p,·]` in wrapping `i32`.
fn naive(a: &[i8], b: &[i8], m: usize, k: usize, n: usize, out: &mut [i32]) {
    for i in 0..m {
        let crow = &mut out[i * n..(i + 1) * n];
        crow.fill(0);
        for p in 0..k {
            let av = i32::from(a[i * k + p]);
            let brow = &b[p * n..(p + 1) * n];
            for (c, &bv) in crow.iter_mut().zip(brow) {
                *c = c.wrapping_add(av * i32::from(bv));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn fast_paths() -> Vec<GemmPath> {
        GemmPath::available().into_iter().filter(|&p| p != GemmPath::Naive).collect()
    }

    fn random(rng: &mut StdRng, len: usize) -> Vec<i8> {
        (0..len).map(|_| rng.r#gen::<i8>()).collect()
    }

    fn check_all(a: &[i8], b: &[i8], m: usize, k: usize, n: usize) {
        let want = gemm_i8(a, b, m, k, n, GemmPath::Naive).unwrap();
        for path in fast_paths() {
            let got = gemm_i8(a, b, m, k, n, path).unwrap();
            assert!(got == want, "{} differs from naive at m={m} k={k} n={n}", path.name());
            let mut into = vec![7i32; m * n];
            gemm_i8_into(a, b, m, k, n, path, &mut into).unwrap();
            assert!(into == want, "{} (into) differs from naive at m={m} k={k} n={n}", path.name());
        }
    }

    #[test]
    fn detect_is_available_and_names_distinct() {
        let avail = GemmPath::available();
        assert!(avail.contains(&GemmPath::detect()));
        assert!(avail.contains(&GemmPath::Naive) && avail.contains(&GemmPath::Portable));
        assert_eq!(avail[0], GemmPath::detect());
        let names: Vec<_> =
            [GemmPath::AmxInt8, GemmPath::Avx512Vnni, GemmPath::Avx2, GemmPath::Portable, GemmPath::Naive]
                .iter()
                .map(|p| p.name())
                .collect();
        for (i, x) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(x));
        }
    }

    #[test]
    fn small_known_product() {
        // [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [58 64; 139 154]
        let a = [1i8, 2, 3, 4, 5, 6];
        let b = [7i8, 8, 9, 10, 11, 12];
        for path in GemmPath::available() {
            assert_eq!(gemm_i8(&a, &b, 2, 3, 2, path).unwrap(), vec![58, 64, 139, 154], "{}", path.name());
        }
    }

    #[test]
    fn empty_dimensions() {
        for path in GemmPath::available() {
            assert_eq!(gemm_i8(&[], &[], 0, 0, 0, path).unwrap(), Vec::<i32>::new());
            assert_eq!(gemm_i8(&[], &[1, 2, 3], 0, 1, 3, path).unwrap(), Vec::<i32>::new());
            assert_eq!(gemm_i8(&[1, 2], &[], 2, 1, 0, path).unwrap(), Vec::<i32>::new());
            assert_eq!(gemm_i8(&[], &[], 2, 0, 3, path).unwrap(), vec![0; 6]);
            let mut out = vec![5; 6];
            gemm_i8_into(&[], &[], 2, 0, 3, path, &mut out).unwrap();
            assert_eq!(out, vec![0; 6]);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        for path in GemmPath::available() {
            assert_eq!(
                gemm_i8(&[0; 5], &[0; 6], 2, 3, 2, path),
                Err(GemmError::LengthMismatch { operand: "a", expected: 6, actual: 5 })
            );
            assert_eq!(
                gemm_i8(&[0; 6], &[0; 7], 2, 3, 2, path),
                Err(GemmError::LengthMismatch { operand: "b", expected: 6, actual: 7 })
            );
            let mut out = vec![0; 3];
            assert_eq!(
                gemm_i8_into(&[0; 6], &[0; 6], 2, 3, 2, path, &mut out),
                Err(GemmError::LengthMismatch { operand: "out", expected: 4, actual: 3 })
            );
            assert_eq!(
                gemm_i8(&[], &[], 0, MAX_K + 1, 0, path),
                Err(GemmError::DimensionTooLarge { name: "k", value: MAX_K + 1, max: MAX_K })
            );
            assert_eq!(
                gemm_i8(&[], &[], MAX_DIM + 1, 0, 1, path),
                Err(GemmError::DimensionTooLarge { name: "m", value: MAX_DIM + 1, max: MAX_DIM })
            );
            assert_eq!(
                gemm_i8(&[], &[], 1, 0, usize::MAX, path),
                Err(GemmError::DimensionTooLarge { name: "n", value: usize::MAX, max: MAX_DIM })
            );
            // Huge but in-limit dimensions with tiny slices: refused before any allocation.
            assert!(matches!(
                gemm_i8(&[], &[], MAX_DIM, MAX_K, MAX_DIM, path),
                Err(GemmError::LengthMismatch { operand: "a", .. })
            ));
        }
        for path in [GemmPath::AmxInt8, GemmPath::Avx512Vnni, GemmPath::Avx2] {
            if !path.is_available() {
                assert_eq!(gemm_i8(&[], &[], 0, 0, 0, path), Err(GemmError::PathUnavailable { path: path.name() }));
            }
        }
    }

    #[test]
    fn block_edges_exhaustive_small() {
        let mut rng = StdRng::seed_from_u64(1);
        for m in [1, 2, 3, 7, 8, 9, 13, 17] {
            for n in [1, 5, 15, 16, 17, 31, 33, 47, 48, 49, 65] {
                for k in [1, 2, 3, 4, 5, 8, 63, 65] {
                    let a = random(&mut rng, m * k);
                    let b = random(&mut rng, k * n);
                    check_all(&a, &b, m, k, n);
                }
            }
        }
    }

    #[test]
    fn extreme_entries_long_k() {
        let mut rng = StdRng::seed_from_u64(2);
        for &(m, k, n) in &[(9, 4096, 35), (33, 4093, 50), (130, 1030, 129), (3, 20_001, 97)] {
            let a = vec![-128i8; m * k];
            let b = vec![-128i8; k * n];
            check_all(&a, &b, m, k, n);
            let a: Vec<i8> = (0..m * k).map(|_| if rng.r#gen::<bool>() { 127 } else { -128 }).collect();
            let b: Vec<i8> = (0..k * n).map(|_| if rng.r#gen::<bool>() { 127 } else { -128 }).collect();
            check_all(&a, &b, m, k, n);
            let a = vec![127i8; m * k];
            check_all(&a, &b, m, k, n);
        }
    }

    #[test]
    fn random_multi_k_block_and_column_strips() {
        // Several k-blocks (KC is 1024..4096 depending on the path) and, for short wide
        // products, the column-strip parallel split.
        let mut rng = StdRng::seed_from_u64(5);
        for &(m, k, n) in
            &[(37, 2047, 41), (29, 2049, 97), (5, 5000, 33), (1, 3000, 1000), (6, 1500, 777), (9, 700, 1300)]
        {
            let a = random(&mut rng, m * k);
            let b = random(&mut rng, k * n);
            check_all(&a, &b, m, k, n);
        }
    }

    #[test]
    fn wrapping_edge_at_max_k() {
        let (m, k, n) = (3, MAX_K, 5);
        // All -128: every entry is exactly +2^31, which wraps to i32::MIN.
        let a = vec![-128i8; m * k];
        let b = vec![-128i8; k * n];
        for path in GemmPath::available() {
            let c = gemm_i8(&a, &b, m, k, n, path).unwrap();
            assert!(c.iter().all(|&x| x == i32::MIN), "{}", path.name());
        }
        // Mixed extremes at max k: agree with naive bit for bit.
        let mut rng = StdRng::seed_from_u64(3);
        let mut a: Vec<i8> = (0..m * k).map(|_| if rng.r#gen::<u8>() < 250 { -128 } else { 127 }).collect();
        a[..k].fill(-128);
        let b: Vec<i8> = (0..k * n).map(|_| if rng.r#gen::<u8>() < 250 { -128 } else { 127 }).collect();
        check_all(&a, &b, m, k, n);
        let b = vec![127i8; k * n];
        check_all(&a, &b, m, k, n);
    }

    #[test]
    fn short_wide_strips_pack_b_on_the_fly() {
        // Few rows, many columns: the column-strip split, whose tasks pack B micro-panel by
        // micro-panel, with k off every group size (4, 64) and n off every panel width.
        let mut rng = StdRng::seed_from_u64(6);
        for &(m, k, n) in &[(64, 4099, 1000), (1, 4100, 3000), (100, 777, 2500), (33, 8197, 600), (7, 130, 9000)] {
            let a = random(&mut rng, m * k);
            let b = random(&mut rng, k * n);
            check_all(&a, &b, m, k, n);
            check_all(&vec![-128; m * k], &vec![-128; k * n], m, k, n);
        }
    }

    /// Shapes around the tiles (6×64 VNNI, 32×32 AMX, 6×16 AVX2) and `k` around the group
    /// sizes (4, 64) and k-blocks (2048, 4096), a third with only extreme entries.
    fn tile_edge_matrices() -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
        let k = prop_oneof![1usize..=9, 60usize..=68, 124usize..=132, 2044usize..=2052, 4092usize..=4100];
        (1usize..=70, k, 1usize..=140, any::<u64>()).prop_map(|(m, k, n, seed)| random_pair(m, k, n, seed))
    }

    /// `A` (m×k) and `B` (k×n) from `seed`; a third of the seeds give only extreme entries.
    fn random_pair(m: usize, k: usize, n: usize, seed: u64) -> (usize, usize, usize, Vec<i8>, Vec<i8>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let extreme = seed.is_multiple_of(3);
        let mut draw = |len| -> Vec<i8> {
            (0..len)
                .map(|_| if extreme { if rng.r#gen::<bool>() { 127 } else { -128 } } else { rng.r#gen::<i8>() })
                .collect()
        };
        let a = draw(m * k);
        let b = draw(k * n);
        (m, k, n, a, b)
    }

    fn matrices() -> impl Strategy<Value = (usize, usize, usize, Vec<i8>, Vec<i8>)> {
        (1usize..=300, 1usize..=300, 1usize..=300, any::<u64>()).prop_map(|(m, k, n, seed)| random_pair(m, k, n, seed))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn fast_paths_match_naive((m, k, n, a, b) in matrices()) {
            let want = gemm_i8(&a, &b, m, k, n, GemmPath::Naive).unwrap();
            for path in fast_paths() {
                let got = gemm_i8(&a, &b, m, k, n, path).unwrap();
                prop_assert!(got == want, "{} differs at m={} k={} n={}", path.name(), m, k, n);
            }
        }

        #[test]
        fn fast_paths_match_naive_at_tile_edges((m, k, n, a, b) in tile_edge_matrices()) {
            let want = gemm_i8(&a, &b, m, k, n, GemmPath::Naive).unwrap();
            for path in fast_paths() {
                let got = gemm_i8(&a, &b, m, k, n, path).unwrap();
                prop_assert!(got == want, "{} differs at m={} k={} n={}", path.name(), m, k, n);
            }
        }

        #[test]
        fn bad_lengths_never_panic(m in 0usize..40, k in 0usize..40, n in 0usize..40, da in -2i64..=2, db in -2i64..=2) {
            let la = ((m * k) as i64 + da).max(0) as usize;
            let lb = ((k * n) as i64 + db).max(0) as usize;
            for path in GemmPath::available() {
                let r = gemm_i8(&vec![1; la], &vec![-1; lb], m, k, n, path);
                prop_assert_eq!(r.is_ok(), la == m * k && lb == k * n);
            }
        }
    }

    /// `cargo test --release -p matproof-prover -- --ignored --nocapture gemm_speed`: GOP/s per
    /// path at 2048³ (wall time: on a shared machine, see `benches/examples/cpu_gemm.rs`).
    #[test]
    #[ignore]
    fn gemm_speed() {
        let s = 2048;
        let mut rng = StdRng::seed_from_u64(4);
        let a = random(&mut rng, s * s);
        let b = random(&mut rng, s * s);
        let mut out = vec![0i32; s * s];
        for path in fast_paths() {
            let mut times = Vec::new();
            for _ in 0..7 {
                let t = std::time::Instant::now();
                gemm_i8_into(&a, &b, s, s, s, path, &mut out).unwrap();
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let gops = 2.0 * (s as f64).powi(3) / times[3] / 1e9;
            println!("{:>12}: median {:8.2} ms  {:7.1} GOP/s", path.name(), times[3] * 1e3, gops);
        }
    }
}
