//! Device-side timings of the prover's GPU pipeline (pack, GEMM, leaf hashes, projections) and
//! of cuBLASLt's int8 GEMM on the same operands, measured with CUDA events so host copies and
//! launch overhead do not blur the kernels' own time. Used by `matproof bench gemm --backend
//! cuda`.
//!
//! cuBLASLt's handle, descriptors and heuristic are set up once, before its timed runs
//! ([`crate::cublaslt::CublasLt::plan_i8`]): its event window holds one `cublasLtMatmul` and
//! nothing else, like ours holds one kernel launch.
#![allow(unsafe_code)] // one cuBLASLt call on device pointers; the block says why it is sound.

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError, sys};

use crate::GpuError;
use crate::cublaslt::{AlgorithmChoice, CublasError, CublasLt, MatmulBuffersI8, MatmulShapeI8, cublaslt};
use crate::device::{DeviceMatrix, GemmBuffers, GemmDims, GpuDevice, LeafKernel, LeafShape, grid_1d, guarded};

/// Limits on a timing request, so a typo cannot ask for hours of device time.
pub const MAX_TIMING_RUNS: usize = 1_000;
/// Projection rounds timed at most (the protocol uses a handful).
pub const MAX_TIMING_ROUNDS: usize = 64;
/// cuBLASLt workspace, as NVIDIA's samples use for large GEMMs.
const CUBLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// What to time.
#[derive(Debug, Clone, Copy)]
pub struct TimingRequest {
    /// Rows of `A`.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of `B`.
    pub n: usize,
    /// C tile rows for the leaf hashes.
    pub tm: usize,
    /// C tile columns for the leaf hashes.
    pub tn: usize,
    /// Freivalds rounds for the projections.
    pub rounds: usize,
    /// Timed runs per stage (after one warm-up); the medians are reported.
    pub runs: usize,
}

/// Median device times in milliseconds.
#[derive(Debug, Clone)]
pub struct PipelineTimings {
    /// Zero padding of `A` and the transpose of `B`.
    pub pack_ms: f64,
    /// The GEMM kernel alone on the packed operands.
    pub gemm_ms: f64,
    /// SHA-256 leaf hashes of every `tm×tn` C tile, from C on the device, with the kernel the
    /// device picks for this tiling (`leaf_kernel`).
    pub leaf_ms: f64,
    /// The leaf kernel the device picks for this tiling.
    pub leaf_kernel: LeafKernel,
    /// The one-thread-per-tile leaf kernel.
    pub leaf_thread_ms: f64,
    /// The one-warp-per-tile leaf kernel (`None` when its grid would not fit).
    pub leaf_warp_ms: Option<f64>,
    /// The Freivalds projections `B·r`, `A·x` and `C·r` for every round.
    pub project_ms: f64,
    /// Host to device copy of `A` and `B`.
    pub upload_ms: f64,
    /// Device to host copy of `C`.
    pub download_ms: f64,
    /// cuBLASLt on the same operands, or why it could not run (for a shape it has no int8
    /// algorithm for: [`CublasError::NoAlgorithm`]).
    pub cublas: Result<CublasTiming, CublasError>,
}

/// cuBLASLt's int8 GEMM on the same operands.
#[derive(Debug, Clone)]
pub struct CublasTiming {
    /// The library that ran.
    pub library: String,
    /// Its `cublasLtGetVersion()`.
    pub version: usize,
    /// Median time of one `cublasLtMatmul` (B already transposed, which favours cuBLASLt;
    /// handle, descriptors and heuristic are outside the timed window).
    pub matmul_ms: f64,
    /// Host time of the one-off setup (handle, descriptors, heuristic), never in `matmul_ms`.
    pub plan_ms: f64,
    /// The algorithm the heuristic chose and that was timed.
    pub choice: AlgorithmChoice,
    /// Whether its product equals ours entry for entry (it must: both are exact).
    pub agrees: bool,
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median event-timed milliseconds of `runs` calls of `work` after one warm-up call.
fn time_on(
    stream: &CudaStream,
    runs: usize,
    mut work: impl FnMut() -> Result<(), DriverError>,
) -> Result<f64, DriverError> {
    work()?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = stream.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?;
        work()?;
        let end = stream.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?;
        samples.push(f64::from(start.elapsed_ms(&end)?));
    }
    Ok(median(samples))
}

impl GpuDevice {
    /// Times each stage of the prover's GPU pipeline on `a` (`m×k`) and `b` (`k×n`), and
    /// cuBLASLt's int8 GEMM on the same operands. Checks that cuBLASLt's product equals ours.
    pub fn time_pipeline(&self, a: &[i8], b: &[i8], request: TimingRequest) -> Result<PipelineTimings, GpuError> {
        let TimingRequest { m, k, n, tm, tn, rounds, runs } = request;
        let dims = self.gemm_dims(a, b, m, k, n)?;
        let leaves = LeafShape::new(m, n, tm, tn)?;
        for (what, value, max) in [("runs", runs, MAX_TIMING_RUNS), ("rounds", rounds, MAX_TIMING_ROUNDS)] {
            if value == 0 || value > max {
                return Err(GpuError::TooLarge { name: what, value, max });
            }
        }
        if m == 0 || k == 0 || n == 0 {
            return Err(GpuError::Length { what: "timed dimension", expected: 1, actual: 0 });
        }
        // Projection grids: one block per 8 rows of B (k rows) and of A, C (m rows).
        grid_1d(m.max(k), 8)?;
        // Reduced pseudo-random vectors: their values do not change the kernels' work.
        let vector = |len: usize, salt: u64| -> Vec<u64> {
            (0..(rounds * len) as u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt) >> 4).collect()
        };
        let (r_host, x_host) = (vector(n, 1), vector(k, 2));
        let stream = &self.stream;
        let lt = cublaslt();
        guarded("timing the pipeline", || {
            let upload_ms = time_on(stream, runs, || {
                let a_dev = stream.clone_htod(a)?;
                let b_dev = stream.clone_htod(b)?;
                drop((a_dev, b_dev));
                Ok(())
            })?;
            let mut buffers = self.upload_gemm_operands(a, b, &dims)?;
            let pack_ms = time_on(stream, runs, || self.launch_pack(&mut buffers, &dims))?;
            let gemm_ms = time_on(stream, runs, || self.launch_gemm(&mut buffers, &dims))?;
            let (leaf_thread_ms, leaf_warp_ms) = self.time_leaves(&buffers.c, &leaves, runs)?;
            let leaf_kernel = self.leaf_kernel_for(&leaves);
            let leaf_ms = match (leaf_kernel, leaf_warp_ms) {
                (LeafKernel::PerWarp, Some(ms)) => ms,
                _ => leaf_thread_ms,
            };
            let r_dev = stream.clone_htod(&r_host)?;
            let x_dev = stream.clone_htod(&x_host)?;
            let mut br = stream.alloc_zeros::<u64>(rounds * k)?;
            let mut ax = stream.alloc_zeros::<u64>(rounds * m)?;
            let mut cr = stream.alloc_zeros::<u64>(rounds * m)?;
            let project_ms = time_on(stream, runs, || {
                self.launch_project(DeviceMatrix::I8(&buffers.b), k, n, &r_dev, rounds, &mut br)?;
                self.launch_project(DeviceMatrix::I8(&buffers.a), m, k, &x_dev, rounds, &mut ax)?;
                self.launch_project(DeviceMatrix::I32(&buffers.c), m, n, &r_dev, rounds, &mut cr)
            })?;
            let mut c_host = vec![0i32; m * n];
            let download_ms = time_on(stream, runs, || stream.memcpy_dtoh(&buffers.c, &mut c_host))?;
            stream.synchronize()?;
            let cublas = match &lt {
                Ok(lt) => self.time_cublas(lt, &buffers, &dims, runs, &c_host)?,
                Err(e) => Err(e.clone()),
            };
            Ok(PipelineTimings {
                pack_ms,
                gemm_ms,
                leaf_ms,
                leaf_kernel,
                leaf_thread_ms,
                leaf_warp_ms,
                project_ms,
                upload_ms,
                download_ms,
                cublas,
            })
        })
    }

    /// Both leaf kernels on the device matrix `c`: `(per thread, per warp)` medians.
    fn time_leaves(
        &self,
        c: &CudaSlice<i32>,
        leaves: &LeafShape,
        runs: usize,
    ) -> Result<(f64, Option<f64>), DriverError> {
        let mut out = self.stream.alloc_zeros::<u8>(leaves.count * 32)?;
        let mut time = |kernel| time_on(&self.stream, runs, || self.launch_leaf_with(kernel, c, leaves, &mut out));
        let per_thread = time(LeafKernel::PerThread)?;
        let per_warp = if leaves.fits_per_warp() { Some(time(LeafKernel::PerWarp)?) } else { None };
        Ok((per_thread, per_warp))
    }

    /// cuBLASLt on the packed operands (`ap` with row stride `kp`, `btp` = Bᵀ with row stride
    /// `kp`; the zero padding is outside the shapes it is told). Planned once (handle,
    /// descriptors, heuristic), then only `cublasLtMatmul` is timed. The outer error is a
    /// driver failure; the inner one says why cuBLASLt itself refused.
    fn time_cublas(
        &self,
        lt: &CublasLt,
        buffers: &GemmBuffers,
        dims: &GemmDims,
        runs: usize,
        ours: &[i32],
    ) -> Result<Result<CublasTiming, CublasError>, DriverError> {
        let stream = &self.stream;
        let shape = MatmulShapeI8 {
            m: dims.m as u64,
            k: dims.k as u64,
            n: dims.n as u64,
            a_stride: dims.kp as u64,
            bt_stride: dims.kp as u64,
            d_stride: dims.np as u64,
        };
        self.ctx.bind_to_thread()?;
        let planned = std::time::Instant::now();
        let plan = match lt.plan_i8(shape, CUBLAS_WORKSPACE_BYTES) {
            Ok(plan) => plan,
            Err(e) => return Ok(Err(e)),
        };
        let plan_ms = planned.elapsed().as_secs_f64() * 1e3;
        let mut d: CudaSlice<i32> = stream.alloc_zeros(dims.m * dims.np)?;
        let mut workspace: CudaSlice<u8> = stream.alloc_zeros(CUBLAS_WORKSPACE_BYTES.max(1))?;
        let refusal = std::cell::Cell::new(None::<CublasError>);
        let mut run = || -> Result<(), DriverError> {
            let (ap, _ap_sync) = buffers.ap.device_ptr(stream);
            let (btp, _btp_sync) = buffers.btp.device_ptr(stream);
            let (d_ptr, _d_sync) = d.device_ptr_mut(stream);
            let (ws, _ws_sync) = workspace.device_ptr_mut(stream);
            let job =
                MatmulBuffersI8 { a: ap, bt: btp, d: d_ptr, workspace: ws, workspace_bytes: CUBLAS_WORKSPACE_BYTES };
            // SAFETY: the context of `stream` was bound above; `ap` holds mp·kp ≥ m rows of kp,
            // `btp` np·kp ≥ n rows of kp, `d` m·np i32 and the workspace its stated bytes, as
            // the plan's shape says; all stay alive (and their sync guards held) until the call
            // has been enqueued, and the caller synchronizes before they drop.
            if let Err(e) = unsafe { plan.matmul(stream.cu_stream().cast(), &job) } {
                refusal.set(Some(e));
            }
            Ok(())
        };
        run()?;
        stream.synchronize()?;
        if let Some(e) = refusal.take() {
            return Ok(Err(e));
        }
        let matmul_ms = time_on(stream, runs, &mut run)?;
        let d_host = stream.clone_dtoh(&d)?;
        stream.synchronize()?;
        if let Some(e) = refusal.take() {
            return Ok(Err(e));
        }
        let agrees =
            d_host.chunks_exact(dims.np).zip(ours.chunks_exact(dims.n)).all(|(theirs, ours)| &theirs[..dims.n] == ours);
        let (library, version, choice) = (lt.library.clone(), lt.version, plan.choice);
        Ok(Ok(CublasTiming { library, version, matmul_ms, plan_ms, choice, agrees }))
    }
}
