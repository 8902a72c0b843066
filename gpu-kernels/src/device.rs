//! The device API: one CUDA device with the kernels loaded. Every cudarc call runs inside
//! [`guarded`], so a panic in cudarc (a library or symbol it cannot find) becomes an error.
#![allow(unsafe_code)] // kernel launches through cudarc; each block says why it is sound.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg, sys};
use cudarc::nvrtc::Ptx;

use crate::GpuError;
use crate::nvrtc::{nvrtc, ptx_for, ptx_isa_version};
use crate::probe::{self, DeviceInfo, driver_error_name, format_cuda_version};
use crate::sources;

/// Largest `m`, `k`, `n` (and tile side) the kernels accept: `protocol::limits::MAX_DIM`.
pub const MAX_DIM: usize = 1 << 17;

/// Environment variable choosing the GEMM kernel: `dp4a` or `mma` (unset or empty: `mma`
/// where the architecture has it, else `dp4a`). Lets the GPU tests and benches run the `dp4a`
/// kernel on chips that default to tensor cores.
pub const GEMM_ENV: &str = "MATPROOF_GPU_GEMM";

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

    /// Its source.
    pub fn source(self) -> sources::KernelSource {
        match self {
            GemmKernel::Mma => sources::GEMM_MMA,
            GemmKernel::Dp4a => sources::GEMM_DP4A,
        }
    }

    /// `"mma"` or `"dp4a"` (ASCII case ignored, surrounding blanks trimmed); anything else is
    /// [`GpuError::GemmChoice`].
    pub fn parse(value: &str) -> Result<GemmKernel, GpuError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "mma" => Ok(GemmKernel::Mma),
            "dp4a" => Ok(GemmKernel::Dp4a),
            _ => Err(GpuError::GemmChoice { variable: GEMM_ENV, value: value.to_string() }),
        }
    }

    /// The kernel `MATPROOF_GPU_GEMM` asks for, `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<GemmKernel>, GpuError> {
        match std::env::var_os(GEMM_ENV) {
            None => Ok(None),
            Some(value) if value.is_empty() => Ok(None),
            Some(value) => Self::parse(&value.to_string_lossy()).map(Some),
        }
    }

    /// The default for PTX compiled for `compute_{arch}`.
    pub fn default_for(arch: u32) -> GemmKernel {
        if arch >= sources::GEMM_MMA.min_sm { GemmKernel::Mma } else { GemmKernel::Dp4a }
    }

    /// Every kernel that runs on `compute_{arch}`, the default first.
    pub fn available_for(arch: u32) -> Vec<GemmKernel> {
        [GemmKernel::Mma, GemmKernel::Dp4a].into_iter().filter(|k| k.source().min_sm <= arch).collect()
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

/// Which leaf-hash kernel hashes a tiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKernel {
    /// `c_leaf_hashes`: one thread per tile (many small tiles).
    PerThread,
    /// `c_leaf_hashes_warp`: one warp per tile (few large tiles).
    PerWarp,
}

impl LeafKernel {
    /// `"thread"` or `"warp"`.
    pub fn name(self) -> &'static str {
        match self {
            LeafKernel::PerThread => "thread",
            LeafKernel::PerWarp => "warp",
        }
    }

    /// The kernel for `tiles` tiles on a device with `multiprocessors` SMs: one thread per tile
    /// while that gives every SM's four warp schedulers a warp (128 tiles per SM), else one warp
    /// per tile, which spreads few tiles over every SM and builds each message 32 words at a
    /// time. The crossover is a reasoned guess until a device run times both (`bench gemm
    /// --backend cuda` reports `leaf_thread_ms` and `leaf_warp_ms`).
    pub fn for_tiles(tiles: usize, multiprocessors: u32) -> LeafKernel {
        if tiles < 128 * multiprocessors.max(1) as usize { LeafKernel::PerWarp } else { LeafKernel::PerThread }
    }
}

struct Functions {
    pack_rows: CudaFunction,
    pack_transpose: CudaFunction,
    gemm: CudaFunction,
    leaf: CudaFunction,
    leaf_warp: CudaFunction,
    project_i32: CudaFunction,
    project_i8: CudaFunction,
}

/// One CUDA device, its stream and the loaded kernels.
pub struct GpuDevice {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
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

pub(crate) fn grid_1d(items: usize, per_block: usize) -> Result<u32, GpuError> {
    u32::try_from(items.div_ceil(per_block)).map_err(|_| GpuError::TooLarge {
        name: "grid",
        value: items,
        max: u32::MAX as usize,
    })
}

/// Logical and padded GEMM dimensions (padded to the kernel's block tile).
pub(crate) struct GemmDims {
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) mp: usize,
    pub(crate) np: usize,
    pub(crate) kp: usize,
}

impl GemmDims {
    /// `(m, k, n, mp, np, kp)` as the kernels' `u32` arguments; every value is at most
    /// `MAX_DIM` rounded up to a block tile, far below `u32::MAX`.
    fn as_u32(&self) -> (u32, u32, u32, u32, u32, u32) {
        (self.m as u32, self.k as u32, self.n as u32, self.mp as u32, self.np as u32, self.kp as u32)
    }
}

/// Device buffers of one GEMM: the operands, their packed forms and the product.
pub(crate) struct GemmBuffers {
    pub(crate) a: CudaSlice<i8>,
    pub(crate) b: CudaSlice<i8>,
    pub(crate) ap: CudaSlice<i8>,
    pub(crate) btp: CudaSlice<i8>,
    pub(crate) c: CudaSlice<i32>,
}

/// The C tiling the leaf kernel hashes: `tm×tn` tiles of an `m×n` matrix.
pub(crate) struct LeafShape {
    m: usize,
    n: usize,
    tm: usize,
    tn: usize,
    col_blocks: usize,
    pub(crate) count: usize,
}

/// Tiles per 128-thread block of the warp-per-tile kernel.
const TILES_PER_WARP_BLOCK: usize = 4;

impl LeafShape {
    pub(crate) fn new(m: usize, n: usize, tm: usize, tn: usize) -> Result<LeafShape, GpuError> {
        check_dim("m", m)?;
        check_dim("n", n)?;
        check_dim("tm", tm)?;
        check_dim("tn", tn)?;
        if tm == 0 || tn == 0 {
            return Err(GpuError::Length { what: "tile side", expected: 1, actual: 0 });
        }
        let col_blocks = n.div_ceil(tn);
        let count = m.div_ceil(tm) * col_blocks;
        grid_1d(count, 128)?;
        Ok(LeafShape { m, n, tm, tn, col_blocks, count })
    }

    /// Whether the warp-per-tile kernel's grid fits (it needs 32× the blocks).
    pub(crate) fn fits_per_warp(&self) -> bool {
        grid_1d(self.count, TILES_PER_WARP_BLOCK).is_ok()
    }
}

/// 32-byte digests from the leaf kernel's output.
fn digests(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes.chunks_exact(32).map(|d| d.try_into().expect("32-byte chunks")).collect()
}

impl GpuDevice {
    /// Opens device `ordinal` with the GEMM kernel `MATPROOF_GPU_GEMM` names, else the
    /// default for the architecture ([`GEMM_ENV`]).
    pub fn open(ordinal: usize) -> Result<GpuDevice, GpuError> {
        Self::open_with(ordinal, GemmKernel::from_env()?)
    }

    /// Opens device `ordinal` with `gemm` (`None`: the architecture's default): probes the
    /// driver and NVRTC first (no cudarc call happens unless both are usable), compiles (or
    /// loads cached) PTX, loads the modules.
    pub fn open_with(ordinal: usize, gemm: Option<GemmKernel>) -> Result<GpuDevice, GpuError> {
        let driver = probe::driver().map_err(GpuError::NoDriver)?;
        let info =
            driver.devices.get(ordinal).cloned().ok_or(GpuError::NoDevice { ordinal, count: driver.devices.len() })?;
        let sm = info.sm_number();
        if sm < 61 {
            return Err(GpuError::Unsupported { name: info.name.clone(), sm });
        }
        let nvrtc = nvrtc().map_err(GpuError::NoNvrtc)?;
        let arch = nvrtc.arch_for(sm);
        let gemm = gemm.unwrap_or(GemmKernel::default_for(arch));
        if arch < gemm.source().min_sm {
            return Err(GpuError::GemmUnsupported { kernel: gemm.name(), min_sm: gemm.source().min_sm, arch });
        }
        let mut ptx = Vec::new();
        for source in sources::with_gemm(gemm.source()) {
            ptx.push((source, ptx_for(&source, arch)?));
        }
        let ptx_isa = ptx.first().and_then(|(_, p)| ptx_isa_version(p));
        let result = guarded("loading the kernels", || Self::load_modules(ordinal, &ptx, gemm));
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
        Ok(GpuDevice { ctx, stream, functions, info, arch, gemm })
    }

    /// Creates the context and stream and loads every kernel from `ptx`.
    fn load_modules(
        ordinal: usize,
        ptx: &[(sources::KernelSource, Arc<String>)],
        gemm: GemmKernel,
    ) -> Result<(Arc<CudaContext>, Arc<CudaStream>, Functions), DriverError> {
        let ctx = CudaContext::new(ordinal)?;
        let stream = ctx.new_stream()?;
        let mut modules = Vec::new();
        for (source, text) in ptx {
            modules.push((source.name, ctx.load_module(Ptx::from_src(text.as_str()))?));
        }
        let load = |module: &str, function: &str| -> Result<CudaFunction, DriverError> {
            let (_, m) = modules.iter().find(|(name, _)| *name == module).expect("module compiled above");
            m.load_function(function)
        };
        let gemm_source = gemm.source();
        let functions = Functions {
            pack_rows: load("pack", "pack_rows_i8")?,
            pack_transpose: load("pack", "pack_transpose_i8")?,
            gemm: load(gemm_source.name, gemm_source.functions[0])?,
            leaf: load("leaf_sha256", "c_leaf_hashes")?,
            leaf_warp: load("leaf_sha256", "c_leaf_hashes_warp")?,
            project_i32: load("freivalds", "project_i32")?,
            project_i8: load("freivalds", "project_i8")?,
        };
        Ok((ctx, stream, functions))
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
        let dims = self.gemm_dims(a, b, m, k, n)?;
        if m == 0 || n == 0 || k == 0 {
            return Ok(vec![0; m * n]);
        }
        let stream = &self.stream;
        guarded("gemm", || {
            let mut buffers = self.upload_gemm_operands(a, b, &dims)?;
            self.launch_pack(&mut buffers, &dims)?;
            self.launch_gemm(&mut buffers, &dims)?;
            let c = stream.clone_dtoh(&buffers.c)?;
            stream.synchronize()?;
            Ok(c)
        })
    }

    /// `C = A·B` and the SHA-256 leaf hashes of its `tm×tn` tiles, hashed from `C` while it is
    /// still on the device: `R_C` needs only the 32-byte leaves, so the hashing does not wait
    /// for `C` to come back to the host. Equal to [`GpuDevice::gemm_i8`] then
    /// `protocol::commit::c_leaf_hashes`.
    pub fn gemm_i8_with_leaf_hashes(
        &self,
        a: &[i8],
        b: &[i8],
        (m, k, n): (usize, usize, usize),
        (tm, tn): (usize, usize),
    ) -> Result<(Vec<i32>, Vec<[u8; 32]>), GpuError> {
        let dims = self.gemm_dims(a, b, m, k, n)?;
        let leaves = LeafShape::new(m, n, tm, tn)?;
        if m == 0 || n == 0 || k == 0 {
            let c = vec![0; m * n];
            let leaves = self.c_leaf_hashes(&c, m, n, tm, tn)?;
            return Ok((c, leaves));
        }
        let stream = &self.stream;
        let (c, bytes) = guarded("gemm and leaf hashes", || {
            let mut buffers = self.upload_gemm_operands(a, b, &dims)?;
            self.launch_pack(&mut buffers, &dims)?;
            self.launch_gemm(&mut buffers, &dims)?;
            let mut out = stream.alloc_zeros::<u8>(leaves.count * 32)?;
            self.launch_leaf(&buffers.c, &leaves, &mut out)?;
            let bytes = stream.clone_dtoh(&out)?;
            let c = stream.clone_dtoh(&buffers.c)?;
            stream.synchronize()?;
            Ok((c, bytes))
        })?;
        Ok((c, digests(&bytes)))
    }

    pub(crate) fn gemm_dims(&self, a: &[i8], b: &[i8], m: usize, k: usize, n: usize) -> Result<GemmDims, GpuError> {
        check_dim("m", m)?;
        check_dim("k", k)?;
        check_dim("n", n)?;
        check_len("A", a.len(), m * k)?;
        check_len("B", b.len(), k * n)?;
        let (bm, bn, bk) = self.gemm.block();
        Ok(GemmDims { m, k, n, mp: m.next_multiple_of(bm), np: n.next_multiple_of(bn), kp: k.next_multiple_of(bk) })
    }

    pub(crate) fn upload_gemm_operands(&self, a: &[i8], b: &[i8], dims: &GemmDims) -> Result<GemmBuffers, DriverError> {
        let stream = &self.stream;
        Ok(GemmBuffers {
            a: stream.clone_htod(a)?,
            b: stream.clone_htod(b)?,
            ap: stream.alloc_zeros::<i8>(dims.mp * dims.kp)?,
            btp: stream.alloc_zeros::<i8>(dims.np * dims.kp)?,
            c: stream.alloc_zeros::<i32>(dims.m * dims.n)?,
        })
    }

    /// Pads `A` into `ap` and transposes `B` into `btp` (K-contiguous columns).
    pub(crate) fn launch_pack(&self, buffers: &mut GemmBuffers, dims: &GemmDims) -> Result<(), DriverError> {
        let (m32, k32, n32, mp32, np32, kp32) = dims.as_u32();
        let (mp, np, kp) = (dims.mp, dims.np, dims.kp);
        let f = &self.functions;
        let stream = &self.stream;
        let pack_rows = LaunchConfig {
            grid_dim: ((kp / 4).div_ceil(256) as u32, mp.min(65535) as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument types and order match `pack_rows_i8(const i8*, i8*, u32 m, u32 k,
        // u32 mp, u32 kp)`; `a` holds m·k bytes and `ap` mp·kp bytes; the kernel writes only
        // ap[i·kp + t] with i < mp, t < kp.
        unsafe {
            stream
                .launch_builder(&f.pack_rows)
                .arg(&buffers.a)
                .arg(&mut buffers.ap)
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
        // `b` holds k·n bytes, `btp` np·kp bytes; writes are bounded by np and kp.
        unsafe {
            stream
                .launch_builder(&f.pack_transpose)
                .arg(&buffers.b)
                .arg(&mut buffers.btp)
                .arg(&k32)
                .arg(&n32)
                .arg(&np32)
                .arg(&kp32)
                .launch(pack_t)
        }?;
        Ok(())
    }

    /// `c = ap·btpᵀ` on the packed operands.
    pub(crate) fn launch_gemm(&self, buffers: &mut GemmBuffers, dims: &GemmDims) -> Result<(), DriverError> {
        let (m32, _, n32, _, _, kp32) = dims.as_u32();
        let (bm, bn, _) = self.gemm.block();
        let gemm = LaunchConfig {
            grid_dim: ((dims.np / bn) as u32, (dims.mp / bm) as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `gemm_i8_{mma,dp4a}(const i8* ap, const i8* btp, int* c, u32 m, u32 n,
        // u32 kp)`; the packed operands are mp×kp and np×kp with mp, np, kp multiples of the
        // kernel's block tile (as it requires); C holds m·n i32 and stores are bounded by m, n.
        unsafe {
            self.stream
                .launch_builder(&self.functions.gemm)
                .arg(&buffers.ap)
                .arg(&buffers.btp)
                .arg(&mut buffers.c)
                .arg(&m32)
                .arg(&n32)
                .arg(&kp32)
                .launch(gemm)
        }?;
        Ok(())
    }

    /// The leaf kernel this device uses for `shape` ([`LeafKernel::for_tiles`]).
    pub(crate) fn leaf_kernel_for(&self, shape: &LeafShape) -> LeafKernel {
        match LeafKernel::for_tiles(shape.count, self.info.multiprocessors) {
            LeafKernel::PerWarp if !shape.fits_per_warp() => LeafKernel::PerThread,
            kernel => kernel,
        }
    }

    /// Leaf hashes of the tiles of the device matrix `c` (m·n i32) into `out` (32 bytes per
    /// tile), with the kernel [`GpuDevice::leaf_kernel_for`] picks.
    pub(crate) fn launch_leaf(
        &self,
        c: &CudaSlice<i32>,
        shape: &LeafShape,
        out: &mut CudaSlice<u8>,
    ) -> Result<(), DriverError> {
        self.launch_leaf_with(self.leaf_kernel_for(shape), c, shape, out)
    }

    /// As [`GpuDevice::launch_leaf`] with `kernel`; the caller checks that
    /// [`LeafShape::fits_per_warp`] holds for [`LeafKernel::PerWarp`].
    pub(crate) fn launch_leaf_with(
        &self,
        kernel: LeafKernel,
        c: &CudaSlice<i32>,
        shape: &LeafShape,
        out: &mut CudaSlice<u8>,
    ) -> Result<(), DriverError> {
        if shape.count == 0 {
            return Ok(());
        }
        // LeafShape::new bounds the per-thread grid; the per-warp one is checked by the callers.
        let (function, blocks) = match kernel {
            LeafKernel::PerThread => (&self.functions.leaf, shape.count.div_ceil(128) as u32),
            LeafKernel::PerWarp => (&self.functions.leaf_warp, shape.count.div_ceil(TILES_PER_WARP_BLOCK) as u32),
        };
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
        let [m64, n64, tm64, tn64, cb64, count64] =
            [shape.m, shape.n, shape.tm, shape.tn, shape.col_blocks, shape.count].map(|v| v as u64);
        // SAFETY: matches `c_leaf_hashes{,_warp}(const int* c, u64 m, u64 n, u64 tm, u64 tn,
        // u64 col_blocks, u64 tile_count, u8* out)`; `c` holds m·n i32 (reads are bounded by m,
        // n; checked by the callers) and `out` 32 bytes per tile (one thread, or one warp, per
        // tile < tile_count writes them).
        unsafe {
            self.stream
                .launch_builder(function)
                .arg(c)
                .arg(&m64)
                .arg(&n64)
                .arg(&tm64)
                .arg(&tn64)
                .arg(&cb64)
                .arg(&count64)
                .arg(out)
                .launch(cfg)
        }?;
        Ok(())
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
        self.c_leaf_hashes_with(None, c, (m, n), (tm, tn))
    }

    /// As [`GpuDevice::c_leaf_hashes`] with the leaf kernel `kernel` (`None`: the one this
    /// device picks for the shape), so tests can check both kernels on any shape.
    pub fn c_leaf_hashes_with(
        &self,
        kernel: Option<LeafKernel>,
        c: &[i32],
        (m, n): (usize, usize),
        (tm, tn): (usize, usize),
    ) -> Result<Vec<[u8; 32]>, GpuError> {
        let shape = LeafShape::new(m, n, tm, tn)?;
        check_len("C", c.len(), m * n)?;
        let kernel = kernel.unwrap_or_else(|| self.leaf_kernel_for(&shape));
        if kernel == LeafKernel::PerWarp && !shape.fits_per_warp() {
            grid_1d(shape.count, TILES_PER_WARP_BLOCK)?;
        }
        if shape.count == 0 {
            return Ok(Vec::new());
        }
        let stream = &self.stream;
        let bytes = guarded("leaf hashes", || {
            let c_dev = stream.clone_htod(c)?;
            let mut out = stream.alloc_zeros::<u8>(shape.count * 32)?;
            self.launch_leaf_with(kernel, &c_dev, &shape, &mut out)?;
            let bytes = stream.clone_dtoh(&out)?;
            stream.synchronize()?;
            Ok(bytes)
        })?;
        Ok(digests(&bytes))
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
        grid_1d(rows, 8)?;
        let stream = &self.stream;
        guarded("projection", || {
            let v_dev = stream.clone_htod(vectors)?;
            let mut out = stream.alloc_zeros::<u64>(rows * rounds)?;
            match matrix {
                Element::I32(m) => {
                    let m_dev = stream.clone_htod(m)?;
                    self.launch_project(DeviceMatrix::I32(&m_dev), rows, cols, &v_dev, rounds, &mut out)?;
                }
                Element::I8(m) => {
                    let m_dev = stream.clone_htod(m)?;
                    self.launch_project(DeviceMatrix::I8(&m_dev), rows, cols, &v_dev, rounds, &mut out)?;
                }
            }
            let result = stream.clone_dtoh(&out)?;
            stream.synchronize()?;
            Ok(result)
        })
    }

    /// `out[round][row] = matrix·v_round mod 2^61−1` on device buffers. The callers check the
    /// shapes (`matrix` rows·cols, `vectors` rounds·cols reduced, `out` rounds·rows) and that
    /// `rows.div_ceil(8)` fits a grid.
    pub(crate) fn launch_project(
        &self,
        matrix: DeviceMatrix<'_>,
        rows: usize,
        cols: usize,
        vectors: &CudaSlice<u64>,
        rounds: usize,
        out: &mut CudaSlice<u64>,
    ) -> Result<(), DriverError> {
        let cfg =
            LaunchConfig { grid_dim: (rows.div_ceil(8) as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let (rows64, cols64) = (rows as u64, cols as u64);
        for round0 in (0..rounds).step_by(4) {
            let (r0, count) = (round0 as u32, (rounds - round0).min(4) as u32);
            let mut launch = match matrix {
                DeviceMatrix::I32(m) => {
                    let mut l = self.stream.launch_builder(&self.functions.project_i32);
                    l.arg(m);
                    l
                }
                DeviceMatrix::I8(m) => {
                    let mut l = self.stream.launch_builder(&self.functions.project_i8);
                    l.arg(m);
                    l
                }
            };
            // SAFETY: matches `project_{i32,i8}(const T* mat, u64 rows, u64 cols, const u64*
            // vectors, u32 round0, u32 count, u64* out)`; the matrix holds rows·cols entries,
            // vectors rounds·cols and out rounds·rows (the callers' contract); round0 + count ≤
            // rounds.
            unsafe { launch.arg(&rows64).arg(&cols64).arg(vectors).arg(&r0).arg(&count).arg(&mut *out).launch(cfg) }?;
        }
        Ok(())
    }
}

/// A matrix already on the device, for [`GpuDevice::launch_project`].
#[derive(Clone, Copy)]
pub(crate) enum DeviceMatrix<'a> {
    I32(&'a CudaSlice<i32>),
    I8(&'a CudaSlice<i8>),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gemm_switch_parses_both_names_and_refuses_others_with_a_clear_error() {
        assert_eq!(GemmKernel::parse("mma").unwrap(), GemmKernel::Mma);
        assert_eq!(GemmKernel::parse(" DP4A\n").unwrap(), GemmKernel::Dp4a);
        for bad in ["", "tensor", "dp4a,mma", "mma2"] {
            match GemmKernel::parse(bad) {
                Err(e @ GpuError::GemmChoice { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(GEMM_ENV) && text.contains("dp4a or mma"), "{text}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_chip_with_both_gemm_kernels_offers_both_the_default_first() {
        assert_eq!(GemmKernel::available_for(75), [GemmKernel::Dp4a]);
        assert_eq!(GemmKernel::available_for(80), [GemmKernel::Mma, GemmKernel::Dp4a]);
        assert_eq!(GemmKernel::available_for(90), [GemmKernel::Mma, GemmKernel::Dp4a]);
        for arch in [61, 75, 80, 86, 89, 90, 100, 120] {
            assert_eq!(GemmKernel::available_for(arch)[0], GemmKernel::default_for(arch), "sm_{arch}");
        }
    }

    #[test]
    fn few_large_tiles_get_a_warp_each_and_many_small_tiles_a_thread_each() {
        // An H100 has 132 SMs: 1024 tiles (256×256 tiles of 8192²) would fill 8 SMs one thread
        // per tile; 4M tiles (4×4) fill all of them.
        assert_eq!(LeafKernel::for_tiles(1024, 132), LeafKernel::PerWarp);
        assert_eq!(LeafKernel::for_tiles(4 << 20, 132), LeafKernel::PerThread);
        assert_eq!(LeafKernel::for_tiles(128 * 132, 132), LeafKernel::PerThread);
        assert_eq!(LeafKernel::for_tiles(10, 0), LeafKernel::PerWarp, "an SM count of 0 counts as 1");
    }

    #[test]
    fn the_per_warp_grid_limit_is_checked() {
        let huge = LeafShape::new(MAX_DIM, MAX_DIM, 1, 1).unwrap();
        assert!(!huge.fits_per_warp());
        assert!(LeafShape::new(8192, 8192, 256, 256).unwrap().fits_per_warp());
    }
}
