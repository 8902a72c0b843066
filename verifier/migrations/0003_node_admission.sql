-- matproof verifier node: the admission lock behind NodeLimits::max_open_jobs (a hard bound).
-- OpenJob updates this one row first in the transaction that counts the open jobs and inserts
-- the new one, so admissions are serialized across every node sharing the database: on
-- PostgreSQL the row lock makes the next admission wait until this one commits (and its
-- COUNT, a new statement under READ COMMITTED, then sees the inserted row); on SQLite the
-- UPDATE takes the database's write lock. The open count itself is never stored: it is
-- always counted from node_jobs, so nothing here can drift across crashes or restarts.
-- `admissions` only counts the jobs admitted, for inspection.

CREATE TABLE node_admission (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    admissions BIGINT NOT NULL CHECK (admissions >= 0)
);

INSERT INTO node_admission (id, admissions) VALUES (1, 0);
