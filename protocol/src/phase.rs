//! Timed phases of a job as `tracing` events (target [`PHASE_TARGET`]), emitted by the
//! provider, the verifier node and the client alike, so that `matproof bench job` (or any
//! subscriber) can attribute a whole job's time: `phase` (a dotted name such as
//! `provider.gemm`), `seconds`, and the `bytes` the phase covered. At `DEBUG` level: free
//! unless a subscriber asks for them.

use std::time::{Duration, Instant};

/// The `tracing` target of phase events.
pub const PHASE_TARGET: &str = "matproof::phase";

/// Records phase `name`, which began at `start` and covered `bytes`.
pub fn phase(name: &'static str, start: Instant, bytes: u64) {
    tracing::debug!(target: PHASE_TARGET, phase = name, seconds = start.elapsed().as_secs_f64(), bytes);
}

/// Records phase `name`, which took `took` in all (a phase spread over many steps, such as
/// the hashing a reader does as rows arrive) and covered `bytes`.
pub fn phase_took(name: &'static str, took: Duration, bytes: u64) {
    tracing::debug!(target: PHASE_TARGET, phase = name, seconds = took.as_secs_f64(), bytes);
}
