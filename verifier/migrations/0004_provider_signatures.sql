-- matproof verifier node: the provider's signatures that receipt version 2 carries
-- (docs/formats.md, "Receipts"), so a receipt shows the provider committed to its R_C and
-- signed its response, not only the verifier's word. Same single-dialect rules as
-- 0001_ledger.sql (TEXT hex, valid on SQLite and PostgreSQL alike).
--
-- commit_signature: the provider's Ed25519 signature over job_id ‖ r_c (purpose "commit"),
-- set with r_c and the challenge by the same conditional UPDATE. A job committed before this
-- migration has NULL here and cannot get a version 2 receipt (its response is refused).
ALTER TABLE node_jobs ADD COLUMN commit_signature TEXT;
-- response_c_digest, response_signature: the digest of the streamed C and the provider's
-- end signature over job_id ‖ r_c ‖ response digest (purpose "respond"), set with the
-- verdict and receipt.
ALTER TABLE node_jobs ADD COLUMN response_c_digest TEXT;
ALTER TABLE node_jobs ADD COLUMN response_signature TEXT;
