//! The escrow ledger (DESIGN §7): two-phase transfers, one per job, over SQLite (the
//! embedded default) or PostgreSQL (shared by many stateless verifier nodes), with one schema
//! (`verifier/migrations/`, run at [`Ledger::open`]) and one set of SQL strings for both.
//!
//! # Model
//!
//! Money enters only by [`Ledger::deposit`], which mints it into an account. A job's escrow
//! is a transfer whose id is [`transfer_id`]`(job_id)`:
//!
//! * [`Ledger::open_pending`] moves the price from the consumer to the fixed
//!   [`ESCROW_ACCOUNT`]; the transfer is `pending`.
//! * [`Ledger::post`] releases it to the provider (`posted`); [`Ledger::void`] returns it to
//!   the consumer (`voided`). [`Ledger::void_expired`] voids every pending transfer past its
//!   deadline. [`Ledger::slash`] (a proven fraud) moves a penalty from the provider's stake
//!   account to a beneficiary and voids the job in the same database transaction.
//! * [`Ledger::record_verdict`] persists the verifier's verdict before money moves;
//!   [`Ledger::recover`] (run by a restarted verifier) posts every approved job that is still
//!   pending and voids every rejected one, so a crash between verdict and release still
//!   releases exactly once.
//!
//! # Invariants
//!
//! * **Conservation.** Σ balances (escrow included) = Σ deposits; no balance is negative
//!   (also a `CHECK` in the schema); the escrow balance = Σ amounts of pending transfers.
//!   [`Ledger::conservation_check`] verifies all three in one snapshot, and that no transfer
//!   was both posted and voided.
//! * **Released at most once.** A transfer leaves `pending` once, to `posted` or `voided`,
//!   by a conditional `UPDATE … WHERE state = 'pending'` inside the transaction that moves
//!   the money; the loser of a race sees zero rows and moves nothing.
//! * **Idempotency.** Every job operation first inserts its key `(operation kind, transfer
//!   id)` and a hash of its body into `ledger_operations`. A repeat with the same body is a
//!   replay: it changes nothing and returns the original [`Outcome`] (read back from the
//!   movement journal) with `replayed = true`; a repeat with a different body is
//!   [`LedgerError::IdempotencyConflict`]. A refused operation (insufficient funds, invalid
//!   transition, …) rolls back and leaves no key, so it may be retried once the cause is
//!   gone. Every path that voids a job (void, expiry, slash, recovery) records the same
//!   `void` key, and every path that posts records the same `post` key. Deposits are not
//!   keyed by a job and are not idempotent.
//! * **Verdicts bind.** Once a verdict is recorded, a rejected job cannot be posted and an
//!   approved job cannot be voided or slashed; [`Ledger::void_expired`] skips approved jobs
//!   (recovery posts them).
//! * **Range.** Amounts and times are `u64` in the API but stored as `BIGINT`, so they are
//!   refused above `i64::MAX`; deposits are refused once the total supply would pass
//!   `i64::MAX`, so no balance or sum can overflow.
//!
//! # Concurrency
//!
//! Every transaction begins with a write (the idempotency insert), so SQLite takes its write
//! lock up front and waits out contention with its busy timeout instead of failing on a
//! stale snapshot; on PostgreSQL, the same insert blocks a concurrent duplicate until the
//! first commits. Account rows are updated in sorted id order to avoid deadlocks, and
//! transient failures (serialization, deadlock, busy) are retried a few times.
//!
//! # Crash tests
//!
//! A [`FaultPlan`] ([`Ledger::with_fault_plan`]) makes the ledger fail at a chosen write point
//! (before a write statement, before or after a commit), as a crash there would;
//! `verifier/tests/ledger_model.rs` crashes every operation at every point and checks recovery
//! against a model. A ledger without a plan pays one `None` check per point.

mod error;
mod fault;

pub use error::{DatabaseSource, LedgerError};
pub use fault::FaultPlan;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use matproof_protocol::receipt::Verdict;
use sha2::{Digest, Sha256};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor, Row};

use fault::Faults;

/// A job's 32-byte id (the hash of its canonical spec, `protocol::spec`).
pub use matproof_protocol::ids::JobId;

/// The fixed account that holds every pending amount. It cannot be named as a party.
pub const ESCROW_ACCOUNT: &str = "escrow";

/// The longest accepted account id, in bytes.
pub const MAX_ACCOUNT_ID_LEN: usize = 128;

/// The largest amount, deadline or total supply the ledger stores (`i64::MAX`).
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// Domain separation for [`transfer_id`].
const TRANSFER_DOMAIN: &[u8] = b"matproof/v1/transfer";
/// Domain separation for operation body hashes.
const BODY_DOMAIN: &[u8] = b"matproof/v1/ledger-op";
/// How many times a transient database failure is retried.
const MAX_RETRIES: u32 = 8;

/// The id of a job's escrow transfer: lowercase hex of
/// `SHA-256("matproof/v1/transfer" ‖ job_id)`.
pub fn transfer_id(job_id: &JobId) -> String {
    let mut h = Sha256::new();
    h.update(TRANSFER_DOMAIN);
    h.update(job_id.as_bytes());
    hex::encode(h.finalize())
}

/// Which database a [`Ledger`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (`sqlite://path?mode=rwc`), in WAL mode with `synchronous=FULL`.
    Sqlite,
    /// PostgreSQL (`postgres://…`).
    Postgres,
}

impl Backend {
    /// The backend a database URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Self, LedgerError> {
        let scheme = url.split(':').next().unwrap_or_default().to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(LedgerError::InvalidUrl { reason: format!("scheme {scheme:?} is not sqlite or postgres") }),
        }
    }
}

/// The state of a job's transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferState {
    /// The amount sits in escrow.
    Pending,
    /// Released to the provider.
    Posted,
    /// Returned to the consumer.
    Voided,
}

impl TransferState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferState::Pending => "pending",
            TransferState::Posted => "posted",
            TransferState::Voided => "voided",
        }
    }
}

impl fmt::Display for TransferState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TransferState {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(TransferState::Pending),
            "posted" => Ok(TransferState::Posted),
            "voided" => Ok(TransferState::Voided),
            _ => Err(LedgerError::Corrupt { reason: format!("transfer state {s:?}") }),
        }
    }
}

/// The name a verdict is stored under (`ledger_transfers.verdict`, and the idempotency body
/// of [`Ledger::record_verdict`]). Part of the stored format: existing databases hold these
/// strings, so they never change. (Free functions, not `FromStr`/`Display`: the verdict type
/// is [`matproof_protocol::receipt::Verdict`], foreign to this crate.)
pub(crate) fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Approved => "approved",
        Verdict::Rejected => "rejected",
    }
}

/// The verdict stored under `name` (see [`verdict_name`]).
pub(crate) fn parse_verdict(name: &str) -> Result<Verdict, LedgerError> {
    match name {
        "approved" => Ok(Verdict::Approved),
        "rejected" => Ok(Verdict::Rejected),
        _ => Err(LedgerError::Corrupt { reason: format!("verdict {name:?}") }),
    }
}

/// The transfer state a verdict leads to: approved → posted, rejected → voided.
pub fn verdict_target(verdict: Verdict) -> TransferState {
    match verdict {
        Verdict::Approved => TransferState::Posted,
        Verdict::Rejected => TransferState::Voided,
    }
}

/// An idempotent ledger operation on a job (the first half of its idempotency key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`Ledger::open_pending`].
    Open,
    /// [`Ledger::post`] (also run by [`Ledger::recover`]).
    Post,
    /// [`Ledger::void`] (also run by expiry, slashing and recovery).
    Void,
    /// [`Ledger::slash`].
    Slash,
    /// [`Ledger::record_verdict`].
    Verdict,
}

impl Operation {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Open => "open",
            Operation::Post => "post",
            Operation::Void => "void",
            Operation::Slash => "slash",
            Operation::Verdict => "verdict",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One movement of money between two accounts, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Movement {
    /// The debited account.
    pub from: String,
    /// The credited account.
    pub to: String,
    /// The amount moved.
    pub amount: u64,
}

/// The result of a job operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which operation.
    pub operation: Operation,
    /// The job's transfer id ([`transfer_id`]).
    pub transfer_id: String,
    /// The money it moved, in order (empty for a verdict). For a slash: the penalty, then the
    /// job's refund (which an earlier void may have made).
    pub movements: Vec<Movement>,
    /// `true` when this call was a repeat of an operation already applied with the same body:
    /// nothing changed, and the other fields are those of the original.
    pub replayed: bool,
}

/// A job's escrow transfer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The job.
    pub job_id: JobId,
    /// Its transfer id.
    pub transfer_id: String,
    /// The paying account.
    pub consumer: String,
    /// The account paid on approval.
    pub provider: String,
    /// The escrowed amount.
    pub amount: u64,
    /// After this time (Unix milliseconds) a pending transfer may be voided.
    pub deadline_unix_ms: u64,
    /// Where it is.
    pub state: TransferState,
    /// The recorded verdict, if any.
    pub verdict: Option<Verdict>,
    /// The hash of the verdict body the verifier signed, if a verdict is recorded.
    pub verdict_body_hash: Option<[u8; 32]>,
}

/// The ledger's totals (amounts in the ledger's smallest unit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    /// Ever deposited (minted).
    pub minted: u64,
    /// Held in escrow now (equals `pending` when the ledger is conserved).
    pub escrow_balance: u64,
    /// Sum of the amounts of pending transfers.
    pub pending: u64,
    /// Sum of the amounts of posted transfers (paid to providers).
    pub posted: u64,
    /// Sum of the amounts of voided transfers (refunded to consumers).
    pub voided: u64,
    /// Moved from providers' stakes by fraud proofs.
    pub slashed: u64,
}

/// What [`Ledger::recover`] released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Approved jobs this call posted.
    pub posted: Vec<JobId>,
    /// Rejected jobs this call voided.
    pub voided: Vec<JobId>,
}

/// Connection settings for [`Ledger::open_with`].
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// Pool size.
    pub max_connections: u32,
    /// How long a SQLite connection waits for the write lock.
    pub busy_timeout: Duration,
    /// How long an operation waits for a pooled connection.
    pub acquire_timeout: Duration,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(60),
        }
    }
}

/// The escrow ledger: a connection pool over one database. Cheap to share by reference
/// across tasks; every method is one or more short database transactions.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
    backend: Backend,
    faults: Faults,
}

/// Whether an operation's key was new or a replay.
enum Claim {
    Fresh,
    Replay,
}

impl Ledger {
    /// Opens (creating a SQLite file with `?mode=rwc`) the database at `url`, configures it
    /// and runs the migrations in `verifier/migrations/`.
    pub async fn open(url: &str) -> Result<Self, LedgerError> {
        Self::open_with(url, LedgerOptions::default()).await
    }

    /// [`Ledger::open`] with explicit pool settings.
    pub async fn open_with(url: &str, options: LedgerOptions) -> Result<Self, LedgerError> {
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let busy_ms = options.busy_timeout.as_millis().min(i32::MAX as u128);
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(format!("PRAGMA busy_timeout = {busy_ms}").as_str()).await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Ledger { pool, backend, faults: Faults::default() })
    }

    /// Attaches a crash schedule consulted at every write point (see [`FaultPlan`]): for
    /// crash-recovery tests only. A ledger without one pays one `None` check per point.
    pub fn with_fault_plan(mut self, plan: Arc<FaultPlan>) -> Self {
        self.faults = Faults::new(plan);
        self
    }

    /// The database this ledger runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, waiting for connections to finish. (Dropping a ledger without
    /// closing it is safe: every committed operation is durable.)
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Mints `amount` into `account` (the only way money enters the ledger) and returns its
    /// new balance. Not idempotent: each call mints.
    pub async fn deposit(&self, account: &str, amount: u64) -> Result<u64, LedgerError> {
        check_party(account)?;
        check_range("amount", amount)?;
        retry(move || self.try_deposit(account, amount)).await
    }

    async fn try_deposit(&self, account: &str, amount: u64) -> Result<u64, LedgerError> {
        let f = &self.faults;
        let mut tx = self.pool.begin().await?;
        f.point("deposit: mint")?;
        let minted = sqlx::query("UPDATE ledger_totals SET minted = minted + $1 WHERE id = 1 AND minted <= $2")
            .bind(amount as i64)
            .bind((MAX_AMOUNT - amount) as i64)
            .execute(&mut *tx)
            .await?;
        if minted.rows_affected() != 1 {
            let row = sqlx::query("SELECT minted FROM ledger_totals WHERE id = 1").fetch_one(&mut *tx).await?;
            return Err(LedgerError::SupplyOverflow { minted: to_u64("minted", row.try_get(0)?)?, amount });
        }
        credit(&mut tx, f, account, amount).await?;
        let balance = balance_of(&mut tx, account).await?;
        f.point("commit")?;
        tx.commit().await?;
        f.committed()?;
        Ok(balance)
    }

    /// The balance of `account` (0 for an account never credited).
    pub async fn balance(&self, account: &str) -> Result<u64, LedgerError> {
        let mut conn = self.pool.acquire().await?;
        balance_of(&mut conn, account).await
    }

    /// The total ever deposited.
    pub async fn total_deposited(&self) -> Result<u64, LedgerError> {
        let row = sqlx::query("SELECT minted FROM ledger_totals WHERE id = 1").fetch_one(&self.pool).await?;
        to_u64("minted", row.try_get(0)?)
    }

    /// The ledger's totals in one snapshot (for metrics and the status page).
    pub async fn totals(&self) -> Result<LedgerTotals, LedgerError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT minted FROM ledger_totals WHERE id = 1), \
               COALESCE((SELECT balance FROM ledger_accounts WHERE id = 'escrow'), 0), \
               CAST(COALESCE((SELECT SUM(amount) FROM ledger_transfers WHERE state = 'pending'), 0) AS BIGINT), \
               CAST(COALESCE((SELECT SUM(amount) FROM ledger_transfers WHERE state = 'posted'), 0) AS BIGINT), \
               CAST(COALESCE((SELECT SUM(amount) FROM ledger_transfers WHERE state = 'voided'), 0) AS BIGINT), \
               CAST(COALESCE((SELECT SUM(amount) FROM ledger_movements WHERE kind = 'slash'), 0) AS BIGINT)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(LedgerTotals {
            minted: to_u64("minted", row.try_get(0)?)?,
            escrow_balance: to_u64("escrow balance", row.try_get(1)?)?,
            pending: to_u64("pending", row.try_get(2)?)?,
            posted: to_u64("posted", row.try_get(3)?)?,
            voided: to_u64("voided", row.try_get(4)?)?,
            slashed: to_u64("slashed", row.try_get(5)?)?,
        })
    }

    /// The transfer of `job_id`, or [`LedgerError::UnknownJob`].
    pub async fn transfer(&self, job_id: &JobId) -> Result<Transfer, LedgerError> {
        let mut conn = self.pool.acquire().await?;
        load_transfer(&mut conn, &transfer_id(job_id)).await?.ok_or_else(|| unknown(job_id))
    }

    /// Opens the job's pending transfer: `amount` moves from `consumer` to escrow. Refused
    /// with [`LedgerError::InsufficientFunds`] (nothing changes) when the consumer cannot pay.
    pub async fn open_pending(
        &self,
        job_id: &JobId,
        consumer: &str,
        provider: &str,
        amount: u64,
        deadline_unix_ms: u64,
    ) -> Result<Outcome, LedgerError> {
        check_party(consumer)?;
        check_party(provider)?;
        check_range("amount", amount)?;
        check_range("deadline_unix_ms", deadline_unix_ms)?;
        let body = body_hash(
            Operation::Open,
            &[
                job_id.as_bytes(),
                consumer.as_bytes(),
                provider.as_bytes(),
                &amount.to_le_bytes(),
                &deadline_unix_ms.to_le_bytes(),
            ],
        );
        let body = body.as_str();
        retry(move || self.try_open(job_id, consumer, provider, amount, deadline_unix_ms, body)).await
    }

    async fn try_open(
        &self,
        job_id: &JobId,
        consumer: &str,
        provider: &str,
        amount: u64,
        deadline_unix_ms: u64,
        body: &str,
    ) -> Result<Outcome, LedgerError> {
        let tid = transfer_id(job_id);
        let f = &self.faults;
        let mut tx = self.pool.begin().await?;
        if let Claim::Replay = claim(&mut tx, f, Operation::Open, job_id, &tid, body).await? {
            return replayed_outcome(&mut tx, Operation::Open, &tid).await;
        }
        f.point("open: insert transfer")?;
        sqlx::query(
            "INSERT INTO ledger_transfers (transfer_id, job_id, consumer, provider, amount, deadline_unix_ms, state) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
        )
        .bind(&tid)
        .bind(job_id.to_hex())
        .bind(consumer)
        .bind(provider)
        .bind(amount as i64)
        .bind(deadline_unix_ms as i64)
        .execute(&mut *tx)
        .await?;
        let moves = vec![Movement { from: consumer.to_owned(), to: ESCROW_ACCOUNT.to_owned(), amount }];
        apply(&mut tx, f, Operation::Open, &tid, &moves).await?;
        f.point("commit")?;
        tx.commit().await?;
        f.committed()?;
        Ok(Outcome { operation: Operation::Open, transfer_id: tid, movements: moves, replayed: false })
    }

    /// Posts the job's pending transfer: escrow → provider. Refused if the job was voided
    /// ([`LedgerError::InvalidTransition`]) or rejected ([`LedgerError::VerdictConflict`]).
    pub async fn post(&self, job_id: &JobId) -> Result<Outcome, LedgerError> {
        retry(move || self.try_release(job_id, TransferState::Posted)).await
    }

    /// Voids the job's pending transfer: escrow → consumer. Refused if the job was posted
    /// ([`LedgerError::InvalidTransition`]) or approved ([`LedgerError::VerdictConflict`]).
    pub async fn void(&self, job_id: &JobId) -> Result<Outcome, LedgerError> {
        retry(move || self.try_release(job_id, TransferState::Voided)).await
    }

    async fn try_release(&self, job_id: &JobId, to: TransferState) -> Result<Outcome, LedgerError> {
        let tid = transfer_id(job_id);
        let op = if to == TransferState::Posted { Operation::Post } else { Operation::Void };
        let f = &self.faults;
        let mut tx = self.pool.begin().await?;
        if let Claim::Replay = claim(&mut tx, f, op, job_id, &tid, &body_hash(op, &[job_id.as_bytes()])).await? {
            return replayed_outcome(&mut tx, op, &tid).await;
        }
        let moves = release(&mut tx, f, job_id, &tid, to).await?;
        f.point("commit")?;
        tx.commit().await?;
        f.committed()?;
        Ok(Outcome { operation: op, transfer_id: tid, movements: moves, replayed: false })
    }

    /// On a proven fraud: moves `amount` from `provider_stake_account` to `beneficiary` (once
    /// per job) and, in the same database transaction, voids the job (refunding the consumer)
    /// if it is still pending. Refused if the job was posted or approved, or the stake cannot
    /// cover `amount`; then nothing changes.
    pub async fn slash(
        &self,
        job_id: &JobId,
        provider_stake_account: &str,
        beneficiary: &str,
        amount: u64,
    ) -> Result<Outcome, LedgerError> {
        check_party(provider_stake_account)?;
        check_party(beneficiary)?;
        check_range("amount", amount)?;
        let body = body_hash(
            Operation::Slash,
            &[job_id.as_bytes(), provider_stake_account.as_bytes(), beneficiary.as_bytes(), &amount.to_le_bytes()],
        );
        let body = body.as_str();
        retry(move || self.try_slash(job_id, provider_stake_account, beneficiary, amount, body)).await
    }

    async fn try_slash(
        &self,
        job_id: &JobId,
        stake: &str,
        beneficiary: &str,
        amount: u64,
        body: &str,
    ) -> Result<Outcome, LedgerError> {
        let tid = transfer_id(job_id);
        let f = &self.faults;
        let mut tx = self.pool.begin().await?;
        if let Claim::Replay = claim(&mut tx, f, Operation::Slash, job_id, &tid, body).await? {
            return replayed_outcome(&mut tx, Operation::Slash, &tid).await;
        }
        let transfer = load_transfer(&mut tx, &tid).await?.ok_or_else(|| unknown(job_id))?;
        match transfer.state {
            TransferState::Posted => {
                return Err(LedgerError::InvalidTransition {
                    job_id: *job_id,
                    from: TransferState::Posted,
                    to: TransferState::Voided,
                });
            }
            TransferState::Pending => {
                if let Claim::Replay =
                    claim(&mut tx, f, Operation::Void, job_id, &tid, &body_hash(Operation::Void, &[job_id.as_bytes()]))
                        .await?
                {
                    return Err(LedgerError::Corrupt {
                        reason: format!("transfer {tid} pending with a void recorded"),
                    });
                }
                release(&mut tx, f, job_id, &tid, TransferState::Voided).await?;
            }
            TransferState::Voided => {}
        }
        let penalty = vec![Movement { from: stake.to_owned(), to: beneficiary.to_owned(), amount }];
        apply(&mut tx, f, Operation::Slash, &tid, &penalty).await?;
        let mut movements = penalty;
        movements.extend(journal(&mut tx, Operation::Void, &tid).await?);
        f.point("commit")?;
        tx.commit().await?;
        f.committed()?;
        Ok(Outcome { operation: Operation::Slash, transfer_id: tid, movements, replayed: false })
    }

    /// Voids every pending transfer whose deadline is before `now_unix_ms`, except approved
    /// ones (which [`Ledger::recover`] posts), and returns the jobs this call voided.
    pub async fn void_expired(&self, now_unix_ms: u64) -> Result<Vec<JobId>, LedgerError> {
        let now = now_unix_ms.min(MAX_AMOUNT) as i64;
        let rows = sqlx::query(
            "SELECT job_id FROM ledger_transfers WHERE state = 'pending' AND deadline_unix_ms < $1 \
             AND (verdict IS NULL OR verdict <> 'approved') ORDER BY deadline_unix_ms, job_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut voided = Vec::new();
        for row in rows {
            let job_id = parse_job_id(&row.try_get::<String, _>(0)?)?;
            match self.void(&job_id).await {
                Ok(outcome) if !outcome.replayed => voided.push(job_id),
                Ok(_) => {}
                // Lost a race with a post or a verdict: not this call's to void.
                Err(LedgerError::InvalidTransition { .. } | LedgerError::VerdictConflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(voided)
    }

    /// Persists the verifier's verdict on a job before any money moves (`body_hash`: the hash
    /// of the signed verdict body). Idempotent: the same verdict and hash replay; anything
    /// else is [`LedgerError::IdempotencyConflict`]. Refused when the transfer already went
    /// the other way ([`LedgerError::InvalidTransition`]).
    pub async fn record_verdict(
        &self,
        job_id: &JobId,
        verdict: Verdict,
        body_hash_bytes: &[u8; 32],
    ) -> Result<Outcome, LedgerError> {
        let body =
            body_hash(Operation::Verdict, &[job_id.as_bytes(), verdict_name(verdict).as_bytes(), body_hash_bytes]);
        let body = body.as_str();
        retry(move || self.try_verdict(job_id, verdict, body_hash_bytes, body)).await
    }

    async fn try_verdict(
        &self,
        job_id: &JobId,
        verdict: Verdict,
        verdict_hash: &[u8; 32],
        body: &str,
    ) -> Result<Outcome, LedgerError> {
        let tid = transfer_id(job_id);
        let f = &self.faults;
        let mut tx = self.pool.begin().await?;
        let replayed = matches!(claim(&mut tx, f, Operation::Verdict, job_id, &tid, body).await?, Claim::Replay);
        if !replayed {
            f.point("verdict: record")?;
            let done = sqlx::query(
                "UPDATE ledger_transfers SET verdict = $2, verdict_body_hash = $3 \
                 WHERE transfer_id = $1 AND verdict IS NULL AND state IN ('pending', $4)",
            )
            .bind(&tid)
            .bind(verdict_name(verdict))
            .bind(hex::encode(verdict_hash))
            .bind(verdict_target(verdict).as_str())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                let t = load_transfer(&mut tx, &tid).await?.ok_or_else(|| unknown(job_id))?;
                return Err(LedgerError::InvalidTransition {
                    job_id: *job_id,
                    from: t.state,
                    to: verdict_target(verdict),
                });
            }
            f.point("commit")?;
            tx.commit().await?;
            f.committed()?;
        }
        Ok(Outcome { operation: Operation::Verdict, transfer_id: tid, movements: Vec::new(), replayed })
    }

    /// Records the verdict, then posts (approved) or voids (rejected) the job: the normal
    /// path of a verifier that has checked a job. Returns the release's outcome.
    pub async fn settle(
        &self,
        job_id: &JobId,
        verdict: Verdict,
        body_hash_bytes: &[u8; 32],
    ) -> Result<Outcome, LedgerError> {
        self.record_verdict(job_id, verdict, body_hash_bytes).await?;
        match verdict {
            Verdict::Approved => self.post(job_id).await,
            Verdict::Rejected => self.void(job_id).await,
        }
    }

    /// Releases every job whose verdict is recorded but whose transfer is still pending:
    /// approved ones are posted, rejected ones voided. Run at start-up; running it again (or
    /// concurrently on another node) releases nothing twice.
    pub async fn recover(&self) -> Result<RecoveryReport, LedgerError> {
        let rows = sqlx::query(
            "SELECT job_id, verdict FROM ledger_transfers WHERE state = 'pending' AND verdict IS NOT NULL \
             ORDER BY job_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut report = RecoveryReport::default();
        for row in rows {
            let job_id = parse_job_id(&row.try_get::<String, _>(0)?)?;
            let verdict = parse_verdict(&row.try_get::<String, _>(1)?)?;
            let (result, list) = match verdict {
                Verdict::Approved => (self.post(&job_id).await, &mut report.posted),
                Verdict::Rejected => (self.void(&job_id).await, &mut report.voided),
            };
            if !result?.replayed {
                list.push(job_id);
            }
        }
        Ok(report)
    }

    /// Checks, in one snapshot: Σ balances = Σ deposits, no negative balance, escrow
    /// balance = Σ pending amounts, and no transfer both posted and voided.
    pub async fn conservation_check(&self) -> Result<(), LedgerError> {
        let row = sqlx::query(
            "SELECT \
               CAST(COALESCE((SELECT SUM(balance) FROM ledger_accounts), 0) AS BIGINT), \
               (SELECT minted FROM ledger_totals WHERE id = 1), \
               (SELECT COUNT(*) FROM ledger_accounts WHERE balance < 0), \
               COALESCE((SELECT balance FROM ledger_accounts WHERE id = 'escrow'), -1), \
               CAST(COALESCE((SELECT SUM(amount) FROM ledger_transfers WHERE state = 'pending'), 0) AS BIGINT), \
               (SELECT COUNT(*) FROM ledger_operations p JOIN ledger_operations v \
                  ON p.transfer_id = v.transfer_id WHERE p.kind = 'post' AND v.kind = 'void')",
        )
        .fetch_one(&self.pool)
        .await?;
        let balances_total: i64 = row.try_get(0)?;
        let deposited_total: i64 = row.try_get(1)?;
        let negative_accounts: i64 = row.try_get(2)?;
        let escrow_balance: i64 = row.try_get(3)?;
        let pending_total: i64 = row.try_get(4)?;
        let double_releases: i64 = row.try_get(5)?;
        if balances_total == deposited_total
            && negative_accounts == 0
            && escrow_balance == pending_total
            && double_releases == 0
        {
            Ok(())
        } else {
            Err(LedgerError::ConservationViolated {
                balances_total,
                deposited_total,
                negative_accounts,
                escrow_balance,
                pending_total,
                double_releases,
            })
        }
    }
}

/// Runs `f` again while it fails transiently, with a short growing back-off.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, LedgerError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_transient() && attempt < MAX_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(5 << attempt.min(6))).await;
            }
            result => return result,
        }
    }
}

/// Inserts the idempotency key of `op` on the job; on a repeat, compares bodies.
async fn claim(
    conn: &mut AnyConnection,
    f: &Faults,
    op: Operation,
    job_id: &JobId,
    tid: &str,
    body: &str,
) -> Result<Claim, LedgerError> {
    f.point("claim: insert key")?;
    let inserted = sqlx::query(
        "INSERT INTO ledger_operations (kind, transfer_id, body_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (kind, transfer_id) DO NOTHING",
    )
    .bind(op.as_str())
    .bind(tid)
    .bind(body)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row = sqlx::query("SELECT body_hash FROM ledger_operations WHERE kind = $1 AND transfer_id = $2")
        .bind(op.as_str())
        .bind(tid)
        .fetch_one(&mut *conn)
        .await?;
    if row.try_get::<String, _>(0)? == body {
        Ok(Claim::Replay)
    } else {
        Err(LedgerError::IdempotencyConflict { job_id: *job_id, operation: op })
    }
}

/// The original outcome of an operation already applied.
async fn replayed_outcome(conn: &mut AnyConnection, op: Operation, tid: &str) -> Result<Outcome, LedgerError> {
    let mut movements = journal(conn, op, tid).await?;
    if op == Operation::Slash {
        movements.extend(journal(conn, Operation::Void, tid).await?);
    }
    Ok(Outcome { operation: op, transfer_id: tid.to_owned(), movements, replayed: true })
}

/// Moves a pending transfer to `to` (posted or voided) and pays out. The caller has claimed
/// the matching key.
async fn release(
    conn: &mut AnyConnection,
    f: &Faults,
    job_id: &JobId,
    tid: &str,
    to: TransferState,
) -> Result<Vec<Movement>, LedgerError> {
    let (op, forbidden) = match to {
        TransferState::Posted => (Operation::Post, Verdict::Rejected),
        _ => (Operation::Void, Verdict::Approved),
    };
    f.point("release: update state")?;
    let moved = sqlx::query(
        "UPDATE ledger_transfers SET state = $2 WHERE transfer_id = $1 AND state = 'pending' \
         AND (verdict IS NULL OR verdict <> $3)",
    )
    .bind(tid)
    .bind(to.as_str())
    .bind(verdict_name(forbidden))
    .execute(&mut *conn)
    .await?;
    let t = load_transfer(conn, tid).await?.ok_or_else(|| unknown(job_id))?;
    if moved.rows_affected() != 1 {
        return Err(if t.state != TransferState::Pending {
            LedgerError::InvalidTransition { job_id: *job_id, from: t.state, to }
        } else if t.verdict == Some(forbidden) {
            LedgerError::VerdictConflict { job_id: *job_id, verdict: forbidden, operation: op }
        } else {
            LedgerError::Corrupt { reason: format!("transfer {tid} pending but not releasable") }
        });
    }
    let payee = if to == TransferState::Posted { t.provider } else { t.consumer };
    let moves = vec![Movement { from: ESCROW_ACCOUNT.to_owned(), to: payee, amount: t.amount }];
    apply(conn, f, op, tid, &moves).await?;
    Ok(moves)
}

/// Applies `moves` to the balances (net per account, in sorted account order) and journals
/// them under `(op, tid)`.
async fn apply(
    conn: &mut AnyConnection,
    f: &Faults,
    op: Operation,
    tid: &str,
    moves: &[Movement],
) -> Result<(), LedgerError> {
    let mut net: BTreeMap<&str, i128> = BTreeMap::new();
    for m in moves {
        *net.entry(&m.from).or_default() -= i128::from(m.amount);
        *net.entry(&m.to).or_default() += i128::from(m.amount);
    }
    for (account, delta) in net {
        if delta < 0 {
            let needed = u64::try_from(-delta).map_err(|_| LedgerError::OutOfRange {
                field: "amount",
                value: u64::MAX,
                max: MAX_AMOUNT,
            })?;
            debit(conn, f, account, needed).await?;
        } else if delta > 0 {
            let amount = u64::try_from(delta).map_err(|_| LedgerError::OutOfRange {
                field: "amount",
                value: u64::MAX,
                max: MAX_AMOUNT,
            })?;
            credit(conn, f, account, amount).await?;
        }
    }
    for (seq, m) in moves.iter().enumerate() {
        f.point("journal: insert movement")?;
        sqlx::query(
            "INSERT INTO ledger_movements (kind, transfer_id, seq, debit_account, credit_account, amount) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(op.as_str())
        .bind(tid)
        .bind(seq as i64)
        .bind(&m.from)
        .bind(&m.to)
        .bind(m.amount as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn debit(conn: &mut AnyConnection, f: &Faults, account: &str, amount: u64) -> Result<(), LedgerError> {
    let amount_i = i64::try_from(amount).map_err(|_| LedgerError::OutOfRange {
        field: "amount",
        value: amount,
        max: MAX_AMOUNT,
    })?;
    f.point("debit: update balance")?;
    let done = sqlx::query("UPDATE ledger_accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1")
        .bind(amount_i)
        .bind(account)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() != 1 {
        let available = balance_of(conn, account).await?;
        return Err(LedgerError::InsufficientFunds { account: account.to_owned(), needed: amount, available });
    }
    Ok(())
}

async fn credit(conn: &mut AnyConnection, f: &Faults, account: &str, amount: u64) -> Result<(), LedgerError> {
    let amount_i = i64::try_from(amount).map_err(|_| LedgerError::OutOfRange {
        field: "amount",
        value: amount,
        max: MAX_AMOUNT,
    })?;
    f.point("credit: insert account")?;
    sqlx::query("INSERT INTO ledger_accounts (id, balance) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING")
        .bind(account)
        .execute(&mut *conn)
        .await?;
    f.point("credit: update balance")?;
    sqlx::query("UPDATE ledger_accounts SET balance = balance + $1 WHERE id = $2")
        .bind(amount_i)
        .bind(account)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn balance_of(conn: &mut AnyConnection, account: &str) -> Result<u64, LedgerError> {
    let row = sqlx::query("SELECT balance FROM ledger_accounts WHERE id = $1")
        .bind(account)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => to_u64("balance", row.try_get(0)?),
        None => Ok(0),
    }
}

async fn journal(conn: &mut AnyConnection, op: Operation, tid: &str) -> Result<Vec<Movement>, LedgerError> {
    let rows = sqlx::query(
        "SELECT debit_account, credit_account, amount FROM ledger_movements \
         WHERE kind = $1 AND transfer_id = $2 ORDER BY seq",
    )
    .bind(op.as_str())
    .bind(tid)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok(Movement { from: r.try_get(0)?, to: r.try_get(1)?, amount: to_u64("amount", r.try_get(2)?)? }))
        .collect()
}

async fn load_transfer(conn: &mut AnyConnection, tid: &str) -> Result<Option<Transfer>, LedgerError> {
    let row = sqlx::query(
        "SELECT job_id, consumer, provider, amount, deadline_unix_ms, state, verdict, verdict_body_hash \
         FROM ledger_transfers WHERE transfer_id = $1",
    )
    .bind(tid)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let verdict = r.try_get::<Option<String>, _>(6)?.map(|v| parse_verdict(&v)).transpose()?;
    let verdict_body_hash =
        r.try_get::<Option<String>, _>(7)?.map(|h: String| parse_hash32("verdict_body_hash", &h)).transpose()?;
    Ok(Some(Transfer {
        job_id: parse_job_id(&r.try_get::<String, _>(0)?)?,
        transfer_id: tid.to_owned(),
        consumer: r.try_get(1)?,
        provider: r.try_get(2)?,
        amount: to_u64("amount", r.try_get(3)?)?,
        deadline_unix_ms: to_u64("deadline_unix_ms", r.try_get(4)?)?,
        state: r.try_get::<String, _>(5)?.parse()?,
        verdict,
        verdict_body_hash,
    }))
}

/// `SHA-256("matproof/v1/ledger-op" ‖ kind ‖ (u32le(len) ‖ field)*)`, hex.
fn body_hash(op: Operation, fields: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(BODY_DOMAIN);
    h.update([op.as_str().len() as u8]);
    h.update(op.as_str());
    for f in fields {
        h.update((f.len() as u32).to_le_bytes());
        h.update(f);
    }
    hex::encode(h.finalize())
}

/// Account ids: 1 to [`MAX_ACCOUNT_ID_LEN`] printable ASCII bytes, no spaces, not the
/// escrow account.
fn check_party(account: &str) -> Result<(), LedgerError> {
    let refuse = |reason| Err(LedgerError::InvalidAccount { account: account.to_owned(), reason });
    if account.is_empty() {
        refuse("empty")
    } else if account.len() > MAX_ACCOUNT_ID_LEN {
        refuse("longer than 128 bytes")
    } else if !account.bytes().all(|b| b.is_ascii_graphic()) {
        refuse("not printable ASCII without spaces")
    } else if account == ESCROW_ACCOUNT {
        refuse("the escrow account is reserved")
    } else {
        Ok(())
    }
}

fn check_range(field: &'static str, value: u64) -> Result<(), LedgerError> {
    if value > MAX_AMOUNT { Err(LedgerError::OutOfRange { field, value, max: MAX_AMOUNT }) } else { Ok(()) }
}

fn to_u64(field: &str, v: i64) -> Result<u64, LedgerError> {
    u64::try_from(v).map_err(|_| LedgerError::Corrupt { reason: format!("negative {field}: {v}") })
}

fn parse_hash32(field: &str, s: &str) -> Result<[u8; 32], LedgerError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| LedgerError::Corrupt { reason: format!("{field} {s:?}: {e}") })?;
    Ok(out)
}

fn parse_job_id(s: &str) -> Result<JobId, LedgerError> {
    parse_hash32("job_id", s).map(JobId)
}

fn unknown(job_id: &JobId) -> LedgerError {
    LedgerError::UnknownJob { job_id: *job_id }
}
