//! The CUDA backend: GEMM, C tile leaf hashes and projections on the GPU, bit-identical to
//! [`CpuBackend`].
//!
//! What a device failure does depends on the [`FallbackPolicy`]: by default the backend says so
//! in one line on stderr, stops using the device (an illegal access or a lost device leaves
//! the CUDA context unusable, so retrying it would only fail again) and computes this and
//! every later call on the CPU; with [`FallbackPolicy::Fail`] the [`Backend`] methods return
//! [`BackendError::Device`]. The `try_*` methods always return the device error (the tests use
//! them, so a silent fallback cannot make them pass). `execute` self-checks every product with
//! Freivalds and spot-checks leaf hashes on the CPU before anything is committed, so a faulty
//! device is caught either way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use matproof_gpu_kernels::{GemmKernel, GpuDevice, GpuError, nvrtc, probe};
use matproof_protocol::freivalds::{FreivaldsError, MODULUS};
use matproof_protocol::matrix::{MatrixI8, MatrixI32, product_dims};
use matproof_protocol::merkle::Digest;
use matproof_protocol::tiling::{Tiling, TilingError};

use crate::cpu::{GemmError, MAX_DIM, MAX_K};
use crate::{Backend, BackendError, CpuBackend};

/// A CUDA backend failure: the input was refused, or the device failed.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The input was refused (the same errors the CPU backend gives).
    #[error(transparent)]
    Input(#[from] BackendError),
    /// The device failed.
    #[error(transparent)]
    Device(#[from] GpuError),
}

/// What the [`Backend`] methods do when the device fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackPolicy {
    /// Say so once, stop using the device, compute on the CPU (a job still completes).
    #[default]
    Cpu,
    /// Return [`BackendError::Device`] (benchmarks, and operators who prefer a failed job to
    /// a slow one).
    Fail,
}

/// The CUDA backend on device 0.
#[derive(Debug)]
pub struct CudaBackend {
    device: GpuDevice,
    cpu: CpuBackend,
    gate: FailureGate,
}

/// Applies a [`FallbackPolicy`] and remembers a device failure.
#[derive(Debug, Default)]
struct FailureGate {
    policy: FallbackPolicy,
    /// Set by the first device failure under [`FallbackPolicy::Cpu`]; never cleared.
    device_failed: AtomicBool,
    fallbacks: AtomicUsize,
}

impl FailureGate {
    /// Runs `on_gpu` unless the device has failed before; on a device failure applies the
    /// policy: `on_cpu` after one line on stderr (the first time), or [`BackendError::Device`].
    fn run<T>(
        &self,
        backend: &dyn Fn() -> String,
        operation: &'static str,
        on_gpu: impl FnOnce() -> Result<T, CudaError>,
        on_cpu: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        if self.device_failed.load(Ordering::Relaxed) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return on_cpu();
        }
        match on_gpu() {
            Ok(value) => Ok(value),
            Err(CudaError::Input(e)) => Err(e),
            Err(CudaError::Device(e)) => match self.policy {
                FallbackPolicy::Fail => {
                    Err(BackendError::Device { backend: backend(), operation, message: e.to_string() })
                }
                FallbackPolicy::Cpu => {
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                    if !self.device_failed.swap(true, Ordering::Relaxed) {
                        eprintln!("warning: {} {operation} failed ({e}); using the CPU from now on", backend());
                    }
                    on_cpu()
                }
            },
        }
    }
}

impl CudaBackend {
    /// Opens device 0 and loads the kernels; an error (never a panic) without a usable GPU.
    pub fn new() -> Result<Self, GpuError> {
        Self::on_device(0)
    }

    /// Opens device `ordinal` (GEMM kernel: `MATPROOF_GPU_GEMM`, else the architecture's default).
    pub fn on_device(ordinal: usize) -> Result<Self, GpuError> {
        Ok(Self::with_device(GpuDevice::open(ordinal)?))
    }

    /// Opens device `ordinal` with the GEMM kernel `gemm` (`None`: the architecture's default,
    /// whatever `MATPROOF_GPU_GEMM` says).
    pub fn on_device_with(ordinal: usize, gemm: Option<GemmKernel>) -> Result<Self, GpuError> {
        Ok(Self::with_device(GpuDevice::open_with(ordinal, gemm)?))
    }

    fn with_device(device: GpuDevice) -> Self {
        Self { device, cpu: CpuBackend::best(), gate: FailureGate::default() }
    }

    /// The same backend with `policy` for device failures.
    pub fn with_fallback(mut self, policy: FallbackPolicy) -> Self {
        self.gate.policy = policy;
        self
    }

    /// Whether a device failure has switched this backend to the CPU for good.
    pub fn device_failed(&self) -> bool {
        self.gate.device_failed.load(Ordering::Relaxed)
    }

    /// The device.
    pub fn device(&self) -> &GpuDevice {
        &self.device
    }

    /// How many calls ran on the CPU because of a device failure.
    pub fn fallbacks(&self) -> usize {
        self.gate.fallbacks.load(Ordering::Relaxed)
    }

    /// One line: device, memory, driver and NVRTC.
    pub fn describe(&self) -> String {
        let info = self.device.info();
        let driver = probe::driver().map(|d| probe::format_cuda_version(d.version)).unwrap_or_else(|_| "?".into());
        let nvrtc = nvrtc::nvrtc().map(|n| format!("{}.{}", n.version.0, n.version.1)).unwrap_or_else(|_| "?".into());
        format!(
            "{} sm_{}, {:.1} GiB, device {}, driver CUDA {driver}, NVRTC {nvrtc}, PTX for compute_{}",
            info.name,
            info.sm_number(),
            info.memory_bytes as f64 / (1u64 << 30) as f64,
            info.ordinal,
            self.device.arch()
        )
    }

    /// `C = A·B` on the GPU, or the device error.
    pub fn try_gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32, CudaError> {
        let (m, k, n) = product_dims(a, b).map_err(BackendError::from)?;
        check_gemm_dims(m, k, n)?;
        let data = self.device.gemm_i8(a.as_slice(), b.as_slice(), m, k, n)?;
        Ok(MatrixI32::from_vec(m, n, data).map_err(BackendError::from)?)
    }

    /// `C = A·B` and its leaf hashes on the GPU, hashed from C on the device, or the device error.
    pub fn try_gemm_with_leaf_hashes(
        &self,
        tiling: &Tiling,
        a: &MatrixI8,
        b: &MatrixI8,
    ) -> Result<(MatrixI32, Vec<Digest>), CudaError> {
        let (m, k, n) = product_dims(a, b).map_err(BackendError::from)?;
        check_gemm_dims(m, k, n)?;
        tiling.check_matrices(a, b, None).map_err(BackendError::from)?;
        let shape = tiling.shape;
        let (c, leaves) =
            self.device.gemm_i8_with_leaf_hashes(a.as_slice(), b.as_slice(), (m, k, n), (shape.tm, shape.tn))?;
        Ok((MatrixI32::from_vec(m, n, c).map_err(BackendError::from)?, leaves))
    }

    /// C tile leaf hashes on the GPU, or the device error.
    pub fn try_c_leaf_hashes(&self, tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, CudaError> {
        if c.rows() != tiling.m || c.cols() != tiling.n {
            return Err(BackendError::from(TilingError::MatrixShape {
                what: "C",
                rows: c.rows(),
                cols: c.cols(),
                expected_rows: tiling.m,
                expected_cols: tiling.n,
            })
            .into());
        }
        let shape = tiling.shape;
        Ok(self.device.c_leaf_hashes(c.as_slice(), tiling.m, tiling.n, shape.tm, shape.tn)?)
    }

    /// `C·r` for each vector on the GPU, or the device error. Inputs are validated as
    /// `protocol::freivalds::project_i32` validates them, with the same errors.
    pub fn try_project_c(&self, c: &MatrixI32, vectors: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, CudaError> {
        let (rows, cols) = (c.rows(), c.cols());
        for (name, value) in [("rows", rows), ("cols", cols)] {
            if value > MAX_DIM {
                return Err(BackendError::from(FreivaldsError::DimensionTooLarge { name, value, max: MAX_DIM }).into());
            }
        }
        for (round, v) in vectors.iter().enumerate() {
            if v.len() != cols {
                let e = FreivaldsError::LengthMismatch { what: "random vector", expected: cols, actual: v.len() };
                return Err(BackendError::from(e).into());
            }
            if let Some(index) = v.iter().position(|&e| e >= MODULUS) {
                return Err(BackendError::from(FreivaldsError::VectorEntryNotReduced { round, index }).into());
            }
        }
        let flat: Vec<u64> = vectors.iter().flatten().copied().collect();
        let out = self.device.project_i32(c.as_slice(), rows, cols, &flat, vectors.len())?;
        if rows == 0 {
            return Ok(vec![Vec::new(); vectors.len()]);
        }
        Ok(out.chunks_exact(rows).map(<[u64]>::to_vec).collect())
    }
}

/// The CPU backend's limits, so both backends refuse the same inputs with the same errors.
fn check_gemm_dims(m: usize, k: usize, n: usize) -> Result<(), CudaError> {
    for (name, value, max) in [("m", m, MAX_DIM), ("k", k, MAX_K), ("n", n, MAX_DIM)] {
        if value > max {
            return Err(BackendError::from(GemmError::DimensionTooLarge { name, value, max }).into());
        }
    }
    Ok(())
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        format!("cuda/{}-sm_{}", self.device.gemm_kernel().name(), self.device.info().sm_number())
    }

    fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32, BackendError> {
        self.gate.run(&|| self.name(), "GEMM", || self.try_gemm(a, b), || self.cpu.gemm(a, b))
    }

    fn gemm_with_leaf_hashes(
        &self,
        tiling: &Tiling,
        a: &MatrixI8,
        b: &MatrixI8,
    ) -> Result<(MatrixI32, Vec<Digest>), BackendError> {
        self.gate.run(
            &|| self.name(),
            "GEMM and leaf hashing",
            || self.try_gemm_with_leaf_hashes(tiling, a, b),
            || self.cpu.gemm_with_leaf_hashes(tiling, a, b),
        )
    }

    fn c_leaf_hashes(&self, tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, BackendError> {
        self.gate.run(
            &|| self.name(),
            "leaf hashing",
            || self.try_c_leaf_hashes(tiling, c),
            || self.cpu.c_leaf_hashes(tiling, c),
        )
    }

    fn project_c(&self, c: &MatrixI32, vectors: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, BackendError> {
        self.gate.run(
            &|| self.name(),
            "projection",
            || self.try_project_c(c, vectors),
            || self.cpu.project_c(c, vectors),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn device_error() -> CudaError {
        CudaError::Device(GpuError::Driver { what: "gemm".into(), message: "CUDA_ERROR_ILLEGAL_ADDRESS".into() })
    }

    #[test]
    fn the_cpu_policy_falls_back_and_stops_using_the_device() {
        let gate = FailureGate::default();
        let name = || "cuda/test".to_string();
        assert_eq!(gate.run(&name, "GEMM", || Ok(1), || Ok(2)).unwrap(), 1);
        assert_eq!(gate.run(&name, "GEMM", || Err(device_error()), || Ok(2)).unwrap(), 2);
        assert!(gate.device_failed.load(Ordering::Relaxed));
        // Later calls go straight to the CPU: the device is not touched again.
        let touched = Cell::new(false);
        let value = gate.run(
            &name,
            "GEMM",
            || {
                touched.set(true);
                Ok(1)
            },
            || Ok(3),
        );
        assert_eq!(value.unwrap(), 3);
        assert!(!touched.get());
        assert_eq!(gate.fallbacks.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_fail_policy_reports_the_device_error() {
        let gate = FailureGate { policy: FallbackPolicy::Fail, ..FailureGate::default() };
        let error = gate.run(&|| "cuda/test".into(), "leaf hashing", || Err::<u8, _>(device_error()), || Ok(2));
        match error {
            Err(BackendError::Device { backend, operation, message }) => {
                assert_eq!((backend.as_str(), operation), ("cuda/test", "leaf hashing"));
                assert!(message.contains("ILLEGAL_ADDRESS"), "{message}");
            }
            other => panic!("expected a device error, got {other:?}"),
        }
        assert!(!gate.device_failed.load(Ordering::Relaxed));
    }

    #[test]
    fn input_errors_are_never_retried_on_the_cpu() {
        for policy in [FallbackPolicy::Cpu, FallbackPolicy::Fail] {
            let gate = FailureGate { policy, ..FailureGate::default() };
            let input = || {
                Err::<u8, _>(CudaError::Input(BackendError::from(GemmError::DimensionTooLarge {
                    name: "m",
                    value: 1 << 30,
                    max: MAX_DIM,
                })))
            };
            let ran_cpu = Cell::new(false);
            let result = gate.run(&|| "cuda/test".into(), "GEMM", input, || {
                ran_cpu.set(true);
                Ok(0)
            });
            assert!(matches!(result, Err(BackendError::Gemm(_))), "{result:?}");
            assert!(!ran_cpu.get());
        }
    }
}
