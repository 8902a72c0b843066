//! The CPU int8 GEMM at any shape and on any kernel, one JSON line per shape and kernel (the
//! fields of `matproof bench gemm --json`, plus `m`, `k`, `path`, `min_s`, `gops_best`, and
//! `cpu_s`, the CPU seconds per run of all threads, with `gops_per_cpu`, the throughput were
//! every thread on a CPU of its own all the time), to
//! put beside `benches/onnxruntime_gemm.py`. Run by hand:
//!
//! ```sh
//! cargo run --release -p matproof-benches --example cpu_gemm -- --shape 2048 --shape 64x4096x4096 --runs 7
//! cargo run --release -p matproof-benches --example cpu_gemm -- --shape 2048 --path avx2
//! ```
//!
//! Shapes are `N` (N×N×N) or `MxKxN`; `--path` (repeatable) is a `GemmPath` name, default the
//! fastest available. Each line is the median (and minimum) of `--runs` timed runs after one
//! warm-up, which is checked against another kernel first (so no figure is reported for a
//! wrong product).

use std::process::ExitCode;
use std::time::Instant;

use matproof_protocol::matrix::random_i8;
use matproof_prover::cpu::{GemmPath, gemm_i8, gemm_i8_into};

struct Args {
    shapes: Vec<(usize, usize, usize)>,
    paths: Vec<GemmPath>,
    runs: usize,
}

fn parse_shape(text: &str) -> Result<(usize, usize, usize), String> {
    let parts: Result<Vec<usize>, _> = text.split('x').map(str::parse).collect();
    match *parts.map_err(|e| format!("shape {text:?}: {e}"))?.as_slice() {
        [s] => Ok((s, s, s)),
        [m, k, n] => Ok((m, k, n)),
        _ => Err(format!("shape {text:?}: expected N or MxKxN")),
    }
}

fn parse_path(text: &str) -> Result<GemmPath, String> {
    [GemmPath::AmxInt8, GemmPath::Avx512Vnni, GemmPath::Avx2, GemmPath::Portable, GemmPath::Naive]
        .into_iter()
        .find(|p| p.name() == text)
        .ok_or_else(|| format!("unknown path {text:?}"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { shapes: Vec::new(), paths: Vec::new(), runs: 7 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--shape" => args.shapes.push(parse_shape(&value)?),
            "--path" => args.paths.push(parse_path(&value)?),
            "--runs" => args.runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.shapes.is_empty() {
        args.shapes = vec![(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (64, 4096, 4096)];
    }
    if args.paths.is_empty() {
        args.paths.push(GemmPath::detect());
    }
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(args)
}

/// CPU time of all this process's threads, in seconds (`/proc/self/task/*/schedstat`, ns on a
/// CPU; 0 where that is not available). Unlike wall time it leaves out waiting for a CPU,
/// which on a shared, loaded machine is most of the noise.
fn cpu_seconds() -> f64 {
    let tasks = std::fs::read_dir("/proc/self/task").map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    let ns: u64 = tasks
        .iter()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 * 1e-9
}

fn bench(m: usize, k: usize, n: usize, path: GemmPath, runs: usize) -> Result<String, String> {
    let a = random_i8(m, k, 1).map_err(|e| e.to_string())?;
    let b = random_i8(k, n, 2).map_err(|e| e.to_string())?;
    let (a, b) = (a.as_slice(), b.as_slice());
    let mut out = vec![0i32; m * n];
    gemm_i8_into(a, b, m, k, n, path, &mut out).map_err(|e| e.to_string())?;
    // Another path as the check (every path is proptested against the naive one; the portable
    // one takes seconds at n = 4096, so it is the last resort).
    let reference = [GemmPath::Avx2, GemmPath::Avx512Vnni, GemmPath::Portable, GemmPath::Naive]
        .into_iter()
        .find(|&p| p != path && p.is_available())
        .unwrap_or(GemmPath::Naive);
    if gemm_i8(a, b, m, k, n, reference).map_err(|e| e.to_string())? != out {
        return Err(format!("{} differs from {} at {m}x{k}x{n}", path.name(), reference.name()));
    }
    let cpu_start = cpu_seconds();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            gemm_i8_into(a, b, m, k, n, path, &mut out).map(|()| start.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let cpu_s = (cpu_seconds() - cpu_start) / runs as f64;
    times.sort_by(f64::total_cmp);
    let median = if runs % 2 == 1 { times[runs / 2] } else { (times[runs / 2 - 1] + times[runs / 2]) / 2.0 };
    let ops = 2.0 * (m as f64) * (k as f64) * (n as f64);
    let threads = rayon::current_num_threads();
    Ok(format!(
        "{{\"bench\": \"gemm\", \"m\": {m}, \"k\": {k}, \"n\": {n}, \"path\": \"{}\", \"threads\": {}, \"runs\": {runs}, \
         \"median_s\": {median:.6}, \"min_s\": {:.6}, \"gops\": {:.1}, \"gops_best\": {:.1}, \"cpu_s\": {cpu_s:.6}, \
         \"gops_per_cpu\": {:.1}}}",
        path.name(),
        threads,
        times[0],
        ops / median / 1e9,
        ops / times[0] / 1e9,
        ops / (cpu_s / threads as f64) / 1e9
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("cpu_gemm: {e}");
            return ExitCode::from(2);
        }
    };
    for &(m, k, n) in &args.shapes {
        for &path in &args.paths {
            match bench(m, k, n, path, args.runs) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("cpu_gemm: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
