//! Provider records (DESIGN §10): what a network knows of a provider from its own node tables
//! and ledger, and the score computed from it. The node fills a record; a client that reads
//! one recomputes the score from the counts and refuses a record whose score disagrees.
//!
//! The score is the lower bound of the 95% Wilson score interval on the approval rate, where
//! a rejection backed by a fraud proof counts as [`FRAUD_WEIGHT`] failed jobs and an expired
//! job (the provider never answered) as one:
//!
//! ```text
//! s = approved
//! n = approved + rejected_other + expired + FRAUD_WEIGHT · rejected_fraud
//! p = s / n,  z = 1.959964 (95%)
//! score = (p + z²/2n − z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n),   0 when n = 0
//! ```
//!
//! Jobs still in flight count for nothing. A provider with few jobs scores low whatever its
//! rate (10 of 10 approved: 0.72; 100 of 100: 0.96), so a fresh key gains nothing over a
//! known one, and one fraud proof costs as much as five failures.

use crate::identity::PublicKey;
use crate::wire::pb;

/// How many failed jobs one rejection with a fraud proof weighs.
pub const FRAUD_WEIGHT: u64 = 5;

/// The normal quantile of a two-sided 95% interval.
pub const WILSON_Z: f64 = 1.959_963_984_540_054;

/// A provider's jobs by outcome. `opened` counts every job, the others partition it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Every job naming this provider that a node admitted.
    pub opened: u64,
    /// Approved (and paid).
    pub approved: u64,
    /// Rejected with a fraud proof (the stake slashed).
    pub rejected_fraud: u64,
    /// Rejected without a fraud proof (a failing check the provider could not be slashed for).
    pub rejected_other: u64,
    /// Voided at the deadline with no verdict.
    pub expired: u64,
    /// Opened or challenged, not decided yet.
    pub in_flight: u64,
}

impl JobCounts {
    /// `Err` naming the first inconsistency: the outcomes must add up to `opened`.
    pub fn check(&self) -> Result<(), RecordError> {
        let parts = [self.approved, self.rejected_fraud, self.rejected_other, self.expired, self.in_flight];
        let sum = parts.iter().try_fold(0u64, |acc, v| acc.checked_add(*v));
        match sum {
            Some(sum) if sum == self.opened => Ok(()),
            _ => Err(RecordError::CountsDoNotAddUp { opened: self.opened }),
        }
    }
}

/// The median and 95th percentile of a duration over a provider's latest jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationStats {
    /// How many jobs the figures come from (0: no figure).
    pub jobs: u64,
    /// The median, in milliseconds.
    pub median_ms: u64,
    /// The 95th percentile, in milliseconds.
    pub p95_ms: u64,
}

impl DurationStats {
    /// The nearest-rank median and 95th percentile of `durations_ms` (sorted here).
    pub fn of(mut durations_ms: Vec<u64>) -> DurationStats {
        durations_ms.sort_unstable();
        let jobs = durations_ms.len() as u64;
        let rank = |q_percent: u64| -> u64 {
            if durations_ms.is_empty() {
                return 0;
            }
            // Nearest rank: the ⌈q·n⌉-th smallest (1-based).
            let index = (q_percent * jobs).div_ceil(100).max(1) - 1;
            durations_ms[index as usize]
        };
        DurationStats { jobs, median_ms: rank(50), p95_ms: rank(95) }
    }
}

/// What one network knows of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRecord {
    /// The provider's key.
    pub provider: PublicKey,
    /// Its jobs by outcome.
    pub counts: JobCounts,
    /// Ledger units paid to the provider (posted escrows).
    pub earned: u64,
    /// Ledger units taken from its stake by fraud proofs.
    pub slashed: u64,
    /// From the job opened to its commitment accepted.
    pub open_to_commit: DurationStats,
    /// From the challenge issued to the verdict recorded.
    pub challenge_to_verdict: DurationStats,
    /// When the first job naming it was opened.
    pub first_seen_unix_ms: u64,
    /// The latest opening, commitment or verdict of its jobs.
    pub last_seen_unix_ms: u64,
    /// [`score`] of `counts`.
    pub score: f64,
}

impl ProviderRecord {
    /// `Err` if the counts do not add up or the score is not the formula's.
    pub fn check(&self) -> Result<(), RecordError> {
        self.counts.check()?;
        let expected = score(&self.counts);
        if (self.score - expected).abs() > 1e-9 {
            return Err(RecordError::ScoreMismatch { stated: self.score, expected });
        }
        Ok(())
    }
}

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The outcomes do not partition the opened jobs.
    #[error("the job counts do not add up to the {opened} opened")]
    CountsDoNotAddUp {
        /// The stated number of jobs opened.
        opened: u64,
    },
    /// The score is not the formula's of the counts.
    #[error("the stated score {stated} is not the formula's {expected}")]
    ScoreMismatch {
        /// What the record says.
        stated: f64,
        /// What [`score`] gives.
        expected: f64,
    },
    /// A field of the wire message is malformed or missing.
    #[error("record field {field}: {reason}")]
    Wire {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The score of `counts` (the module documentation gives the formula).
pub fn score(counts: &JobCounts) -> f64 {
    let successes = counts.approved as f64;
    let failures = counts.rejected_other as f64 + counts.expired as f64;
    let trials = successes + failures + (FRAUD_WEIGHT as f64) * counts.rejected_fraud as f64;
    wilson_lower_bound(successes, trials)
}

/// The lower bound of the 95% Wilson score interval for `successes` of `trials`.
pub fn wilson_lower_bound(successes: f64, trials: f64) -> f64 {
    if trials <= 0.0 {
        return 0.0;
    }
    let (n, z) = (trials, WILSON_Z);
    let p = successes / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

impl From<&JobCounts> for pb::JobCounts {
    fn from(c: &JobCounts) -> Self {
        pb::JobCounts {
            opened: c.opened,
            approved: c.approved,
            rejected_fraud: c.rejected_fraud,
            rejected_other: c.rejected_other,
            expired: c.expired,
            in_flight: c.in_flight,
        }
    }
}

impl From<&pb::JobCounts> for JobCounts {
    fn from(c: &pb::JobCounts) -> Self {
        JobCounts {
            opened: c.opened,
            approved: c.approved,
            rejected_fraud: c.rejected_fraud,
            rejected_other: c.rejected_other,
            expired: c.expired,
            in_flight: c.in_flight,
        }
    }
}

impl From<&DurationStats> for pb::DurationStats {
    fn from(d: &DurationStats) -> Self {
        pb::DurationStats { jobs: d.jobs, median_ms: d.median_ms, p95_ms: d.p95_ms }
    }
}

impl From<&pb::DurationStats> for DurationStats {
    fn from(d: &pb::DurationStats) -> Self {
        DurationStats { jobs: d.jobs, median_ms: d.median_ms, p95_ms: d.p95_ms }
    }
}

impl From<&ProviderRecord> for pb::ProviderRecord {
    fn from(r: &ProviderRecord) -> Self {
        pb::ProviderRecord {
            provider: r.provider.0.to_vec(),
            counts: Some((&r.counts).into()),
            earned: r.earned,
            slashed: r.slashed,
            open_to_commit: Some((&r.open_to_commit).into()),
            challenge_to_verdict: Some((&r.challenge_to_verdict).into()),
            first_seen_unix_ms: r.first_seen_unix_ms,
            last_seen_unix_ms: r.last_seen_unix_ms,
            score: r.score,
        }
    }
}

impl TryFrom<&pb::ProviderRecord> for ProviderRecord {
    type Error = RecordError;

    /// Decodes and [`ProviderRecord::check`]s a record.
    fn try_from(r: &pb::ProviderRecord) -> Result<Self, RecordError> {
        let provider: [u8; 32] = r
            .provider
            .as_slice()
            .try_into()
            .map_err(|_| RecordError::Wire { field: "provider", reason: "not 32 bytes" })?;
        let missing = |field| RecordError::Wire { field, reason: "missing" };
        let record = ProviderRecord {
            provider: PublicKey(provider),
            counts: r.counts.as_ref().ok_or_else(|| missing("counts"))?.into(),
            earned: r.earned,
            slashed: r.slashed,
            open_to_commit: r.open_to_commit.as_ref().ok_or_else(|| missing("open_to_commit"))?.into(),
            challenge_to_verdict: r
                .challenge_to_verdict
                .as_ref()
                .ok_or_else(|| missing("challenge_to_verdict"))?
                .into(),
            first_seen_unix_ms: r.first_seen_unix_ms,
            last_seen_unix_ms: r.last_seen_unix_ms,
            score: r.score,
        };
        record.check()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(approved: u64, rejected_fraud: u64, rejected_other: u64, expired: u64) -> JobCounts {
        let opened = approved + rejected_fraud + rejected_other + expired;
        JobCounts { opened, approved, rejected_fraud, rejected_other, expired, in_flight: 0 }
    }

    #[test]
    fn wilson_known_answers() {
        // Known answers: the closed form evaluated independently (Python, math.sqrt).
        assert_eq!(wilson_lower_bound(0.0, 0.0), 0.0);
        assert!((wilson_lower_bound(10.0, 10.0) - 0.722_467_2).abs() < 1e-6);
        assert!((wilson_lower_bound(100.0, 100.0) - 0.963_006_5).abs() < 1e-6);
        assert!((wilson_lower_bound(3.0, 9.0) - 0.120_583_8).abs() < 1e-6);
        assert!((wilson_lower_bound(0.0, 5.0) - 0.0).abs() < 1e-12);
    }

    #[test]
    fn fraud_weighs_five_failures() {
        assert_eq!(score(&counts(3, 1, 0, 1)), wilson_lower_bound(3.0, 9.0));
        assert_eq!(score(&counts(3, 1, 0, 0)), score(&counts(3, 0, 5, 0)));
        assert!(score(&counts(20, 1, 0, 0)) < score(&counts(20, 0, 1, 0)));
        assert_eq!(score(&JobCounts::default()), 0.0);
    }

    #[test]
    fn a_record_with_a_wrong_score_or_counts_is_refused() {
        let mut record = ProviderRecord {
            provider: PublicKey([1; 32]),
            counts: counts(3, 1, 0, 1),
            earned: 300,
            slashed: 100,
            open_to_commit: DurationStats::default(),
            challenge_to_verdict: DurationStats::default(),
            first_seen_unix_ms: 1,
            last_seen_unix_ms: 2,
            score: score(&counts(3, 1, 0, 1)),
        };
        assert_eq!(record.check(), Ok(()));
        record.score = 0.99;
        assert!(matches!(record.check(), Err(RecordError::ScoreMismatch { .. })));
        record.score = score(&record.counts);
        let wire = pb::ProviderRecord::from(&record);
        assert_eq!(ProviderRecord::try_from(&wire), Ok(record.clone()));
        let mut short = wire.clone();
        short.provider.pop();
        assert_eq!(
            ProviderRecord::try_from(&short),
            Err(RecordError::Wire { field: "provider", reason: "not 32 bytes" })
        );
        let mut bent = wire;
        bent.score += 0.01;
        assert!(matches!(ProviderRecord::try_from(&bent), Err(RecordError::ScoreMismatch { .. })));
        record.counts.opened += 1;
        assert_eq!(record.check(), Err(RecordError::CountsDoNotAddUp { opened: 6 }));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(DurationStats::of(vec![]), DurationStats { jobs: 0, median_ms: 0, p95_ms: 0 });
        assert_eq!(DurationStats::of(vec![7]), DurationStats { jobs: 1, median_ms: 7, p95_ms: 7 });
        let hundred: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(DurationStats::of(hundred), DurationStats { jobs: 100, median_ms: 50, p95_ms: 95 });
        assert_eq!(DurationStats::of(vec![5, 1, 3, 2]), DurationStats { jobs: 4, median_ms: 2, p95_ms: 5 });
    }
}
