//! The CUDA backend: GEMM, C tile leaf hashes and projections on the GPU, bit-identical to
//! [`CpuBackend`].
//!
//! The [`Backend`] methods cannot report a device failure as such (`BackendError` has no
//! device variant), so they recompute on the CPU when the GPU fails, after one line on stderr;
//! the `try_*` methods return the device error instead (the tests use them, so a silent
//! fallback cannot make them pass). `execute` self-checks every product with Freivalds on the
//! CPU before anything is committed, so a faulty device is caught either way.

use std::sync::atomic::{AtomicUsize, Ordering};

use matproof_gpu_kernels::{GpuDevice, GpuError, nvrtc, probe};
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

/// The CUDA backend on device 0.
#[derive(Debug)]
pub struct CudaBackend {
    device: GpuDevice,
    cpu: CpuBackend,
    fallbacks: AtomicUsize,
}

impl CudaBackend {
    /// Opens device 0 and loads the kernels; an error (never a panic) without a usable GPU.
    pub fn new() -> Result<Self, GpuError> {
        Self::on_device(0)
    }

    /// Opens device `ordinal`.
    pub fn on_device(ordinal: usize) -> Result<Self, GpuError> {
        Ok(Self { device: GpuDevice::open(ordinal)?, cpu: CpuBackend::best(), fallbacks: AtomicUsize::new(0) })
    }

    /// The device.
    pub fn device(&self) -> &GpuDevice {
        &self.device
    }

    /// How many calls fell back to the CPU after a device error.
    pub fn fallbacks(&self) -> usize {
        self.fallbacks.load(Ordering::Relaxed)
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
        for (name, value, max) in [("m", m, MAX_DIM), ("k", k, MAX_K), ("n", n, MAX_DIM)] {
            if value > max {
                return Err(BackendError::from(GemmError::DimensionTooLarge { name, value, max }).into());
            }
        }
        let data = self.device.gemm_i8(a.as_slice(), b.as_slice(), m, k, n)?;
        Ok(MatrixI32::from_vec(m, n, data).map_err(BackendError::from)?)
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

    fn fell_back(&self, what: &str, error: &GpuError) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        eprintln!("warning: CUDA {what} failed ({error}); computing it on the CPU");
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        format!("cuda/{}-sm_{}", self.device.gemm_kernel().name(), self.device.info().sm_number())
    }

    fn gemm(&self, a: &MatrixI8, b: &MatrixI8) -> Result<MatrixI32, BackendError> {
        match self.try_gemm(a, b) {
            Ok(c) => Ok(c),
            Err(CudaError::Input(e)) => Err(e),
            Err(CudaError::Device(e)) => {
                self.fell_back("GEMM", &e);
                self.cpu.gemm(a, b)
            }
        }
    }

    fn c_leaf_hashes(&self, tiling: &Tiling, c: &MatrixI32) -> Result<Vec<Digest>, BackendError> {
        match self.try_c_leaf_hashes(tiling, c) {
            Ok(d) => Ok(d),
            Err(CudaError::Input(e)) => Err(e),
            Err(CudaError::Device(e)) => {
                self.fell_back("leaf hashing", &e);
                self.cpu.c_leaf_hashes(tiling, c)
            }
        }
    }

    fn project_c(&self, c: &MatrixI32, vectors: &[Vec<u64>]) -> Result<Vec<Vec<u64>>, BackendError> {
        match self.try_project_c(c, vectors) {
            Ok(p) => Ok(p),
            Err(CudaError::Input(e)) => Err(e),
            Err(CudaError::Device(e)) => {
                self.fell_back("projection", &e);
                self.cpu.project_c(c, vectors)
            }
        }
    }
}
