//! The device API: one CUDA device with the kernels loaded. Every cudarc call runs inside
//! [`guarded`], so a panic in cudarc (a library or symbol it cannot find) becomes an error.
#![allow(unsafe_code)] // kernel launches through cudarc; each block says why it is sound.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, DriverError, LaunchConfig, PushKernelArg, sys};
use cudarc::nvrtc::Ptx;

use crate::GpuError;
use crate::nvrtc::{nvrtc, ptx_for, ptx_isa_version};
use crate::probe::{self, DeviceInfo, driver_error_name, format_cuda_version};
use crate::sources;

/// Largest `m`, `k`, `n` (and tile side) the kernels accept: `protocol::limits::MAX_DIM`.
pub const MAX_DIM: usize = 1 << 17;

/// Which GEMM kernel a device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmKernel {
    /// Tensor cores, `mma.sync.m16n8k32.s8` (sm_80+), block tile 128×128×64.
    Mma,
    /// `dp4a` (sm_61+), block tile 64×64×32.
    Dp4a,
}

impl GemmKernel {
    /// `"mma"` or `"dp4a"`.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Mma => "mma",
            GemmKernel::Dp4a => "dp4a",
        }
    }

    /// `(bm, bn, bk)`: the padding of the packed operands.
    fn block(self) -> (usize, usize, usize) {
        match self {
            GemmKernel::Mma => (128, 128, 64),
            GemmKernel::Dp4a => (64, 64, 32),
        }
    }
}

/// Runs `f`, turning a cudarc panic or driver error into a [`GpuError`].
pub fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, DriverError>) -> Result<T, GpuError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(DriverError(code))) => {
            if code == sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
                let driver = probe::driver().map(|d| format_cuda_version(d.version)).unwrap_or_default();
                let nvrtc = nvrtc().map(|n| format!("{}.{}", n.version.0, n.version.1)).unwrap_or_default();
                return Err(GpuError::DriverTooOld { driver, nvrtc });
            }
            Err(GpuError::Driver { what: what.to_string(), message: driver_error_name(code as i32) })
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(GpuError::Panicked { what: what.to_string(), message })
        }
    }
}

struct Functions {
    pack_rows: CudaFunction,
    pack_transpose: CudaFunction,
    gemm: CudaFunction,
    leaf: CudaFunction,
    project_i32: CudaFunction,
    project_i8: CudaFunction,
}

/// One CUDA device, its stream and the loaded kernels.
pub struct GpuDevice {
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: Functions,
    info: DeviceInfo,
    arch: u32,
    gemm: GemmKernel,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("info", &self.info)
            .field("arch", &self.arch)
            .field("gemm", &self.gemm)
            .finish()
    }
}

fn check_dim(name: &'static str, value: usize) -> Result<(), GpuError> {
    if value > MAX_DIM { Err(GpuError::TooLarge { name, value, max: MAX_DIM }) } else { Ok(()) }
}

fn check_len(what: &'static str, actual: usize, expected: usize) -> Result<(), GpuError> {
    if actual != expected { Err(GpuError::Length { what, expected, actual }) } else { Ok(()) }
}

fn grid_1d(items: usize, per_block: usize) -> Result<u32, GpuError> {
    u32::try_from(items.div_ceil(per_block)).map_err(|_| GpuError::TooLarge {
        name: "grid",
        value: items,
        max: u32::MAX as usize,
    })
}

impl GpuDevice {
    /// Opens device `ordinal`: probes the driver and NVRTC first (no cudarc call happens
    /// unless both are usable), compiles (or loads cached) PTX, loads the modules.
    pub fn open(ordinal: usize) -> Result<GpuDevice, GpuError> {
        let driver = probe::driver().map_err(GpuError::NoDriver)?;
        let info =
            driver.devices.get(ordinal).cloned().ok_or(GpuError::NoDevice { ordinal, count: driver.devices.len() })?;
        let sm = info.sm_number();
        if sm < 61 {
            return Err(GpuError::Unsupported { name: info.name.clone(), sm });
        }
        let nvrtc = nvrtc().map_err(GpuError::NoNvrtc)?;
        let arch = nvrtc.arch_for(sm);
        let gemm = if arch >= sources::GEMM_MMA.min_sm { GemmKernel::Mma } else { GemmKernel::Dp4a };
        let mut ptx = Vec::new();
        for source in sources::for_sm(arch) {
            ptx.push((source, ptx_for(&source, arch).map_err(|e| GpuError::Compile(e.to_string()))?));
        }
        let ptx_isa = ptx.first().and_then(|(_, p)| ptx_isa_version(p));
        let result = guarded("loading the kernels", || {
            let ctx = CudaContext::new(ordinal)?;
            let stream = ctx.new_stream()?;
            let mut modules = Vec::new();
            for (source, text) in &ptx {
                modules.push((source.name, ctx.load_module(Ptx::from_src(text.as_str()))?));
            }
            let load = |module: &str, function: &str| -> Result<CudaFunction, DriverError> {
                let (_, m) = modules.iter().find(|(name, _)| *name == module).expect("module compiled above");
                m.load_function(function)
            };
            let (gemm_module, gemm_function) =
                if gemm == GemmKernel::Mma { ("gemm_mma", "gemm_i8_mma") } else { ("gemm_dp4a", "gemm_i8_dp4a") };
            let functions = Functions {
                pack_rows: load("pack", "pack_rows_i8")?,
                pack_transpose: load("pack", "pack_transpose_i8")?,
                gemm: load(gemm_module, gemm_function)?,
                leaf: load("leaf_sha256", "c_leaf_hashes")?,
                project_i32: load("freivalds", "project_i32")?,
                project_i8: load("freivalds", "project_i8")?,
            };
            Ok((ctx, stream, functions))
        });
        let (ctx, stream, functions) = result.map_err(|e| match e {
            GpuError::DriverTooOld { driver, nvrtc } => GpuError::DriverTooOld {
                driver,
                nvrtc: match ptx_isa {
                    Some((a, b)) => format!("{nvrtc} (PTX ISA {a}.{b})"),
                    None => nvrtc,
                },
            },
            other => other,
        })?;
        Ok(GpuDevice { _ctx: ctx, stream, functions, info, arch, gemm })
    }

    /// What the driver says about this device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The architecture the PTX was compiled for.
    pub fn arch(&self) -> u32 {
        self.arch
    }

    /// The GEMM kernel in use.
    pub fn gemm_kernel(&self) -> GemmKernel {
        self.gemm
    }

    /// `C = A·B` exactly (wrapping `i32`), `A` `m×k` and `B` `k×n` row-major; `C` row-major.
    pub fn gemm_i8(&self, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<Vec<i32>, GpuError> {
        check_dim("m", m)?;
        check_dim("k", k)?;
        check_dim("n", n)?;
        check_len("A", a.len(), m * k)?;
        check_len("B", b.len(), k * n)?;
        if m == 0 || n == 0 || k == 0 {
            return Ok(vec![0; m * n]);
        }
        let (bm, bn, bk) = self.gemm.block();
        let (mp, np, kp) = (m.next_multiple_of(bm), n.next_multiple_of(bn), k.next_multiple_of(bk));
        let (m32, k32, n32, mp32, np32, kp32) = (m as u32, k as u32, n as u32, mp as u32, np as u32, kp as u32);
        let f = &self.functions;
        let stream = &self.stream;
        guarded("gemm", || {
            let a_dev = stream.clone_htod(a)?;
            let b_dev = stream.clone_htod(b)?;
            let mut ap = stream.alloc_zeros::<i8>(mp * kp)?;
            let mut btp = stream.alloc_zeros::<i8>(np * kp)?;
            let mut c_dev = stream.alloc_zeros::<i32>(m * n)?;
            let pack_rows = LaunchConfig {
                grid_dim: ((kp / 4).div_ceil(256) as u32, mp.min(65535) as u32, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: argument types and order match `pack_rows_i8(const i8*, i8*, u32 m, u32 k,
            // u32 mp, u32 kp)`; `a_dev` holds m·k bytes and `ap` mp·kp bytes; the kernel
            // writes only ap[i·kp + t] with i < mp, t < kp.
            unsafe {
                stream
                    .launch_builder(&f.pack_rows)
                    .arg(&a_dev)
                    .arg(&mut ap)
                    .arg(&m32)
                    .arg(&k32)
                    .arg(&mp32)
                    .arg(&kp32)
                    .launch(pack_rows)
            }?;
            let pack_t = LaunchConfig {
                grid_dim: ((kp / 32) as u32, (np / 32) as u32, 1),
                block_dim: (32, 8, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: matches `pack_transpose_i8(const i8*, i8*, u32 k, u32 n, u32 np, u32 kp)`;
            // `b_dev` holds k·n bytes, `btp` np·kp bytes; writes are bounded by np and kp.
            unsafe {
                stream
                    .launch_builder(&f.pack_transpose)
                    .arg(&b_dev)
                    .arg(&mut btp)
                    .arg(&k32)
                    .arg(&n32)
                    .arg(&np32)
                    .arg(&kp32)
                    .launch(pack_t)
            }?;
            let gemm = LaunchConfig {
                grid_dim: ((np / bn) as u32, (mp / bm) as u32, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: matches `gemm_i8_{mma,dp4a}(const i8* ap, const i8* btp, int* c, u32 m, u32 n,
            // u32 kp)`; the packed operands are mp×kp and np×kp with mp, np, kp multiples of the
            // kernel's block tile (as it requires); C holds m·n i32 and stores are bounded by m, n.
            unsafe {
                stream
                    .launch_builder(&f.gemm)
                    .arg(&ap)
                    .arg(&btp)
                    .arg(&mut c_dev)
                    .arg(&m32)
                    .arg(&n32)
                    .arg(&kp32)
                    .launch(gemm)
            }?;
            let c = stream.clone_dtoh(&c_dev)?;
            stream.synchronize()?;
            Ok(c)
        })
    }

    /// SHA-256 leaf hashes of every C tile, row-major over tiles, exactly as
    /// `protocol::commit::c_leaf_hashes` (DESIGN §3).
    pub fn c_leaf_hashes(
        &self,
        c: &[i32],
        m: usize,
        n: usize,
        tm: usize,
        tn: usize,
    ) -> Result<Vec<[u8; 32]>, GpuError> {
        check_dim("m", m)?;
        check_dim("n", n)?;
        check_dim("tm", tm)?;
        check_dim("tn", tn)?;
        check_len("C", c.len(), m * n)?;
        if tm == 0 || tn == 0 {
            return Err(GpuError::Length { what: "tile side", expected: 1, actual: 0 });
        }
        let col_blocks = n.div_ceil(tn);
        let count = m.div_ceil(tm) * col_blocks;
        if count == 0 {
            return Ok(Vec::new());
        }
        let cfg = LaunchConfig { grid_dim: (grid_1d(count, 128)?, 1, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
        let (m64, n64, tm64, tn64, cb64, count64) =
            (m as u64, n as u64, tm as u64, tn as u64, col_blocks as u64, count as u64);
        let stream = &self.stream;
        let bytes = guarded("leaf hashes", || {
            let c_dev = stream.clone_htod(c)?;
            let mut out = stream.alloc_zeros::<u8>(count * 32)?;
            // SAFETY: matches `c_leaf_hashes(const int* c, u64 m, u64 n, u64 tm, u64 tn, u64
            // col_blocks, u64 tile_count, u8* out)`; `c_dev` holds m·n i32 (reads are bounded by
            // m, n) and `out` 32 bytes per tile (one thread per tile < tile_count).
            unsafe {
                stream
                    .launch_builder(&self.functions.leaf)
                    .arg(&c_dev)
                    .arg(&m64)
                    .arg(&n64)
                    .arg(&tm64)
                    .arg(&tn64)
                    .arg(&cb64)
                    .arg(&count64)
                    .arg(&mut out)
                    .launch(cfg)
            }?;
            let bytes = stream.clone_dtoh(&out)?;
            stream.synchronize()?;
            Ok(bytes)
        })?;
        Ok(bytes.chunks_exact(32).map(|d| d.try_into().expect("32-byte chunks")).collect())
    }

    /// `matrix·r mod 2^61−1` for each of `rounds` vectors (`vectors` is `[round][cols]`,
    /// entries below `2^61 − 1`); returns `[round][row]`. As `protocol::freivalds::project_i32`.
    pub fn project_i32(
        &self,
        matrix: &[i32],
        rows: usize,
        cols: usize,
        vectors: &[u64],
        rounds: usize,
    ) -> Result<Vec<u64>, GpuError> {
        self.project(Element::I32(matrix), rows, cols, vectors, rounds)
    }

    /// As [`GpuDevice::project_i32`] for an `i8` matrix (`B·r`, `A·x`).
    pub fn project_i8(
        &self,
        matrix: &[i8],
        rows: usize,
        cols: usize,
        vectors: &[u64],
        rounds: usize,
    ) -> Result<Vec<u64>, GpuError> {
        self.project(Element::I8(matrix), rows, cols, vectors, rounds)
    }

    fn project(
        &self,
        matrix: Element<'_>,
        rows: usize,
        cols: usize,
        vectors: &[u64],
        rounds: usize,
    ) -> Result<Vec<u64>, GpuError> {
        check_dim("rows", rows)?;
        check_dim("cols", cols)?;
        check_len("matrix", matrix.len(), rows * cols)?;
        check_len("vectors", vectors.len(), rounds * cols)?;
        if let Some(index) = vectors.iter().position(|&v| v >= (1 << 61) - 1) {
            return Err(GpuError::NotReduced { round: index / cols.max(1), index: index % cols.max(1) });
        }
        if rows == 0 || rounds == 0 {
            return Ok(Vec::new());
        }
        if cols == 0 {
            return Ok(vec![0; rows * rounds]);
        }
        let cfg = LaunchConfig { grid_dim: (grid_1d(rows, 8)?, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let (rows64, cols64) = (rows as u64, cols as u64);
        let stream = &self.stream;
        guarded("projection", || {
            let v_dev = stream.clone_htod(vectors)?;
            let mut out = stream.alloc_zeros::<u64>(rows * rounds)?;
            let (m_i32, m_i8) = match matrix {
                Element::I32(m) => (Some(stream.clone_htod(m)?), None),
                Element::I8(m) => (None, Some(stream.clone_htod(m)?)),
            };
            for round0 in (0..rounds).step_by(4) {
                let (r0, count) = (round0 as u32, (rounds - round0).min(4) as u32);
                let mut launch = match (&m_i32, &m_i8) {
                    (Some(m), _) => {
                        let mut l = stream.launch_builder(&self.functions.project_i32);
                        l.arg(m);
                        l
                    }
                    (_, Some(m)) => {
                        let mut l = stream.launch_builder(&self.functions.project_i8);
                        l.arg(m);
                        l
                    }
                    _ => unreachable!("one matrix was uploaded"),
                };
                // SAFETY: matches `project_{i32,i8}(const T* mat, u64 rows, u64 cols, const u64*
                // vectors, u32 round0, u32 count, u64* out)`; the matrix holds rows·cols
                // entries, vectors rounds·cols and out rounds·rows; round0 + count ≤ rounds.
                unsafe { launch.arg(&rows64).arg(&cols64).arg(&v_dev).arg(&r0).arg(&count).arg(&mut out).launch(cfg) }?;
            }
            let result = stream.clone_dtoh(&out)?;
            stream.synchronize()?;
            Ok(result)
        })
    }
}

#[derive(Clone, Copy)]
enum Element<'a> {
    I32(&'a [i32]),
    I8(&'a [i8]),
}

impl Element<'_> {
    fn len(&self) -> usize {
        match self {
            Element::I32(m) => m.len(),
            Element::I8(m) => m.len(),
        }
    }
}
