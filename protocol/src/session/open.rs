//! Step 1: the consumer opens a job with its signed spec (and, in full mode, `A` and `B`).

use super::{SessionError, signature_field};
use crate::identity::{Identity, Signature, SignatureError, verify};
use crate::ids::JobId;
use crate::receipt::PURPOSE_JOB;
use crate::spec::{JobSpec, VerificationMode};
use crate::wire::{WireError, pb};

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

/// An `OpenJob` request as the consumer sends it: the spec, signed, and in full mode the
/// inputs as `.npy` bytes (`None` in succinct mode).
pub fn signed_open_job(
    spec: &JobSpec,
    signature: &Signature,
    inputs: Option<(Vec<u8>, Vec<u8>)>,
) -> pb::OpenJobRequest {
    let (a_npy, b_npy) = inputs.unwrap_or_default();
    pb::OpenJobRequest { spec: Some(spec.into()), consumer_signature: signature.0.to_vec(), a_npy, b_npy }
}

/// `A` and `B` as `.npy` bytes.
pub type InputBytes<'a> = (&'a [u8], &'a [u8]);

/// An `OpenJob` whose spec decoded and whose consumer signature verified.
#[derive(Debug, Clone)]
pub struct OpenJob {
    /// The spec.
    pub spec: JobSpec,
    /// Its consumer's signature (verified).
    pub consumer_signature: Signature,
    /// `A` as `.npy` bytes (full mode), else empty.
    pub a_npy: Vec<u8>,
    /// `B` as `.npy` bytes (full mode), else empty.
    pub b_npy: Vec<u8>,
}

impl OpenJob {
    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.spec.job_id()
    }

    /// The inputs the mode demands: both in full mode, none in succinct mode.
    pub fn inputs(&self) -> Result<Option<InputBytes<'_>>, SessionError> {
        match self.spec.policy.mode {
            VerificationMode::Full if self.a_npy.is_empty() || self.b_npy.is_empty() => {
                Err(SessionError::invalid("a_npy", "full mode needs A and B"))
            }
            VerificationMode::Full => Ok(Some((self.a_npy.as_slice(), self.b_npy.as_slice()))),
            VerificationMode::Succinct if !self.a_npy.is_empty() || !self.b_npy.is_empty() => {
                Err(SessionError::invalid("a_npy", "succinct mode takes no A, B"))
            }
            VerificationMode::Succinct => Ok(None),
        }
    }
}

/// Reads an `OpenJob` request: decodes the spec, then checks the consumer's signature.
pub fn read_open_job(request: pb::OpenJobRequest) -> Result<OpenJob, SessionError> {
    let (spec, consumer_signature) = read_signed_spec(request.spec.as_ref(), &request.consumer_signature)?;
    verify_spec_signature(&spec, &consumer_signature)
        .map_err(|source| SessionError::Signature { field: "consumer_signature", source })?;
    Ok(OpenJob { spec, consumer_signature, a_npy: request.a_npy, b_npy: request.b_npy })
}
