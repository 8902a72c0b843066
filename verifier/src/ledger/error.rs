//! The ledger's error type.

use matproof_protocol::ids::JobId;
use matproof_protocol::receipt::Verdict;

use super::{Operation, TransferState, verdict_name};

/// Everything a ledger operation can refuse or fail with. Every refusal leaves the ledger
/// unchanged: the operation's database transaction is rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A debit would take `account` below zero.
    #[error("insufficient funds in account {account:?}: needed {needed}, available {available}")]
    InsufficientFunds {
        /// The account that would be debited.
        account: String,
        /// The amount the operation needs from it.
        needed: u64,
        /// The account's balance.
        available: u64,
    },
    /// The operation was already applied to this job with a different body (other amount,
    /// other parties, other verdict).
    #[error("idempotency conflict: {operation} for job {job_id} was already applied with a different body")]
    IdempotencyConflict {
        /// The job.
        job_id: JobId,
        /// The operation kind.
        operation: Operation,
    },
    /// The job's transfer is not in a state the operation can move it from (posting a voided
    /// job, voiding a posted one, approving a voided one, slashing a posted one).
    #[error("invalid transition for job {job_id}: {from} -> {to}")]
    InvalidTransition {
        /// The job.
        job_id: JobId,
        /// The transfer's current state.
        from: TransferState,
        /// The state the operation would move it to.
        to: TransferState,
    },
    /// The job's recorded verdict forbids the operation (posting a rejected job, voiding or
    /// slashing an approved one).
    #[error("job {job_id} has verdict {}, which forbids {operation}", verdict_name(*.verdict))]
    VerdictConflict {
        /// The job.
        job_id: JobId,
        /// The recorded verdict.
        verdict: Verdict,
        /// The refused operation.
        operation: Operation,
    },
    /// No transfer was opened for this job.
    #[error("unknown job {job_id}")]
    UnknownJob {
        /// The job.
        job_id: JobId,
    },
    /// An account id is malformed or reserved.
    #[error("invalid account id {account:?}: {reason}")]
    InvalidAccount {
        /// The id as given.
        account: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A number does not fit the ledger's range (amounts and times are stored as signed
    /// 64-bit integers, so at most `i64::MAX`).
    #[error("{field} = {value} is out of range (at most {max})")]
    OutOfRange {
        /// Which argument.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A deposit would take the total supply past `i64::MAX`.
    #[error("deposit of {amount} would overflow the total supply (minted so far: {minted})")]
    SupplyOverflow {
        /// The total minted before the deposit.
        minted: u64,
        /// The refused deposit.
        amount: u64,
    },
    /// The database URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// A conservation invariant does not hold (see the module documentation).
    #[error(
        "conservation violated: balances {balances_total}, deposits {deposited_total}, negative accounts \
         {negative_accounts}, escrow {escrow_balance}, pending {pending_total}, double releases {double_releases}"
    )]
    ConservationViolated {
        /// Σ of all balances, escrow included.
        balances_total: i64,
        /// Σ of all deposits.
        deposited_total: i64,
        /// How many accounts have a negative balance.
        negative_accounts: i64,
        /// The escrow account's balance.
        escrow_balance: i64,
        /// Σ of the amounts of pending transfers.
        pending_total: i64,
        /// How many transfers were both posted and voided.
        double_releases: i64,
    },
    /// A stored value is not one the ledger writes (the database was edited by hand).
    #[error("corrupt ledger row: {reason}")]
    Corrupt {
        /// What was found.
        reason: String,
    },
    /// A crash simulated by a [`FaultPlan`](super::FaultPlan) at the named write point (tests
    /// only): the operation's open transaction was dropped, as a crash would leave it.
    #[error("injected crash at {point}")]
    InjectedFault {
        /// The write point.
        point: &'static str,
    },
    /// The database failed (connection, I/O, constraint, migration); the operation's
    /// transaction was rolled back.
    #[error("database error: {reason}")]
    Database {
        /// The driver's message.
        reason: String,
        /// The SQLSTATE (PostgreSQL) or result code (SQLite), when the driver gave one.
        code: Option<String>,
        /// The driver's error itself.
        #[source]
        source: DatabaseSource,
    },
}

/// The driver's error behind [`LedgerError::Database`], shared so that the ledger's errors
/// stay `Clone`; two compare equal when their messages do (a driver error has no equality
/// of its own).
#[derive(Debug, Clone)]
pub struct DatabaseSource(pub std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl PartialEq for DatabaseSource {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for DatabaseSource {}

impl std::fmt::Display for DatabaseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DatabaseSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl LedgerError {
    /// Whether retrying the same operation may succeed: a serialization failure or deadlock
    /// (PostgreSQL) or a busy/locked database (SQLite).
    pub fn is_transient(&self) -> bool {
        match self {
            LedgerError::Database { code: Some(code), .. } => {
                matches!(code.as_str(), "40001" | "40P01" | "5" | "6" | "261" | "517")
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        let code = match &e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        LedgerError::Database { reason: e.to_string(), code, source: DatabaseSource(std::sync::Arc::new(e)) }
    }
}

impl From<sqlx::migrate::MigrateError> for LedgerError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        LedgerError::Database {
            reason: format!("migration: {e}"),
            code: None,
            source: DatabaseSource(std::sync::Arc::new(e)),
        }
    }
}
