//! Step 6: the result reaches the consumer (DESIGN §4, "The result reaches the consumer").
//! After the verdict the sidecar streams the receipt, then, for an approved job, all of `C`
//! in whole rows in order, then the end. The consumer recomputes `R_C` over what arrived and
//! accepts `C` only if it equals the `R_C` of the approved receipt.

use std::time::{Duration, Instant};

use super::SessionError;
use super::respond::{c_rows_bytes, extend_c_values, next_c_rows, rows_per_chunk};
use crate::commit::CTreeBuilder;
use crate::ids::JobId;
use crate::matrix::MatrixI32;
use crate::receipt::{Receipt, Verdict};
use crate::spec::JobSpec;
use crate::wire::pb;
use pb::submit_job_reply::Part;

/// The messages of a result, made as they are sent: the receipt, `C` (when given: an
/// approved job) in whole rows of at most [`super::RESPONSE_CHUNK_BYTES`], the end.
#[derive(Debug)]
pub struct ResultWriter<C> {
    receipt: Option<pb::Receipt>,
    c: Option<C>,
    row_len: usize,
    next_row: usize,
    rows_total: usize,
    ended: bool,
}

impl<C: AsRef<[i32]>> ResultWriter<C> {
    /// The result of a job with rows of `row_len` (`n`) entries: `receipt`, then `c`.
    pub fn new(receipt: pb::Receipt, c: Option<C>, row_len: usize) -> Self {
        let rows_total = c.as_ref().map_or(0, |c| c.as_ref().len() / row_len.max(1));
        Self { receipt: Some(receipt), c, row_len: row_len.max(1), next_row: 0, rows_total, ended: false }
    }

    fn reply(part: Part) -> pb::SubmitJobReply {
        pb::SubmitJobReply { part: Some(part) }
    }
}

impl<C: AsRef<[i32]>> Iterator for ResultWriter<C> {
    type Item = pb::SubmitJobReply;

    fn next(&mut self) -> Option<pb::SubmitJobReply> {
        if let Some(receipt) = self.receipt.take() {
            return Some(Self::reply(Part::Receipt(receipt)));
        }
        if let Some(c) = &self.c
            && self.next_row < self.rows_total
        {
            let rows = rows_per_chunk(self.row_len).min(self.rows_total - self.next_row);
            let values = c_rows_bytes(&c.as_ref()[self.next_row * self.row_len..(self.next_row + rows) * self.row_len]);
            let first_row = self.next_row as u64;
            self.next_row += rows;
            return Some(Self::reply(Part::CRows(pb::CRows { first_row, values: values.into() })));
        }
        if self.ended {
            return None;
        }
        self.ended = true;
        Some(Self::reply(Part::End(pb::ResultEnd { rows: self.next_row as u64 })))
    }
}

/// A result as the consumer accepts it: the receipt is for its job; if approved, `C` arrived
/// whole and its `R_C` equals the receipt's.
#[derive(Debug, Clone)]
pub struct CheckedResult {
    /// The receipt, decoded and matched to the job (its verdict signatures verified).
    pub receipt: Receipt,
    /// The receipt as it arrived (what goes on disk).
    pub receipt_wire: pb::Receipt,
    /// `C` of an approved job, checked against the receipt's `R_C`; `None` when rejected.
    pub c: Option<MatrixI32>,
}

/// Reads a result stream message by message.
#[derive(Debug)]
pub struct ResultReader {
    spec: JobSpec,
    receipt: Option<(Receipt, pb::Receipt)>,
    rows: Vec<i32>,
    rows_received: usize,
    /// `R_C`'s tree over the rows received so far (hashed as they arrive, so the check
    /// overlaps the transfer); made with the approving receipt.
    tree: Option<CTreeBuilder>,
    /// Time spent hashing rows into `tree` so far.
    hashing: Duration,
    ended: bool,
}

/// Where a [`ResultReader`] stands.
pub use super::respond::ReadProgress;

impl ResultReader {
    /// Starts reading the result of `spec`'s job.
    pub fn new(spec: &JobSpec) -> Self {
        Self {
            spec: spec.clone(),
            receipt: None,
            rows: Vec::new(),
            rows_received: 0,
            tree: None,
            hashing: Duration::ZERO,
            ended: false,
        }
    }

    /// The job.
    pub fn job_id(&self) -> JobId {
        self.spec.job_id()
    }

    /// Takes the next message.
    pub fn push(&mut self, reply: pb::SubmitJobReply) -> Result<ReadProgress, SessionError> {
        if self.ended {
            return Ok(ReadProgress::Ended);
        }
        match reply.part {
            None => Err(SessionError::invalid("part", "missing")),
            Some(Part::Receipt(wire)) => self.receipt(wire).map(|()| ReadProgress::More),
            Some(Part::CRows(rows)) => self.rows(rows).map(|()| ReadProgress::More),
            Some(Part::End(end)) => {
                if end.rows != self.rows_received as u64 {
                    let reason = format!("says {} rows, {} arrived", end.rows, self.rows_received);
                    return Err(SessionError::invalid("end.rows", reason));
                }
                self.ended = true;
                Ok(ReadProgress::Ended)
            }
        }
    }

    fn approved(&self) -> bool {
        self.receipt.as_ref().is_some_and(|(r, _)| r.verdicts.iter().any(|v| v.verdict == Verdict::Approved))
    }

    fn receipt(&mut self, wire: pb::Receipt) -> Result<(), SessionError> {
        if self.receipt.is_some() {
            return Err(SessionError::invalid("receipt", "a second receipt"));
        }
        let receipt = Receipt::try_from(&wire)?;
        if receipt.spec != self.spec {
            return Err(SessionError::Mismatch { what: "receipt", reason: "is for another job" });
        }
        for (position, verdict) in receipt.verdicts.iter().enumerate() {
            if verdict.job_id != receipt.spec.job_id() || verdict.r_c != receipt.r_c {
                return Err(SessionError::Mismatch { what: "receipt", reason: "has a verdict for another commitment" });
            }
            verdict.verify().map_err(|source| SessionError::Signature {
                field: if position == 0 { "receipt.verdicts[0]" } else { "receipt.verdicts" },
                source,
            })?;
        }
        self.receipt = Some((receipt, wire));
        Ok(())
    }

    fn rows(&mut self, c: pb::CRows) -> Result<(), SessionError> {
        if !self.approved() {
            return Err(SessionError::invalid("c_rows", "before an approving receipt"));
        }
        let (m, n) = (self.spec.m as usize, self.spec.n as usize);
        let count = next_c_rows(&c, self.rows_received, m, n)?;
        let tree = match &mut self.tree {
            Some(tree) => tree,
            None => {
                self.rows.reserve_exact(m * n);
                self.tree.insert(CTreeBuilder::new(&self.spec.tiling()?))
            }
        };
        let start = self.rows.len();
        extend_c_values(&mut self.rows, &c.values);
        let hashing = Instant::now();
        tree.push_rows(self.rows_received, &self.rows[start..])
            .map_err(|e| SessionError::invalid("c_rows", e.to_string()))?;
        self.hashing += hashing.elapsed();
        self.rows_received += count;
        Ok(())
    }

    /// Time spent so far hashing the received rows towards `R_C` (done as they arrive).
    pub fn hashing_time(&self) -> Duration {
        self.hashing
    }

    /// The checked result: the stream ended; an approved job's `C` arrived whole and its
    /// `R_C` is the receipt's.
    pub fn finish(self) -> Result<CheckedResult, SessionError> {
        let approved = self.approved();
        let job_id = self.job_id();
        let Some((receipt, receipt_wire)) = self.receipt else {
            return Err(SessionError::invalid("receipt", "the result ended without a receipt"));
        };
        if !self.ended {
            return Err(SessionError::invalid("end", "the result stream was cut before its end"));
        }
        if !approved {
            return Ok(CheckedResult { receipt, receipt_wire, c: None });
        }
        let c = received_c(&self.spec, self.rows)?;
        // `received_c` refused a C with no rows, so the first rows made the tree.
        let tree = self.tree.ok_or_else(|| SessionError::invalid("c_rows", "no rows of C arrived"))?;
        let received = tree.finish().map_err(|e| SessionError::invalid("c_rows", e.to_string()))?;
        if received.root() != receipt.r_c {
            return Err(SessionError::ResultMismatch { job_id, received: received.root(), approved: receipt.r_c });
        }
        Ok(CheckedResult { receipt, receipt_wire, c: Some(c) })
    }
}

fn received_c(spec: &JobSpec, rows: Vec<i32>) -> Result<MatrixI32, SessionError> {
    let (m, n) = (spec.m as usize, spec.n as usize);
    if rows.len() != m * n {
        let reason = format!("{} of {m} rows of C arrived", rows.len() / n.max(1));
        return Err(SessionError::invalid("c_rows", reason));
    }
    MatrixI32::from_vec(m, n, rows).map_err(|e| SessionError::invalid("c_rows", e.to_string()))
}
