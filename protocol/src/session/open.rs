//! Step 1: the consumer uploads its signed spec and, where the receiver needs them, `A` and
//! `B` as streams of whole rows: `OpenJob` to a verifier (the inputs in full mode only) and
//! `SubmitJob` to the provider's sidecar (always). No message holds a whole matrix.

use std::sync::Arc;

use super::{SessionError, signature_field};
use crate::identity::{Identity, Signature, SignatureError, verify};
use crate::ids::JobId;
use crate::matrix::{MatrixI8, MatrixView};
use crate::receipt::PURPOSE_JOB;
use crate::spec::{JobSpec, VerificationMode};
use crate::wire::{WireError, pb};
use pb::job_upload::Part;

/// The consumer's signature over the canonical spec, purpose `job`.
pub fn sign_spec(spec: &JobSpec, consumer: &Identity) -> Signature {
    consumer.sign(PURPOSE_JOB, &spec.canonical_bytes())
}

/// Checks the consumer's signature over the canonical spec.
pub fn verify_spec_signature(spec: &JobSpec, signature: &Signature) -> Result<(), SignatureError> {
    verify(&spec.consumer, PURPOSE_JOB, &spec.canonical_bytes(), signature)
}

/// Decodes a wire spec and its signature field (without checking the signature), naming the
/// field at fault (`spec.r_a`, `consumer_signature`).
pub fn read_signed_spec(spec: Option<&pb::JobSpec>, signature: &[u8]) -> Result<(JobSpec, Signature), WireError> {
    let wire = spec.ok_or_else(|| WireError { field: "spec".into(), reason: "missing".into() })?;
    let spec =
        JobSpec::try_from(wire).map_err(|e| WireError { field: format!("spec.{}", e.field), reason: e.reason })?;
    Ok((spec, signature_field("consumer_signature", signature)?))
}

/// Largest payload of one [`pb::InputRows`] message, in bytes: whole rows always (a row is
/// at most [`crate::limits::MAX_DIM`] bytes, far below this).
pub const UPLOAD_CHUNK_BYTES: usize = 4 << 20;

/// Which input matrix rows belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// `A`, `m×k`.
    A,
    /// `B`, `k×n`.
    B,
}

impl Operand {
    fn to_wire(self) -> i32 {
        match self {
            Operand::A => pb::Operand::A as i32,
            Operand::B => pb::Operand::B as i32,
        }
    }
}

/// The consumer's inputs, shared with the stream that sends them.
pub type SharedInputs = (Arc<MatrixI8>, Arc<MatrixI8>);

/// The messages of an upload (`OpenJob` to a verifier, `SubmitJob` to a sidecar), made as
/// they are sent: the signed spec, then `A` in whole rows of at most
/// [`UPLOAD_CHUNK_BYTES`], then `B`. Without inputs (a succinct-mode `OpenJob`), the spec
/// alone. Holds the matrices, never a copy of them.
#[derive(Debug)]
pub struct UploadWriter {
    head: Option<pb::JobUpload>,
    inputs: Option<SharedInputs>,
    operand: Operand,
    next_row: usize,
}

impl UploadWriter {
    /// The upload of `spec` signed with `signature`, with `inputs` if given.
    pub fn new(spec: &JobSpec, signature: &Signature, inputs: Option<SharedInputs>) -> Self {
        let head = pb::SignedSpec { spec: Some(spec.into()), consumer_signature: signature.0.to_vec() };
        Self { head: Some(pb::JobUpload { part: Some(Part::Spec(head)) }), inputs, operand: Operand::A, next_row: 0 }
    }

    fn next_rows(&mut self) -> Option<pb::JobUpload> {
        let (a, b) = self.inputs.as_ref()?;
        next_rows_message((a.view(), b.view()), &mut self.operand, &mut self.next_row)
    }
}

impl Iterator for UploadWriter {
    type Item = pb::JobUpload;

    fn next(&mut self) -> Option<pb::JobUpload> {
        self.head.take().or_else(|| self.next_rows())
    }
}

/// The next rows message of an upload of `(a, b)`, advancing `(operand, next_row)`; `None`
/// after the last rows of `B`.
fn next_rows_message(
    (a, b): (MatrixView<'_, i8>, MatrixView<'_, i8>),
    operand: &mut Operand,
    next_row: &mut usize,
) -> Option<pb::JobUpload> {
    let matrix = match operand {
        Operand::A => a,
        Operand::B => b,
    };
    if *next_row >= matrix.rows() {
        if *operand == Operand::B {
            return None;
        }
        (*operand, *next_row) = (Operand::B, 0);
        return next_rows_message((a, b), operand, next_row);
    }
    let cols = matrix.cols().max(1);
    let rows = (UPLOAD_CHUNK_BYTES / cols).max(1).min(matrix.rows() - *next_row);
    let values = matrix.as_slice()[*next_row * cols..(*next_row + rows) * cols].iter().map(|v| *v as u8);
    let message = pb::InputRows { operand: operand.to_wire(), first_row: *next_row as u64, values: values.collect() };
    *next_row += rows;
    Some(pb::JobUpload { part: Some(Part::Rows(message)) })
}

/// [`UploadWriter`] over borrowed inputs: the same messages, made as they are sent from
/// data the caller keeps (a numpy array's buffer), so nothing but the message in flight is
/// ever copied. Not `'static`: a caller feeds a gRPC stream from it on a scoped thread.
#[derive(Debug)]
pub struct BorrowedUploadWriter<'a> {
    head: Option<pb::JobUpload>,
    inputs: Option<(MatrixView<'a, i8>, MatrixView<'a, i8>)>,
    operand: Operand,
    next_row: usize,
}

impl<'a> BorrowedUploadWriter<'a> {
    /// The upload of `spec` signed with `signature`, with `inputs` if given.
    pub fn new(
        spec: &JobSpec,
        signature: &Signature,
        inputs: Option<(MatrixView<'a, i8>, MatrixView<'a, i8>)>,
    ) -> Self {
        let head = pb::SignedSpec { spec: Some(spec.into()), consumer_signature: signature.0.to_vec() };
        Self { head: Some(pb::JobUpload { part: Some(Part::Spec(head)) }), inputs, operand: Operand::A, next_row: 0 }
    }
}

impl Iterator for BorrowedUploadWriter<'_> {
    type Item = pb::JobUpload;

    fn next(&mut self) -> Option<pb::JobUpload> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        next_rows_message(self.inputs?, &mut self.operand, &mut self.next_row)
    }
}

/// The first message of an upload, decoded, with the consumer's signature verified.
#[derive(Debug, Clone)]
pub struct UploadHead {
    /// The spec.
    pub spec: JobSpec,
    /// Its consumer's signature (verified).
    pub consumer_signature: Signature,
}

impl UploadHead {
    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.spec.job_id()
    }

    /// Bytes of `A` and `B` together (`m·k + k·n`).
    pub fn input_bytes(&self) -> u64 {
        let s = &self.spec;
        s.m.saturating_mul(s.k).saturating_add(s.k.saturating_mul(s.n))
    }

    /// Whether an `OpenJob` for this spec carries the inputs (full mode) or not.
    pub fn verifier_takes_inputs(&self) -> bool {
        self.spec.policy.mode == VerificationMode::Full
    }
}

/// Reads the first message of an upload: decodes the spec, then checks the consumer's
/// signature.
pub fn read_upload_head(message: pb::JobUpload) -> Result<UploadHead, SessionError> {
    let Some(Part::Spec(head)) = message.part else {
        return Err(SessionError::invalid("spec", "the upload must start with the signed spec"));
    };
    let (spec, consumer_signature) = read_signed_spec(head.spec.as_ref(), &head.consumer_signature)?;
    verify_spec_signature(&spec, &consumer_signature)
        .map_err(|source| SessionError::Signature { field: "consumer_signature", source })?;
    Ok(UploadHead { spec, consumer_signature })
}

/// Reads the rows of an upload into `A` and `B`, refusing the first message out of order:
/// `A`'s rows in order, then `B`'s, whole rows, no more than the spec's dimensions. Each
/// matrix is allocated once, at the spec's (validated) size, when its first rows arrive.
#[derive(Debug)]
pub struct InputsReader {
    dims: [(usize, usize); 2],
    data: [Vec<i8>; 2],
    rows: [usize; 2],
}

impl InputsReader {
    /// Starts reading the inputs of `head`'s spec.
    pub fn new(head: &UploadHead) -> Self {
        let s = &head.spec;
        // A validated spec's dimensions fit in usize (Tiling checked them).
        let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
        Self { dims: [(m, k), (k, n)], data: [Vec::new(), Vec::new()], rows: [0, 0] }
    }

    /// Whether every row of `A` and `B` has arrived.
    pub fn is_complete(&self) -> bool {
        self.rows[0] == self.dims[0].0 && self.rows[1] == self.dims[1].0
    }

    /// Takes the next message.
    pub fn push(&mut self, message: pb::JobUpload) -> Result<(), SessionError> {
        let rows = match message.part {
            Some(Part::Rows(rows)) => rows,
            Some(Part::Spec(_)) => return Err(SessionError::invalid("spec", "a second spec in one upload")),
            None => return Err(SessionError::invalid("part", "missing")),
        };
        let which = match pb::Operand::try_from(rows.operand) {
            Ok(pb::Operand::A) => 0,
            Ok(pb::Operand::B) if self.rows[0] == self.dims[0].0 => 1,
            Ok(pb::Operand::B) => return Err(SessionError::invalid("rows.operand", "B before all of A")),
            _ => return Err(SessionError::invalid("rows.operand", "must be A or B")),
        };
        let (total_rows, cols) = self.dims[which];
        if rows.first_row != self.rows[which] as u64 {
            let expected = self.rows[which];
            return Err(SessionError::invalid("rows.first_row", format!("{}, expected {expected}", rows.first_row)));
        }
        let len = rows.values.len();
        if len == 0 || len > UPLOAD_CHUNK_BYTES.max(cols) || !len.is_multiple_of(cols.max(1)) {
            return Err(SessionError::invalid("rows.values", format!("{len} bytes: not whole rows of {cols}")));
        }
        let count = len / cols.max(1);
        if self.rows[which] + count > total_rows {
            return Err(SessionError::invalid("rows.values", format!("more than the spec's {total_rows} rows")));
        }
        let data = &mut self.data[which];
        if data.capacity() == 0 {
            data.reserve_exact(total_rows * cols);
        }
        data.extend(rows.values.iter().map(|v| *v as i8));
        self.rows[which] += count;
        Ok(())
    }

    /// `A` and `B`, once every row arrived.
    pub fn finish(self) -> Result<(MatrixI8, MatrixI8), SessionError> {
        if !self.is_complete() {
            let [(m, _), (k, _)] = self.dims;
            let reason =
                format!("the upload ended after {} of {m} rows of A and {} of {k} of B", self.rows[0], self.rows[1]);
            return Err(SessionError::invalid("rows", reason));
        }
        let [a, b] = self.data;
        let [(m, k), (_, n)] = self.dims;
        let a = MatrixI8::from_vec(m, k, a).map_err(|e| SessionError::invalid("rows", e.to_string()))?;
        let b = MatrixI8::from_vec(k, n, b).map_err(|e| SessionError::invalid("rows", e.to_string()))?;
        Ok((a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::random_i8;
    use crate::spec::example_spec;

    #[test]
    fn the_borrowed_writer_sends_what_the_owned_writer_sends() {
        // B takes three messages (41, 41 and 18 rows of 100 000 bytes), the last one short.
        let (a, b) = (random_i8(3, 100, 1).unwrap(), random_i8(100, 100_000, 2).unwrap());
        let (spec, signature) = (example_spec(), Signature([4; 64]));
        let owned: Vec<_> =
            UploadWriter::new(&spec, &signature, Some((Arc::new(a.clone()), Arc::new(b.clone())))).collect();
        let borrowed: Vec<_> = BorrowedUploadWriter::new(&spec, &signature, Some((a.view(), b.view()))).collect();
        assert_eq!(owned.len(), 1 + 1 + 3, "the spec, A in one message, B in three");
        assert_eq!(borrowed, owned);
        let spec_only: Vec<_> = BorrowedUploadWriter::new(&spec, &signature, None).collect();
        assert_eq!(spec_only, owned[..1]);
    }
}
