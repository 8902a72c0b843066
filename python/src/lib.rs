//! The Python package `matproof` (module `matproof._native`): a consumer commits to its
//! data, opens and submits a job, receives `C` checked against the approved receipt, and
//! audits receipts, from numpy arrays.
//!
//! Two layers: [`api`], plain Rust over borrowed matrices (tested by `cargo test`), and the
//! PyO3 bindings (feature `python`, built by maturin), which borrow numpy buffers without
//! copying them, release the GIL for every long call and turn errors into exceptions. The
//! Python side (`python/matproof/__init__.py`) checks dtypes and layouts and copies a
//! non-C-ordered array once. Layer chains (`Model`, `quantize`) are not here yet.

pub mod api;
#[cfg(feature = "python")]
mod py;
