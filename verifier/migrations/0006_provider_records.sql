-- matproof verifier node: provider records (DESIGN §10).
--
-- A record is derived at each query from what the node and the ledger already hold (jobs by
-- state and fraud flag from node_jobs, amounts from ledger_transfers and ledger_movements),
-- never from anything the provider reports, so it cannot disagree with them. This migration
-- adds what the record's times need and the index that finds a provider's jobs:
-- committed_unix_ms is set with the challenge (the commitment accepted), verdict_unix_ms
-- with the verdict. Jobs from before this migration have neither and are left out of the
-- time statistics (not of the counts).
ALTER TABLE node_jobs ADD COLUMN committed_unix_ms BIGINT;
ALTER TABLE node_jobs ADD COLUMN verdict_unix_ms BIGINT;
CREATE INDEX ledger_transfers_by_provider ON ledger_transfers (provider);
