//! CUDA C kernels for matproof and the device API the prover's CUDA backend calls:
//!
//! - `kernels/gemm_mma.cu`: exact `i8×i8→i32` GEMM on tensor cores
//!   (`mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32`, sm_80+), 128×128×64 block tiles
//!   through shared memory with a two-stage `cp.async` pipeline;
//!   `kernels/gemm_dp4a.cu`: the `dp4a` kernel (sm_61+; the default below sm_80, and chosen on
//!   any chip with `MATPROOF_GPU_GEMM=dp4a`, [`device::GEMM_ENV`]); `kernels/pack.cu`: zero
//!   padding and the transpose of `B` both use, so any `m, n, k` works and edges are exact.
//! - `kernels/leaf_sha256.cu`: the SHA-256 leaf hash of every C tile (DESIGN §3), byte for
//!   byte what `protocol::commit::c_leaf_hashes` returns: one thread per tile for many small
//!   tiles, one warp per tile for few large ones ([`device::LeafKernel`]).
//! - `kernels/freivalds.cu`: projections `M·r mod 2^61−1` for `i32` (`C·r`) and `i8` (`B·r`,
//!   `A·x`) matrices, equal to `protocol::freivalds::project_{i32,i8}`.
//!
//! Nothing is needed at build time: the sources are embedded with `include_str!` and compiled
//! at run time by NVRTC ([`nvrtc`], loaded by hand so NVRTC 12 and 13 both work; PTX cached on
//! disk), then loaded through cudarc's driver API with dynamic loading. cudarc panics when a
//! library or symbol is missing, so [`probe::driver`] checks libcuda first with plain dlopen,
//! and every cudarc call runs under `catch_unwind` ([`device::guarded`]): without a usable GPU
//! every entry point returns a [`GpuError`], never a panic.
//!
//! This is the one crate besides the CPU SIMD kernels allowed `unsafe` (FFI and kernel
//! launches, in `probe`, `nvrtc` and `device`), each block with a `SAFETY:` comment.
#![deny(unsafe_code)]

pub mod cublaslt;
pub mod device;
pub mod nvrtc;
pub mod probe;
pub mod sources;
pub mod timing;

pub use device::{GemmKernel, GpuDevice, LeafKernel};
pub use probe::{DeviceInfo, DriverInfo};
pub use timing::{CublasTiming, PipelineTimings, TimingRequest};

/// Why the GPU cannot be used, or a GPU operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GpuError {
    /// No usable libcuda (absent, broken, or `cuInit` failed).
    #[error("no usable CUDA driver: {0}")]
    NoDriver(#[source] probe::ProbeError),
    /// The driver works but has no such device.
    #[error("no CUDA device {ordinal} (the driver reports {count})")]
    NoDevice {
        /// Requested ordinal.
        ordinal: usize,
        /// Devices present.
        count: usize,
    },
    /// The device is older than sm_61 (no `dp4a`).
    #[error("{name} is sm_{sm}; the kernels need sm_61 or newer")]
    Unsupported {
        /// Device name.
        name: String,
        /// Compute capability.
        sm: u32,
    },
    /// No usable NVRTC.
    #[error("no usable NVRTC: {0}")]
    NoNvrtc(#[source] nvrtc::NvrtcError),
    /// NVRTC refused a kernel.
    #[error(transparent)]
    Compile(#[from] nvrtc::CompileError),
    /// `MATPROOF_GPU_GEMM` is set to something other than a GEMM kernel's name.
    #[error("{variable}={value:?} names no GEMM kernel: use dp4a or mma (or leave it unset for the default)")]
    GemmChoice {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The chosen GEMM kernel needs a newer architecture than the PTX targets.
    #[error("the {kernel} GEMM kernel needs sm_{min_sm} or newer; this device's PTX targets compute_{arch}")]
    GemmUnsupported {
        /// `mma` or `dp4a`.
        kernel: &'static str,
        /// Its lowest architecture.
        min_sm: u32,
        /// The architecture compiled for.
        arch: u32,
    },
    /// The driver cannot load PTX this new.
    #[error(
        "the CUDA driver ({driver}) is older than the PTX from NVRTC {nvrtc}: update the driver, or point \
         MATPROOF_NVRTC at an NVRTC no newer than the driver"
    )]
    DriverTooOld {
        /// Driver CUDA version.
        driver: String,
        /// NVRTC version (and PTX ISA).
        nvrtc: String,
    },
    /// A driver call failed.
    #[error("CUDA driver error during {what}: {message}")]
    Driver {
        /// The operation.
        what: String,
        /// The `CUresult`.
        message: String,
    },
    /// cudarc panicked (caught).
    #[error("cudarc panicked during {what}: {message}")]
    Panicked {
        /// The operation.
        what: String,
        /// The panic message.
        message: String,
    },
    /// A dimension exceeds the kernels' limit.
    #[error("{name} = {value} exceeds the maximum {max}")]
    TooLarge {
        /// Which dimension.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// A buffer has the wrong length.
    #[error("{what} has length {actual}, expected {expected}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Required.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// A random-vector entry is not below `2^61 − 1`.
    #[error("random vector {round} has entry {index} not reduced below 2^61-1")]
    NotReduced {
        /// Vector index.
        round: usize,
        /// Entry index.
        index: usize,
    },
}

/// Opens device 0, or says in one error why not (never panics).
pub fn open_default() -> Result<GpuDevice, GpuError> {
    GpuDevice::open(0)
}
