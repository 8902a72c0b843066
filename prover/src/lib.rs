//! Execution backends for the prover: the [`Backend`] trait (GEMM, C tile leaves and `R_C`,
//! projections `C·r`) and the CPU backend ([`CpuBackend`]: exact `i8×i8→i32` GEMM with
//! runtime-selected AVX-512 VNNI, AVX2 and portable kernels, all rayon-parallel).
//!
//! [`respond`] opens and proves the sampled tiles of a committed job. With feature
//! `sidecar`, the `sidecar` module is the gRPC prover sidecar that runs jobs against a verifier
//! node (the plain library needs no tokio or tonic). With feature `cuda`, [`cuda`] holds the CUDA
//! backend (through `matproof-gpu-kernels`); [`best_backend`] picks it when a GPU is usable
//! and the CPU otherwise, saying which and why.
//!
//! `unsafe` is denied except in the explicit SIMD kernels of [`cpu`], each block with a
//! `SAFETY:` comment.
#![deny(unsafe_code)]

pub mod backend;
pub mod cpu;
pub mod cuda;
pub mod respond;
#[cfg(feature = "sidecar")]
pub mod sidecar;

pub use backend::{Backend, BackendError, CpuBackend, Execution, LEAF_SPOT_CHECKS, execute};
pub use cuda::best_backend;
#[cfg(feature = "cuda")]
pub use cuda::{CudaBackend, CudaError, FallbackPolicy};
pub use respond::{CommittedJob, RespondError};
