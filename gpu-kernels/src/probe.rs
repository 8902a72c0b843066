//! Probing for the CUDA driver without cudarc, which panics when a library or symbol is
//! missing. The probe dlopens the same library cudarc would pick (the first loadable name in
//! cudarc's candidate list), checks the symbols, initializes the driver and lists devices.
//! Every failure is a [`ProbeError`] (or a [`LibraryError`] for the toolkit libraries the
//! other modules load the same way); nothing here panics.
#![allow(unsafe_code)] // FFI into libcuda through libloading; each block says why it is sound.

use std::ffi::{c_char, c_int, c_uint};
use std::sync::{Arc, OnceLock};

use libloading::Library;

/// A CUDA device as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability `(major, minor)`.
    pub sm: (u32, u32),
    /// Global memory in bytes.
    pub memory_bytes: u64,
    /// Streaming multiprocessors (sizes launches that must spread over every SM).
    pub multiprocessors: u32,
}

impl DeviceInfo {
    /// Compute capability as `major·10 + minor` (e.g. 90).
    pub fn sm_number(&self) -> u32 {
        self.sm.0 * 10 + self.sm.1
    }
}

/// What the driver probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// The library that loaded (a path when it can be resolved, else the name).
    pub library: String,
    /// `cuDriverGetVersion`, e.g. 12040 for CUDA 12.4.
    pub version: i32,
    /// Every device.
    pub devices: Vec<DeviceInfo>,
}

/// `12040` → `"12.4"`.
pub fn format_cuda_version(version: i32) -> String {
    format!("{}.{}", version / 1000, (version % 1000) / 10)
}

type CuResult = c_int;
type CuInit = unsafe extern "C" fn(c_uint) -> CuResult;
type CuDriverGetVersion = unsafe extern "C" fn(*mut c_int) -> CuResult;
type CuDeviceGetCount = unsafe extern "C" fn(*mut c_int) -> CuResult;
type CuDeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> CuResult;
type CuDeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> CuResult;
type CuDeviceGetAttribute = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> CuResult;
type CuDeviceTotalMem = unsafe extern "C" fn(*mut usize, c_int) -> CuResult;

const ATTR_MULTIPROCESSOR_COUNT: c_int = 16;
const ATTR_CC_MAJOR: c_int = 75;
const ATTR_CC_MINOR: c_int = 76;

/// Why a shared library (libcuda, NVRTC, cuBLASLt) could not be loaded or used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LibraryError {
    /// No candidate name loaded.
    #[error("{stem} not found ({attempts} name(s) tried, last {name}: {}{})", cause_text(.source), env_hint(*.env))]
    NotFound {
        /// The library's file stem, e.g. `libnvrtc`.
        stem: &'static str,
        /// How many names were tried.
        attempts: usize,
        /// The last name tried.
        name: String,
        /// The environment variable that names the library, when there is one.
        env: Option<&'static str>,
        /// dlopen's error for the last name.
        #[source]
        source: Arc<libloading::Error>,
    },
    /// The library loaded but lacks a symbol this crate calls.
    #[error("{path} is not a usable {what}: {symbol}: {}", cause_text(.source))]
    MissingSymbol {
        /// What the library should have been, e.g. `CUDA driver`.
        what: &'static str,
        /// The file that loaded.
        path: String,
        /// The missing symbol.
        symbol: &'static str,
        /// dlsym's error.
        #[source]
        source: Arc<libloading::Error>,
    },
}

fn env_hint(env: Option<&str>) -> String {
    env.map(|var| format!("; set {var} to its path")).unwrap_or_default()
}

/// libloading's own text and dlerror's (libloading keeps the latter in its error's source).
fn cause_text(e: &libloading::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Why the CUDA driver cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    /// libcuda is absent or not a CUDA driver.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// `cuInit` failed.
    #[error("{library} (driver {}): cuInit failed: {}", format_cuda_version(*.version), driver_error_name(*.code))]
    Init {
        /// The library that loaded.
        library: String,
        /// `cuDriverGetVersion`.
        version: i32,
        /// The `CUresult`.
        code: i32,
    },
    /// Another driver call failed.
    #[error("{call} failed: {}", driver_error_name(*.code))]
    Call {
        /// The driver entry point.
        call: &'static str,
        /// The `CUresult`.
        code: i32,
    },
    /// The probe itself panicked (caught).
    #[error("the driver probe panicked")]
    Panicked,
}

/// The names cudarc tries for libcuda, in its order.
pub fn driver_candidates() -> Vec<String> {
    let mut names = cudarc::get_lib_name_candidates("cuda");
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Loads the first library of `candidates` that dlopen accepts: `(library, name)` or every
/// error joined.
/// Names to try for a CUDA toolkit library that may come from CUDA 12 or 13: the path in
/// `env_var` alone when it is set, else `sonames` (newest first), then `lib64/<stem>.so` under
/// `$CUDA_HOME`, `$CUDA_PATH` and `/usr/local/cuda`.
pub(crate) fn toolkit_candidates(env_var: &str, sonames: &[&str], stem: &str) -> Vec<String> {
    if let Some(path) = std::env::var_os(env_var) {
        return vec![path.to_string_lossy().into_owned()];
    }
    let mut names: Vec<String> = sonames.iter().map(|s| s.to_string()).collect();
    let homes = ["CUDA_HOME", "CUDA_PATH"].into_iter().filter_map(std::env::var_os).map(std::path::PathBuf::from);
    for home in homes.chain([std::path::PathBuf::from("/usr/local/cuda")]) {
        names.push(home.join(format!("lib64/{stem}.so")).to_string_lossy().into_owned());
    }
    names
}

/// Loads the first library of `candidates` (names of `stem`, named by `env` when set) that
/// dlopen accepts: `(library, resolved path)`, or the last dlopen error.
pub(crate) fn open_first(
    candidates: &[String],
    stem: &'static str,
    env: Option<&'static str>,
) -> Result<(Library, String), LibraryError> {
    let mut last = None;
    for name in candidates {
        // SAFETY: loading a shared library runs its initializers. These are the CUDA libraries
        // (or whatever the system put under their names), the same libraries cudarc or any
        // CUDA program would load; no Rust invariants depend on their initializers.
        match unsafe { Library::new(name) } {
            Ok(lib) => return Ok((lib, resolve_path(name))),
            Err(e) => last = Some((name.clone(), e)),
        }
    }
    let (name, source) = last.unwrap_or_else(|| ("(no candidate names)".into(), libloading::Error::DlOpenUnknown));
    Err(LibraryError::NotFound { stem, attempts: candidates.len(), name, env, source: Arc::new(source) })
}

/// Looks up `symbol` in `lib` (loaded from `path` as a `what`), typed as `T`.
///
/// # Safety
/// `T` must be the documented C signature of `symbol` (a function pointer type), and the
/// returned value must not outlive `lib`.
pub(crate) unsafe fn symbol<T: Copy>(
    lib: &Library,
    what: &'static str,
    path: &str,
    symbol: &'static str,
) -> Result<T, LibraryError> {
    let name = format!("{symbol}\0");
    // SAFETY: the caller vouches for `T` and the lifetime (this function's contract).
    match unsafe { lib.get::<T>(name.as_bytes()) } {
        Ok(found) => Ok(*found),
        Err(e) => Err(LibraryError::MissingSymbol { what, path: path.to_string(), symbol, source: Arc::new(e) }),
    }
}

/// The file a loaded library came from, from `/proc/self/maps` (Linux); the name otherwise.
pub(crate) fn resolve_path(name: &str) -> String {
    let stem = name.split(".so").next().unwrap_or(name);
    let stem = stem.rsplit('/').next().unwrap_or(stem);
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            if let Some(path) = line.split_whitespace().nth(5) {
                let file = path.rsplit('/').next().unwrap_or(path);
                if file.starts_with(&format!("{stem}.so")) {
                    return path.to_string();
                }
            }
        }
    }
    name.to_string()
}

fn check(call: &'static str, code: CuResult) -> Result<(), ProbeError> {
    if code == 0 { Ok(()) } else { Err(ProbeError::Call { call, code }) }
}

/// A readable name for a `CUresult` code.
pub fn driver_error_name(code: i32) -> String {
    let name = match code {
        1 => "CUDA_ERROR_INVALID_VALUE",
        2 => "CUDA_ERROR_OUT_OF_MEMORY",
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        4 => "CUDA_ERROR_DEINITIALIZED",
        35 => "CUDA_ERROR_INSUFFICIENT_DRIVER",
        46 => "CUDA_ERROR_DEVICES_UNAVAILABLE",
        100 => "CUDA_ERROR_NO_DEVICE",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        209 => "CUDA_ERROR_NO_BINARY_FOR_GPU",
        218 => "CUDA_ERROR_INVALID_PTX",
        222 => "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        304 => "CUDA_ERROR_OPERATING_SYSTEM",
        999 => "CUDA_ERROR_UNKNOWN",
        _ => "",
    };
    if name.is_empty() { format!("CUresult {code}") } else { format!("{name} ({code})") }
}

/// The driver entry points the probe calls, looked up from one loaded libcuda.
struct DriverFns {
    init: CuInit,
    driver_get_version: CuDriverGetVersion,
    device_get_count: CuDeviceGetCount,
    device_get: CuDeviceGet,
    device_get_name: CuDeviceGetName,
    device_get_attribute: CuDeviceGetAttribute,
    device_total_mem: CuDeviceTotalMem,
}

impl DriverFns {
    fn load(lib: &Library, path: &str) -> Result<DriverFns, LibraryError> {
        const WHAT: &str = "CUDA driver";
        // SAFETY (every `symbol` call): each name is a documented CUDA driver API entry point
        // and each field's type is that function's documented C signature; the pointers are
        // used only while `lib` is loaded (the probe never unloads it).
        unsafe {
            Ok(DriverFns {
                init: symbol(lib, WHAT, path, "cuInit")?,
                driver_get_version: symbol(lib, WHAT, path, "cuDriverGetVersion")?,
                device_get_count: symbol(lib, WHAT, path, "cuDeviceGetCount")?,
                device_get: symbol(lib, WHAT, path, "cuDeviceGet")?,
                device_get_name: symbol(lib, WHAT, path, "cuDeviceGetName")?,
                device_get_attribute: symbol(lib, WHAT, path, "cuDeviceGetAttribute")?,
                device_total_mem: symbol(lib, WHAT, path, "cuDeviceTotalMem_v2")?,
            })
        }
    }

    fn attribute(&self, attribute: c_int, device: c_int) -> Result<u32, ProbeError> {
        let mut value: c_int = 0;
        // SAFETY: writes one int into a live local; `device` came from cuDeviceGet.
        check("cuDeviceGetAttribute", unsafe { (self.device_get_attribute)(&mut value, attribute, device) })?;
        Ok(value.max(0) as u32)
    }

    fn device(&self, ordinal: c_int) -> Result<DeviceInfo, ProbeError> {
        let mut device: c_int = 0;
        // SAFETY: writes one int; the caller passes ordinal < cuDeviceGetCount.
        check("cuDeviceGet", unsafe { (self.device_get)(&mut device, ordinal) })?;
        let mut name = [0 as c_char; 256];
        // SAFETY: the buffer holds 256 chars and its length is passed; the driver writes a
        // NUL-terminated string of at most that length.
        check("cuDeviceGetName", unsafe { (self.device_get_name)(name.as_mut_ptr(), name.len() as c_int, device) })?;
        let name: Vec<u8> = name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        let mut memory: usize = 0;
        // SAFETY: writes one size_t into a live local.
        check("cuDeviceTotalMem", unsafe { (self.device_total_mem)(&mut memory, device) })?;
        Ok(DeviceInfo {
            ordinal: ordinal as usize,
            name: String::from_utf8_lossy(&name).into_owned(),
            sm: (self.attribute(ATTR_CC_MAJOR, device)?, self.attribute(ATTR_CC_MINOR, device)?),
            memory_bytes: memory as u64,
            multiprocessors: self.attribute(ATTR_MULTIPROCESSOR_COUNT, device)?,
        })
    }
}

fn probe_uncached() -> Result<DriverInfo, ProbeError> {
    let (lib, library) = open_first(&driver_candidates(), "libcuda", None)?;
    let fns = DriverFns::load(&lib, &library)?;
    let mut version: c_int = 0;
    // SAFETY: the pointer is to a live local; the function writes one int.
    check("cuDriverGetVersion", unsafe { (fns.driver_get_version)(&mut version) })?;
    // SAFETY: cuInit takes flags by value (0 is the only valid value).
    let code = unsafe { (fns.init)(0) };
    if code != 0 {
        return Err(ProbeError::Init { library, version, code });
    }
    let mut count: c_int = 0;
    // SAFETY: writes one int into a live local.
    check("cuDeviceGetCount", unsafe { (fns.device_get_count)(&mut count) })?;
    let devices = (0..count.max(0)).map(|ordinal| fns.device(ordinal)).collect::<Result<Vec<_>, _>>()?;
    // Keep the library loaded: cudarc will open the same file and unloading a driver that
    // was initialized is pointless churn.
    std::mem::forget(lib);
    Ok(DriverInfo { library, version, devices })
}

/// Probes the driver once per process (later calls return the first answer).
pub fn driver() -> Result<DriverInfo, ProbeError> {
    static PROBE: OnceLock<Result<DriverInfo, ProbeError>> = OnceLock::new();
    PROBE.get_or_init(|| std::panic::catch_unwind(probe_uncached).unwrap_or(Err(ProbeError::Panicked))).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_errors_read_well() {
        assert_eq!(format_cuda_version(12040), "12.4");
        assert_eq!(format_cuda_version(13000), "13.0");
        assert_eq!(driver_error_name(222), "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (222)");
        assert_eq!(driver_error_name(12345), "CUresult 12345");
    }

    #[test]
    fn candidates_are_cudarcs_without_duplicates() {
        let names = driver_candidates();
        assert!(names.iter().any(|n| n == "libcuda.so.1"));
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
