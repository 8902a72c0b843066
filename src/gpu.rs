//! `matproof gpu info`: what CUDA pieces this machine has and which backend will run.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

/// `matproof gpu …`.
#[derive(Subcommand, Debug)]
pub enum GpuCommand {
    /// Print libcuda, driver, devices and NVRTC as found, and the backend that will run.
    Info,
}

pub fn run(command: GpuCommand) -> Result<ExitCode> {
    match command {
        GpuCommand::Info => info(),
    }
}

fn info() -> Result<ExitCode> {
    for line in probe_lines() {
        println!("{line}");
    }
    let (_, line) = matproof_prover::best_backend();
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "cuda")]
fn probe_lines() -> Vec<String> {
    use matproof_gpu_kernels::{nvrtc, probe};
    let mut lines = Vec::new();
    let mut sms = Vec::new();
    match probe::driver() {
        Ok(driver) => {
            lines.push(format!("libcuda: yes, {}", driver.library));
            lines.push(format!("driver: CUDA {} ({})", probe::format_cuda_version(driver.version), driver.version));
            if driver.devices.is_empty() {
                lines.push("devices: none".into());
            }
            for d in &driver.devices {
                sms.push(d.sm_number());
                lines.push(format!(
                    "device {}: {}, sm_{}, {} SMs, {:.1} GiB",
                    d.ordinal,
                    d.name,
                    d.sm_number(),
                    d.multiprocessors,
                    d.memory_bytes as f64 / (1u64 << 30) as f64
                ));
            }
        }
        Err(e) => lines.push(format!("libcuda: no ({e})")),
    }
    match nvrtc::nvrtc() {
        Ok(n) => {
            let targets: Vec<String> = sms.iter().map(|&sm| format!("sm_{sm} -> compute_{}", n.arch_for(sm))).collect();
            let targets =
                if targets.is_empty() { String::new() } else { format!(", PTX targets: {}", targets.join(", ")) };
            lines.push(format!("nvrtc: yes, {}, version {}.{}{targets}", n.library, n.version.0, n.version.1));
        }
        Err(e) => lines.push(format!("nvrtc: no ({e})")),
    }
    if let Some(dir) = nvrtc::cache_dir() {
        lines.push(format!("ptx cache: {}", dir.display()));
    }
    lines
}

#[cfg(not(feature = "cuda"))]
fn probe_lines() -> Vec<String> {
    vec!["cuda: this build has no CUDA backend (feature `cuda` off)".into()]
}
