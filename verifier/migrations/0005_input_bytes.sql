-- matproof verifier node: full-mode inputs as bytes, and pruning (DESIGN §4, "Real sizes").
--
-- The one exception to the TEXT-hex rule of 0001_ledger.sql: A and B are stored as raw bytes
-- (i8 two's complement, row-major: A m×k, B k×n), since hex doubles a matrix that can be
-- gigabytes. BYTEA is PostgreSQL's byte string; SQLite accepts the name and stores the value
-- as a BLOB unchanged. stored_bytes (|A| + |B|) is what the disk budget (--max-stored-bytes)
-- counts.
--
-- The hex .npy inputs of version 1 are dropped: a node is upgraded with no full-mode job in
-- flight (docs/node.md, "Upgrading"); the job spec's canonical encoding changed with this
-- release too (version 2, with the input scheme), so earlier jobs cannot be read anyway.
DROP TABLE node_job_inputs;
CREATE TABLE node_job_inputs (
    job_id TEXT PRIMARY KEY,
    a BYTEA NOT NULL,
    b BYTEA NOT NULL,
    stored_bytes BIGINT NOT NULL CHECK (stored_bytes >= 0)
);
-- When the ledger released the job (Unix ms): inputs are pruned --retention after it.
ALTER TABLE node_jobs ADD COLUMN settled_unix_ms BIGINT;
