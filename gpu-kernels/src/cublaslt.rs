//! cuBLASLt's int8 GEMM, the ceiling our tensor-core kernel is measured against
//! (`matproof bench gemm --backend cuda`). Used only for that comparison: the prover never
//! depends on it.
//!
//! Loaded by hand, like NVRTC ([`crate::nvrtc`]): cudarc's cuBLASLt loader only tries the names
//! of the CUDA version it was built for and panics when none loads, while a GPU machine may
//! have only `libcublasLt.so.13`. The dozen entry points used here, the enum values and the
//! heuristic-result layout are the same in CUDA 11.4 to 13.
//!
//! The comparison is only honest if cuBLASLt's time is one `cublasLtMatmul`: [`CublasLt::plan_i8`]
//! creates the handle, the descriptors and the preference and runs the heuristic once, and
//! [`MatmulPlanI8::matmul`] only enqueues the product. The heuristic's choice
//! ([`AlgorithmChoice`]) is kept so the bench can say which algorithm it timed. Shapes its
//! int8 kernels do not take are refused before the heuristic runs ([`NoAlgorithmReason`]).
#![allow(unsafe_code)] // FFI into libcublasLt through libloading; each block says why it is sound.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use libloading::Library;

use crate::probe::{LibraryError, open_first, symbol, toolkit_candidates};

/// Environment variable naming the cuBLASLt library to use (a path or a file name).
pub const CUBLASLT_ENV: &str = "MATPROOF_CUBLASLT";

type Status = c_int;
type Handle = *mut c_void;
type Layout = *mut c_void;
type MatmulDesc = *mut c_void;
type Preference = *mut c_void;
/// `CUstream` / `cudaStream_t`.
pub type Stream = *mut c_void;
/// `CUdeviceptr`.
pub type DevicePtr = u64;

// Values from cublasLt.h / library_types.h, unchanged since CUDA 11.
const CUDA_R_8I: c_int = 3;
const CUDA_R_32I: c_int = 10;
const CUBLAS_COMPUTE_32I: c_int = 72;
const CUBLAS_OP_N: c_int = 0;
const CUBLAS_OP_T: c_int = 1;
const DESC_TRANSA: c_int = 3;
const DESC_TRANSB: c_int = 4;
const PREF_MAX_WORKSPACE_BYTES: c_int = 1;
const STATUS_NOT_SUPPORTED: Status = 15;
// cublasLtMatmulAlgoConfigAttributes_t.
const ALGO_CONFIG_ID: c_int = 0;
const ALGO_CONFIG_TILE_ID: c_int = 1;
const ALGO_CONFIG_SPLITK_NUM: c_int = 2;
const ALGO_CONFIG_STAGES_ID: c_int = 6;
/// Heuristic results asked for: the first is used, the count is reported.
const HEURISTIC_RESULTS: usize = 8;

/// `cublasLtMatmulAlgo_t`: opaque, 64 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct Algo {
    data: [u64; 8],
}

/// `cublasLtMatmulHeuristicResult_t`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Heuristic {
    algo: Algo,
    workspace_size: usize,
    state: Status,
    waves_count: f32,
    reserved: [c_int; 4],
}

#[derive(Clone, Copy)]
struct Fns {
    get_version: unsafe extern "C" fn() -> usize,
    create: unsafe extern "C" fn(*mut Handle) -> Status,
    destroy: unsafe extern "C" fn(Handle) -> Status,
    layout_create: unsafe extern "C" fn(*mut Layout, c_int, u64, u64, i64) -> Status,
    layout_destroy: unsafe extern "C" fn(Layout) -> Status,
    desc_create: unsafe extern "C" fn(*mut MatmulDesc, c_int, c_int) -> Status,
    desc_set: unsafe extern "C" fn(MatmulDesc, c_int, *const c_void, usize) -> Status,
    desc_destroy: unsafe extern "C" fn(MatmulDesc) -> Status,
    pref_create: unsafe extern "C" fn(*mut Preference) -> Status,
    pref_set: unsafe extern "C" fn(Preference, c_int, *const c_void, usize) -> Status,
    pref_destroy: unsafe extern "C" fn(Preference) -> Status,
    #[allow(clippy::type_complexity)]
    heuristic: unsafe extern "C" fn(
        Handle,
        MatmulDesc,
        Layout,
        Layout,
        Layout,
        Layout,
        Preference,
        c_int,
        *mut Heuristic,
        *mut c_int,
    ) -> Status,
    algo_config_get: unsafe extern "C" fn(*const Algo, c_int, *mut c_void, usize, *mut usize) -> Status,
    #[allow(clippy::type_complexity)]
    matmul: unsafe extern "C" fn(
        Handle,
        MatmulDesc,
        *const c_void,
        *const c_void,
        Layout,
        *const c_void,
        Layout,
        *const c_void,
        *const c_void,
        Layout,
        *mut c_void,
        Layout,
        *const Algo,
        *mut c_void,
        usize,
        Stream,
    ) -> Status,
}

/// Why cuBLASLt could not run a product.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CublasError {
    /// No usable cuBLASLt library.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// A cuBLASLt call returned an error status.
    #[error("cuBLASLt {call} failed with status {status}")]
    Status {
        /// The entry point.
        call: &'static str,
        /// `cublasStatus_t`.
        status: i32,
    },
    /// cuBLASLt has no int8 algorithm for this shape (not a failure of either GEMM).
    #[error("cuBLASLt has no int8 algorithm for {m}x{k}x{n}: {reason}")]
    NoAlgorithm {
        /// Rows of `A`.
        m: u64,
        /// Inner dimension.
        k: u64,
        /// Columns of `B`.
        n: u64,
        /// Why.
        reason: NoAlgorithmReason,
    },
    /// A row stride is shorter than its row.
    #[error("cuBLASLt matmul: the row stride {stride} of {operand} is below its row length {row_length}")]
    StrideBelowRow {
        /// `A`, `Bᵀ` or `D`.
        operand: &'static str,
        /// The stride in elements.
        stride: u64,
        /// The row length in elements.
        row_length: u64,
    },
    /// A row stride does not fit cuBLASLt's `int64_t`.
    #[error("cuBLASLt matmul: the row stride {stride} does not fit an i64")]
    StrideTooLarge {
        /// The stride in elements.
        stride: u64,
    },
    /// The buffers' workspace is smaller than the plan's.
    #[error("cuBLASLt matmul: workspace of {given_bytes} bytes, the plan needs {needed_bytes}")]
    WorkspaceTooSmall {
        /// Bytes given.
        given_bytes: usize,
        /// Bytes the plan was made for.
        needed_bytes: usize,
    },
}

/// Why cuBLASLt has no algorithm for a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoAlgorithmReason {
    /// Checked before asking: cuBLASLt's int8 (IMMA) kernels want its `m` and `k` multiples of
    /// 4. In the TN form used here its `m` is our `n` and its `k` is our `k`.
    #[error("cuBLASLt's int8 kernels need {dimension} (ours) to be a multiple of 4, it is {value}")]
    NotMultipleOf4 {
        /// `n` or `k`, in our names.
        dimension: &'static str,
        /// Its value.
        value: u64,
    },
    /// The heuristic found none (`CUBLAS_STATUS_NOT_SUPPORTED`, or zero results).
    #[error("the heuristic returned no algorithm (status {status})")]
    HeuristicFoundNone {
        /// `cublasStatus_t` of the heuristic call.
        status: i32,
    },
}

impl NoAlgorithmReason {
    /// A stable name for reports: `not_multiple_of_4` or `heuristic_found_none`.
    pub fn code(&self) -> &'static str {
        match self {
            NoAlgorithmReason::NotMultipleOf4 { .. } => "not_multiple_of_4",
            NoAlgorithmReason::HeuristicFoundNone { .. } => "heuristic_found_none",
        }
    }
}

/// A loaded cuBLASLt.
pub struct CublasLt {
    // Keeps the function pointers in `fns` valid.
    _lib: Library,
    fns: Fns,
    /// The library that loaded (a path when it can be resolved).
    pub library: String,
    /// `cublasLtGetVersion()`, e.g. `120603` (major·10000 + minor·100 + patch).
    pub version: usize,
}

impl std::fmt::Debug for CublasLt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CublasLt").field("library", &self.library).field("version", &self.version).finish()
    }
}

/// The names tried when `MATPROOF_CUBLASLT` is unset, newest first.
pub fn cublaslt_candidates() -> Vec<String> {
    toolkit_candidates(CUBLASLT_ENV, &["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], "libcublasLt")
}

/// The process's cuBLASLt, loaded on first use from [`cublaslt_candidates`].
pub fn cublaslt() -> Result<&'static CublasLt, CublasError> {
    static LOADED: OnceLock<Result<CublasLt, CublasError>> = OnceLock::new();
    LOADED.get_or_init(|| CublasLt::load(&cublaslt_candidates())).as_ref().map_err(Clone::clone)
}

/// Destroys a cuBLASLt object when dropped (the status of a destroy call is not actionable).
struct Guard<T: Copy> {
    object: T,
    destroy: unsafe extern "C" fn(T) -> Status,
}

impl<T: Copy> Drop for Guard<T> {
    fn drop(&mut self) {
        // SAFETY: `object` was created by the matching cuBLASLt create call, is destroyed only
        // here, and nothing uses it after the guard is dropped.
        unsafe { (self.destroy)(self.object) };
    }
}

/// The shape of one int8 product for [`CublasLt::plan_i8`]: `D = A·B` with `A` row-major
/// `m×k`, `Bᵀ` row-major `n×k` and `D` row-major `m×n`, each with a row stride in elements.
#[derive(Debug, Clone, Copy)]
pub struct MatmulShapeI8 {
    /// Rows of `A` and `D`.
    pub m: u64,
    /// Inner dimension.
    pub k: u64,
    /// Columns of `B` and `D`.
    pub n: u64,
    /// Row stride of `A` (≥ k).
    pub a_stride: u64,
    /// Row stride of `Bᵀ` (≥ k).
    pub bt_stride: u64,
    /// Row stride of `D` (≥ n).
    pub d_stride: u64,
}

/// The device buffers of one product.
#[derive(Debug, Clone, Copy)]
pub struct MatmulBuffersI8 {
    /// `A`.
    pub a: DevicePtr,
    /// `Bᵀ`.
    pub bt: DevicePtr,
    /// `D`, written.
    pub d: DevicePtr,
    /// Scratch space for cuBLASLt.
    pub workspace: DevicePtr,
    /// Its size in bytes.
    pub workspace_bytes: usize,
}

/// What cuBLASLt's heuristic chose (its first-ranked algorithm), for reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlgorithmChoice {
    /// `CUBLASLT_ALGO_CONFIG_ID`.
    pub algo_id: i32,
    /// `CUBLASLT_ALGO_CONFIG_TILE_ID` (a `cublasLtMatmulTile_t`).
    pub tile_id: u32,
    /// `CUBLASLT_ALGO_CONFIG_SPLITK_NUM`.
    pub splitk: u32,
    /// `CUBLASLT_ALGO_CONFIG_STAGES_ID` (a `cublasLtMatmulStages_t`).
    pub stages_id: u32,
    /// Workspace the algorithm needs, in bytes.
    pub workspace_bytes: usize,
    /// The heuristic's estimate of waves over the device.
    pub waves_count: f32,
    /// How many algorithms the heuristic returned (at most 8 asked for).
    pub candidates: usize,
}

/// Everything one int8 product needs except its buffers, made once so that timing a product
/// times only `cublasLtMatmul`.
pub struct MatmulPlanI8<'lt> {
    lt: &'lt CublasLt,
    // Field order is drop order: the descriptors go before the handle.
    b_layout: Guard<Layout>,
    a_layout: Guard<Layout>,
    d_layout: Guard<Layout>,
    desc: Guard<MatmulDesc>,
    handle: Guard<Handle>,
    algo: Algo,
    workspace_limit_bytes: usize,
    /// The heuristic's choice.
    pub choice: AlgorithmChoice,
    /// The shape planned for.
    pub shape: MatmulShapeI8,
}

impl std::fmt::Debug for MatmulPlanI8<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatmulPlanI8").field("choice", &self.choice).field("shape", &self.shape).finish()
    }
}

/// Refuses, before cuBLASLt is asked, a shape its int8 kernels do not take.
pub fn check_int8_shape(m: u64, k: u64, n: u64) -> Result<(), CublasError> {
    for (dimension, value) in [("n", n), ("k", k)] {
        if value % 4 != 0 {
            return Err(CublasError::NoAlgorithm {
                m,
                k,
                n,
                reason: NoAlgorithmReason::NotMultipleOf4 { dimension, value },
            });
        }
    }
    Ok(())
}

fn check_strides(shape: &MatmulShapeI8) -> Result<(), CublasError> {
    for (operand, stride, row_length) in
        [("A", shape.a_stride, shape.k), ("Bᵀ", shape.bt_stride, shape.k), ("D", shape.d_stride, shape.n)]
    {
        if stride < row_length {
            return Err(CublasError::StrideBelowRow { operand, stride, row_length });
        }
        if i64::try_from(stride).is_err() {
            return Err(CublasError::StrideTooLarge { stride });
        }
    }
    Ok(())
}

impl CublasLt {
    /// Loads the first of `candidates` that is a usable cuBLASLt.
    pub fn load(candidates: &[String]) -> Result<CublasLt, CublasError> {
        let (lib, library) = open_first(candidates, "libcublasLt", Some(CUBLASLT_ENV))?;
        const WHAT: &str = "cuBLASLt";
        // SAFETY (every `symbol` call): each name is a documented cuBLASLt entry point and
        // each field's type is that function's documented C signature; `CublasLt` keeps `lib`
        // loaded as long as the pointers live.
        let fns = unsafe {
            Fns {
                get_version: symbol(&lib, WHAT, &library, "cublasLtGetVersion")?,
                create: symbol(&lib, WHAT, &library, "cublasLtCreate")?,
                destroy: symbol(&lib, WHAT, &library, "cublasLtDestroy")?,
                layout_create: symbol(&lib, WHAT, &library, "cublasLtMatrixLayoutCreate")?,
                layout_destroy: symbol(&lib, WHAT, &library, "cublasLtMatrixLayoutDestroy")?,
                desc_create: symbol(&lib, WHAT, &library, "cublasLtMatmulDescCreate")?,
                desc_set: symbol(&lib, WHAT, &library, "cublasLtMatmulDescSetAttribute")?,
                desc_destroy: symbol(&lib, WHAT, &library, "cublasLtMatmulDescDestroy")?,
                pref_create: symbol(&lib, WHAT, &library, "cublasLtMatmulPreferenceCreate")?,
                pref_set: symbol(&lib, WHAT, &library, "cublasLtMatmulPreferenceSetAttribute")?,
                pref_destroy: symbol(&lib, WHAT, &library, "cublasLtMatmulPreferenceDestroy")?,
                heuristic: symbol(&lib, WHAT, &library, "cublasLtMatmulAlgoGetHeuristic")?,
                algo_config_get: symbol(&lib, WHAT, &library, "cublasLtMatmulAlgoConfigGetAttribute")?,
                matmul: symbol(&lib, WHAT, &library, "cublasLtMatmul")?,
            }
        };
        // SAFETY: takes no arguments and returns an integer; needs no GPU or context.
        let version = unsafe { (fns.get_version)() };
        Ok(CublasLt { _lib: lib, fns, library, version })
    }

    fn check(call: &'static str, status: Status) -> Result<(), CublasError> {
        if status == 0 { Ok(()) } else { Err(CublasError::Status { call, status }) }
    }

    fn layout(&self, kind: c_int, rows: u64, cols: u64, ld: u64) -> Result<Guard<Layout>, CublasError> {
        let ld = i64::try_from(ld).map_err(|_| CublasError::StrideTooLarge { stride: ld })?;
        let mut out: Layout = std::ptr::null_mut();
        // SAFETY: writes one descriptor into a live local; the shape values are plain integers
        // cuBLASLt validates.
        Self::check("matrix layout", unsafe { (self.fns.layout_create)(&mut out, kind, rows, cols, ld) })?;
        Ok(Guard { object: out, destroy: self.fns.layout_destroy })
    }

    /// The int8 "TN" matmul descriptor: `i32` compute and scale, `A` transposed.
    fn int8_desc(&self) -> Result<Guard<MatmulDesc>, CublasError> {
        let mut desc: MatmulDesc = std::ptr::null_mut();
        // SAFETY: writes one descriptor into a live local.
        Self::check("matmul desc", unsafe { (self.fns.desc_create)(&mut desc, CUBLAS_COMPUTE_32I, CUDA_R_32I) })?;
        let desc = Guard { object: desc, destroy: self.fns.desc_destroy };
        for (attribute, op) in [(DESC_TRANSA, CUBLAS_OP_T), (DESC_TRANSB, CUBLAS_OP_N)] {
            // SAFETY: the attribute is an int32 enum (cublasOperation_t); the buffer is one live c_int.
            let status = unsafe {
                (self.fns.desc_set)(desc.object, attribute, (&op as *const c_int).cast(), std::mem::size_of::<c_int>())
            };
            Self::check("matmul desc attribute", status)?;
        }
        Ok(desc)
    }

    fn preference(&self, workspace_bytes: usize) -> Result<Guard<Preference>, CublasError> {
        let mut pref: Preference = std::ptr::null_mut();
        // SAFETY: writes one descriptor into a live local.
        Self::check("preference", unsafe { (self.fns.pref_create)(&mut pref) })?;
        let pref = Guard { object: pref, destroy: self.fns.pref_destroy };
        let workspace = workspace_bytes as u64;
        // SAFETY: the attribute is a uint64; the buffer is one live u64.
        let status = unsafe {
            (self.fns.pref_set)(
                pref.object,
                PREF_MAX_WORKSPACE_BYTES,
                (&workspace as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        Self::check("preference attribute", status)?;
        Ok(pref)
    }

    /// One `u32`/`i32` attribute of an algorithm's configuration (0 when cuBLASLt refuses:
    /// these values only label a report).
    fn algo_config(&self, algo: &Algo, attribute: c_int) -> u32 {
        let mut value: u32 = 0;
        let mut written = 0usize;
        // SAFETY: `algo` is a live algorithm from the heuristic; the buffer is one live u32
        // (the attributes read here are 4-byte integers) and its size is passed.
        let status =
            unsafe { (self.fns.algo_config_get)(algo, attribute, (&mut value as *mut u32).cast(), 4, &mut written) };
        if status == 0 { value } else { 0 }
    }

    /// Creates the handle, layouts, descriptor and preference for `shape` and runs the
    /// heuristic (at most `workspace_limit_bytes` of workspace), once: the plan's
    /// [`MatmulPlanI8::matmul`] then enqueues only the product. A shape cuBLASLt's int8 kernels
    /// do not take is [`CublasError::NoAlgorithm`], checked before asking where the rule is
    /// known ([`check_int8_shape`]).
    pub fn plan_i8(&self, shape: MatmulShapeI8, workspace_limit_bytes: usize) -> Result<MatmulPlanI8<'_>, CublasError> {
        check_strides(&shape)?;
        let MatmulShapeI8 { m, k, n, .. } = shape;
        check_int8_shape(m, k, n)?;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: writes one handle into a live local.
        Self::check("create", unsafe { (self.fns.create)(&mut handle) })?;
        let handle = Guard { object: handle, destroy: self.fns.destroy };
        // Column-major views: Bᵀ (row-major n×k) is the k×n matrix B' with ld = bt_stride, used
        // transposed; A (row-major m×k) is k×m with ld = a_stride; D (row-major m×n) is n×m.
        let b_layout = self.layout(CUDA_R_8I, k, n, shape.bt_stride)?;
        let a_layout = self.layout(CUDA_R_8I, k, m, shape.a_stride)?;
        let d_layout = self.layout(CUDA_R_32I, n, m, shape.d_stride)?;
        let desc = self.int8_desc()?;
        let pref = self.preference(workspace_limit_bytes)?;
        let empty =
            Heuristic { algo: Algo { data: [0; 8] }, workspace_size: 0, state: 0, waves_count: 0.0, reserved: [0; 4] };
        let mut results = [empty; HEURISTIC_RESULTS];
        let mut count: c_int = 0;
        // SAFETY: all descriptors are live; `results` has room for the HEURISTIC_RESULTS asked for.
        let status = unsafe {
            (self.fns.heuristic)(
                handle.object,
                desc.object,
                b_layout.object,
                a_layout.object,
                d_layout.object,
                d_layout.object,
                pref.object,
                HEURISTIC_RESULTS as c_int,
                results.as_mut_ptr(),
                &mut count,
            )
        };
        if status == STATUS_NOT_SUPPORTED || (status == 0 && count < 1) {
            return Err(CublasError::NoAlgorithm { m, k, n, reason: NoAlgorithmReason::HeuristicFoundNone { status } });
        }
        Self::check("algorithm heuristic", status)?;
        let first = results[0];
        Self::check("algorithm heuristic result", first.state)?;
        let choice = AlgorithmChoice {
            algo_id: self.algo_config(&first.algo, ALGO_CONFIG_ID) as i32,
            tile_id: self.algo_config(&first.algo, ALGO_CONFIG_TILE_ID),
            splitk: self.algo_config(&first.algo, ALGO_CONFIG_SPLITK_NUM),
            stages_id: self.algo_config(&first.algo, ALGO_CONFIG_STAGES_ID),
            workspace_bytes: first.workspace_size,
            waves_count: first.waves_count,
            candidates: (count.max(0) as usize).min(HEURISTIC_RESULTS),
        };
        Ok(MatmulPlanI8 {
            lt: self,
            b_layout,
            a_layout,
            d_layout,
            desc,
            handle,
            algo: first.algo,
            workspace_limit_bytes,
            choice,
            shape,
        })
    }
}

impl MatmulPlanI8<'_> {
    /// Enqueues `D = A·B` (exact `i8×i8→i32`) on `stream` with the planned algorithm, in the
    /// "TN" form cuBLASLt's int8 tensor-core kernels want: cuBLASLt is column-major, so it
    /// computes `Dᵀ = (Bᵀ)ᵀᵀ·Aᵀ` reading `Bᵀ` transposed and `A` as is. Nothing else happens
    /// here, so an event window around this call times the product alone.
    ///
    /// # Safety
    /// The current thread must have the CUDA context of `stream` bound, and every pointer in
    /// `buffers` must be a live device allocation of that context at least as large as the
    /// plan's shape and strides (and the workspace its stated size) say, until the enqueued
    /// work completes.
    pub unsafe fn matmul(&self, stream: Stream, buffers: &MatmulBuffersI8) -> Result<(), CublasError> {
        if buffers.workspace_bytes < self.choice.workspace_bytes {
            return Err(CublasError::WorkspaceTooSmall {
                given_bytes: buffers.workspace_bytes,
                needed_bytes: self.choice.workspace_bytes,
            });
        }
        let workspace_bytes = buffers.workspace_bytes.min(self.workspace_limit_bytes);
        let (alpha, beta): (i32, i32) = (1, 0);
        // SAFETY: the descriptors are live (owned by the plan); alpha and beta are host i32
        // (scale type 32I); the device pointers satisfy this function's contract; C aliases D
        // with beta = 0, as cuBLASLt allows; the algorithm came from the heuristic for these
        // descriptors.
        let status = unsafe {
            (self.lt.fns.matmul)(
                self.handle.object,
                self.desc.object,
                (&alpha as *const i32).cast(),
                buffers.bt as *const c_void,
                self.b_layout.object,
                buffers.a as *const c_void,
                self.a_layout.object,
                (&beta as *const i32).cast(),
                buffers.d as *const c_void,
                self.d_layout.object,
                buffers.d as *mut c_void,
                self.d_layout.object,
                &self.algo,
                buffers.workspace as *mut c_void,
                workspace_bytes,
                stream,
            )
        };
        CublasLt::check("matmul", status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_the_variable() {
        let error = CublasLt::load(&["/nonexistent/libcublasLt.so.12".into()]).unwrap_err().to_string();
        assert!(error.contains("libcublasLt not found") && error.contains(CUBLASLT_ENV), "{error}");
    }

    #[test]
    fn a_library_without_the_symbols_is_an_error() {
        // libc loads but is not cuBLASLt.
        let error = CublasLt::load(&["libc.so.6".into()]).unwrap_err();
        assert!(matches!(&error, CublasError::Library(LibraryError::MissingSymbol { .. })), "{error:?}");
        assert!(error.to_string().contains("not a usable cuBLASLt"), "{error}");
        assert!(std::error::Error::source(&error).is_some(), "dlsym's error is kept as the source");
    }

    #[test]
    fn the_heuristic_result_has_the_c_layout() {
        // 64-byte algo, size_t, int status, float waves, int[4]: 96 bytes on LP64.
        assert_eq!(std::mem::size_of::<Algo>(), 64);
        assert_eq!(std::mem::size_of::<Heuristic>(), 96);
    }

    #[test]
    fn shapes_off_the_multiple_of_4_rule_have_no_algorithm_before_cublas_is_asked() {
        assert!(check_int8_shape(300, 200, 172).is_ok());
        assert!(check_int8_shape(301, 200, 172).is_ok(), "our m is cuBLASLt's n: no rule");
        for (m, k, n, dimension, value) in [(300, 200, 170, "n", 170), (64, 70, 64, "k", 70)] {
            match check_int8_shape(m, k, n) {
                Err(CublasError::NoAlgorithm { reason, .. }) => {
                    assert_eq!(reason, NoAlgorithmReason::NotMultipleOf4 { dimension, value });
                    assert_eq!(reason.code(), "not_multiple_of_4");
                }
                other => panic!("{m}x{k}x{n}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_stride_below_its_row_is_refused() {
        let shape = MatmulShapeI8 { m: 4, k: 8, n: 4, a_stride: 4, bt_stride: 8, d_stride: 4 };
        assert!(matches!(check_strides(&shape), Err(CublasError::StrideBelowRow { operand: "A", .. })));
    }

    #[test]
    fn the_process_library_never_panics() {
        match cublaslt() {
            Ok(lt) => println!("cuBLASLt {} at {}", lt.version, lt.library),
            Err(e) => println!("no cuBLASLt: {e}"),
        }
    }
}
