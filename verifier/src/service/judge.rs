//! The checks of one authenticated response (CPU-bound: run on a blocking thread).

use matproof_circuits::PinnedVerifyingKey;
use matproof_protocol::commit::{a_input_tree, b_input_tree};
use matproof_protocol::fraud::FraudProof;
use matproof_protocol::freivalds::{self, Dims, FreivaldsError};
use matproof_protocol::ids::MerkleRoot;
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::opening::TileOpening;
use matproof_protocol::phase::phase;
use matproof_protocol::receipt::Verdict;
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::transcript::Challenge;

use super::metrics::NodeMetrics;
use crate::fraud::build_fraud_proof;
use crate::tiles::check_sampled_tiles;

/// The reason an approved verdict carries.
pub(crate) const APPROVED_REASON: &str = "all checks passed";

/// What the checks decided.
pub(crate) struct Judgement {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
    pub(crate) fraud_proof: Option<FraudProof>,
}

impl Judgement {
    fn reject(reason: impl Into<String>) -> Box<Self> {
        Box::new(Judgement { verdict: Verdict::Rejected, reason: reason.into(), fraud_proof: None })
    }
}

/// Why a consumer's input is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    /// The spec's tiling cannot hold it.
    #[error(transparent)]
    Tiling(#[from] matproof_protocol::tiling::TilingError),
    /// The spec itself is out of range.
    #[error(transparent)]
    Spec(#[from] matproof_protocol::spec::SpecError),
    /// Its recomputed root is not the spec's.
    #[error("its commitment ({scheme}) does not match spec.{commitment}")]
    Commitment { commitment: &'static str, scheme: &'static str },
}

/// An input refused, with the upload part it came in.
#[derive(Debug, thiserror::Error)]
#[error("invalid field {field}: {source}")]
pub(crate) struct InputFieldError {
    /// `rows (A)`, `rows (B)` or `spec`.
    pub(crate) field: &'static str,
    /// Why.
    #[source]
    pub(crate) source: InputError,
}

fn in_field(field: &'static str) -> impl Fn(InputError) -> InputFieldError {
    move |source| InputFieldError { field, source }
}

/// A matrix's entries as bytes (i8 two's complement), in place: what the node stores.
pub(crate) fn matrix_bytes(matrix: MatrixI8) -> Vec<u8> {
    matrix.into_vec().into_iter().map(|v| v as u8).collect()
}

/// Stored bytes back as a `rows×cols` matrix, in place.
fn stored_matrix(what: &str, bytes: Vec<u8>, rows: u64, cols: u64) -> Result<MatrixI8, Box<Judgement>> {
    let values: Vec<i8> = bytes.into_iter().map(|v| v as i8).collect();
    MatrixI8::from_vec(rows as usize, cols as usize, values)
        .map_err(|e| Judgement::reject(format!("stored {what}: {e}")))
}

/// Checks full-mode inputs against the spec's `R_A`, `R_B` (under its input scheme).
pub(crate) fn check_inputs(spec: &JobSpec, a: &MatrixI8, b: &MatrixI8) -> Result<(), InputFieldError> {
    let tiling = spec.tiling().map_err(|e| in_field("spec")(e.into()))?;
    let scheme = spec.policy.input_scheme;
    let (r_a, r_b) = rayon_join(|| a_input_tree(scheme, &tiling, a), || b_input_tree(scheme, &tiling, b));
    let r_a = r_a.map_err(|e| in_field("rows (A)")(e.into()))?.root();
    let r_b = r_b.map_err(|e| in_field("rows (B)")(e.into()))?.root();
    if r_a != spec.r_a {
        return Err(in_field("rows (A)")(InputError::Commitment { commitment: "r_a", scheme: scheme.as_str() }));
    }
    if r_b != spec.r_b {
        return Err(in_field("rows (B)")(InputError::Commitment { commitment: "r_b", scheme: scheme.as_str() }));
    }
    Ok(())
}

fn rayon_join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let hb = s.spawn(b);
        let ra = a();
        (ra, hb.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// Everything the checks need.
pub(crate) struct Response {
    pub(crate) spec: JobSpec,
    pub(crate) r_c: MerkleRoot,
    /// Full mode: the `R_C` of the streamed `C`, hashed as it arrived.
    pub(crate) streamed_r_c: Option<MerkleRoot>,
    pub(crate) challenge: Challenge,
    /// Full mode: all of `C`, row-major (the stream carried exactly `m` rows).
    pub(crate) c_rows: Option<Vec<i32>>,
    pub(crate) openings: Vec<TileOpening>,
    /// Full mode: the consumer's `A`, `B` as stored (bytes, row-major).
    pub(crate) inputs: Option<(Vec<u8>, Vec<u8>)>,
}

/// Full mode: `R_C` of the streamed `C`, Freivalds (a fraud proof on failure); both modes:
/// the sampled tiles with their proofs.
pub(crate) fn judge(mut response: Response, key: Option<&PinnedVerifyingKey>, metrics: &NodeMetrics) -> Judgement {
    if response.spec.policy.mode == VerificationMode::Full {
        // The streamed C moves into the check: the node never holds two copies of it.
        let rows = response.c_rows.take();
        match full_checks(&mut response, rows, metrics) {
            Ok(()) => {}
            Err(j) => return *j,
        }
    }
    let approved = || Judgement { verdict: Verdict::Approved, reason: APPROVED_REASON.into(), fraud_proof: None };
    // The reader took exactly `samples` openings: none here means nothing to prove.
    if !response.spec.needs_proofs() {
        return approved();
    }
    let Some(key) = key else {
        return *Judgement::reject("the job asks for tile proofs and this node holds no key for them");
    };
    let start = std::time::Instant::now();
    let checked = check_sampled_tiles(&response.spec, &response.r_c, &response.challenge, &response.openings, key);
    metrics.proof_check_seconds.observe(start.elapsed());
    metrics.proofs_checked.add(response.openings.len() as u64);
    match checked {
        Ok(_) => approved(),
        Err(e) => *Judgement::reject(format!("sampled tiles: {e}")),
    }
}

fn full_checks(response: &mut Response, c_rows: Option<Vec<i32>>, metrics: &NodeMetrics) -> Result<(), Box<Judgement>> {
    let Some((a_bytes, b_bytes)) = response.inputs.take() else {
        return Err(Judgement::reject("full mode: the node holds no A, B for this job"));
    };
    let spec = &response.spec;
    let tiling = spec.tiling().map_err(|e| Judgement::reject(format!("spec: {e}")))?;
    let a = stored_matrix("A", a_bytes, spec.m, spec.k)?;
    let b = stored_matrix("B", b_bytes, spec.k, spec.n)?;
    let Some(rows) = c_rows else {
        return Err(Judgement::reject("full mode: no C streamed"));
    };
    let c = MatrixI32::from_vec(tiling.m, tiling.n, rows).map_err(|e| Judgement::reject(format!("streamed C: {e}")))?;
    // The node hashed `R_C` as the rows arrived (`rpc::ArrivingCTree`).
    let Some(streamed_r_c) = response.streamed_r_c else {
        return Err(Judgement::reject("full mode: no R_C of the streamed C"));
    };
    if streamed_r_c != response.r_c {
        return Err(Judgement::reject("the streamed C does not match the committed R_C"));
    }
    let vectors = response
        .challenge
        .freivalds_vectors(spec.policy.freivalds_rounds as usize, tiling.n)
        .map_err(|e| Judgement::reject(format!("challenge: {e}")))?;
    let dims = Dims { m: tiling.m, k: tiling.k, n: tiling.n };
    let start = std::time::Instant::now();
    let checked = freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), dims, &vectors);
    metrics.freivalds_seconds.observe(start.elapsed());
    phase("verifier.freivalds", start, (a.as_slice().len() + b.as_slice().len() + 4 * c.as_slice().len()) as u64);
    match checked {
        Ok(()) => Ok(()),
        Err(FreivaldsError::Mismatch { row, .. }) => {
            let reason = format!("Freivalds check failed on row {row}");
            match build_fraud_proof(spec, &a, &b, &c, row) {
                Ok(proof) => Err(Box::new(Judgement {
                    verdict: Verdict::Rejected,
                    reason: format!("{reason}: fraud proven at ({}, {})", proof.row, proof.col),
                    fraud_proof: Some(proof),
                })),
                Err(e) => Err(Judgement::reject(format!("{reason} (no fraud proof: {e})"))),
            }
        }
        Err(e) => Err(Judgement::reject(format!("Freivalds: {e}"))),
    }
}
