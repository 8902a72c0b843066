//! cuBLASLt's int8 GEMM, the ceiling our tensor-core kernel is measured against
//! (`matproof bench gemm --backend cuda`). Used only for that comparison: the prover never
//! depends on it.
//!
//! Loaded by hand, like NVRTC ([`crate::nvrtc`]): cudarc's cuBLASLt loader only tries the names
//! of the CUDA version it was built for and panics when none loads, while a GPU machine may
//! have only `libcublasLt.so.13`. The dozen entry points used here, the enum values and the
//! heuristic-result layout are the same in CUDA 11.4 to 13.
#![allow(unsafe_code)] // FFI into libcublasLt through libloading; each block says why it is sound.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use libloading::Library;

use crate::probe::{describe, open_first, toolkit_candidates};

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
pub fn cublaslt() -> Result<&'static CublasLt, String> {
    static LOADED: OnceLock<Result<CublasLt, String>> = OnceLock::new();
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

/// The shape and device buffers of one int8 product for [`CublasLt::matmul_i8`].
#[derive(Debug, Clone, Copy)]
pub struct MatmulI8 {
    /// Rows of `A` and `D`.
    pub m: u64,
    /// Inner dimension.
    pub k: u64,
    /// Columns of `B` and `D`.
    pub n: u64,
    /// `A`, row-major `m×k` `i8` with row stride `a_stride` (≥ k).
    pub a: DevicePtr,
    /// Row stride of `A` in elements.
    pub a_stride: u64,
    /// `Bᵀ`, row-major `n×k` `i8` with row stride `bt_stride` (≥ k).
    pub bt: DevicePtr,
    /// Row stride of `Bᵀ` in elements.
    pub bt_stride: u64,
    /// `D = A·B`, row-major `m×n` `i32` with row stride `d_stride` (≥ n), written.
    pub d: DevicePtr,
    /// Row stride of `D` in elements.
    pub d_stride: u64,
    /// Scratch space for cuBLASLt.
    pub workspace: DevicePtr,
    /// Its size in bytes.
    pub workspace_bytes: usize,
}

impl CublasLt {
    /// Loads the first of `candidates` that is a usable cuBLASLt.
    pub fn load(candidates: &[String]) -> Result<CublasLt, String> {
        let (lib, library) = open_first(candidates)
            .map_err(|e| format!("libcublasLt not found ({e}; set {CUBLASLT_ENV} to its path)"))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: looked up by its documented cuBLASLt name; the field it is stored in
                // has that function's documented C signature.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("{library} is not a usable cuBLASLt: {}", describe($name, &e)))?
            };
        }
        let fns = Fns {
            get_version: sym!("cublasLtGetVersion"),
            create: sym!("cublasLtCreate"),
            destroy: sym!("cublasLtDestroy"),
            layout_create: sym!("cublasLtMatrixLayoutCreate"),
            layout_destroy: sym!("cublasLtMatrixLayoutDestroy"),
            desc_create: sym!("cublasLtMatmulDescCreate"),
            desc_set: sym!("cublasLtMatmulDescSetAttribute"),
            desc_destroy: sym!("cublasLtMatmulDescDestroy"),
            pref_create: sym!("cublasLtMatmulPreferenceCreate"),
            pref_set: sym!("cublasLtMatmulPreferenceSetAttribute"),
            pref_destroy: sym!("cublasLtMatmulPreferenceDestroy"),
            heuristic: sym!("cublasLtMatmulAlgoGetHeuristic"),
            matmul: sym!("cublasLtMatmul"),
        };
        // SAFETY: takes no arguments and returns an integer; needs no GPU or context.
        let version = unsafe { (fns.get_version)() };
        Ok(CublasLt { _lib: lib, fns, library, version })
    }

    fn check(&self, what: &str, status: Status) -> Result<(), String> {
        if status == 0 { Ok(()) } else { Err(format!("cuBLASLt {what} failed with status {status}")) }
    }

    /// Enqueues `D = A·B` (exact `i8×i8→i32`) on `stream` with the algorithm cuBLASLt's
    /// heuristic ranks first, in the "TN" form its int8 tensor-core kernels want: cuBLASLt is
    /// column-major, so it computes `Dᵀ = (Bᵀ)ᵀᵀ·Aᵀ` reading `Bᵀ` transposed and `A` as is.
    ///
    /// # Safety
    /// The current thread must have the CUDA context of `stream` bound, and every pointer in
    /// `job` must be a live device allocation of that context at least as large as its shape
    /// and stride say, until the enqueued work completes.
    pub unsafe fn matmul_i8(&self, stream: Stream, job: &MatmulI8) -> Result<(), String> {
        let f = &self.fns;
        if job.a_stride < job.k || job.bt_stride < job.k || job.d_stride < job.n {
            return Err(format!("cuBLASLt matmul: a row stride is below its row length ({job:?})"));
        }
        let as_ld = |v: u64| i64::try_from(v).map_err(|_| format!("stride {v} too large"));

        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: writes one handle into a live local.
        self.check("create", unsafe { (f.create)(&mut handle) })?;
        let handle = Guard { object: handle, destroy: f.destroy };

        let layout = |kind: c_int, rows: u64, cols: u64, ld: u64| -> Result<Guard<Layout>, String> {
            let mut out: Layout = std::ptr::null_mut();
            // SAFETY: writes one descriptor into a live local; the shape values are plain
            // integers cuBLASLt validates.
            self.check("matrix layout", unsafe { (f.layout_create)(&mut out, kind, rows, cols, as_ld(ld)?) })?;
            Ok(Guard { object: out, destroy: f.layout_destroy })
        };
        // Column-major views: Bᵀ (row-major n×k) is the k×n matrix B' with ld = bt_stride, used
        // transposed; A (row-major m×k) is k×m with ld = a_stride; D (row-major m×n) is n×m.
        let b_layout = layout(CUDA_R_8I, job.k, job.n, job.bt_stride)?;
        let a_layout = layout(CUDA_R_8I, job.k, job.m, job.a_stride)?;
        let d_layout = layout(CUDA_R_32I, job.n, job.m, job.d_stride)?;

        let mut desc: MatmulDesc = std::ptr::null_mut();
        // SAFETY: writes one descriptor into a live local.
        self.check("matmul desc", unsafe { (f.desc_create)(&mut desc, CUBLAS_COMPUTE_32I, CUDA_R_32I) })?;
        let desc = Guard { object: desc, destroy: f.desc_destroy };
        for (attribute, op) in [(DESC_TRANSA, CUBLAS_OP_T), (DESC_TRANSB, CUBLAS_OP_N)] {
            // SAFETY: the attribute is an int32 enum (cublasOperation_t); the buffer is one live c_int.
            let status = unsafe {
                (f.desc_set)(desc.object, attribute, (&op as *const c_int).cast(), std::mem::size_of::<c_int>())
            };
            self.check("matmul desc attribute", status)?;
        }

        let mut pref: Preference = std::ptr::null_mut();
        // SAFETY: writes one descriptor into a live local.
        self.check("preference", unsafe { (f.pref_create)(&mut pref) })?;
        let pref = Guard { object: pref, destroy: f.pref_destroy };
        let workspace = job.workspace_bytes as u64;
        // SAFETY: the attribute is a uint64; the buffer is one live u64.
        let status = unsafe {
            (f.pref_set)(
                pref.object,
                PREF_MAX_WORKSPACE_BYTES,
                (&workspace as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        self.check("preference attribute", status)?;

        let mut result =
            Heuristic { algo: Algo { data: [0; 8] }, workspace_size: 0, state: 0, waves_count: 0.0, reserved: [0; 4] };
        let mut count: c_int = 0;
        // SAFETY: all descriptors are live; room for exactly the one result requested.
        let status = unsafe {
            (f.heuristic)(
                handle.object,
                desc.object,
                b_layout.object,
                a_layout.object,
                d_layout.object,
                d_layout.object,
                pref.object,
                1,
                &mut result,
                &mut count,
            )
        };
        self.check("algorithm heuristic", status)?;
        if count < 1 {
            return Err(format!("cuBLASLt has no int8 algorithm for {}x{}x{} in this layout", job.m, job.k, job.n));
        }
        self.check("algorithm heuristic result", result.state)?;

        let (alpha, beta): (i32, i32) = (1, 0);
        // SAFETY: the descriptors are live; alpha and beta are host i32 (scale type 32I); the
        // device pointers satisfy this function's contract; C aliases D with beta = 0, as
        // cuBLASLt allows; the algorithm came from the heuristic for these descriptors.
        let status = unsafe {
            (f.matmul)(
                handle.object,
                desc.object,
                (&alpha as *const i32).cast(),
                job.bt as *const c_void,
                b_layout.object,
                job.a as *const c_void,
                a_layout.object,
                (&beta as *const i32).cast(),
                job.d as *const c_void,
                d_layout.object,
                job.d as *mut c_void,
                d_layout.object,
                &result.algo,
                job.workspace as *mut c_void,
                job.workspace_bytes,
                stream,
            )
        };
        self.check("matmul", status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_the_variable() {
        let error = CublasLt::load(&["/nonexistent/libcublasLt.so.12".into()]).unwrap_err();
        assert!(error.contains("libcublasLt not found") && error.contains(CUBLASLT_ENV), "{error}");
    }

    #[test]
    fn a_library_without_the_symbols_is_an_error() {
        // libc loads but is not cuBLASLt.
        let error = CublasLt::load(&["libc.so.6".into()]).unwrap_err();
        assert!(error.contains("not a usable cuBLASLt"), "{error}");
    }

    #[test]
    fn the_heuristic_result_has_the_c_layout() {
        // 64-byte algo, size_t, int status, float waves, int[4]: 96 bytes on LP64.
        assert_eq!(std::mem::size_of::<Algo>(), 64);
        assert_eq!(std::mem::size_of::<Heuristic>(), 96);
    }

    #[test]
    fn the_process_library_never_panics() {
        match cublaslt() {
            Ok(lt) => println!("cuBLASLt {} at {}", lt.version, lt.library),
            Err(e) => println!("no cuBLASLt: {e}"),
        }
    }
}
