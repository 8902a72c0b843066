//! NVRTC, loaded by hand so that any NVRTC (12 or 13, from the CUDA toolkit or the
//! `nvidia-cuda-nvrtc` wheel, or a path in `MATPROOF_NVRTC`) can compile the kernels: cudarc's
//! loader only tries the names of the CUDA version it was built for, and panics when none
//! loads. The few entry points used here have kept their C signatures since CUDA 11.
//!
//! PTX is compiled once per process and cached on disk under
//! `$XDG_CACHE_HOME/matproof/ptx` (or `~/.cache/matproof/ptx`), keyed by SHA-256 over the
//! source, the options, the target architecture and the NVRTC version.
#![allow(unsafe_code)] // FFI into libnvrtc through libloading; each block says why it is sound.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use libloading::Library;
use sha2::{Digest, Sha256};

use crate::probe::{open_first, toolkit_candidates};
use crate::sources::KernelSource;

type NvrtcResult = c_int;
type Program = *mut c_void;

/// Environment variable naming the NVRTC library to use (a path or a file name).
pub const NVRTC_ENV: &str = "MATPROOF_NVRTC";

/// Options passed to every compilation (the architecture is added per target).
pub const OPTIONS: &[&str] = &["--std=c++17", "--device-as-default-execution-space"];

#[derive(Clone, Copy)]
struct Fns {
    get_error_string: unsafe extern "C" fn(NvrtcResult) -> *const c_char,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult,
    create_program: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvrtcResult,
    compile_program: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> NvrtcResult,
    get_ptx_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    get_ptx: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    get_log_size: unsafe extern "C" fn(Program, *mut usize) -> NvrtcResult,
    get_log: unsafe extern "C" fn(Program, *mut c_char) -> NvrtcResult,
    destroy_program: unsafe extern "C" fn(*mut Program) -> NvrtcResult,
    num_supported_archs: Option<unsafe extern "C" fn(*mut c_int) -> NvrtcResult>,
    supported_archs: Option<unsafe extern "C" fn(*mut c_int) -> NvrtcResult>,
}

/// A loaded NVRTC.
pub struct Nvrtc {
    // Keeps the function pointers in `fns` valid.
    _lib: Library,
    fns: Fns,
    /// The library that loaded (a path when it can be resolved).
    pub library: String,
    /// `nvrtcVersion` as `(major, minor)`.
    pub version: (i32, i32),
    /// The real architectures it can target (`major·10 + minor`), when it says.
    pub archs: Vec<u32>,
}

impl std::fmt::Debug for Nvrtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvrtc").field("library", &self.library).field("version", &self.version).finish()
    }
}

/// The names tried when `MATPROOF_NVRTC` is unset, newest first.
pub fn nvrtc_candidates() -> Vec<String> {
    toolkit_candidates(NVRTC_ENV, &["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "libnvrtc.so.11.2"], "libnvrtc")
}

/// A compile failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CompileError {
    /// No NVRTC could be loaded.
    #[error("NVRTC unavailable: {0}")]
    Unavailable(String),
    /// NVRTC rejected the source (the log says why).
    #[error("NVRTC failed to compile {name} for sm_{arch}: {message}\n{log}")]
    Failed {
        /// Kernel source name.
        name: String,
        /// Target architecture.
        arch: u32,
        /// NVRTC's error string.
        message: String,
        /// NVRTC's compile log.
        log: String,
    },
}

impl Nvrtc {
    fn open() -> Result<Nvrtc, String> {
        let candidates = nvrtc_candidates();
        let (lib, library) =
            open_first(&candidates).map_err(|e| format!("libnvrtc not found ({e}; set {NVRTC_ENV} to its path)"))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: looked up by its documented NVRTC name; the field it is stored in has
                // that function's documented C signature.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("{library} is not a usable NVRTC: {}", crate::probe::describe($name, &e)))?
            };
        }
        macro_rules! opt_sym {
            ($name:literal) => {
                // SAFETY: as above; absent in old NVRTC versions, hence optional.
                unsafe { lib.get(concat!($name, "\0").as_bytes()) }.ok().map(|s| *s)
            };
        }
        let fns = Fns {
            get_error_string: sym!("nvrtcGetErrorString"),
            version: sym!("nvrtcVersion"),
            create_program: sym!("nvrtcCreateProgram"),
            compile_program: sym!("nvrtcCompileProgram"),
            get_ptx_size: sym!("nvrtcGetPTXSize"),
            get_ptx: sym!("nvrtcGetPTX"),
            get_log_size: sym!("nvrtcGetProgramLogSize"),
            get_log: sym!("nvrtcGetProgramLog"),
            destroy_program: sym!("nvrtcDestroyProgram"),
            num_supported_archs: opt_sym!("nvrtcGetNumSupportedArchs"),
            supported_archs: opt_sym!("nvrtcGetSupportedArchs"),
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: writes two ints into live locals.
        let code = unsafe { (fns.version)(&mut major, &mut minor) };
        if code != 0 {
            return Err(format!("{library}: nvrtcVersion failed ({code})"));
        }
        let mut archs = Vec::new();
        if let (Some(num), Some(list)) = (fns.num_supported_archs, fns.supported_archs) {
            let mut count: c_int = 0;
            // SAFETY: writes one int into a live local.
            if unsafe { num(&mut count) } == 0 && (0..=1024).contains(&count) {
                let mut buf = vec![0 as c_int; count as usize];
                // SAFETY: the buffer holds exactly `count` ints, as NVRTC just reported.
                if unsafe { list(buf.as_mut_ptr()) } == 0 {
                    archs = buf.into_iter().filter(|&a| a > 0).map(|a| a as u32).collect();
                }
            }
        }
        Ok(Nvrtc { _lib: lib, fns, library, version: (major, minor), archs })
    }

    /// The architecture to compile for on a device of compute capability `sm`: the highest one
    /// this NVRTC supports that is not above `sm` (PTX for it runs on `sm` through the driver's
    /// JIT), or `sm` itself when NVRTC does not list its architectures.
    pub fn arch_for(&self, sm: u32) -> u32 {
        self.archs.iter().copied().filter(|&a| a <= sm).max().unwrap_or(sm)
    }

    fn error_string(&self, code: NvrtcResult) -> String {
        // SAFETY: nvrtcGetErrorString returns a pointer to a static NUL-terminated string (or
        // null for unknown codes, handled).
        let ptr = unsafe { (self.fns.get_error_string)(code) };
        if ptr.is_null() {
            return format!("NVRTC error {code}");
        }
        // SAFETY: non-null, static and NUL-terminated as documented.
        unsafe { std::ffi::CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
    }

    /// Compiles `source` to PTX for `compute_{arch}` (no cache).
    pub fn compile(&self, name: &str, source: &str, arch: u32) -> Result<String, CompileError> {
        let fail = |message: String, log: String| CompileError::Failed { name: name.into(), arch, message, log };
        let c_source = CString::new(source).map_err(|_| fail("source contains NUL".into(), String::new()))?;
        let c_name = CString::new(format!("{name}.cu")).map_err(|_| fail("name contains NUL".into(), String::new()))?;
        let mut options: Vec<CString> = OPTIONS.iter().map(|o| CString::new(*o).expect("static option")).collect();
        options.push(CString::new(format!("--gpu-architecture=compute_{arch}")).expect("no NUL"));
        let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();

        let mut program: Program = std::ptr::null_mut();
        // SAFETY: source and name are NUL-terminated and live for the call; no headers.
        let code = unsafe {
            (self.fns.create_program)(
                &mut program,
                c_source.as_ptr(),
                c_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if code != 0 {
            return Err(fail(self.error_string(code), String::new()));
        }
        // SAFETY: `program` was created above; the option pointers point into `options`,
        // alive for the call.
        let code = unsafe { (self.fns.compile_program)(program, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
        let result = if code != 0 {
            Err(fail(self.error_string(code), self.log(program)))
        } else {
            self.ptx(program).map_err(|c| fail(self.error_string(c), self.log(program)))
        };
        // SAFETY: destroys the program created above, once.
        unsafe { (self.fns.destroy_program)(&mut program) };
        result
    }

    fn log(&self, program: Program) -> String {
        let mut size = 0usize;
        // SAFETY: `program` is live; writes one size_t.
        if unsafe { (self.fns.get_log_size)(program, &mut size) } != 0 || size == 0 || size > (64 << 20) {
            return String::new();
        }
        let mut buf = vec![0u8; size];
        // SAFETY: the buffer holds the `size` bytes NVRTC reported (including the NUL).
        if unsafe { (self.fns.get_log)(program, buf.as_mut_ptr().cast()) } != 0 {
            return String::new();
        }
        String::from_utf8_lossy(&buf[..size - 1]).trim().to_string()
    }

    fn ptx(&self, program: Program) -> Result<String, NvrtcResult> {
        let mut size = 0usize;
        // SAFETY: `program` is live and compiled; writes one size_t.
        let code = unsafe { (self.fns.get_ptx_size)(program, &mut size) };
        if code != 0 {
            return Err(code);
        }
        let mut buf = vec![0u8; size.max(1)];
        // SAFETY: the buffer holds the `size` bytes NVRTC reported (including the NUL).
        let code = unsafe { (self.fns.get_ptx)(program, buf.as_mut_ptr().cast()) };
        if code != 0 {
            return Err(code);
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }
}

/// The process-wide NVRTC (loaded on first use).
pub fn nvrtc() -> Result<&'static Nvrtc, String> {
    static NVRTC: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
    NVRTC
        .get_or_init(|| {
            std::panic::catch_unwind(Nvrtc::open).unwrap_or_else(|_| Err("the NVRTC probe panicked".into()))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Where compiled PTX is cached: `$XDG_CACHE_HOME/matproof/ptx` or `~/.cache/matproof/ptx`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("matproof").join("ptx"))
}

/// The cache key: SHA-256 over the source, the options, the architecture and the NVRTC version.
pub fn cache_key(source: &str, arch: u32, version: (i32, i32)) -> String {
    let mut h = Sha256::new();
    h.update(b"matproof/ptx/v1\0");
    h.update((source.len() as u64).to_le_bytes());
    h.update(source.as_bytes());
    for option in OPTIONS {
        h.update(option.as_bytes());
        h.update([0]);
    }
    h.update(arch.to_le_bytes());
    h.update(version.0.to_le_bytes());
    h.update(version.1.to_le_bytes());
    hex::encode(h.finalize())
}

/// Compiled PTX by `(kernel name, arch)`.
type PtxByKernel = HashMap<(String, u32), Arc<String>>;

/// PTX for `kernel` on `compute_{arch}`: from this process's memory, else the disk cache, else
/// NVRTC (then written to the cache; a cache that cannot be written is not an error).
pub fn ptx_for(kernel: &KernelSource, arch: u32) -> Result<Arc<String>, CompileError> {
    static MEMORY: OnceLock<Mutex<PtxByKernel>> = OnceLock::new();
    let memory = MEMORY.get_or_init(Default::default);
    let key = (kernel.name.to_string(), arch);
    if let Some(ptx) = memory.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(ptx.clone());
    }
    let nvrtc = nvrtc().map_err(CompileError::Unavailable)?;
    let hash = cache_key(kernel.source, arch, nvrtc.version);
    let file = cache_dir().map(|d| d.join(format!("{}-sm{arch}-{}.ptx", kernel.name, &hash[..32])));
    let cached = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).filter(|ptx| {
        ptx.contains(".version") && kernel.functions.iter().all(|f| ptx.contains(&format!(".entry {f}(")))
    });
    let ptx = match cached {
        Some(ptx) => ptx,
        None => {
            let ptx = nvrtc.compile(kernel.name, kernel.source, arch)?;
            if let Some(file) = &file {
                write_atomically(file, ptx.as_bytes());
            }
            ptx
        }
    };
    let ptx = Arc::new(ptx);
    memory.lock().unwrap_or_else(|p| p.into_inner()).insert(key, ptx.clone());
    Ok(ptx)
}

fn write_atomically(file: &std::path::Path, bytes: &[u8]) {
    let Some(dir) = file.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, file).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The PTX ISA version a PTX text declares (`.version 8.5` → `(8, 5)`).
pub fn ptx_isa_version(ptx: &str) -> Option<(u32, u32)> {
    let line = ptx.lines().find(|l| l.trim_start().starts_with(".version"))?;
    let v = line.split_whitespace().nth(1)?;
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_binds_source_arch_and_version() {
        let base = cache_key("src", 80, (12, 6));
        assert_eq!(base, cache_key("src", 80, (12, 6)));
        assert_ne!(base, cache_key("src2", 80, (12, 6)));
        assert_ne!(base, cache_key("src", 90, (12, 6)));
        assert_ne!(base, cache_key("src", 80, (13, 0)));
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn ptx_versions_parse() {
        assert_eq!(ptx_isa_version("//\n.version 8.5\n.target sm_80\n"), Some((8, 5)));
        assert_eq!(ptx_isa_version(".target sm_80"), None);
    }
}
