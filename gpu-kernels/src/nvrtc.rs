//! NVRTC, loaded by hand so that any NVRTC (12 or 13, from the CUDA toolkit or the
//! `nvidia-cuda-nvrtc` wheel, or a path in `MATPROOF_NVRTC`) can compile the kernels: cudarc's
//! loader only tries the names of the CUDA version it was built for, and panics when none
//! loads. The few entry points used here have kept their C signatures since CUDA 11.
//!
//! PTX is compiled once per process and cached on disk under
//! `$XDG_CACHE_HOME/matproof/ptx` (or `~/.cache/matproof/ptx`), keyed by SHA-256 over the
//! source, the options, the target architecture and the NVRTC version. Several threads (the
//! GPU tests open devices in parallel) and processes may fill the cache at once: within a
//! process one thread compiles each kernel while the others wait for it; on disk every writer
//! writes its own temporary file (pid, thread and a counter in its name) and renames it into
//! place, and every file ends with the SHA-256 of its PTX, so a reader never takes a partial
//! file for PTX.
#![allow(unsafe_code)] // FFI into libnvrtc through libloading; each block says why it is sound.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_void};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use libloading::Library;
use sha2::{Digest, Sha256};

use crate::probe::{LibraryError, open_first, symbol, toolkit_candidates};
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

/// Why NVRTC cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NvrtcError {
    /// No NVRTC library loaded, or it lacks an entry point.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// `nvrtcVersion` failed.
    #[error("{library}: nvrtcVersion failed with status {code}")]
    Version {
        /// The library that loaded.
        library: String,
        /// NVRTC's status code.
        code: i32,
    },
    /// Loading NVRTC panicked (caught).
    #[error("the NVRTC probe panicked")]
    Panicked,
}

/// A compile failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CompileError {
    /// No NVRTC could be loaded.
    #[error("NVRTC unavailable: {0}")]
    Unavailable(#[source] NvrtcError),
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

impl Fns {
    fn load(lib: &Library, path: &str) -> Result<Fns, LibraryError> {
        const WHAT: &str = "NVRTC";
        // SAFETY (every `symbol` call): each name is a documented NVRTC entry point and each
        // field's type is that function's documented C signature; `Nvrtc` keeps `lib` loaded
        // as long as the pointers live.
        unsafe {
            Ok(Fns {
                get_error_string: symbol(lib, WHAT, path, "nvrtcGetErrorString")?,
                version: symbol(lib, WHAT, path, "nvrtcVersion")?,
                create_program: symbol(lib, WHAT, path, "nvrtcCreateProgram")?,
                compile_program: symbol(lib, WHAT, path, "nvrtcCompileProgram")?,
                get_ptx_size: symbol(lib, WHAT, path, "nvrtcGetPTXSize")?,
                get_ptx: symbol(lib, WHAT, path, "nvrtcGetPTX")?,
                get_log_size: symbol(lib, WHAT, path, "nvrtcGetProgramLogSize")?,
                get_log: symbol(lib, WHAT, path, "nvrtcGetProgramLog")?,
                destroy_program: symbol(lib, WHAT, path, "nvrtcDestroyProgram")?,
                // Absent in old NVRTC versions, hence optional.
                num_supported_archs: symbol(lib, WHAT, path, "nvrtcGetNumSupportedArchs").ok(),
                supported_archs: symbol(lib, WHAT, path, "nvrtcGetSupportedArchs").ok(),
            })
        }
    }
}

impl Nvrtc {
    fn open() -> Result<Nvrtc, NvrtcError> {
        let (lib, library) = open_first(&nvrtc_candidates(), "libnvrtc", Some(NVRTC_ENV))?;
        let fns = Fns::load(&lib, &library)?;
        let (mut major, mut minor) = (0, 0);
        // SAFETY: writes two ints into live locals.
        let code = unsafe { (fns.version)(&mut major, &mut minor) };
        if code != 0 {
            return Err(NvrtcError::Version { library, code });
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
pub fn nvrtc() -> Result<&'static Nvrtc, NvrtcError> {
    static NVRTC: OnceLock<Result<Nvrtc, NvrtcError>> = OnceLock::new();
    NVRTC
        .get_or_init(|| std::panic::catch_unwind(Nvrtc::open).unwrap_or(Err(NvrtcError::Panicked)))
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
    h.update(b"matproof/ptx/v2\0"); // v2: files end with the PTX's SHA-256
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

/// One kernel's PTX in this process: filled once, by the first thread that asks; the others
/// wait on its lock instead of compiling the same source again.
type PtxSlot = Arc<Mutex<Option<Arc<String>>>>;

/// PTX for `kernel` on `compute_{arch}`: from this process's memory, else the disk cache, else
/// NVRTC (then written to the cache; a cache that cannot be written is not an error).
pub fn ptx_for(kernel: &KernelSource, arch: u32) -> Result<Arc<String>, CompileError> {
    static MEMORY: OnceLock<Mutex<HashMap<(String, u32), PtxSlot>>> = OnceLock::new();
    let slot = {
        let mut slots = MEMORY.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        slots.entry((kernel.name.to_string(), arch)).or_default().clone()
    };
    // Held while compiling: a second thread asking for this kernel waits here, then finds it.
    let mut ptx = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ptx) = ptx.as_ref() {
        return Ok(ptx.clone());
    }
    let compiled = Arc::new(cached_ptx(kernel, arch, cache_dir().as_deref())?);
    *ptx = Some(compiled.clone());
    Ok(compiled)
}

/// PTX for `kernel` on `compute_{arch}` from the disk cache in `dir`, else compiled by NVRTC
/// and written there (`None`: no cache). No in-process memory and no lock: many threads or
/// processes may call this for the same kernel at once, each then compiling and writing.
pub fn cached_ptx(kernel: &KernelSource, arch: u32, dir: Option<&Path>) -> Result<String, CompileError> {
    let nvrtc = nvrtc().map_err(CompileError::Unavailable)?;
    let file = dir.map(|d| cache_file(d, kernel, arch, nvrtc.version));
    let cached = file.as_deref().and_then(read_cache_file).filter(|ptx| declares_every_kernel(ptx, kernel));
    if let Some(ptx) = cached {
        return Ok(ptx);
    }
    let ptx = nvrtc.compile(kernel.name, kernel.source, arch)?;
    if let Some(file) = &file {
        // A cache that cannot be written only costs the next process a compile.
        let _ = write_cache_file(file, &ptx);
    }
    Ok(ptx)
}

/// Whether `ptx` looks like a whole module of `kernel`: a `.version` line and every entry.
pub fn declares_every_kernel(ptx: &str, kernel: &KernelSource) -> bool {
    ptx.contains(".version") && kernel.functions.iter().all(|f| ptx.contains(&format!(".entry {f}(")))
}

/// The cache file of `kernel` for `compute_{arch}` and NVRTC `version` in `dir`.
pub fn cache_file(dir: &Path, kernel: &KernelSource, arch: u32, version: (i32, i32)) -> PathBuf {
    let hash = cache_key(kernel.source, arch, version);
    dir.join(format!("{}-sm{arch}-{}.ptx", kernel.name, &hash[..32]))
}

/// Marks the end of a cache file: the SHA-256 of the PTX before it follows.
const CHECKSUM_LINE: &str = "\n// matproof-ptx-sha256 ";

/// A cache file could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// An I/O operation on the cache directory failed.
    #[error("PTX cache: cannot {action} {}", .path.display())]
    Io {
        /// What was being done (`create`, `write`, `rename into place`).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// Writes `ptx` and its SHA-256 to `file` so that a concurrent reader sees either no file,
/// an older whole file, or this whole file: the bytes go to a temporary file of this writer
/// alone (pid, thread id and a process-wide counter in its name), which is then renamed over
/// `file` (atomic on POSIX file systems).
pub fn write_cache_file(file: &Path, ptx: &str) -> Result<(), CacheError> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| CacheError::Io { action, path, source: Arc::new(source) }
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let thread: String = format!("{:?}", std::thread::current().id()).chars().filter(char::is_ascii_digit).collect();
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp =
        dir.join(format!(".{name}.{}.{thread}.{}.tmp", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut out| {
            out.write_all(ptx.as_bytes())?;
            writeln!(out, "{CHECKSUM_LINE}{}", hex::encode(Sha256::digest(ptx.as_bytes())))
        })
        .map_err(io("write", &tmp))
        .and_then(|()| std::fs::rename(&tmp, file).map_err(io("rename into place", file)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The PTX in a cache file written by [`write_cache_file`], or `None` when the file is
/// absent, unreadable, or not whole (its checksum line is missing or does not match).
pub fn read_cache_file(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    whole_cache_text(&text).map(str::to_string)
}

/// The PTX in the text of a cache file, or `None` when the text is not a whole file.
pub fn whole_cache_text(text: &str) -> Option<&str> {
    let (ptx, checksum) = text.rsplit_once(CHECKSUM_LINE)?;
    let checksum = checksum.strip_suffix('\n')?;
    (checksum == hex::encode(Sha256::digest(ptx.as_bytes()))).then_some(ptx)
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
    fn a_cache_file_reads_back_whole_and_a_cut_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join("k.ptx");
        let ptx = ".version 8.5\n.target sm_80\n.entry k(\n";
        write_cache_file(&file, ptx).unwrap();
        assert_eq!(read_cache_file(&file).as_deref(), Some(ptx));
        let bytes = std::fs::read(&file).unwrap();
        for cut in [0, 1, ptx.len(), bytes.len() - 1] {
            std::fs::write(&file, &bytes[..cut]).unwrap();
            assert_eq!(read_cache_file(&file), None, "cut at {cut}");
        }
        // No temporary file is left behind.
        let names: Vec<_> =
            std::fs::read_dir(file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["k.ptx"]);
    }

    #[test]
    fn ptx_versions_parse() {
        assert_eq!(ptx_isa_version("//\n.version 8.5\n.target sm_80\n"), Some((8, 5)));
        assert_eq!(ptx_isa_version(".target sm_80"), None);
    }
}
