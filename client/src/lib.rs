//! The consumer's side of a matproof job (DESIGN §3–4): commit to `A` and `B`, build and
//! sign the job spec, open the job on a verifier node, submit it to the provider's sidecar,
//! receive `C` checked against the approved receipt's `R_C` (and, optionally, check it with
//! Freivalds), and read back a job's status and receipt.
//!
//! The session's messages are built by `matproof_protocol::session`; this crate adds the
//! consumer's choices (the terms of a job, a fresh nonce) and the gRPC calls, with errors
//! that name the call and keep the status. The CLI (`matproof job open`, the demo) and the
//! Python package are built on it.
//!
//! ```no_run
//! # async fn run(consumer: matproof_protocol::Identity, terms: matproof_client::JobTerms,
//! #              a: matproof_protocol::MatrixI8, b: matproof_protocol::MatrixI8)
//! # -> Result<(), matproof_client::ClientError> {
//! use std::sync::Arc;
//! let (spec, signature) = matproof_client::consumer_spec(&consumer, &terms, &a, &b)?;
//! let inputs = (Arc::new(a), Arc::new(b));
//! let job_id = matproof_client::open_job("http://127.0.0.1:7001", &spec, &signature, &inputs).await?;
//! let submitted = matproof_client::submit_job("http://127.0.0.1:7002", &spec, &signature, &inputs).await?;
//! assert_eq!(submitted.job_id, job_id);
//! if let Some(c) = &submitted.c {
//!     // C's R_C is the approved receipt's already; Freivalds re-checks it against A, B.
//!     matproof_client::check_freivalds(&spec, &inputs.0, &inputs.1, c, 2)?;
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
pub mod files;
mod rpc;
pub mod terms;

pub use error::{ClientError, code_name};
pub use files::{IdentityFileError, load_or_create_identity};
pub use matproof_protocol::tls::{Peer, TlsError, TlsOptions, Transport};
pub use rpc::{
    SubmittedJob, connect, fetch_receipt, job_status, list_providers, open_job, open_job_borrowed, open_job_upload,
    provider_record, submit_job, submit_job_borrowed, submit_job_upload, with_borrowed_upload,
};
pub use terms::{JobOptions, input_scheme_for, parse_mode};

use matproof_protocol::commit::input_roots;
use matproof_protocol::freivalds::{self, Dims};
use matproof_protocol::identity::{Identity, PublicKey, Signature};
use matproof_protocol::ids::{MerkleRoot, Seed, VkHash};
use matproof_protocol::matrix::{MatrixI32, MatrixView};
use matproof_protocol::session::sign_spec;
use matproof_protocol::spec::InputScheme;
use matproof_protocol::spec::{JobSpec, Policy};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;

/// Bytes of the random nonce that makes otherwise identical jobs distinct.
pub const NONCE_BYTES: usize = 16;

/// What a consumer chooses for a job, beyond its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTerms {
    /// The provider's public key.
    pub provider: PublicKey,
    /// The circuit shape (`kc ≥ k`).
    pub shape: CircuitShape,
    /// The identity hash of the tile circuit's verifying key.
    pub vk_hash: VkHash,
    /// The checks demanded.
    pub policy: Policy,
    /// Price, in the ledger's smallest unit.
    pub price: u64,
    /// Stake slashed on a proven fraud.
    pub slash_amount: u64,
}

/// `R_A`, `R_B` of the consumer's data under `scheme`, computed in parallel.
pub fn input_commitments<'a, 'b>(
    scheme: InputScheme,
    tiling: &Tiling,
    a: impl Into<MatrixView<'a, i8>>,
    b: impl Into<MatrixView<'b, i8>>,
) -> Result<(MerkleRoot, MerkleRoot), ClientError> {
    Ok(input_roots(scheme, tiling, a, b)?)
}

/// The consumer's own Freivalds check of a received `C` against its `A`, `B` (`rounds`
/// rounds of fresh vectors from the OS CSPRNG: each lets a wrong `C` pass with probability
/// at most `1/(2^61 − 1)`).
pub fn check_freivalds<'a, 'b>(
    spec: &JobSpec,
    a: impl Into<MatrixView<'a, i8>>,
    b: impl Into<MatrixView<'b, i8>>,
    c: &MatrixI32,
    rounds: usize,
) -> Result<(), ClientError> {
    let (a, b) = (a.into(), b.into());
    let job_id = spec.job_id();
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|source| ClientError::Rng { source })?;
    let values = Challenge { job_id, r_c: MerkleRoot([0; 32]), seed: Seed(seed) };
    let vectors =
        values.freivalds_vectors(rounds.max(1), c.cols()).map_err(|source| ClientError::FreivaldsVectors { source })?;
    let dims = Dims { m: a.rows(), k: a.cols(), n: b.cols() };
    freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), dims, &vectors)
        .map_err(|source| ClientError::Freivalds { job_id, source })
}

/// The consumer's side of opening a job: commit to `A`, `B`, fill in the spec (a fresh
/// random nonce), validate it and sign it.
pub fn consumer_spec<'a, 'b>(
    consumer: &Identity,
    terms: &JobTerms,
    a: impl Into<MatrixView<'a, i8>>,
    b: impl Into<MatrixView<'b, i8>>,
) -> Result<(JobSpec, Signature), ClientError> {
    let (a, b) = (a.into(), b.into());
    if a.cols() != b.rows() {
        return Err(ClientError::Shapes { a_rows: a.rows(), a_cols: a.cols(), b_rows: b.rows(), b_cols: b.cols() });
    }
    let tiling = Tiling::new(a.rows(), a.cols(), b.cols(), terms.shape)?;
    let (r_a, r_b) = input_commitments(terms.policy.input_scheme, &tiling, a, b)?;
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|source| ClientError::Rng { source })?;
    let spec = JobSpec {
        m: a.rows() as u64,
        k: a.cols() as u64,
        n: b.cols() as u64,
        shape: terms.shape,
        r_a,
        r_b,
        vk_hash: terms.vk_hash,
        policy: terms.policy,
        price: terms.price,
        slash_amount: terms.slash_amount,
        consumer: consumer.public_key(),
        provider: terms.provider,
        nonce: nonce.to_vec(),
    };
    spec.validate()?;
    let signature = sign_spec(&spec, consumer);
    Ok((spec, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use matproof_protocol::matrix::random_i8;
    use matproof_protocol::session::verify_spec_signature;
    use matproof_protocol::spec::VerificationMode;

    fn terms() -> JobTerms {
        JobTerms {
            provider: Identity::from_seed([2; 32]).public_key(),
            shape: CircuitShape { tm: 2, tn: 2, kc: 8 },
            vk_hash: VkHash([3; 32]),
            policy: Policy {
                mode: VerificationMode::Full,
                input_scheme: matproof_protocol::spec::InputScheme::Poseidon,
                samples: 1,
                freivalds_rounds: 2,
                quorum: 1,
                target_fraud_ppm: 10_000,
                deadline_unix_ms: u64::MAX,
            },
            price: 10,
            slash_amount: 0,
        }
    }

    #[test]
    fn the_spec_commits_to_the_data_and_is_signed() {
        let consumer = Identity::from_seed([1; 32]);
        let (a, b) = (random_i8(5, 8, 1).unwrap(), random_i8(8, 3, 2).unwrap());
        let (spec, signature) = consumer_spec(&consumer, &terms(), &a, &b).unwrap();
        verify_spec_signature(&spec, &signature).unwrap();
        let tiling = spec.tiling().unwrap();
        assert_eq!(input_commitments(InputScheme::Poseidon, &tiling, &a, &b).unwrap(), (spec.r_a, spec.r_b));
        let (again, _) = consumer_spec(&consumer, &terms(), &a, &b).unwrap();
        assert_ne!(again.job_id(), spec.job_id(), "a fresh nonce each time");
    }

    #[test]
    fn bad_shapes_are_errors_naming_them() {
        let consumer = Identity::from_seed([1; 32]);
        let (a, b) = (random_i8(5, 8, 1).unwrap(), random_i8(7, 3, 2).unwrap());
        let err = consumer_spec(&consumer, &terms(), &a, &b).unwrap_err();
        assert!(matches!(err, ClientError::Shapes { a_cols: 8, b_rows: 7, .. }), "{err}");
        let (a, b) = (random_i8(5, 9, 1).unwrap(), random_i8(9, 3, 2).unwrap());
        assert!(matches!(consumer_spec(&consumer, &terms(), &a, &b), Err(ClientError::Tiling(_))));
    }
}
