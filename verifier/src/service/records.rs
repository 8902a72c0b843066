//! Provider records (DESIGN §10), derived at each query from the node's job table and the
//! ledger (`migrations/0006_provider_records.sql`): nothing here is kept apart from them, so
//! a record cannot disagree with the ledger, and every node on one database answers the
//! same. A provider's jobs are found through the ledger's transfers (`provider-<hex>`, one
//! per admitted job); its counts and amounts come from one statement (one snapshot), its
//! times from its latest [`TIME_SAMPLE_JOBS`] committed jobs.

use matproof_protocol::identity::PublicKey;
use matproof_protocol::records::{DurationStats, JobCounts, ProviderRecord, score};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::store::{Store, StoreError, to_i64};
use crate::accounts::{provider_account, stake_account};

/// The most providers on one page of `ListProviders`.
pub(crate) const MAX_PROVIDERS_PAGE: u32 = 100;
/// How many of a provider's latest committed jobs its time statistics come from.
pub(crate) const TIME_SAMPLE_JOBS: u32 = 10_000;
/// The most providers `ListProviders` ranks (a network with more lists the first this many
/// by key, then ranks those).
pub(crate) const MAX_RANKED_PROVIDERS: u32 = 100_000;

/// The counts and first/last times of the jobs in the `FROM`: columns 0..=9 of a row.
const COUNT_COLUMNS: &str = "CAST(COUNT(*) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN n.state = 'approved' THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN n.state = 'rejected' AND n.fraud = 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN n.state = 'rejected' AND n.fraud = 0 THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN n.state = 'expired' THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN n.state IN ('opened', 'challenged') THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(MIN(n.created_unix_ms), 0) AS BIGINT), \
    CAST(COALESCE(MAX(n.created_unix_ms), 0) AS BIGINT), \
    CAST(COALESCE(MAX(n.committed_unix_ms), 0) AS BIGINT), \
    CAST(COALESCE(MAX(n.verdict_unix_ms), 0) AS BIGINT)";

fn u64_at(row: &AnyRow, index: usize) -> Result<u64, StoreError> {
    let v: i64 = row.try_get(index)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("provider record column {index} is {v}")))
}

/// The counts, first seen and last seen from the [`COUNT_COLUMNS`] starting at `at`.
fn counts_at(row: &AnyRow, at: usize) -> Result<(JobCounts, u64, u64), StoreError> {
    let v = |i: usize| u64_at(row, at + i);
    let counts = JobCounts {
        opened: v(0)?,
        approved: v(1)?,
        rejected_fraud: v(2)?,
        rejected_other: v(3)?,
        expired: v(4)?,
        in_flight: v(5)?,
    };
    let last_seen = v(7)?.max(v(8)?).max(v(9)?);
    Ok((counts, v(6)?, last_seen))
}

impl Store {
    /// `provider`'s record, or `None` if no admitted job names it.
    pub(crate) async fn provider_record(&self, provider: &PublicKey) -> Result<Option<ProviderRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COUNT_COLUMNS}, \
             (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_transfers \
              WHERE provider = $1 AND state = 'posted'), \
             (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_movements \
              WHERE kind = 'slash' AND debit_account = $2) \
             FROM node_jobs n JOIN ledger_transfers t ON t.job_id = n.job_id WHERE t.provider = $1"
        ))
        .bind(provider_account(provider))
        .bind(stake_account(provider))
        .fetch_one(&self.pool)
        .await?;
        let (counts, first_seen_unix_ms, last_seen_unix_ms) = counts_at(&row, 0)?;
        if counts.opened == 0 {
            return Ok(None);
        }
        let (open_to_commit, challenge_to_verdict) = self.provider_times(provider).await?;
        Ok(Some(ProviderRecord {
            provider: *provider,
            counts,
            earned: u64_at(&row, 10)?,
            slashed: u64_at(&row, 11)?,
            open_to_commit,
            challenge_to_verdict,
            first_seen_unix_ms,
            last_seen_unix_ms,
            score: score(&counts),
        }))
    }

    /// Open → commit and challenge → verdict over `provider`'s latest committed jobs.
    async fn provider_times(&self, provider: &PublicKey) -> Result<(DurationStats, DurationStats), StoreError> {
        let rows = sqlx::query(
            "SELECT n.created_unix_ms, n.committed_unix_ms, n.verdict_unix_ms \
             FROM node_jobs n JOIN ledger_transfers t ON t.job_id = n.job_id \
             WHERE t.provider = $1 AND n.committed_unix_ms IS NOT NULL \
             ORDER BY n.created_unix_ms DESC LIMIT $2",
        )
        .bind(provider_account(provider))
        .bind(i64::from(TIME_SAMPLE_JOBS))
        .fetch_all(&self.pool)
        .await?;
        let (mut to_commit, mut to_verdict) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for row in &rows {
            let created: i64 = row.try_get(0)?;
            let committed: i64 = row.try_get(1)?;
            let verdict: Option<i64> = row.try_get(2)?;
            to_commit.push(committed.saturating_sub(created).max(0) as u64);
            if let Some(verdict) = verdict {
                to_verdict.push(verdict.saturating_sub(committed).max(0) as u64);
            }
        }
        Ok((DurationStats::of(to_commit), DurationStats::of(to_verdict)))
    }

    /// Every provider named by an admitted job (up to [`MAX_RANKED_PROVIDERS`]), with its
    /// counts' score.
    pub(crate) async fn ranked_providers(&self) -> Result<Vec<(PublicKey, f64)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT t.provider, {COUNT_COLUMNS} FROM node_jobs n JOIN ledger_transfers t ON t.job_id = n.job_id \
             GROUP BY t.provider ORDER BY t.provider LIMIT $1"
        ))
        .bind(to_i64(u64::from(MAX_RANKED_PROVIDERS)))
        .fetch_all(&self.pool)
        .await?;
        let mut ranked = Vec::with_capacity(rows.len());
        for row in &rows {
            let account: String = row.try_get(0)?;
            let key = account
                .strip_prefix("provider-")
                .and_then(|hex| PublicKey::from_hex(hex).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("ledger provider account {account:?}")))?;
            let (counts, _, _) = counts_at(row, 1)?;
            ranked.push((key, score(&counts)));
        }
        // Best first; ties by key, so pages are stable.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.0.cmp(&b.0.0)));
        Ok(ranked)
    }
}
