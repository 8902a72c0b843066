//! Backend selection and, with the `cuda` feature, the CUDA backend ([`CudaBackend`]) over
//! `matproof-gpu-kernels`.
//!
//! [`best_backend`] tries the GPU and falls back to the CPU, saying in one line which backend
//! runs and why. It never panics: `matproof-gpu-kernels` probes libcuda and NVRTC before any
//! cudarc call and turns cudarc panics into errors. `MATPROOF_BACKEND=cpu` forces the CPU.
#![forbid(unsafe_code)]

#[cfg(feature = "cuda")]
mod backend;

#[cfg(feature = "cuda")]
pub use backend::{CudaBackend, CudaError, FallbackPolicy};

use crate::{Backend, CpuBackend};

/// Environment variable that forces a backend: `cpu` or `cuda` (an error line and the CPU
/// when CUDA cannot run).
pub const BACKEND_ENV: &str = "MATPROOF_BACKEND";

/// Whether this build includes the CUDA backend.
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

/// The best backend on this machine and one line saying which one and why.
pub fn best_backend() -> (Box<dyn Backend>, String) {
    let cpu = CpuBackend::best();
    if std::env::var(BACKEND_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("cpu")) {
        return (Box::new(cpu), format!("backend: {} ({BACKEND_ENV}=cpu)", cpu.name()));
    }
    #[cfg(feature = "cuda")]
    {
        match CudaBackend::new() {
            Ok(gpu) => {
                let line = format!("backend: {} ({})", gpu.name(), gpu.describe());
                (Box::new(gpu), line)
            }
            Err(e) => (Box::new(cpu), format!("backend: {} (no usable GPU: {e}; using the CPU)", cpu.name())),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        (Box::new(cpu), format!("backend: {} (built without the cuda feature)", cpu.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_backend_never_panics_and_says_what_it_chose() {
        let (backend, line) = best_backend();
        assert!(line.starts_with("backend: "), "{line}");
        assert!(line.contains(&backend.name()), "{line}");
        println!("{line}");
    }
}

#[cfg(all(test, feature = "cuda"))]
mod gpu_tests;
