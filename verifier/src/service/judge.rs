//! The checks of one authenticated response (CPU-bound: run on a blocking thread).

use matproof_circuits::PinnedVerifyingKey;
use matproof_protocol::commit::{a_digests, b_digests, c_tree, digest_tree};
use matproof_protocol::fraud::FraudProof;
use matproof_protocol::freivalds::{self, Dims, FreivaldsError};
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::merkle::Digest;
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

/// Parses a consumer's `.npy` input and checks its shape.
pub(crate) fn parse_input(bytes: &[u8], rows: u64, cols: u64) -> Result<MatrixI8, String> {
    let matrix = npy::read_matrix::<i8, _>(&mut &bytes[..]).map_err(|e| e.to_string())?;
    if matrix.rows() as u64 != rows || matrix.cols() as u64 != cols {
        return Err(format!("shape {}x{}, the spec says {rows}x{cols}", matrix.rows(), matrix.cols()));
    }
    Ok(matrix)
}

/// Checks full-mode inputs against the spec's `R_A`, `R_B`: `Err((field, reason))`.
pub(crate) fn check_inputs(spec: &JobSpec, a_npy: &[u8], b_npy: &[u8]) -> Result<(), (&'static str, String)> {
    let tiling = spec.tiling().map_err(|e| ("spec", e.to_string()))?;
    let a = parse_input(a_npy, spec.m, spec.k).map_err(|e| ("a_npy", e))?;
    let b = parse_input(b_npy, spec.k, spec.n).map_err(|e| ("b_npy", e))?;
    let (da, db) = rayon_join(|| a_digests(&tiling, &a), || b_digests(&tiling, &b));
    let r_a = digest_tree(&da.map_err(|e| ("a_npy", e.to_string()))?).root();
    let r_b = digest_tree(&db.map_err(|e| ("b_npy", e.to_string()))?).root();
    if r_a != spec.r_a {
        return Err(("a_npy", "its commitment does not match spec.r_a".into()));
    }
    if r_b != spec.r_b {
        return Err(("b_npy", "its commitment does not match spec.r_b".into()));
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
    pub(crate) r_c: Digest,
    pub(crate) challenge: Challenge,
    /// Full mode: all of `C`, row-major (the stream carried exactly `m` rows).
    pub(crate) c_rows: Option<Vec<i32>>,
    pub(crate) openings: Vec<TileOpening>,
    /// Full mode: the consumer's `A`, `B` as `.npy` bytes.
    pub(crate) inputs: Option<(Vec<u8>, Vec<u8>)>,
}

/// Full mode: `R_C` of the streamed `C`, Freivalds (a fraud proof on failure); both modes:
/// the sampled tiles with their proofs.
pub(crate) fn judge(response: &Response, key: &PinnedVerifyingKey) -> Judgement {
    let spec = &response.spec;
    if spec.policy.mode == VerificationMode::Full {
        match full_checks(response) {
            Ok(()) => {}
            Err(j) => return *j,
        }
    }
    match check_sampled_tiles(spec, &response.r_c, &response.challenge, &response.openings, key) {
        Ok(_) => Judgement { verdict: Verdict::Approved, reason: APPROVED_REASON.into(), fraud_proof: None },
        Err(e) => *Judgement::reject(format!("sampled tiles: {e}")),
    }
}

fn full_checks(response: &Response) -> Result<(), Box<Judgement>> {
    let spec = &response.spec;
    let tiling = spec.tiling().map_err(|e| Judgement::reject(format!("spec: {e}")))?;
    let Some((a_npy, b_npy)) = &response.inputs else {
        return Err(Judgement::reject("full mode: the node holds no A, B for this job"));
    };
    let a = parse_input(a_npy, spec.m, spec.k).map_err(|e| Judgement::reject(format!("stored A: {e}")))?;
    let b = parse_input(b_npy, spec.k, spec.n).map_err(|e| Judgement::reject(format!("stored B: {e}")))?;
    let Some(rows) = &response.c_rows else {
        return Err(Judgement::reject("full mode: no C streamed"));
    };
    let c = MatrixI32::from_vec(tiling.m, tiling.n, rows.clone())
        .map_err(|e| Judgement::reject(format!("streamed C: {e}")))?;
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
