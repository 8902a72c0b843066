-- matproof escrow ledger (DESIGN §7). One schema for SQLite and PostgreSQL: only types and
-- syntax both accept (TEXT, BIGINT, CHECK, composite primary keys, ON CONFLICT upserts).
-- Amounts are u64 in Rust, capped at i64::MAX and stored as BIGINT with CHECK (>= 0).

-- Every balance, including the fixed `escrow` account (which holds every pending amount).
CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY,
    balance BIGINT NOT NULL CHECK (balance >= 0)
);

-- One row: the total ever minted by deposits. Conservation: SUM(balance) = minted.
CREATE TABLE ledger_totals (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    minted BIGINT NOT NULL CHECK (minted >= 0)
);

INSERT INTO ledger_totals (id, minted) VALUES (1, 0);
INSERT INTO ledger_accounts (id, balance) VALUES ('escrow', 0);

-- One two-phase transfer per job: pending (consumer -> escrow), then posted (escrow ->
-- provider) or voided (escrow -> consumer), never both.
CREATE TABLE ledger_transfers (
    transfer_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    consumer TEXT NOT NULL,
    provider TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount >= 0),
    deadline_unix_ms BIGINT NOT NULL CHECK (deadline_unix_ms >= 0),
    state TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
    verdict TEXT CHECK (verdict IS NULL OR verdict IN ('approved', 'rejected')),
    verdict_body_hash TEXT
);

CREATE INDEX ledger_transfers_by_state ON ledger_transfers (state, deadline_unix_ms);

-- The idempotency gate: one row per (operation kind, transfer id), holding a hash of the
-- operation's body. Inserted first in every operation's transaction.
CREATE TABLE ledger_operations (
    kind TEXT NOT NULL CHECK (kind IN ('open', 'post', 'void', 'slash', 'verdict')),
    transfer_id TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    PRIMARY KEY (kind, transfer_id)
);

-- The journal: every movement of money an operation made, in order.
CREATE TABLE ledger_movements (
    kind TEXT NOT NULL,
    transfer_id TEXT NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 0),
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (kind, transfer_id, seq)
);
