//! The package's calls in plain Rust, over borrowed matrices: what the PyO3 layer
//! ([`crate::py`], feature `python`) wraps with numpy conversion, the GIL released and
//! Python exceptions. Kept free of PyO3 so `cargo test` checks it without a Python.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use matproof_circuits::TileVerifyingKey;
use matproof_circuits::keys::KeyFileError;
use matproof_client::{
    ClientError, IdentityFileError, JobOptions, JobTerms, SubmittedJob, consumer_spec, load_or_create_identity,
};
use matproof_protocol::identity::{Identity, PublicKey, Signature};
use matproof_protocol::ids::{IdError, JobId, MerkleRoot, VkHash};
use matproof_protocol::matrix::{MatrixError, MatrixI8, MatrixI32, MatrixView};
use matproof_protocol::receipt::Receipt;
use matproof_protocol::spec::{InputScheme, JobSpec, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling, TilingError};
use matproof_protocol::wire::pb;
use matproof_verifier::{AuditData, AuditError, AuditKeys, AuditReport, audit_bytes};
use prost::Message;

/// Why a call of the package failed; the PyO3 layer maps each to an exception class.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An input is not a matrix the call takes (its shape, its length, its layout).
    #[error("{what}: {source}")]
    Matrix {
        /// Which argument (`a`, `b`, `c`).
        what: &'static str,
        /// Why.
        #[source]
        source: MatrixError,
    },
    /// An argument is out of range or unknown (named in the message).
    #[error("{what} {given:?}: {expected}")]
    Argument {
        /// Which argument.
        what: &'static str,
        /// What was given.
        given: String,
        /// What it must be.
        expected: &'static str,
    },
    /// The job's shape does not fit the tile and depth.
    #[error("job shape: {0}")]
    Tiling(#[from] TilingError),
    /// A public key is not 64 hex digits.
    #[error("{what} {text:?}: {source}")]
    PublicKey {
        /// Which argument.
        what: &'static str,
        /// The text given.
        text: String,
        /// Why.
        #[source]
        source: IdError,
    },
    /// A verifying key file cannot be read.
    #[error("verifying key {}: {source}", path.display())]
    VerifyingKey {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyFileError,
    },
    /// A job with tile proofs pins a verifying key: the caller must name its file.
    #[error("samples = {samples} needs vk=PATH, the tile circuit's verifying key (from `matproof setup`)")]
    VerifyingKeyNeeded {
        /// The samples asked for.
        samples: u32,
    },
    /// The identity file cannot be read or created.
    #[error(transparent)]
    Identity(#[from] IdentityFileError),
    /// The consumer's side of the job failed (a refusal, a broken stream, a result whose
    /// `R_C` is not the approved receipt's).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The job was run and rejected: the receipt says why, and there is no `C`.
    #[error("job {job_id} was rejected: {reason}")]
    Rejected {
        /// The job.
        job_id: JobId,
        /// The verdict's reason.
        reason: String,
        /// The receipt (protobuf bytes).
        receipt: Vec<u8>,
    },
    /// The receipt fails the audit.
    #[error("audit failed: {0}")]
    Audit(#[from] AuditError),
    /// The client's tokio runtime could not start.
    #[error("starting the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Borrows row-major `data` as a `rows × cols` matrix named `what` in errors.
pub fn view<'a, T: Copy>(
    what: &'static str,
    rows: usize,
    cols: usize,
    data: &'a [T],
) -> Result<MatrixView<'a, T>, ApiError> {
    MatrixView::new(rows, cols, data).map_err(|source| ApiError::Matrix { what, source })
}

/// The circuit shape from `tile = (tm, tn)` and `kc` (default `k`).
pub fn circuit_shape((tm, tn): (usize, usize), kc: Option<usize>, k: usize) -> CircuitShape {
    CircuitShape { tm, tn, kc: kc.unwrap_or(k) }
}

/// `R_A`, `R_B` of `a`, `b` under `scheme` for the tile and depth given.
pub fn commit(
    (a, b): (MatrixView<'_, i8>, MatrixView<'_, i8>),
    tile: (usize, usize),
    kc: Option<usize>,
    scheme: InputScheme,
) -> Result<(MerkleRoot, MerkleRoot), ApiError> {
    if a.cols() != b.rows() {
        let shapes = ClientError::Shapes { a_rows: a.rows(), a_cols: a.cols(), b_rows: b.rows(), b_cols: b.cols() };
        return Err(shapes.into());
    }
    let tiling = Tiling::new(a.rows(), a.cols(), b.cols(), circuit_shape(tile, kc, a.cols()))?;
    Ok(matproof_client::input_commitments(scheme, &tiling, a, b)?)
}

/// The input scheme named `text`.
pub fn input_scheme(text: &str) -> Result<InputScheme, ApiError> {
    text.parse().map_err(|_| ApiError::Argument {
        what: "scheme",
        given: text.to_string(),
        expected: "expected \"poseidon\" or \"sha256\"",
    })
}

/// Parses a public key argument.
pub fn public_key(what: &'static str, text: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_hex(text).map_err(|source| ApiError::PublicKey { what, text: text.to_string(), source })
}

/// What a consumer chooses for one job, as the Python keywords give it.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// The provider's public key.
    pub provider: PublicKey,
    /// `(tm, tn)`.
    pub tile: (usize, usize),
    /// Circuit depth (default `k`).
    pub kc: Option<usize>,
    /// The policy's choices.
    pub options: JobOptions,
    /// The verifying key file (jobs with tile proofs).
    pub vk: Option<PathBuf>,
    /// Price.
    pub price: u64,
    /// Stake slashed on a proven fraud.
    pub slash_amount: u64,
}

impl JobRequest {
    /// The terms, for a job whose inner dimension is `k`.
    pub fn terms(&self, k: usize) -> Result<JobTerms, ApiError> {
        let vk_hash = match (&self.vk, self.options.samples) {
            (_, 0) => VkHash([0; 32]),
            (Some(path), _) => read_verifying_key(path)?.hash(),
            (None, samples) => return Err(ApiError::VerifyingKeyNeeded { samples }),
        };
        Ok(JobTerms {
            provider: self.provider,
            shape: circuit_shape(self.tile, self.kc, k),
            vk_hash,
            policy: self.options.policy(SystemTime::now())?,
            price: self.price,
            slash_amount: self.slash_amount,
        })
    }
}

fn read_verifying_key(path: &Path) -> Result<TileVerifyingKey, ApiError> {
    TileVerifyingKey::read(path).map_err(|source| ApiError::VerifyingKey { path: path.to_path_buf(), source })
}

/// The policy options from the Python keywords (`mode`, `scheme` by name).
pub fn job_options(
    mode: &str,
    samples: u32,
    scheme: Option<&str>,
    (freivalds_rounds, quorum, target_fraud_ppm): (u32, u32, u32),
    deadline_secs: u64,
) -> Result<JobOptions, ApiError> {
    let input_scheme = scheme.map(input_scheme).transpose()?;
    Ok(JobOptions {
        mode: matproof_client::parse_mode(mode)?,
        samples,
        input_scheme,
        freivalds_rounds,
        quorum,
        target_fraud_ppm,
        deadline: Duration::from_secs(deadline_secs),
    })
}

/// A job opened on a verifier: the signed spec, kept to submit it.
#[derive(Debug, Clone)]
pub struct OpenedJob {
    /// The spec.
    pub spec: JobSpec,
    /// The consumer's signature over it.
    pub signature: Signature,
}

/// What a submitted, approved job gives back.
#[derive(Debug)]
pub struct CheckedJob {
    /// The job.
    pub job_id: JobId,
    /// `C`: it arrived whole and its `R_C` is the approved receipt's.
    pub c: MatrixI32,
    /// The receipt, protobuf bytes as the verifier signed them.
    pub receipt: Vec<u8>,
}

/// A consumer: its identity, its verifier node and the runtime its gRPC calls run on.
#[derive(Debug)]
pub struct Consumer {
    runtime: tokio::runtime::Runtime,
    identity: Identity,
    verifier_url: String,
}

impl Consumer {
    /// A consumer of the node at `verifier_url`, its identity read from (or created in)
    /// `identity_path`.
    pub fn new(verifier_url: &str, identity_path: &Path) -> Result<Self, ApiError> {
        let (identity, _) = load_or_create_identity(identity_path)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ApiError::Runtime)?;
        Ok(Self { runtime, identity, verifier_url: verifier_url.to_string() })
    }

    /// The consumer's public key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public_key()
    }

    /// The verifier node's URL.
    pub fn verifier_url(&self) -> &str {
        &self.verifier_url
    }

    /// Commits to `a`, `b`, signs the spec and opens the job on the verifier (uploading `A`,
    /// `B` in full mode, straight from the borrowed buffers).
    pub fn open_job(
        &self,
        (a, b): (MatrixView<'_, i8>, MatrixView<'_, i8>),
        request: &JobRequest,
    ) -> Result<OpenedJob, ApiError> {
        let terms = request.terms(a.cols())?;
        let (spec, signature) = consumer_spec(&self.identity, &terms, a, b)?;
        matproof_client::open_job_borrowed(&self.runtime, &self.verifier_url, (&spec, &signature), (a, b))?;
        Ok(OpenedJob { spec, signature })
    }

    /// Submits an opened job to the sidecar at `sidecar_url` and receives its result: `C`
    /// checked against the approved receipt's `R_C`, or [`ApiError::Rejected`].
    pub fn submit(
        &self,
        sidecar_url: &str,
        job: &OpenedJob,
        (a, b): (MatrixView<'_, i8>, MatrixView<'_, i8>),
    ) -> Result<CheckedJob, ApiError> {
        let inputs = (a, b);
        let spec = (&job.spec, &job.signature);
        let submitted = matproof_client::submit_job_borrowed(&self.runtime, sidecar_url, spec, inputs)?;
        checked_job(submitted)
    }

    /// Where a job stands on the verifier.
    pub fn status(&self, job_id: &JobId) -> Result<pb::JobStatus, ApiError> {
        Ok(self.runtime.block_on(matproof_client::job_status(&self.verifier_url, job_id))?)
    }

    /// A job's receipt from the verifier, protobuf bytes.
    pub fn receipt(&self, job_id: &JobId) -> Result<Vec<u8>, ApiError> {
        let receipt = self.runtime.block_on(matproof_client::fetch_receipt(&self.verifier_url, job_id))?;
        Ok(receipt.encode_to_vec())
    }
}

/// A submitted job's result: `C` if approved, else the rejection with its receipt.
fn checked_job(submitted: SubmittedJob) -> Result<CheckedJob, ApiError> {
    let receipt = submitted.receipt.encode_to_vec();
    match submitted.c {
        Some(c) if submitted.approved => Ok(CheckedJob { job_id: submitted.job_id, c, receipt }),
        _ => {
            let reason = Receipt::try_from(&submitted.receipt)
                .ok()
                .and_then(|r| r.verdicts.first().map(|v| v.reason.clone()))
                .unwrap_or_default();
            Err(ApiError::Rejected { job_id: submitted.job_id, reason, receipt })
        }
    }
}

/// The data an auditor may hold: `A`, `B` (and `C`), copied into owned matrices (the audit
/// library keeps them).
pub fn audit_data(
    a: MatrixView<'_, i8>,
    b: MatrixView<'_, i8>,
    c: Option<MatrixView<'_, i32>>,
) -> Result<AuditData, ApiError> {
    let owned_i8 = |what, m: MatrixView<'_, i8>| {
        MatrixI8::from_vec(m.rows(), m.cols(), m.as_slice().to_vec())
            .map_err(|source| ApiError::Matrix { what, source })
    };
    let c = c
        .map(|c| MatrixI32::from_vec(c.rows(), c.cols(), c.as_slice().to_vec()))
        .transpose()
        .map_err(|source| ApiError::Matrix { what: "c", source })?;
    Ok(AuditData { a: owned_i8("a", a)?, b: owned_i8("b", b)?, c })
}

/// Audits `receipt` offline: with the verifying key file `vk` (needed when the job has tile
/// proofs), the trusted verifier keys (empty: any signer) and the data, if given.
pub fn audit(
    receipt: &[u8],
    vk: Option<&Path>,
    trusted: &[PublicKey],
    data: Option<&AuditData>,
) -> Result<AuditReport, ApiError> {
    let verifying_keys = vk.map(read_verifying_key).transpose()?.into_iter().collect();
    let mut keys = AuditKeys::new(verifying_keys);
    if !trusted.is_empty() {
        keys = keys.with_trusted_verifiers(trusted.iter().copied());
    }
    Ok(audit_bytes(receipt, &keys, data)?)
}

/// The name Python shows for a mode.
pub fn mode_name(mode: VerificationMode) -> &'static str {
    match mode {
        VerificationMode::Full => "full",
        VerificationMode::Succinct => "succinct",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matproof_protocol::commit::input_roots;
    use matproof_protocol::matrix::random_i8;

    #[test]
    fn commit_over_views_is_the_protocol_commitment() {
        let (a, b) = (random_i8(9, 12, 1).unwrap(), random_i8(12, 5, 2).unwrap());
        for scheme in [InputScheme::Poseidon, InputScheme::Sha256] {
            let tiling = Tiling::new(9, 12, 5, CircuitShape { tm: 4, tn: 2, kc: 16 }).unwrap();
            let expected = input_roots(scheme, &tiling, &a, &b).unwrap();
            assert_eq!(commit((a.view(), b.view()), (4, 2), Some(16), scheme).unwrap(), expected);
        }
        let err = commit((a.view(), a.view()), (4, 4), None, InputScheme::Sha256).unwrap_err();
        assert!(err.to_string().contains("A is 9×12 but B is 9×12"), "{err}");
    }

    #[test]
    fn views_and_arguments_name_their_problem() {
        let err = view("a", 2, 3, &[0i8; 5]).unwrap_err();
        assert!(err.to_string().starts_with("a: matrix data has 5 elements but the shape 2×3 needs 6"), "{err}");
        let err = job_options("full", 0, Some("blake3"), (2, 1, 10_000), 60).unwrap_err();
        assert!(err.to_string().contains("blake3"), "{err}");
        let err = public_key("provider", "abc").unwrap_err();
        assert!(err.to_string().starts_with("provider \"abc\""), "{err}");
        let request = JobRequest {
            provider: PublicKey([1; 32]),
            tile: (4, 4),
            kc: None,
            options: JobOptions { samples: 2, ..JobOptions::default() },
            vk: None,
            price: 1,
            slash_amount: 0,
        };
        assert!(matches!(request.terms(8), Err(ApiError::VerifyingKeyNeeded { samples: 2 })));
    }

    #[test]
    fn a_receipt_that_does_not_decode_fails_the_audit() {
        let err = audit(b"not a receipt", None, &[], None).unwrap_err();
        assert!(matches!(err, ApiError::Audit(AuditError::Decode(_))), "{err}");
    }
}
