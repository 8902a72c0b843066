//! Compiles every kernel through the same NVRTC path the runtime uses, for sm_80 and sm_90
//! (and sm_75 for the kernels that run there), and runs `ptxas -v --gpu-name sm_XX` on the PTX:
//! fails on a compile error or any register spill, prints registers and shared memory per
//! kernel. Needs no GPU. `.ci/run` installs NVRTC and ptxas from PyPI wheels and sets
//! `MATPROOF_NVRTC` (the libnvrtc file) and `MATPROOF_PTXAS` (the ptxas binary); without them
//! the test prints one line and passes.

use std::process::Command;

use matproof_gpu_kernels::nvrtc::{NVRTC_ENV, cache_dir, cache_file, nvrtc, ptx_for, ptx_isa_version, read_cache_file};
use matproof_gpu_kernels::sources::ALL;

#[derive(Debug, Default)]
struct Stats {
    registers: u32,
    smem: u32,
    stack: u32,
    spill_stores: u32,
    spill_loads: u32,
}

fn number_before(line: &str, unit: &str) -> Option<u32> {
    let at = line.find(unit)?;
    line[..at].split_whitespace().last()?.parse().ok()
}

/// Per-function stats from `ptxas -v` output.
fn parse(log: &str) -> Vec<(String, Stats)> {
    let mut out: Vec<(String, Stats)> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default().to_string();
            out.push((name, Stats::default()));
        } else if let Some((_, stats)) = out.last_mut() {
            if line.contains("spill stores") {
                stats.stack = number_before(line, "bytes stack frame").unwrap_or(0);
                stats.spill_stores = number_before(line, "bytes spill stores").unwrap_or(u32::MAX);
                stats.spill_loads = number_before(line, "bytes spill loads").unwrap_or(u32::MAX);
            } else if line.contains("Used") && line.contains("registers") {
                stats.registers = number_before(line, "registers").unwrap_or(0);
                stats.smem = number_before(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    out
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90_without_spills() {
    let (Some(_), Some(ptxas)) = (std::env::var_os(NVRTC_ENV), std::env::var_os("MATPROOF_PTXAS")) else {
        println!(
            "skipped: set {NVRTC_ENV} (libnvrtc) and MATPROOF_PTXAS (ptxas) to compile the kernels (.ci/run does)"
        );
        return;
    };
    let nvrtc = nvrtc().expect("MATPROOF_NVRTC names a usable NVRTC");
    let version = Command::new(&ptxas).arg("--version").output().expect("ptxas runs");
    let ptxas_version = String::from_utf8_lossy(&version.stdout);
    println!(
        "NVRTC {}.{} ({}); ptxas: {}",
        nvrtc.version.0,
        nvrtc.version.1,
        nvrtc.library,
        ptxas_version.lines().last().unwrap_or_default().trim()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    println!(
        "| kernel | function | arch | registers | shared memory (bytes) | stack (bytes) | spill stores | spill loads |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for source in ALL {
        for arch in [75u32, 80, 90] {
            if arch < source.min_sm {
                continue;
            }
            let ptx = match nvrtc.compile(source.name, source.source, arch) {
                Ok(ptx) => ptx,
                Err(e) => {
                    failures.push(format!("{} sm_{arch}: {e}", source.name));
                    continue;
                }
            };
            assert!(ptx_isa_version(&ptx).is_some(), "{}: PTX without .version", source.name);
            let file = dir.path().join(format!("{}-sm{arch}.ptx", source.name));
            std::fs::write(&file, &ptx).unwrap();
            let out = Command::new(&ptxas)
                .args(["-v", "--gpu-name", &format!("sm_{arch}"), "-o"])
                .arg(dir.path().join(format!("{}-sm{arch}.cubin", source.name)))
                .arg(&file)
                .output()
                .expect("ptxas runs");
            let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if !out.status.success() {
                failures.push(format!("{} sm_{arch}: ptxas failed:\n{log}", source.name));
                continue;
            }
            let stats = parse(&log);
            for function in source.functions {
                if !stats.iter().any(|(name, _)| name == function) {
                    failures.push(format!("{} sm_{arch}: ptxas reported nothing for {function}:\n{log}", source.name));
                }
            }
            for (name, s) in stats {
                println!(
                    "| {} | {name} | sm_{arch} | {} | {} | {} | {} | {} |",
                    source.name, s.registers, s.smem, s.stack, s.spill_stores, s.spill_loads
                );
                if s.spill_stores != 0 || s.spill_loads != 0 {
                    failures.push(format!(
                        "{name} sm_{arch} spills: {} bytes stores, {} bytes loads",
                        s.spill_stores, s.spill_loads
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    check_the_runtime_path(nvrtc);
}

/// The runtime path: compiled once, cached on disk (whole, with its checksum), the same PTX
/// from memory afterwards.
fn check_the_runtime_path(nvrtc: &matproof_gpu_kernels::nvrtc::Nvrtc) {
    for source in ALL {
        let arch = source.min_sm.max(80);
        let first = ptx_for(&source, arch).unwrap();
        assert_eq!(*first, nvrtc.compile(source.name, source.source, arch).unwrap(), "{}", source.name);
        assert!(std::sync::Arc::ptr_eq(&first, &ptx_for(&source, arch).unwrap()), "compiled once per process");
        if let Some(dir) = cache_dir() {
            let file = cache_file(&dir, &source, arch, nvrtc.version);
            assert_eq!(read_cache_file(&file).as_deref(), Some(first.as_str()), "{}", file.display());
        }
    }
}
