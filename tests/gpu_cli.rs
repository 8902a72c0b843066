//! `matproof gpu info` and `bench gemm --backend` without a usable GPU: a clean answer and the
//! CPU, never a panic; here with a broken libcuda first on `LD_LIBRARY_PATH`.

use std::process::{Command, Output};

fn matproof(args: &[&str], ld_library_path: Option<&std::path::Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_matproof"));
    command.args(args).env("MATPROOF_BACKEND", "auto");
    if let Some(dir) = ld_library_path {
        command.env("LD_LIBRARY_PATH", dir);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A directory holding a libcuda without the driver's symbols (or an empty file without cc).
fn broken_libcuda() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("fake.c");
    std::fs::write(&source, "int matproof_not_cuda(void) { return 0; }\n").unwrap();
    let object = dir.path().join("fake.so");
    let compiled = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&object)
        .arg(&source)
        .status()
        .is_ok_and(|s| s.success());
    for name in ["libcuda.so", "libcuda.so.1", "libcuda.so.12"] {
        if compiled {
            std::fs::copy(&object, dir.path().join(name)).unwrap();
        } else {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
    }
    dir
}

#[test]
fn gpu_info_reports_and_falls_back_to_the_cpu() {
    for dir in [None, Some(broken_libcuda())] {
        let output = matproof(&["gpu", "info"], dir.as_ref().map(|d| d.path()));
        let out = text(&output);
        assert!(output.status.success(), "{out}");
        assert!(out.contains("libcuda: "), "{out}");
        assert!(out.contains("nvrtc: "), "{out}");
        assert!(out.contains("backend: "), "{out}");
        assert!(!out.contains("panicked"), "{out}");
        if dir.is_some() {
            assert!(out.contains("libcuda: no"), "{out}");
            assert!(out.contains("backend: cpu/") && out.contains("no usable GPU"), "{out}");
        }
    }
}

#[test]
fn bench_gemm_on_cuda_without_a_gpu_is_a_clean_error() {
    let dir = broken_libcuda();
    let output = matproof(&["bench", "gemm", "--backend", "cuda", "--n", "16", "--runs", "5"], Some(dir.path()));
    let out = text(&output);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("no usable GPU"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}
