//! The sidecar's metrics (Prometheus text format; `docs/node.md` says what each means). All
//! are this process's, from zero at start.

use std::sync::Arc;
use std::time::Duration;

use matproof_protocol::receipt::Verdict;
use matproof_telemetry::metrics::{Counter, Gauge, Histogram, Refusals, TextEncoder};

use super::job::Phase;

/// The sidecar's RPCs, as the `method` label of refusals.
const METHODS: &[&str] = &["SubmitJob"];

/// Every phase, in order (the `phase` label of `matproof_sidecar_phase_seconds`).
const PHASES: [Phase; 6] = [Phase::Check, Phase::Execute, Phase::Commit, Phase::Prove, Phase::Respond, Phase::Receipt];

/// What this sidecar has done since it started.
#[derive(Debug)]
pub(crate) struct SidecarMetrics {
    pub(crate) approved: Counter,
    pub(crate) rejected: Counter,
    pub(crate) failed: Counter,
    pub(crate) in_flight: Gauge,
    pub(crate) input_bytes: Counter,
    pub(crate) result_bytes: Counter,
    pub(crate) proofs: Counter,
    phases: [Histogram; 6],
    pub(crate) refusals: Refusals,
    pub(crate) open_connections: Arc<Gauge>,
}

impl Default for SidecarMetrics {
    fn default() -> Self {
        SidecarMetrics {
            approved: Counter::default(),
            rejected: Counter::default(),
            failed: Counter::default(),
            in_flight: Gauge::default(),
            input_bytes: Counter::default(),
            result_bytes: Counter::default(),
            proofs: Counter::default(),
            phases: Default::default(),
            refusals: Refusals::new(METHODS),
            open_connections: Arc::new(Gauge::default()),
        }
    }
}

impl SidecarMetrics {
    /// Records how long `phase` of a job took.
    pub(crate) fn phase(&self, phase: Phase, took: Duration) {
        if let Some(index) = PHASES.iter().position(|p| *p == phase) {
            self.phases[index].observe(took);
        }
    }

    /// Counts a finished job by its verdict, with the tile proofs it made.
    pub(crate) fn finished(&self, verdict: Verdict, proofs: usize) {
        match verdict {
            Verdict::Approved => self.approved.inc(),
            Verdict::Rejected => self.rejected.inc(),
        }
        self.proofs.add(proofs as u64);
    }

    /// The exposition.
    pub(crate) fn text(&self) -> String {
        let mut e = TextEncoder::new();
        e.counter(
            "matproof_sidecar_jobs_total",
            "Jobs run to a verdict, or failed before one.",
            &[
                (&[("outcome", "approved")], self.approved.get()),
                (&[("outcome", "rejected")], self.rejected.get()),
                (&[("outcome", "failed")], self.failed.get()),
            ],
        );
        e.gauge("matproof_sidecar_jobs_in_flight", "Jobs being run now.", &[(&[], self.in_flight.get())]);
        e.counter(
            "matproof_sidecar_received_bytes_total",
            "Input bytes (A and B) received from consumers.",
            &[(&[], self.input_bytes.get())],
        );
        e.counter(
            "matproof_sidecar_result_bytes_total",
            "Bytes of C streamed back to consumers.",
            &[(&[], self.result_bytes.get())],
        );
        e.counter("matproof_sidecar_proofs_total", "Sampled tile proofs made (Groth16).", &[(&[], self.proofs.get())]);
        let names = PHASES.map(Phase::as_str);
        let labels: Vec<[(&str, &str); 1]> = names.iter().map(|n| [("phase", *n)]).collect();
        let series: Vec<_> = labels.iter().zip(&self.phases).map(|(l, h)| (&l[..], h)).collect();
        e.histograms("matproof_sidecar_phase_seconds", "Time per phase of a job.", &series);
        self.refusals.encode(&mut e, "matproof_sidecar_refusals_total", "RPCs answered with an error, by code.");
        e.gauge(
            "matproof_sidecar_open_connections",
            "gRPC connections open now.",
            &[(&[], self.open_connections.get())],
        );
        e.finish()
    }
}
