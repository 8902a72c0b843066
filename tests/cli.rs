//! The CLI on real files: each bad input gets a clear error and exit code 2 (never a
//! panic, which would exit 101); a wrong C makes `check` exit 1 naming the first bad row.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use matproof_protocol::matrix::{MatrixI32, naive_product, random_i8};
use matproof_protocol::npy::{header_bytes, write_matrix_file};

fn matproof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matproof")).args(args).output().expect("run matproof")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

struct Files {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Self { _dir: dir, root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn write_abc(files: &Files, m: usize, k: usize, n: usize) -> MatrixI32 {
    let a = random_i8(m, k, 1).unwrap();
    let b = random_i8(k, n, 2).unwrap();
    let c = naive_product(&a, &b).unwrap();
    write_matrix_file(&files.path("a.npy"), &a).unwrap();
    write_matrix_file(&files.path("b.npy"), &b).unwrap();
    write_matrix_file(&files.path("c.npy"), &c).unwrap();
    c
}

fn assert_input_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    let message = text(out);
    assert!(message.contains("error:"), "{message}");
    assert!(message.to_lowercase().contains(needle), "expected {needle:?} in {message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn gen_gemm_commit_check_round_trip() {
    let files = Files::new();
    let out = matproof(&["gen", "--rows", "33", "--cols", "17", "--seed", "5", "--out", &files.s("a.npy")]);
    assert!(out.status.success(), "{}", text(&out));
    let out = matproof(&["gen", "--rows", "17", "--cols", "9", "--seed", "6", "--out", &files.s("b.npy")]);
    assert!(out.status.success(), "{}", text(&out));
    let out = matproof(&["gemm", "--a", &files.s("a.npy"), "--b", &files.s("b.npy"), "--out", &files.s("c.npy")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("backend: cpu/"), "{}", text(&out));
    let out = matproof(&["check", "--a", &files.s("a.npy"), "--b", &files.s("b.npy"), "--c", &files.s("c.npy")]);
    assert!(out.status.success(), "{}", text(&out));
    let out = matproof(&[
        "commit",
        "--a",
        &files.s("a.npy"),
        "--b",
        &files.s("b.npy"),
        "--c",
        &files.s("c.npy"),
        "--tile",
        "4x2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["tiles"], 9 * 5);
    assert_eq!(json["r_c"].as_str().unwrap().len(), 64);
}

#[test]
fn check_names_the_first_bad_row() {
    let files = Files::new();
    let mut c = write_abc(&files, 20, 11, 7);
    c.as_mut_slice()[13 * 7 + 4] += 1;
    c.as_mut_slice()[17 * 7] -= 5;
    write_matrix_file(&files.path("c.npy"), &c).unwrap();
    let out = matproof(&["check", "--a", &files.s("a.npy"), "--b", &files.s("b.npy"), "--c", &files.s("c.npy")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("first bad row 13"), "{}", text(&out));
}

fn check_with(files: &Files, a: &str, b: &str, c: &str) -> Output {
    matproof(&["check", "--a", &files.s(a), "--b", &files.s(b), "--c", &files.s(c)])
}

#[test]
fn wrong_dtype_is_a_clear_error() {
    let files = Files::new();
    write_abc(&files, 4, 3, 2);
    // C (i32) given where A (i8) is expected.
    assert_input_error(&check_with(&files, "c.npy", "b.npy", "c.npy"), "dtype");
}

#[test]
fn fortran_order_is_a_clear_error() {
    let files = Files::new();
    write_abc(&files, 4, 3, 2);
    let mut bytes = std::fs::read(files.path("a.npy")).unwrap();
    let pos = bytes.windows(5).position(|w| w == b"False").unwrap();
    bytes[pos..pos + 5].copy_from_slice(b"True ");
    std::fs::write(files.path("a.npy"), bytes).unwrap();
    assert_input_error(&check_with(&files, "a.npy", "b.npy", "c.npy"), "fortran");
}

#[test]
fn truncated_file_is_a_clear_error() {
    let files = Files::new();
    write_abc(&files, 4, 3, 2);
    let bytes = std::fs::read(files.path("c.npy")).unwrap();
    std::fs::write(files.path("c.npy"), &bytes[..bytes.len() - 5]).unwrap();
    assert_input_error(&check_with(&files, "a.npy", "b.npy", "c.npy"), "truncated");
}

#[test]
fn header_lying_about_its_size_is_a_clear_error() {
    let files = Files::new();
    write_abc(&files, 4, 3, 2);
    let mut bytes = header_bytes::<i8>(60_000, 60_000);
    bytes.extend_from_slice(&[0u8; 12]);
    std::fs::write(files.path("a.npy"), bytes).unwrap();
    assert_input_error(&check_with(&files, "a.npy", "b.npy", "c.npy"), "truncated");
}

#[test]
fn shape_over_the_limits_is_a_clear_error() {
    let files = Files::new();
    write_abc(&files, 4, 3, 2);
    std::fs::write(files.path("a.npy"), header_bytes::<i8>(1 << 18, 2)).unwrap();
    assert_input_error(&check_with(&files, "a.npy", "b.npy", "c.npy"), "exceeds the limit");
}

#[test]
fn mismatched_dimensions_and_missing_files_are_clear_errors() {
    let files = Files::new();
    write_abc(&files, 4, 3, 2);
    write_matrix_file(&files.path("b2.npy"), &random_i8(5, 2, 1).unwrap()).unwrap();
    assert_input_error(&check_with(&files, "a.npy", "b2.npy", "c.npy"), "inner dimensions");
    assert_input_error(&check_with(&files, "a.npy", "b.npy", "missing.npy"), "missing.npy");
    let garbage = files.path("garbage.npy");
    std::fs::write(Path::new(&garbage), b"definitely not numpy").unwrap();
    assert_input_error(&check_with(&files, "garbage.npy", "b.npy", "c.npy"), "not a .npy file");
    let out = matproof(&[
        "commit",
        "--a",
        &files.s("a.npy"),
        "--b",
        &files.s("b.npy"),
        "--c",
        &files.s("c.npy"),
        "--tile",
        "0x4",
    ]);
    assert_input_error(&out, "tile side");
}

#[test]
fn setup_writes_valid_keys_and_says_where() {
    let files = Files::new();
    let out = matproof(&["setup", "--tile", "2x2", "--k", "8", "--out", &files.s("keys")]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("single-party development setup"), "{stdout}");
    let pk = files.path("keys/tile-2x2-k8.pk");
    let vk = files.path("keys/tile-2x2-k8.vk");
    assert!(stdout.contains(&pk.display().to_string()) && stdout.contains(&vk.display().to_string()), "{stdout}");
    matproof_circuits::TileProvingKey::read(&pk).unwrap();
    let key = matproof_circuits::TileVerifyingKey::read(&vk).unwrap();
    assert!(stdout.contains(&hex::encode(key.hash())), "{stdout}");
    let out = matproof(&["setup", "--tile", "2x", "--k", "8", "--out", &files.s("keys")]);
    assert_input_error(&out, "tile");
}

#[test]
fn demo_runs_end_to_end_and_regenerates_corrupt_cached_keys() {
    let files = Files::new();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_matproof"))
            .arg("demo")
            .env("XDG_CACHE_HOME", files.path("cache"))
            .output()
            .expect("run matproof demo")
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == "verdict: approved"), "{stdout}");
    assert!(stdout.contains("keys: generated and cached"), "{stdout}");
    // Corrupt the cached verifying key: the demo refuses it and makes new keys.
    let vk = files.path("cache/matproof/keys/tile-4x4-k256.vk");
    let mut bytes = std::fs::read(&vk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&vk, bytes).unwrap();
    let out = run();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("regenerating"), "{}", text(&out));
    let out = run();
    assert!(String::from_utf8_lossy(&out.stdout).contains("keys: loaded from cache"), "{}", text(&out));
}
