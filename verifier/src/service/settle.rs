//! Settlement and expiry: the only code that moves a job's money.
//!
//! [`Node::settle_job`] drives the ledger by the verdict stored with the receipt: record
//! it, then post (approved), or slash (a fraud proof, where the stake allows) and void
//! (rejected). Every step is idempotent, so running it again after a repeat response, a
//! race or a restart moves nothing twice. [`Node::expire_jobs`] voids jobs still awaiting a
//! response `expiry_grace` after their deadline.

use matproof_protocol::ids::JobId;
use matproof_protocol::receipt::Verdict;

use super::accounts::{consumer_account, stake_account};
use super::store::{JobState, StoreError};
use super::{Node, now_unix_ms};
use crate::ledger::LedgerError;

/// Why a settlement or an expiry pass did not complete (it is retried: every step is
/// idempotent).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettleError {
    /// The node's tables failed.
    #[error("node tables: {0}")]
    Store(#[from] StoreError),
    /// The ledger refused or failed.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The job is not in the store.
    #[error("no job {job_id}")]
    UnknownJob {
        /// The job.
        job_id: JobId,
    },
    /// The job has no stored verdict yet.
    #[error("job {job_id} has no verdict to settle")]
    NoVerdict {
        /// The job.
        job_id: JobId,
    },
}

impl Node {
    /// Drives the ledger according to the stored verdict (see the module documentation).
    pub(crate) async fn settle_job(&self, job_id: &JobId) -> Result<(), SettleError> {
        let row = self.store.load(job_id).await?.ok_or(SettleError::UnknownJob { job_id: *job_id })?;
        let (verdict, hash) = match (row.state, row.verdict_hash) {
            (JobState::Approved, Some(h)) => (Verdict::Approved, h),
            (JobState::Rejected, Some(h)) => (Verdict::Rejected, h),
            _ => return Err(SettleError::NoVerdict { job_id: *job_id }),
        };
        self.ledger.record_verdict(job_id, verdict, &hash).await?;
        #[cfg(feature = "fault-injection")]
        if let Some(ms) = std::env::var("MATPROOF_TEST_PAUSE_AFTER_VERDICT_MS").ok().and_then(|v| v.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        match verdict {
            Verdict::Approved => {
                self.ledger.post(job_id).await?;
            }
            Verdict::Rejected => {
                if row.fraud && row.spec.slash_amount > 0 {
                    self.slash(job_id, &row.spec).await?;
                }
                // Replays if the slash (or an expiry) voided already.
                self.ledger.void(job_id).await?;
            }
        }
        self.store.mark_settled(job_id, now_unix_ms()).await?;
        self.metrics.settlements.inc();
        tracing::info!(job_id = %job_id, verdict = verdict.as_str(), "settled in the ledger");
        Ok(())
    }

    /// Moves the spec's slash from the provider's stake to the consumer; a stake too small
    /// is logged, not an error (the escrow is still voided).
    async fn slash(&self, job_id: &JobId, spec: &matproof_protocol::spec::JobSpec) -> Result<(), SettleError> {
        let stake = stake_account(&spec.provider);
        let beneficiary = consumer_account(&spec.consumer);
        match self.ledger.slash(job_id, &stake, &beneficiary, spec.slash_amount).await {
            Ok(_) => Ok(()),
            Err(LedgerError::InsufficientFunds { available, .. }) => {
                tracing::warn!(job = %job_id, "fraud proven but the provider's stake holds {available}: not slashed");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Voids every job still awaiting a response `expiry_grace` after its deadline.
    pub(crate) async fn expire_jobs(&self) -> Result<(), SettleError> {
        let grace = self.limits.expiry_grace.as_millis() as u64;
        let before = now_unix_ms().saturating_sub(grace);
        for job_id in self.store.expiry_candidates(before).await? {
            if !self.store.expire(&job_id, now_unix_ms()).await? {
                continue;
            }
            self.metrics.expired.inc();
            tracing::info!(job_id = %job_id, "expired: no verdict by its deadline");
            match self.ledger.void(&job_id).await {
                Ok(_) => {}
                // Never escrowed (OpenJob failed after persisting), or already released.
                Err(LedgerError::UnknownJob { .. } | LedgerError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes the stored inputs of jobs released more than `input_retention` ago.
    pub(crate) async fn prune_inputs(&self) -> Result<u64, SettleError> {
        let retention = self.limits.input_retention.as_millis() as u64;
        Ok(self.store.prune_inputs(now_unix_ms().saturating_sub(retention)).await?)
    }
}
