//! The node's metrics (Prometheus text format, `docs/node.md` says what each means).
//!
//! Counters and histograms are kept in memory by this process and start at zero with it;
//! the gauges of jobs by state and the ledger's totals are read from the database at each
//! scrape, so they are the same on every node sharing it.

use std::sync::Arc;

use matproof_protocol::receipt::Verdict;
use matproof_telemetry::metrics::{Counter, Gauge, Histogram, Refusals, TextEncoder};

use super::store::JobState;
use super::{Node, StoreError};
use crate::ledger::{LedgerError, LedgerTotals};

/// The RPCs of `matproof.v1.Verifier`, as the `method` label of refusals.
pub(crate) const METHODS: &[&str] =
    &["OpenJob", "Commit", "Respond", "GetReceipt", "GetJobStatus", "GetProviderRecord", "ListProviders"];

/// What this node has done since it started.
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    pub(crate) jobs_opened: Counter,
    pub(crate) challenges: Counter,
    pub(crate) approved: Counter,
    pub(crate) rejected: Counter,
    pub(crate) fraud_proofs: Counter,
    pub(crate) expired: Counter,
    pub(crate) settlements: Counter,
    pub(crate) settlement_seconds: Histogram,
    pub(crate) input_bytes: Counter,
    pub(crate) c_bytes: Counter,
    pub(crate) response_check_seconds: Histogram,
    pub(crate) freivalds_seconds: Histogram,
    pub(crate) proof_check_seconds: Histogram,
    pub(crate) proofs_checked: Counter,
    pub(crate) refusals: Refusals,
    pub(crate) open_connections: Arc<Gauge>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            jobs_opened: Counter::default(),
            challenges: Counter::default(),
            approved: Counter::default(),
            rejected: Counter::default(),
            fraud_proofs: Counter::default(),
            expired: Counter::default(),
            settlements: Counter::default(),
            settlement_seconds: Histogram::default(),
            input_bytes: Counter::default(),
            c_bytes: Counter::default(),
            response_check_seconds: Histogram::default(),
            freivalds_seconds: Histogram::default(),
            proof_check_seconds: Histogram::default(),
            proofs_checked: Counter::default(),
            refusals: Refusals::new(METHODS),
            open_connections: Arc::new(Gauge::default()),
        }
    }
}

impl NodeMetrics {
    /// Counts a verdict this node recorded (not a repeat answered from the store).
    pub(crate) fn verdict(&self, verdict: Verdict, fraud: bool) {
        match verdict {
            Verdict::Approved => self.approved.inc(),
            Verdict::Rejected => self.rejected.inc(),
        }
        if fraud {
            self.fraud_proofs.inc();
        }
    }

    fn encode_counters(&self, e: &mut TextEncoder) {
        e.counter(
            "matproof_node_jobs_opened_total",
            "Jobs this node admitted (escrow opened).",
            &[(&[], self.jobs_opened.get())],
        );
        e.counter(
            "matproof_node_challenges_total",
            "Commitments accepted: a seed drawn and a challenge signed.",
            &[(&[], self.challenges.get())],
        );
        e.counter(
            "matproof_node_verdicts_total",
            "Verdicts this node signed and recorded.",
            &[(&[("verdict", "approved")], self.approved.get()), (&[("verdict", "rejected")], self.rejected.get())],
        );
        e.counter(
            "matproof_node_fraud_proofs_total",
            "Rejections backed by a fraud proof (stake slashed).",
            &[(&[], self.fraud_proofs.get())],
        );
        e.counter(
            "matproof_node_jobs_expired_total",
            "Jobs this node voided for a missed deadline.",
            &[(&[], self.expired.get())],
        );
        e.counter(
            "matproof_node_settlements_total",
            "Verdicts settled in the ledger (posted, voided or slashed).",
            &[(&[], self.settlements.get())],
        );
        e.counter(
            "matproof_node_received_bytes_total",
            "Matrix bytes received: full-mode inputs, streamed C.",
            &[(&[("stream", "inputs")], self.input_bytes.get()), (&[("stream", "c")], self.c_bytes.get())],
        );
        e.counter(
            "matproof_node_proofs_checked_total",
            "Sampled tile proofs checked.",
            &[(&[], self.proofs_checked.get())],
        );
        self.refusals.encode(e, "matproof_node_refusals_total", "RPCs answered with an error, by method and code.");
        e.gauge("matproof_node_open_connections", "gRPC connections open now.", &[(&[], self.open_connections.get())]);
    }

    fn encode_histograms(&self, e: &mut TextEncoder) {
        e.histogram(
            "matproof_node_settlement_seconds",
            "From a verdict signed to the ledger's release.",
            &self.settlement_seconds,
        );
        e.histogram(
            "matproof_node_response_check_seconds",
            "All checks of one response (R_C, Freivalds, tile proofs).",
            &self.response_check_seconds,
        );
        e.histogram("matproof_node_freivalds_seconds", "Full mode: Freivalds over all of C.", &self.freivalds_seconds);
        e.histogram(
            "matproof_node_proof_check_seconds",
            "The sampled tiles of one response: paths and batch-verified Groth16 proofs.",
            &self.proof_check_seconds,
        );
    }
}

/// What the database says at a scrape.
pub(crate) struct Snapshot {
    pub(crate) jobs_by_state: Vec<(JobState, u64)>,
    pub(crate) ledger: LedgerTotals,
    pub(crate) conserved: bool,
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("node tables: {0}")]
    Store(#[from] StoreError),
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
}

impl Node {
    /// Jobs by state and the ledger's totals, read now.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, SnapshotError> {
        let jobs_by_state = self.store.count_by_state().await?;
        let ledger = self.ledger.totals().await?;
        let conserved = match self.ledger.conservation_check().await {
            Ok(()) => true,
            Err(LedgerError::ConservationViolated { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        Ok(Snapshot { jobs_by_state, ledger, conserved })
    }

    /// The exposition: this process's counters, then the database's gauges (or
    /// `matproof_node_database_up 0` when it does not answer).
    pub(crate) async fn metrics_text(&self) -> String {
        let mut e = TextEncoder::new();
        self.metrics.encode_counters(&mut e);
        self.metrics.encode_histograms(&mut e);
        match self.snapshot().await {
            Ok(snapshot) => {
                e.gauge("matproof_node_database_up", "1 when the database answered this scrape.", &[(&[], 1)]);
                encode_snapshot(&mut e, &snapshot);
            }
            Err(err) => {
                tracing::warn!("metrics: reading the database failed: {err}");
                e.gauge("matproof_node_database_up", "1 when the database answered this scrape.", &[(&[], 0)]);
            }
        }
        e.finish()
    }
}

fn encode_snapshot(e: &mut TextEncoder, snapshot: &Snapshot) {
    let states = JobState::ALL.map(|state| {
        let count = snapshot.jobs_by_state.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
        (state.as_str(), count)
    });
    let labels: Vec<[(&str, &str); 1]> = states.iter().map(|(state, _)| [("state", *state)]).collect();
    let samples: Vec<_> = labels.iter().zip(&states).map(|(l, (_, n))| (&l[..], to_i64(*n))).collect();
    e.gauge("matproof_node_jobs", "Jobs in the shared database, by state.", &samples);
    let t = &snapshot.ledger;
    e.gauge("matproof_ledger_minted", "Ledger units ever deposited (minted).", &[(&[], to_i64(t.minted))]);
    e.gauge("matproof_ledger_escrow_balance", "Ledger units held in escrow now.", &[(&[], to_i64(t.escrow_balance))]);
    e.gauge(
        "matproof_ledger_transfer_amount",
        "Sum of job transfers' amounts, by transfer state.",
        &[
            (&[("state", "pending")], to_i64(t.pending)),
            (&[("state", "posted")], to_i64(t.posted)),
            (&[("state", "voided")], to_i64(t.voided)),
        ],
    );
    e.gauge(
        "matproof_ledger_slashed",
        "Ledger units moved from providers' stakes by fraud proofs.",
        &[(&[], to_i64(t.slashed))],
    );
    e.gauge(
        "matproof_ledger_conserved",
        "1 when the conservation check passes now.",
        &[(&[], i64::from(snapshot.conserved))],
    );
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
