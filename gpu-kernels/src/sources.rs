//! The CUDA C sources, embedded at build time, and what each one needs.

/// One `.cu` file: a translation unit that NVRTC compiles to one PTX module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// Short name (the file stem), used in cache file names and messages.
    pub name: &'static str,
    /// The CUDA C source.
    pub source: &'static str,
    /// Lowest compute capability (`major·10 + minor`) the source compiles for.
    pub min_sm: u32,
    /// The `extern "C"` kernels it defines.
    pub functions: &'static [&'static str],
}

/// Operand packing (zero padding, B transposed to K-contiguous columns).
pub const PACK: KernelSource = KernelSource {
    name: "pack",
    source: include_str!("../kernels/pack.cu"),
    min_sm: 61,
    functions: &["pack_rows_i8", "pack_transpose_i8"],
};

/// int8 GEMM on tensor cores (`mma.sync.m16n8k32.s8`), sm_80 and newer.
pub const GEMM_MMA: KernelSource = KernelSource {
    name: "gemm_mma",
    source: include_str!("../kernels/gemm_mma.cu"),
    min_sm: 80,
    functions: &["gemm_i8_mma"],
};

/// int8 GEMM with `dp4a`, the fallback for sm_61 to sm_75.
pub const GEMM_DP4A: KernelSource = KernelSource {
    name: "gemm_dp4a",
    source: include_str!("../kernels/gemm_dp4a.cu"),
    min_sm: 61,
    functions: &["gemm_i8_dp4a"],
};

/// SHA-256 leaf hashes of the C tiles (DESIGN §3): one thread per tile, or one warp per tile.
pub const LEAF_SHA256: KernelSource = KernelSource {
    name: "leaf_sha256",
    source: include_str!("../kernels/leaf_sha256.cu"),
    min_sm: 61,
    functions: &["c_leaf_hashes", "c_leaf_hashes_warp"],
};

/// Freivalds projections over `2^61 − 1` (`C·r`, and `i8` matrices for `B·r`, `A·x`).
pub const FREIVALDS: KernelSource = KernelSource {
    name: "freivalds",
    source: include_str!("../kernels/freivalds.cu"),
    min_sm: 61,
    functions: &["project_i32", "project_i8"],
};

/// Every kernel source.
pub const ALL: [KernelSource; 5] = [PACK, GEMM_MMA, GEMM_DP4A, LEAF_SHA256, FREIVALDS];

/// The GEMM source a device compiled for `compute_{arch}` uses by default: tensor cores where
/// the architecture has them, `dp4a` below.
pub fn default_gemm(arch: u32) -> KernelSource {
    if arch >= GEMM_MMA.min_sm { GEMM_MMA } else { GEMM_DP4A }
}

/// The sources a device loads with the GEMM kernel `gemm`.
pub fn with_gemm(gemm: KernelSource) -> Vec<KernelSource> {
    vec![PACK, gemm, LEAF_SHA256, FREIVALDS]
}

/// The sources a device of compute capability `sm` uses by default.
pub fn for_sm(sm: u32) -> Vec<KernelSource> {
    with_gemm(default_gemm(sm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gemm_kernel_follows_the_architecture() {
        assert!(for_sm(61).contains(&GEMM_DP4A));
        assert!(for_sm(75).contains(&GEMM_DP4A));
        assert!(for_sm(80).contains(&GEMM_MMA));
        assert!(for_sm(90).contains(&GEMM_MMA));
        for sm in [61, 75, 80, 86, 89, 90, 100, 120] {
            assert!(for_sm(sm).iter().all(|s| s.min_sm <= sm), "sm_{sm}");
        }
    }

    #[test]
    fn every_declared_function_is_an_extern_c_kernel_in_its_source() {
        for source in ALL {
            assert!(source.source.contains("extern \"C\" __global__"), "{}", source.name);
            for function in source.functions {
                assert!(source.source.contains(&format!("{function}(")), "{} lacks {function}", source.name);
            }
        }
    }
}
