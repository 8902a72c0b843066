//! `matproof setup`: development keys for a tile shape, with a progress bar.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use matproof_circuits::{TileProvingKey, TileVerifyingKey, constraint_count, development_setup};
use matproof_protocol::tiling::CircuitShape;
use rand::rngs::OsRng;

/// Where keys go when no directory is given: `$XDG_CACHE_HOME/matproof/keys`, else
/// `$HOME/.cache/matproof/keys`, else `./matproof-keys`.
pub fn default_key_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("matproof/keys");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache/matproof/keys");
    }
    PathBuf::from("matproof-keys")
}

/// File names of the key pair for a shape.
pub fn key_paths(dir: &Path, shape: CircuitShape) -> (PathBuf, PathBuf) {
    let stem = format!("tile-{}x{}-k{}", shape.tm, shape.tn, shape.kc);
    (dir.join(format!("{stem}.pk")), dir.join(format!("{stem}.vk")))
}

/// Generates, writes and re-validates a development key pair, showing progress.
pub fn setup_with_progress(shape: CircuitShape, dir: &Path) -> Result<(TileProvingKey, TileVerifyingKey, f64)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bar = ProgressBar::new(4);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:20}] {pos}/{len} {msg} ({elapsed})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("synthesizing the circuit");
    let constraints = constraint_count(shape).context("synthesizing the circuit")?;
    bar.inc(1);
    bar.set_message(format!("generating Groth16 keys for {constraints} constraints"));
    let start = Instant::now();
    let (pk, vk) = development_setup(shape, &mut OsRng)?;
    let setup_s = start.elapsed().as_secs_f64();
    bar.inc(1);
    bar.set_message("writing key files");
    let (pk_path, vk_path) = key_paths(dir, shape);
    pk.write(&pk_path)?;
    vk.write(&vk_path)?;
    bar.inc(1);
    bar.set_message("re-reading and validating");
    // Validates the file as written and leaves the load cache beside it for fast starts.
    let (pk_back, _) = TileProvingKey::read_cached(&pk_path)?;
    let vk_back = TileVerifyingKey::read(&vk_path)?;
    anyhow::ensure!(vk_back == vk && pk_back.verifying_key() == vk, "key files did not read back identically");
    bar.inc(1);
    bar.finish_and_clear();
    Ok((pk, vk, setup_s))
}

pub fn run(tile: &str, k: usize, out: Option<PathBuf>) -> Result<ExitCode> {
    let (tm, tn) = crate::commands::parse_tile(tile)?;
    let shape = CircuitShape { tm, tn, kc: k };
    matproof_protocol::tiling::Tiling::new(tm, k, tn, shape).context("tile shape")?;
    let dir = out.unwrap_or_else(default_key_dir);
    let (_pk, vk, setup_s) = setup_with_progress(shape, &dir)?;
    let (pk_path, vk_path) = key_paths(&dir, shape);
    println!("setup: tile {tm}x{tn}, kc {k}, {:.1} s", setup_s);
    println!("origin: {}", vk.origin.describe());
    println!("proving key:   {}", pk_path.display());
    println!("verifying key: {}", vk_path.display());
    println!("verifying-key hash: {}", hex::encode(vk.hash()));
    Ok(ExitCode::SUCCESS)
}
