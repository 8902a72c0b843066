//! Criterion benches live in `benches/benches/`; this library only holds nothing.
//! Run them with `cargo bench -p matproof-benches`.
#![forbid(unsafe_code)]
