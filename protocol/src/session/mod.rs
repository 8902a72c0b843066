//! The job session (DESIGN §4, §8): typed builders and readers for each step, so that the
//! rules of the conversation — message order, byte budgets, what each signature covers, the
//! response digest — are written once, here, and the sidecar, the node, the client, the test
//! harness and the fuzz targets all go through them.
//!
//! ```text
//! consumer ──OpenJob(stream: spec, A, B)▶ verifier     open::{UploadWriter, read_upload_head, InputsReader}
//! provider ──Commit(job_id, R_C, signed)▶ verifier     commit::SignedCommit
//! provider ◀─Challenge(seed, signed)──── verifier      commit::read_challenge
//! provider ──Respond(stream)────────────▶ verifier     respond::{ResponseWriter, ResponseReader}
//! provider ◀─SignedVerdict────────────── verifier      commit::read_verdict
//! consumer ──SubmitJob(stream: spec, A, B)▶ sidecar    open::UploadWriter (the same upload)
//! consumer ◀─(stream: receipt, C, end)── sidecar       result::{ResultWriter, ResultReader}
//! ```
//!
//! Each reader returns a value only once everything it covers has been checked: a
//! [`respond::AuthenticatedResponse`] exists only after the provider's end signature over
//! the digest of every chunk has verified. Errors are [`SessionError`]s that name the field
//! at fault, so a service can answer `INVALID_ARGUMENT: <field>`, `RESOURCE_EXHAUSTED` or
//! `UNAUTHENTICATED` without string matching.

pub mod commit;
pub mod open;
pub mod respond;
pub mod result;

pub use commit::{SignedCommit, read_challenge, read_verdict};
pub use open::{
    BorrowedUploadWriter, InputsReader, Operand, SharedInputs, UPLOAD_CHUNK_BYTES, UploadHead, UploadWriter,
    read_signed_spec, read_upload_head, sign_spec, verify_spec_signature,
};
pub use respond::{
    AuthenticatedResponse, RESPONSE_CHUNK_BYTES, ReadProgress, ResponseExpectation, ResponseReader, ResponseWriter,
    chunk_job_id, extend_c_values, response_budget, rows_per_chunk,
};
pub use result::{CheckedResult, ResultReader, ResultWriter};

use crate::identity::SignatureError;
use crate::wire::WireError;

/// Why a session message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A field is malformed or out of order (gRPC `INVALID_ARGUMENT`, naming the field).
    #[error(transparent)]
    Invalid(#[from] WireError),
    /// The stream is larger than the job can need (gRPC `RESOURCE_EXHAUSTED`).
    #[error("response exceeds {budget_bytes} bytes for this job")]
    OverBudget {
        /// The job's bound on the whole stream.
        budget_bytes: u64,
    },
    /// A signature does not verify (gRPC `UNAUTHENTICATED`).
    #[error("{field}: {source}")]
    Signature {
        /// The signature's field, e.g. `end.provider_signature`.
        field: &'static str,
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// A signed answer is for another job or commitment, or from another signer than the
    /// session's.
    #[error("the {what} {reason}")]
    Mismatch {
        /// `challenge`, `verdict`.
        what: &'static str,
        /// How it differs.
        reason: &'static str,
    },
    /// The `C` a consumer received does not hash to the `R_C` its job was approved on.
    #[error("job {job_id}: the received C has R_C {received}, the approved receipt's is {approved}")]
    ResultMismatch {
        /// The job.
        job_id: crate::ids::JobId,
        /// `R_C` recomputed over the received `C`.
        received: crate::ids::MerkleRoot,
        /// `R_C` of the approved receipt.
        approved: crate::ids::MerkleRoot,
    },
    /// The spec is out of range.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
}

impl SessionError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SessionError::Invalid(WireError { field: field.into(), reason: reason.into() })
    }
}

/// A 64-byte signature field.
fn signature_field(field: &str, bytes: &[u8]) -> Result<crate::identity::Signature, WireError> {
    let array: [u8; 64] = bytes
        .try_into()
        .map_err(|_| WireError { field: field.into(), reason: format!("{} bytes, expected 64", bytes.len()) })?;
    Ok(crate::identity::Signature(array))
}
