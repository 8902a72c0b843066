//! Probing for the CUDA driver without cudarc, which panics when a library or symbol is
//! missing. The probe dlopens the same library cudarc would pick (the first loadable name in
//! cudarc's candidate list), checks the symbols, initializes the driver and lists devices.
//! Every failure is an error string; nothing here panics.
#![allow(unsafe_code)] // FFI into libcuda through libloading; each block says why it is sound.

use std::ffi::{c_char, c_int, c_uint};
use std::sync::OnceLock;

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

const ATTR_CC_MAJOR: c_int = 75;
const ATTR_CC_MINOR: c_int = 76;

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

pub(crate) fn open_first(candidates: &[String]) -> Result<(Library, String), String> {
    let mut errors = Vec::new();
    for name in candidates {
        // SAFETY: loading a shared library runs its initializers. These are the CUDA libraries
        // (or whatever the system put under their names), the same libraries cudarc or any
        // CUDA program would load; no Rust invariants depend on their initializers.
        match unsafe { Library::new(name) } {
            Ok(lib) => return Ok((lib, resolve_path(name))),
            Err(e) => errors.push(describe(name, &e)),
        }
    }
    match errors.last() {
        Some(last) if errors.len() > 1 => Err(format!("{} names tried, last {last}", errors.len())),
        Some(last) => Err(last.clone()),
        None => Err("no candidate names".into()),
    }
}

/// `name: error: cause` (libloading keeps dlerror's text in the error's source).
pub(crate) fn describe(name: &str, e: &libloading::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{name}: {e}: {cause}"),
        None => format!("{name}: {e}"),
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

fn check(what: &str, code: CuResult) -> Result<(), String> {
    if code == 0 { Ok(()) } else { Err(format!("{what} failed: {}", driver_error_name(code))) }
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

fn probe_uncached() -> Result<DriverInfo, String> {
    let candidates = driver_candidates();
    let (lib, library) = open_first(&candidates).map_err(|e| format!("libcuda not found ({e})"))?;
    macro_rules! sym {
        ($ty:ty, $name:literal) => {
            // SAFETY: the symbol is looked up by its documented CUDA driver API name and typed
            // with that function's documented C signature.
            *unsafe { lib.get::<$ty>(concat!($name, "\0").as_bytes()) }
                .map_err(|e| format!("{library} is not a usable CUDA driver: {}", describe($name, &e)))?
        };
    }
    let cu_init: CuInit = sym!(CuInit, "cuInit");
    let cu_driver_get_version: CuDriverGetVersion = sym!(CuDriverGetVersion, "cuDriverGetVersion");
    let cu_device_get_count: CuDeviceGetCount = sym!(CuDeviceGetCount, "cuDeviceGetCount");
    let cu_device_get: CuDeviceGet = sym!(CuDeviceGet, "cuDeviceGet");
    let cu_device_get_name: CuDeviceGetName = sym!(CuDeviceGetName, "cuDeviceGetName");
    let cu_device_get_attribute: CuDeviceGetAttribute = sym!(CuDeviceGetAttribute, "cuDeviceGetAttribute");
    let cu_device_total_mem: CuDeviceTotalMem = sym!(CuDeviceTotalMem, "cuDeviceTotalMem_v2");

    let mut version: c_int = 0;
    // SAFETY: the pointer is to a live local; the function writes one int. `lib` outlives
    // every call below (the pointers are only used in this function).
    check("cuDriverGetVersion", unsafe { cu_driver_get_version(&mut version) })?;
    // SAFETY: cuInit takes flags by value (0 is the only valid value).
    check("cuInit", unsafe { cu_init(0) })
        .map_err(|e| format!("{library} (driver {}): {e}", format_cuda_version(version)))?;
    let mut count: c_int = 0;
    // SAFETY: writes one int into a live local.
    check("cuDeviceGetCount", unsafe { cu_device_get_count(&mut count) })?;
    let mut devices = Vec::new();
    for ordinal in 0..count.max(0) {
        let mut device: c_int = 0;
        // SAFETY: writes one int; ordinal < count.
        check("cuDeviceGet", unsafe { cu_device_get(&mut device, ordinal) })?;
        let mut name = [0 as c_char; 256];
        // SAFETY: the buffer holds 256 chars and its length is passed; the driver writes a
        // NUL-terminated string of at most that length.
        check("cuDeviceGetName", unsafe { cu_device_get_name(name.as_mut_ptr(), name.len() as c_int, device) })?;
        let name: Vec<u8> = name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        // SAFETY: each call writes one int into a live local.
        check("cuDeviceGetAttribute", unsafe { cu_device_get_attribute(&mut major, ATTR_CC_MAJOR, device) })?;
        // SAFETY: as above.
        check("cuDeviceGetAttribute", unsafe { cu_device_get_attribute(&mut minor, ATTR_CC_MINOR, device) })?;
        let mut memory: usize = 0;
        // SAFETY: writes one size_t into a live local.
        check("cuDeviceTotalMem", unsafe { cu_device_total_mem(&mut memory, device) })?;
        devices.push(DeviceInfo {
            ordinal: ordinal as usize,
            name: String::from_utf8_lossy(&name).into_owned(),
            sm: (major.max(0) as u32, minor.max(0) as u32),
            memory_bytes: memory as u64,
        });
    }
    // Keep the library loaded: cudarc will open the same file and unloading a driver that
    // was initialized is pointless churn.
    std::mem::forget(lib);
    Ok(DriverInfo { library, version, devices })
}

/// Probes the driver once per process (later calls return the first answer).
pub fn driver() -> Result<DriverInfo, String> {
    static PROBE: OnceLock<Result<DriverInfo, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            std::panic::catch_unwind(probe_uncached).unwrap_or_else(|_| Err("the driver probe panicked".into()))
        })
        .clone()
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
