-- matproof verifier node (DESIGN §4): one row per job this node (or any node sharing this
-- database) opened. Same single-dialect rules as 0001_ledger.sql: only TEXT and BIGINT;
-- byte strings are lowercase hex TEXT, flags are BIGINT 0/1, times are Unix milliseconds.

CREATE TABLE node_jobs (
    job_id TEXT PRIMARY KEY,
    -- The canonical job spec (protocol::spec), hex; what job_id hashes.
    spec TEXT NOT NULL,
    consumer_signature TEXT NOT NULL,
    deadline_unix_ms BIGINT NOT NULL CHECK (deadline_unix_ms >= 0),
    state TEXT NOT NULL CHECK (state IN ('opened', 'challenged', 'approved', 'rejected', 'expired')),
    -- The one commitment accepted for this job, and the challenge issued for it: set once,
    -- by a conditional UPDATE, before the challenge is returned.
    r_c TEXT,
    seed TEXT,
    challenge_key TEXT,
    challenge_signature TEXT,
    -- The receipt (protobuf bytes, hex), set once with the verdict, before money moves.
    receipt TEXT,
    -- SHA-256 of the signed verdict body, as recorded in the ledger.
    verdict_hash TEXT,
    fraud BIGINT NOT NULL DEFAULT 0 CHECK (fraud IN (0, 1)),
    -- 1 once the ledger has released the job according to the verdict.
    settled BIGINT NOT NULL DEFAULT 0 CHECK (settled IN (0, 1)),
    created_unix_ms BIGINT NOT NULL
);

CREATE INDEX node_jobs_by_state ON node_jobs (state, deadline_unix_ms);

-- Full mode: the consumer's A and B (.npy bytes, hex), checked against R_A, R_B at OpenJob.
CREATE TABLE node_job_inputs (
    job_id TEXT PRIMARY KEY,
    a_npy TEXT NOT NULL,
    b_npy TEXT NOT NULL
);
