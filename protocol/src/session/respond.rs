//! Step 4: the provider's streamed `Respond`.
//!
//! The stream is, in this order: in full mode every row of `C`, in whole rows, as
//! consecutive `CRows` chunks starting at row 0; then exactly `samples` openings in sample
//! order; then one `ResponseEnd` whose signature (purpose `respond`) covers
//! `job_id ‖ R_C ‖ response digest` ([`crate::receipt::ResponseHasher`]; the digest covers
//! the digest of the streamed `C` and every opening), so a signature seen
//! once cannot be replayed under other contents. Every chunk carries the job id. The whole
//! stream is bounded by [`response_budget`] bytes.
//!
//! [`ResponseWriter`] produces such a stream; [`ResponseReader`] enforces the order and the
//! budget as chunks arrive and yields an [`AuthenticatedResponse`] only once the end
//! signature verifies.

use prost::Message;

use super::{SessionError, signature_field};
use crate::identity::{Identity, PublicKey, Signature, verify};
use crate::ids::{JobId, MerkleRoot};
use crate::limits::MAX_MERKLE_PATH_LEN;
use crate::opening::TileOpening;
use crate::receipt::{PURPOSE_RESPOND, ResponseHasher, SignedResponseEnd, respond_signing_bytes};
use crate::spec::{JobSpec, VerificationMode};
use crate::wire::{digest_from_wire, pb};
use pb::respond_chunk::Part;

/// Largest `C` rows message of a full-mode response or a result, in bytes of payload (each
/// entry is 4 bytes, i32le). Whole rows always: a row longer than this goes alone.
pub const RESPONSE_CHUNK_BYTES: usize = 4 << 20;

/// Bytes of one `C` entry in a `CRows` message (i32 little-endian).
pub const C_ENTRY_BYTES: usize = 4;

/// Rows of `n` entries per `CRows` chunk so that a chunk stays within
/// [`RESPONSE_CHUNK_BYTES`] (at least one).
pub fn rows_per_chunk(n: usize) -> usize {
    (RESPONSE_CHUNK_BYTES / (C_ENTRY_BYTES * n.max(1))).max(1)
}

/// The wire form of whole rows of `C`: each entry as i32le.
pub fn c_rows_bytes(values: &[i32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * C_ENTRY_BYTES);
    for value in values {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// Appends the entries of a `CRows` payload (checked by `next_c_rows`: a whole number of
/// entries) to `out`.
pub fn extend_c_values(out: &mut Vec<i32>, bytes: &[u8]) {
    debug_assert!(bytes.len().is_multiple_of(C_ENTRY_BYTES), "whole entries only");
    out.extend(bytes.chunks_exact(C_ENTRY_BYTES).map(|e| i32::from_le_bytes([e[0], e[1], e[2], e[3]])));
}

/// An upper bound on the encoded size of a job's whole `Respond` stream, in bytes.
pub fn response_budget(spec: &JobSpec) -> u64 {
    let (m, n) = (spec.m, spec.n);
    let tile_entries = (spec.shape.tm as u64).saturating_mul(spec.shape.tn as u64);
    // An entry takes 4 bytes; each chunk carries at least one row.
    let rows = match spec.policy.mode {
        VerificationMode::Full => m.saturating_mul(n).saturating_mul(4).saturating_add(m.saturating_mul(96)),
        VerificationMode::Succinct => 0,
    };
    let path = (MAX_MERKLE_PATH_LEN as u64) * 34 + 32;
    let opening = tile_entries.saturating_mul(5).saturating_add(3 * path).saturating_add(512);
    rows.saturating_add(u64::from(spec.policy.samples).saturating_mul(opening)).saturating_add(64 * 1024)
}

/// What a response must hold: who sends it, for which commitment, and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseExpectation {
    /// The job.
    pub job_id: JobId,
    /// The commitment the challenge is for.
    pub r_c: MerkleRoot,
    /// The provider, who signs the end.
    pub provider: PublicKey,
    /// Rows of `C` streamed: `m` in full mode, 0 in succinct mode.
    pub c_rows: usize,
    /// Entries per row of `C` (`n`).
    pub row_len: usize,
    /// Openings: the policy's `samples`.
    pub openings: usize,
    /// [`response_budget`].
    pub budget_bytes: u64,
}

impl ResponseExpectation {
    /// The expectation for `spec` committed to `r_c`.
    pub fn for_job(spec: &JobSpec, r_c: MerkleRoot) -> Self {
        let full = spec.policy.mode == VerificationMode::Full;
        Self {
            job_id: spec.job_id(),
            r_c,
            provider: spec.provider,
            c_rows: if full { spec.m as usize } else { 0 },
            row_len: spec.n as usize,
            openings: spec.policy.samples as usize,
            budget_bytes: response_budget(spec),
        }
    }

    fn c_values(&self) -> u64 {
        (self.c_rows as u64).saturating_mul(self.row_len as u64)
    }
}

/// Writes a response in order, hashing as it goes; [`ResponseWriter::end`] signs the
/// digest. Misuse (rows after openings, a partial row) is a programming error and panics in
/// debug builds; the reader on the other side refuses such a stream in any case.
#[derive(Debug)]
pub struct ResponseWriter {
    expect: ResponseExpectation,
    hasher: ResponseHasher,
    rows_written: usize,
}

impl ResponseWriter {
    /// Starts the response `expect` describes (its `provider` and `budget_bytes` are not
    /// used here).
    pub fn new(expect: ResponseExpectation) -> Self {
        let hasher = ResponseHasher::new(&expect.job_id, &expect.r_c, expect.c_values(), expect.openings as u64);
        Self { expect, hasher, rows_written: 0 }
    }

    fn chunk(&self, part: Part) -> pb::RespondChunk {
        pb::RespondChunk { job_id: self.expect.job_id.to_vec(), part: Some(part) }
    }

    /// The next whole rows of `C` (full mode).
    pub fn rows(&mut self, values: &[i32]) -> pb::RespondChunk {
        let n = self.expect.row_len.max(1);
        debug_assert_eq!(values.len() % n, 0, "whole rows only");
        // Encoded once: the digest covers exactly the bytes the chunk carries.
        let bytes = c_rows_bytes(values);
        self.hasher.row_bytes(&bytes);
        let first_row = self.rows_written as u64;
        self.rows_written += values.len() / n;
        self.chunk(Part::CRows(pb::CRows { first_row, values: bytes.into() }))
    }

    /// The next opening, in sample order.
    pub fn opening(&mut self, opening: &TileOpening) -> pb::RespondChunk {
        debug_assert_eq!(self.rows_written, self.expect.c_rows, "openings after all of C");
        self.hasher.opening(opening);
        self.chunk(Part::Opening(opening.into()))
    }

    /// The signed end, over the digest of everything written.
    pub fn end(self, provider: &Identity) -> pb::RespondChunk {
        let (job_id, r_c) = (self.expect.job_id, self.expect.r_c);
        let signed = respond_signing_bytes(&job_id, &r_c, &self.hasher.finish().response_digest);
        let signature = provider.sign(PURPOSE_RESPOND, &signed);
        let end = Part::End(pb::ResponseEnd { provider_signature: signature.0.to_vec() });
        pb::RespondChunk { job_id: job_id.to_vec(), part: Some(end) }
    }

    /// A whole response: `C` (when given) `rows_per_chunk` rows a chunk, the openings, the
    /// end signed by `signer`.
    pub fn whole(
        expect: ResponseExpectation,
        c: Option<&[i32]>,
        openings: &[TileOpening],
        signer: &Identity,
        rows_per_chunk: usize,
    ) -> Vec<pb::RespondChunk> {
        let mut writer = Self::new(expect);
        let mut out = Vec::new();
        if let Some(c) = c {
            let step = rows_per_chunk.max(1) * expect.row_len.max(1);
            out.extend(c.chunks(step).map(|rows| writer.rows(rows)));
        }
        out.extend(openings.iter().map(|o| writer.opening(o)));
        out.push(writer.end(signer));
        out
    }
}

/// A response whose every chunk arrived in order, within the budget, and whose end
/// signature by the job's provider verified over all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedResponse {
    /// The job.
    pub job_id: JobId,
    /// The commitment it answers for.
    pub r_c: MerkleRoot,
    /// All of `C`, row-major (full mode).
    pub c_rows: Option<Vec<i32>>,
    /// The openings, in sample order.
    pub openings: Vec<TileOpening>,
    /// The provider's end signature with the digest of the streamed `C`, as a receipt keeps
    /// them.
    pub end: SignedResponseEnd,
}

/// Where a [`ResponseReader`] stands after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadProgress {
    /// More chunks are due.
    More,
    /// The end arrived: call [`ResponseReader::finish`]; later chunks are not read.
    Ended,
}

/// Reads a `Respond` stream chunk by chunk, refusing the first chunk that breaks the order
/// or the budget.
#[derive(Debug)]
pub struct ResponseReader {
    expect: ResponseExpectation,
    hasher: ResponseHasher,
    used_bytes: u64,
    rows: Vec<i32>,
    rows_received: usize,
    openings: Vec<TileOpening>,
    end: Option<Signature>,
}

/// Checks that `c` holds the next whole rows of an `m × n` `C` of which `rows_received` have
/// arrived (the rule of every stream of `C`: the response and the result); how many rows.
pub(super) fn next_c_rows(c: &pb::CRows, rows_received: usize, m: usize, n: usize) -> Result<usize, SessionError> {
    if c.first_row != rows_received as u64 {
        return Err(SessionError::invalid("c_rows.first_row", format!("{}, expected {rows_received}", c.first_row)));
    }
    let row_bytes = n.max(1) * C_ENTRY_BYTES;
    if c.values.is_empty() || !c.values.len().is_multiple_of(row_bytes) {
        return Err(SessionError::invalid(
            "c_rows.values",
            format!("{} bytes: not whole rows of {n} i32le entries", c.values.len()),
        ));
    }
    let count = c.values.len() / row_bytes;
    if rows_received + count > m {
        return Err(SessionError::invalid("c_rows.values", format!("more than m = {m} rows")));
    }
    Ok(count)
}

/// The job id a chunk names (read before the job is loaded).
pub fn chunk_job_id(chunk: &pb::RespondChunk) -> Result<JobId, SessionError> {
    Ok(digest_from_wire("job_id", &chunk.job_id)?)
}

impl ResponseReader {
    /// Starts reading the response `expect` describes.
    pub fn new(expect: ResponseExpectation) -> Self {
        let hasher = ResponseHasher::new(&expect.job_id, &expect.r_c, expect.c_values(), expect.openings as u64);
        Self { expect, hasher, used_bytes: 0, rows: Vec::new(), rows_received: 0, openings: Vec::new(), end: None }
    }

    /// Takes the next chunk.
    pub fn push(&mut self, chunk: pb::RespondChunk) -> Result<ReadProgress, SessionError> {
        if self.end.is_some() {
            return Ok(ReadProgress::Ended);
        }
        self.used_bytes = self.used_bytes.saturating_add(chunk.encoded_len() as u64);
        if self.used_bytes > self.expect.budget_bytes {
            return Err(SessionError::OverBudget { budget_bytes: self.expect.budget_bytes });
        }
        if chunk.job_id != self.expect.job_id.as_bytes() {
            return Err(SessionError::invalid("job_id", "differs between chunks"));
        }
        match chunk.part {
            None => Err(SessionError::invalid("part", "missing")),
            Some(Part::CRows(c)) => self.rows(c).map(|()| ReadProgress::More),
            Some(Part::Opening(o)) => self.opening(&o).map(|()| ReadProgress::More),
            Some(Part::End(e)) => {
                self.end = Some(signature_field("end.provider_signature", &e.provider_signature)?);
                Ok(ReadProgress::Ended)
            }
        }
    }

    fn rows(&mut self, c: pb::CRows) -> Result<(), SessionError> {
        let (m, n) = (self.expect.c_rows, self.expect.row_len);
        if m == 0 {
            return Err(SessionError::invalid("c_rows", "succinct mode takes no C"));
        }
        if !self.openings.is_empty() {
            return Err(SessionError::invalid("c_rows", "after an opening"));
        }
        let count = next_c_rows(&c, self.rows_received, m, n)?;
        if self.rows.capacity() == 0 {
            // Once, at the job's size (within the limits): C never reallocates as it grows.
            self.rows.reserve_exact(self.expect.c_values() as usize);
        }
        self.hasher.row_bytes(&c.values);
        extend_c_values(&mut self.rows, &c.values);
        self.rows_received += count;
        Ok(())
    }

    fn opening(&mut self, o: &pb::TileOpening) -> Result<(), SessionError> {
        let (m, samples) = (self.expect.c_rows, self.expect.openings);
        if self.rows_received != m {
            return Err(SessionError::invalid(
                "opening",
                format!("before all of C ({} of {m} rows)", self.rows_received),
            ));
        }
        if self.openings.len() == samples {
            return Err(SessionError::invalid("opening", format!("more than {samples} openings")));
        }
        let position = self.openings.len();
        let opening = TileOpening::try_from(o)
            .map_err(|e| SessionError::invalid(format!("opening[{position}].{}", e.field), e.reason))?;
        self.hasher.opening(&opening);
        self.openings.push(opening);
        Ok(())
    }

    /// The authenticated response: the end arrived, its signature by the job's provider
    /// verifies over the digest of every chunk, and every sampled tile was opened.
    pub fn finish(self) -> Result<AuthenticatedResponse, SessionError> {
        let end = self.end.ok_or_else(|| SessionError::invalid("end", "the stream ended without ResponseEnd"))?;
        let digests = self.hasher.finish();
        let signed = respond_signing_bytes(&self.expect.job_id, &self.expect.r_c, &digests.response_digest);
        verify(&self.expect.provider, PURPOSE_RESPOND, &signed, &end)
            .map_err(|source| SessionError::Signature { field: "end.provider_signature", source })?;
        if self.openings.len() != self.expect.openings {
            return Err(SessionError::invalid(
                "opening",
                format!("{} openings, expected {}", self.openings.len(), self.expect.openings),
            ));
        }
        Ok(AuthenticatedResponse {
            job_id: self.expect.job_id,
            r_c: self.expect.r_c,
            c_rows: (self.expect.c_rows > 0).then_some(self.rows),
            openings: self.openings,
            end: SignedResponseEnd { c_digest: digests.c_digest, signature: end },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::InclusionProof;

    fn expectation(provider: &Identity, c_rows: usize, openings: usize) -> ResponseExpectation {
        ResponseExpectation {
            job_id: JobId([1; 32]),
            r_c: MerkleRoot([2; 32]),
            provider: provider.public_key(),
            c_rows,
            row_len: 3,
            openings,
            budget_bytes: 1 << 20,
        }
    }

    fn opening(tile_index: u64) -> TileOpening {
        let path = InclusionProof { leaf_index: 0, tree_size: 1, path: vec![] };
        TileOpening {
            tile_index,
            c_tile: vec![7],
            c_path: path.clone(),
            d_a: [0; 32],
            a_path: path.clone(),
            d_b: [0; 32],
            b_path: path,
            proof: vec![0; crate::opening::TILE_PROOF_BYTES],
        }
    }

    fn read(expect: ResponseExpectation, chunks: Vec<pb::RespondChunk>) -> Result<AuthenticatedResponse, SessionError> {
        let mut reader = ResponseReader::new(expect);
        for chunk in chunks {
            if reader.push(chunk)? == ReadProgress::Ended {
                break;
            }
        }
        reader.finish()
    }

    #[test]
    fn what_the_writer_writes_the_reader_authenticates() {
        let provider = Identity::from_seed([5; 32]);
        let expect = expectation(&provider, 4, 2);
        let c: Vec<i32> = (0..12).collect();
        for rows in 1..=4 {
            let chunks = ResponseWriter::whole(expect, Some(&c), &[opening(0), opening(3)], &provider, rows);
            let response = read(expect, chunks).unwrap();
            assert_eq!(response.c_rows.as_deref(), Some(&c[..]));
            assert_eq!(response.openings, vec![opening(0), opening(3)]);
        }
        let succinct = expectation(&provider, 0, 1);
        let response = read(succinct, ResponseWriter::whole(succinct, None, &[opening(2)], &provider, 1)).unwrap();
        assert_eq!(response.c_rows, None);
    }

    #[test]
    fn order_budget_and_signature_are_enforced() {
        let provider = Identity::from_seed([5; 32]);
        let expect = expectation(&provider, 2, 1);
        let c: Vec<i32> = (0..6).collect();
        let good = ResponseWriter::whole(expect, Some(&c), &[opening(1)], &provider, 1);
        let field = |e: SessionError| match e {
            SessionError::Invalid(w) => w.field,
            other => panic!("expected a field error, got {other}"),
        };
        // An opening before all of C.
        let early = vec![good[0].clone(), good[2].clone(), good[3].clone()];
        assert_eq!(field(read(expect, early).unwrap_err()), "opening");
        // Rows out of order.
        let swapped = vec![good[1].clone(), good[0].clone(), good[2].clone(), good[3].clone()];
        assert_eq!(field(read(expect, swapped).unwrap_err()), "c_rows.first_row");
        // No end.
        assert_eq!(field(read(expect, good[..3].to_vec()).unwrap_err()), "end");
        // Another job's chunk.
        let mut foreign = good.clone();
        foreign[1].job_id = vec![9; 32];
        assert_eq!(field(read(expect, foreign).unwrap_err()), "job_id");
        // Changed contents under the same end signature.
        let mut changed = good.clone();
        if let Some(Part::CRows(rows)) = &mut changed[0].part {
            let mut values = rows.values.to_vec();
            values[0] ^= 1;
            rows.values = values.into();
        }
        assert!(matches!(read(expect, changed), Err(SessionError::Signature { field: "end.provider_signature", .. })));
        // Signed by someone else.
        let stranger = ResponseWriter::whole(expect, Some(&c), &[opening(1)], &Identity::from_seed([6; 32]), 1);
        assert!(matches!(read(expect, stranger), Err(SessionError::Signature { .. })));
        // Over the budget.
        let tight = ResponseExpectation { budget_bytes: 10, ..expect };
        assert_eq!(read(tight, good.clone()).unwrap_err(), SessionError::OverBudget { budget_bytes: 10 });
        read(expect, good).unwrap();
    }
}
