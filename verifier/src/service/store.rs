//! The node's own tables (`migrations/0002_node.sql`, `0003_node_admission.sql`,
//! `0004_provider_signatures.sql`): jobs, their one commitment (with the provider's commit
//! signature) and challenge, verdicts and receipts (with the provider's response end). Same database and single-dialect SQL as the ledger
//! (SQLite or PostgreSQL through `sqlx::Any`); byte strings are stored as hex `TEXT`.

use std::time::Duration;

use matproof_protocol::identity::{PublicKey, Signature};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::receipt::{SignedChallenge, SignedResponseEnd};
use matproof_protocol::spec::JobSpec;
use matproof_protocol::transcript::Challenge;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

use crate::ledger::Backend;

/// Where a job stands on the node (the `state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobState {
    Opened,
    Challenged,
    Approved,
    Rejected,
    Expired,
}

impl JobState {
    /// Every state, in the order a job goes through them.
    pub(crate) const ALL: [JobState; 5] =
        [JobState::Opened, JobState::Challenged, JobState::Approved, JobState::Rejected, JobState::Expired];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobState::Opened => "opened",
            JobState::Challenged => "challenged",
            JobState::Approved => "approved",
            JobState::Rejected => "rejected",
            JobState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "opened" => JobState::Opened,
            "challenged" => JobState::Challenged,
            "approved" => JobState::Approved,
            "rejected" => JobState::Rejected,
            "expired" => JobState::Expired,
            _ => return Err(StoreError::Corrupt(format!("job state {s:?}"))),
        })
    }
}

/// What [`Store::admit_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The job is new and was inserted.
    Inserted,
    /// The job was already stored (the same spec opened again).
    Exists,
    /// `max_open` jobs are awaiting a response: nothing inserted.
    Full,
}

/// A failure of the node's tables.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value does not parse.
    #[error("corrupt node row: {0}")]
    Corrupt(String),
}

/// One job as stored.
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub(crate) job_id: JobId,
    pub(crate) spec: JobSpec,
    pub(crate) consumer_signature: Signature,
    pub(crate) state: JobState,
    pub(crate) challenge: Option<SignedChallenge>,
    /// The provider's signature over `job_id ‖ R_C` (`None` for a job committed before
    /// migration 0004).
    pub(crate) commit_signature: Option<Signature>,
    pub(crate) receipt: Option<Vec<u8>>,
    pub(crate) verdict_hash: Option<[u8; 32]>,
    pub(crate) fraud: bool,
    pub(crate) settled: bool,
}

impl JobRow {
    pub(crate) fn r_c(&self) -> Option<MerkleRoot> {
        self.challenge.as_ref().map(|c| c.challenge.r_c)
    }
}

/// The node's tables over their own pool (the ledger keeps its own).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(super) pool: AnyPool,
}

const JOB_COLUMNS: &str = "job_id, spec, consumer_signature, state, r_c, seed, challenge_key, challenge_signature, \
                           receipt, verdict_hash, fraud, settled, commit_signature";

impl Store {
    /// Connects to `url` (whose migrations [`crate::ledger::Ledger::open`] has run).
    pub(crate) async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let backend = Backend::from_url(url).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(Store { pool })
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Admits a new job (and its full-mode inputs) if it does not exist and fewer than
    /// `max_open` jobs are awaiting a response; a hard bound, even under concurrent calls and
    /// with many nodes on one database.
    ///
    /// The check and the insert run in one transaction that first updates the one row of
    /// `node_admission` (`migrations/0003_node_admission.sql`). That write serializes
    /// admissions: on PostgreSQL the row lock holds the next admission until this one commits
    /// or rolls back, and its `COUNT` (a new statement, so a new snapshot under READ
    /// COMMITTED) then sees every job admitted before it; on SQLite the `UPDATE` takes the
    /// database's write lock up front (so no stale read snapshot either). A conditional
    /// `INSERT … WHERE (SELECT COUNT(*) …) < limit` alone is not enough on PostgreSQL: two
    /// such inserts do not conflict, and neither sees the other's uncommitted row.
    ///
    /// The open count is not kept in a counter: it is always counted from `node_jobs`, whose
    /// state changes (commit, verdict, expiry) need no lock since they only lower it. So there
    /// is nothing to decrement or to repair after a crash or restart: a transaction that dies
    /// rolls back its insert and its lock together.
    pub(crate) async fn admit_job(
        &self,
        spec: &JobSpec,
        consumer_signature: &Signature,
        inputs: Option<(&[u8], &[u8])>,
        now_unix_ms: u64,
        max_open: u64,
    ) -> Result<Admission, StoreError> {
        let job_id = hex::encode(spec.job_id());
        let mut tx = self.pool.begin().await?;
        let locked =
            sqlx::query("UPDATE node_admission SET admissions = admissions + 1 WHERE id = 1").execute(&mut *tx).await?;
        if locked.rows_affected() != 1 {
            return Err(StoreError::Corrupt("node_admission has no row".into()));
        }
        let exists =
            sqlx::query("SELECT 1 FROM node_jobs WHERE job_id = $1").bind(&job_id).fetch_optional(&mut *tx).await?;
        if exists.is_some() {
            tx.rollback().await?;
            return Ok(Admission::Exists);
        }
        let row = sqlx::query("SELECT COUNT(*) FROM node_jobs WHERE state IN ('opened', 'challenged')")
            .fetch_one(&mut *tx)
            .await?;
        let open = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
        if open >= max_open {
            tx.rollback().await?;
            return Ok(Admission::Full);
        }
        sqlx::query(
            "INSERT INTO node_jobs (job_id, spec, consumer_signature, deadline_unix_ms, state, created_unix_ms) \
             VALUES ($1, $2, $3, $4, 'opened', $5)",
        )
        .bind(&job_id)
        .bind(hex::encode(spec.canonical_bytes()))
        .bind(hex::encode(consumer_signature.0))
        .bind(to_i64(spec.policy.deadline_unix_ms))
        .bind(to_i64(now_unix_ms))
        .execute(&mut *tx)
        .await?;
        if let Some((a, b)) = inputs {
            sqlx::query("INSERT INTO node_job_inputs (job_id, a, b, stored_bytes) VALUES ($1, $2, $3, $4)")
                .bind(&job_id)
                .bind(a)
                .bind(b)
                .bind(to_i64((a.len() + b.len()) as u64))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Admission::Inserted)
    }

    /// How many jobs are in each state (states with none are left out).
    pub(crate) async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM node_jobs GROUP BY state").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let state = JobState::parse(&r.try_get::<String, _>(0)?)?;
                let count = u64::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0);
                Ok((state, count))
            })
            .collect()
    }

    /// Up to `limit` jobs, newest first, skipping the `offset` newest (the status page).
    pub(crate) async fn recent(&self, limit: u32, offset: u64) -> Result<Vec<JobRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM node_jobs ORDER BY created_unix_ms DESC, job_id LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(limit))
        .bind(to_i64(offset))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(parse_row).collect()
    }

    pub(crate) async fn load(&self, job_id: &JobId) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM node_jobs WHERE job_id = $1"))
            .bind(hex::encode(job_id))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_row(&r)).transpose()
    }

    /// The consumer's A and B (`.npy` bytes) of a full-mode job.
    pub(crate) async fn load_inputs(&self, job_id: &JobId) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        let row = sqlx::query("SELECT a, b FROM node_job_inputs WHERE job_id = $1")
            .bind(hex::encode(job_id))
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some((r.try_get::<Vec<u8>, _>(0)?, r.try_get::<Vec<u8>, _>(1)?)))
    }

    /// Bytes of inputs stored (every node sharing the database), what the disk budget counts.
    pub(crate) async fn stored_input_bytes(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM node_job_inputs")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0))
    }

    /// Deletes the inputs of jobs released (settled by a verdict, or expired) before
    /// `settled_before_unix_ms`; how many.
    pub(crate) async fn prune_inputs(&self, settled_before_unix_ms: u64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM node_job_inputs WHERE job_id IN \
             (SELECT job_id FROM node_jobs WHERE settled_unix_ms IS NOT NULL AND settled_unix_ms < $1)",
        )
        .bind(to_i64(settled_before_unix_ms))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn set_challenge(
        &self,
        challenge: &SignedChallenge,
        commit_signature: &Signature,
    ) -> Result<bool, StoreError> {
        let c = &challenge.challenge;
        let done = sqlx::query(
            "UPDATE node_jobs SET state = 'challenged', r_c = $2, seed = $3, challenge_key = $4, \
             challenge_signature = $5, commit_signature = $6, committed_unix_ms = $7 \
             WHERE job_id = $1 AND state = 'opened' AND r_c IS NULL",
        )
        .bind(hex::encode(c.job_id))
        .bind(hex::encode(c.r_c))
        .bind(hex::encode(c.seed))
        .bind(hex::encode(challenge.verifier_key.0))
        .bind(hex::encode(challenge.signature.0))
        .bind(hex::encode(commit_signature.0))
        .bind(to_i64(super::now_unix_ms()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the verdict and receipt (and the provider's response end it carries) once, if
    /// the job is in one of `from`; `true` if this call recorded it (the loser of a race gets
    /// `false` and must read the stored verdict).
    #[allow(clippy::too_many_arguments)] // one row's columns, written by one statement
    pub(crate) async fn store_verdict(
        &self,
        job_id: &JobId,
        state: JobState,
        receipt: &[u8],
        end: &SignedResponseEnd,
        verdict_hash: &[u8; 32],
        fraud: bool,
        from: &[JobState],
    ) -> Result<bool, StoreError> {
        let allowed: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let done = sqlx::query(&format!(
            "UPDATE node_jobs SET state = $2, receipt = $3, verdict_hash = $4, fraud = $5, response_c_digest = $6, \
             response_signature = $7, verdict_unix_ms = $8 \
             WHERE job_id = $1 AND receipt IS NULL AND r_c IS NOT NULL AND state IN ({})",
            allowed.join(", ")
        ))
        .bind(hex::encode(job_id))
        .bind(state.as_str())
        .bind(hex::encode(receipt))
        .bind(hex::encode(verdict_hash))
        .bind(i64::from(fraud))
        .bind(hex::encode(end.c_digest))
        .bind(hex::encode(end.signature.0))
        .bind(to_i64(super::now_unix_ms()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn mark_settled(&self, job_id: &JobId, now_unix_ms: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE node_jobs SET settled = 1, settled_unix_ms = $2 WHERE job_id = $1 AND settled = 0")
            .bind(hex::encode(job_id))
            .bind(to_i64(now_unix_ms))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs with a verdict whose settlement is not confirmed (a crash, or a failed ledger call).
    pub(crate) async fn unsettled(&self) -> Result<Vec<JobId>, StoreError> {
        let rows = sqlx::query(
            "SELECT job_id FROM node_jobs WHERE receipt IS NOT NULL AND settled = 0 ORDER BY created_unix_ms",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(JobId(unhex32("job_id", &r.try_get::<String, _>(0)?)?))).collect()
    }

    /// Jobs awaiting a response whose deadline is before `before_unix_ms`.
    pub(crate) async fn expiry_candidates(&self, before_unix_ms: u64) -> Result<Vec<JobId>, StoreError> {
        let rows = sqlx::query(
            "SELECT job_id FROM node_jobs WHERE state IN ('opened', 'challenged') AND receipt IS NULL \
             AND deadline_unix_ms < $1 ORDER BY deadline_unix_ms",
        )
        .bind(to_i64(before_unix_ms))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(JobId(unhex32("job_id", &r.try_get::<String, _>(0)?)?))).collect()
    }

    /// Marks a job expired if it is still awaiting a response; `true` if this call did.
    pub(crate) async fn expire(&self, job_id: &JobId, now_unix_ms: u64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE node_jobs SET state = 'expired', settled_unix_ms = $2 WHERE job_id = $1 AND receipt IS NULL \
             AND state IN ('opened', 'challenged')",
        )
        .bind(hex::encode(job_id))
        .bind(to_i64(now_unix_ms))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, StoreError> {
    hex::decode(s).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))
}

fn unhex32(field: &str, s: &str) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))?;
    Ok(out)
}

fn unhex64(field: &str, s: &str) -> Result<[u8; 64], StoreError> {
    let mut out = [0u8; 64];
    hex::decode_to_slice(s, &mut out).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))?;
    Ok(out)
}

fn parse_row(r: &sqlx::any::AnyRow) -> Result<JobRow, StoreError> {
    let job_id = JobId(unhex32("job_id", &r.try_get::<String, _>(0)?)?);
    let spec = JobSpec::from_canonical_bytes(&unhex("spec", &r.try_get::<String, _>(1)?)?)
        .map_err(|e| StoreError::Corrupt(format!("spec: {e}")))?;
    if spec.job_id() != job_id {
        return Err(StoreError::Corrupt("spec does not hash to job_id".into()));
    }
    let consumer_signature = Signature(unhex64("consumer_signature", &r.try_get::<String, _>(2)?)?);
    let state = JobState::parse(&r.try_get::<String, _>(3)?)?;
    let r_c: Option<String> = r.try_get(4)?;
    let seed: Option<String> = r.try_get(5)?;
    let key: Option<String> = r.try_get(6)?;
    let sig: Option<String> = r.try_get(7)?;
    let challenge = match (r_c, seed, key, sig) {
        (Some(r_c), Some(seed), Some(key), Some(sig)) => Some(SignedChallenge {
            challenge: Challenge {
                job_id,
                r_c: MerkleRoot(unhex32("r_c", &r_c)?),
                seed: Seed(unhex32("seed", &seed)?),
            },
            verifier_key: PublicKey(unhex32("challenge_key", &key)?),
            signature: Signature(unhex64("challenge_signature", &sig)?),
        }),
        (None, None, None, None) => None,
        _ => return Err(StoreError::Corrupt("partial challenge".into())),
    };
    let receipt = r.try_get::<Option<String>, _>(8)?.map(|s| unhex("receipt", &s)).transpose()?;
    let verdict_hash = r.try_get::<Option<String>, _>(9)?.map(|s| unhex32("verdict_hash", &s)).transpose()?;
    let commit_signature =
        r.try_get::<Option<String>, _>(12)?.map(|s| unhex64("commit_signature", &s).map(Signature)).transpose()?;
    Ok(JobRow {
        job_id,
        spec,
        consumer_signature,
        state,
        challenge,
        commit_signature,
        receipt,
        verdict_hash,
        fraud: r.try_get::<i64, _>(10)? != 0,
        settled: r.try_get::<i64, _>(11)? != 0,
    })
}
