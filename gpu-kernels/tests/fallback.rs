//! Without a usable GPU every entry point is a clean error, never a panic: here with the
//! machine as it is, and in a child process whose `LD_LIBRARY_PATH` puts a broken libcuda
//! (a shared object without the driver's symbols, or an empty file when no C compiler is
//! around) in front of the real one.

use std::path::Path;
use std::process::Command;

use matproof_gpu_kernels::probe::{self, driver_candidates};
use matproof_gpu_kernels::{GpuDevice, GpuError};

const CHILD_ENV: &str = "MATPROOF_FALLBACK_CHILD";

#[test]
fn probing_and_opening_never_panic() {
    match probe::driver() {
        Ok(info) => println!("driver {} at {}, {} device(s)", info.version, info.library, info.devices.len()),
        Err(e) => println!("no driver: {e}"),
    }
    match GpuDevice::open(0) {
        Ok(device) => println!("opened {:?}", device.info()),
        Err(e) => println!("no GPU: {e}"),
    }
    // An ordinal no machine has is an error, not a panic.
    assert!(GpuDevice::open(1 << 20).is_err());
}

/// Writes a broken stand-in for every libcuda name cudarc tries into `dir`.
fn plant_broken_libcuda(dir: &Path) -> &'static str {
    let source = dir.join("empty.c");
    std::fs::write(&source, "int matproof_not_cuda(void) { return 0; }\n").unwrap();
    let object = dir.join("fake.so");
    let compiled = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&object)
        .arg(&source)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    for name in driver_candidates().iter().filter(|n| !n.contains('/')) {
        if compiled {
            std::fs::copy(&object, dir.join(name)).unwrap();
        } else {
            std::fs::write(dir.join(name), b"").unwrap();
        }
    }
    if compiled { "a shared object without cuInit" } else { "an empty file" }
}

#[test]
fn a_broken_libcuda_is_a_clean_no_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let what = plant_broken_libcuda(dir.path());
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["child_with_broken_libcuda", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "child failed with libcuda = {what}:\n{text}");
    assert!(text.contains("CHILD-OK"), "child did not run:\n{text}");
    println!("libcuda = {what}: {}", text.lines().find(|l| l.contains("no usable")).unwrap_or_default());
}

/// Runs only as the child of [`a_broken_libcuda_is_a_clean_no_gpu`].
#[test]
fn child_with_broken_libcuda() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let error = probe::driver().expect_err("a broken libcuda must not probe as a driver").to_string();
    assert!(error.contains("not a usable CUDA driver") || error.contains("libcuda not found"), "{error}");
    match GpuDevice::open(0) {
        Err(e @ GpuError::NoDriver(_)) => println!("{e}"),
        other => panic!("expected NoDriver, got {other:?}"),
    }
    println!("CHILD-OK");
}
