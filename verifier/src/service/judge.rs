//! The checks of one authenticated response (CPU-bound: run on a blocking thread).

use matproof_circuits::PinnedVerifyingKey;
use matproof_protocol::commit::{a_digests, b_digests, c_tree, digest_tree};
use matproof_protocol::fraud::FraudProof;
use matproof_protocol::freivalds::{self, Dims, FreivaldsError};
use matproof_protocol::ids::MerkleRoot;
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::npy;
use matproof_protocol::opening::TileOpening;
use matproof_protocol::receipt::Verdict;
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::transcript::Challenge;

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
    /// Not a valid `i8` `.npy`.
    #[error(transparent)]
    Npy(#[from] npy::NpyError),
    /// Not the spec's shape.
    #[error("shape {rows}x{cols}, the spec says {expected_rows}x{expected_cols}")]
    Shape { rows: usize, cols: usize, expected_rows: u64, expected_cols: u64 },
    /// The spec's tiling cannot hold it.
    #[error(transparent)]
    Tiling(#[from] matproof_protocol::tiling::TilingError),
    /// The spec itself is out of range.
    #[error(transparent)]
    Spec(#[from] matproof_protocol::spec::SpecError),
    /// Its recomputed root is not the spec's.
    #[error("its commitment does not match spec.{commitment}")]
    Commitment { commitment: &'static str },
}

/// An input refused, with the request field it came in.
#[derive(Debug, thiserror::Error)]
#[error("invalid field {field}: {source}")]
pub(crate) struct InputFieldError {
    /// `a_npy`, `b_npy` or `spec`.
    pub(crate) field: &'static str,
    /// Why.
    #[source]
    pub(crate) source: InputError,
}

fn in_field(field: &'static str) -> impl Fn(InputError) -> InputFieldError {
    move |source| InputFieldError { field, source }
}

/// Parses a consumer's `.npy` input and checks its shape.
pub(crate) fn parse_input(bytes: &[u8], rows: u64, cols: u64) -> Result<MatrixI8, InputError> {
    let matrix = npy::read_matrix::<i8, _>(&mut &bytes[..])?;
    if matrix.rows() as u64 != rows || matrix.cols() as u64 != cols {
        return Err(InputError::Shape {
            rows: matrix.rows(),
            cols: matrix.cols(),
            expected_rows: rows,
            expected_cols: cols,
        });
    }
    Ok(matrix)
}

/// Checks full-mode inputs against the spec's `R_A`, `R_B`.
pub(crate) fn check_inputs(spec: &JobSpec, a_npy: &[u8], b_npy: &[u8]) -> Result<(), InputFieldError> {
    let tiling = spec.tiling().map_err(|e| in_field("spec")(e.into()))?;
    let a = parse_input(a_npy, spec.m, spec.k).map_err(in_field("a_npy"))?;
    let b = parse_input(b_npy, spec.k, spec.n).map_err(in_field("b_npy"))?;
    let (da, db) = rayon_join(|| a_digests(&tiling, &a), || b_digests(&tiling, &b));
    let r_a = digest_tree(&da.map_err(|e| in_field("a_npy")(e.into()))?).root();
    let r_b = digest_tree(&db.map_err(|e| in_field("b_npy")(e.into()))?).root();
    if r_a != spec.r_a {
        return Err(in_field("a_npy")(InputError::Commitment { commitment: "r_a" }));
    }
    if r_b != spec.r_b {
        return Err(in_field("b_npy")(InputError::Commitment { commitment: "r_b" }));
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
    pub(crate) challenge: Challenge,
    /// Full mode: all of `C`, row-major (the stream carried exactly `m` rows).
    pub(crate) c_rows: Option<Vec<i32>>,
    pub(crate) openings: Vec<TileOpening>,
    /// Full mode: the consumer's `A`, `B` as `.npy` bytes.
    pub(crate) inputs: Option<(Vec<u8>, Vec<u8>)>,
}

/// Full mode: `R_C` of the streamed `C`, Freivalds (a fraud proof on failure); both modes:
/// the sampled tiles with their proofs.
pub(crate) fn judge(mut response: Response, key: &PinnedVerifyingKey) -> Judgement {
    if response.spec.policy.mode == VerificationMode::Full {
        // The streamed C moves into the check: the node never holds two copies of it.
        let rows = response.c_rows.take();
        match full_checks(&response, rows) {
            Ok(()) => {}
            Err(j) => return *j,
        }
    }
    match check_sampled_tiles(&response.spec, &response.r_c, &response.challenge, &response.openings, key) {
        Ok(_) => Judgement { verdict: Verdict::Approved, reason: APPROVED_REASON.into(), fraud_proof: None },
        Err(e) => *Judgement::reject(format!("sampled tiles: {e}")),
    }
}

fn full_checks(response: &Response, c_rows: Option<Vec<i32>>) -> Result<(), Box<Judgement>> {
    let spec = &response.spec;
    let tiling = spec.tiling().map_err(|e| Judgement::reject(format!("spec: {e}")))?;
    let Some((a_npy, b_npy)) = &response.inputs else {
        return Err(Judgement::reject("full mode: the node holds no A, B for this job"));
    };
    let a = parse_input(a_npy, spec.m, spec.k).map_err(|e| Judgement::reject(format!("stored A: {e}")))?;
    let b = parse_input(b_npy, spec.k, spec.n).map_err(|e| Judgement::reject(format!("stored B: {e}")))?;
    let Some(rows) = c_rows else {
        return Err(Judgement::reject("full mode: no C streamed"));
    };
    let c = MatrixI32::from_vec(tiling.m, tiling.n, rows).map_err(|e| Judgement::reject(format!("streamed C: {e}")))?;
    let tree = c_tree(&tiling, &c).map_err(|e| Judgement::reject(format!("streamed C: {e}")))?;
    if tree.root() != response.r_c {
        return Err(Judgement::reject("the streamed C does not match the committed R_C"));
    }
    let vectors = response
        .challenge
        .freivalds_vectors(spec.policy.freivalds_rounds as usize, tiling.n)
        .map_err(|e| Judgement::reject(format!("challenge: {e}")))?;
    let dims = Dims { m: tiling.m, k: tiling.k, n: tiling.n };
    match freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), dims, &vectors) {
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
