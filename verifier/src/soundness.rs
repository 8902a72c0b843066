//! The bounds a receipt states (DESIGN §5), and how an auditor checks them
//! (docs/formats.md, "Check summary").
//!
//! The integers the bounds come from (mode, rounds, samples, tiles, the policy's fraction in
//! ppm) must equal the spec's exactly. The floating-point bounds are a function of those
//! integers whose last bits depend on how `pow` is computed (Rust's `powi` is not correctly
//! rounded, and another language's `pow` need not agree with it), so they are checked within
//! [`BOUND_RELATIVE_TOLERANCE`] of the formula, not bit for bit. The statement is words for
//! people and is not checked at all.

use matproof_protocol::receipt::CheckSummary;
use matproof_protocol::spec::{JobSpec, SpecError, VerificationMode};

/// Relative tolerance of a stated floating-point bound against its formula: far above the
/// error of any reasonable `pow` (`powi` is off by at most about `s` ulps, `s ≤ 4096`, i.e.
/// below `10^-12`), far below any difference that would change what a bound means.
pub const BOUND_RELATIVE_TOLERANCE: f64 = 1e-9;

/// Absolute slack below which two bounds are equal however they were computed (results
/// that underflow to subnormals or zero in one implementation and not in another).
pub const BOUND_ABSOLUTE_TOLERANCE: f64 = 1e-300;

/// `log2(r)` of the BN254 scalar field modulus `r` (docs/formats.md), for the tile identity
/// bound `(tm + tn)/r`.
pub const LOG2_SCALAR_FIELD_MODULUS: f64 = 253.596_691_355_002_15;

/// Whether a stated bound is within tolerance of the recomputed one:
/// `|stated − recomputed| ≤ 10^-9 · |recomputed| + 10^-300`.
pub fn bound_within_tolerance(stated: f64, recomputed: f64) -> bool {
    (stated - recomputed).abs() <= BOUND_RELATIVE_TOLERANCE * recomputed.abs() + BOUND_ABSOLUTE_TOLERANCE
}

/// A stated check summary that is not the one the spec implies.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("check summary field {field}: the receipt states {stated}, the spec implies {recomputed}")]
pub struct SummaryMismatch {
    /// The field that differs.
    pub field: &'static str,
    /// What the receipt states.
    pub stated: String,
    /// What [`check_summary`] gives.
    pub recomputed: String,
}

/// Checks a stated summary against the recomputed one: integers exactly, bounds within
/// tolerance, the statement not at all.
pub fn summary_matches(stated: &CheckSummary, recomputed: &CheckSummary) -> Result<(), SummaryMismatch> {
    let mismatch = |field, stated: String, recomputed: String| Err(SummaryMismatch { field, stated, recomputed });
    if stated.mode != recomputed.mode {
        return mismatch("mode", format!("{:?}", stated.mode), format!("{:?}", recomputed.mode));
    }
    for (field, s, r) in [
        ("freivalds_rounds", u64::from(stated.freivalds_rounds), u64::from(recomputed.freivalds_rounds)),
        ("samples", u64::from(stated.samples), u64::from(recomputed.samples)),
        ("tiles", stated.tiles, recomputed.tiles),
        ("target_fraud_ppm", u64::from(stated.target_fraud_ppm), u64::from(recomputed.target_fraud_ppm)),
    ] {
        if s != r {
            return mismatch(field, s.to_string(), r.to_string());
        }
    }
    for (field, s, r) in [
        ("escape_one_wrong_tile", stated.escape_one_wrong_tile, recomputed.escape_one_wrong_tile),
        ("escape_policy_fraction", stated.escape_policy_fraction, recomputed.escape_policy_fraction),
        ("policy_fraction", stated.policy_fraction, recomputed.policy_fraction),
    ] {
        if !bound_within_tolerance(s, r) {
            return mismatch(field, format!("{s:e}"), format!("{r:e}"));
        }
    }
    Ok(())
}

/// A cheater who corrupts a fraction `f` of the `T` tiles escapes `s` distinct uniform
/// samples with probability at most `(1 − f)^s` (sampling without replacement makes it
/// slightly smaller still; this is the stated, conservative figure).
pub fn sampling_escape_probability(fraction_wrong: f64, samples: u32) -> f64 {
    (1.0 - fraction_wrong.clamp(0.0, 1.0)).powi(samples as i32)
}

/// A wrong `C` passes `rounds` Freivalds rounds over `2^61 − 1` with probability at most
/// `2^(−61·rounds)`; returned as the exponent `61·rounds`.
pub fn freivalds_error_exponent(rounds: u32) -> u32 {
    61 * rounds
}

/// A wrong tile passes its identity check with probability at most `(tm + tn)/r`
/// (Schwartz–Zippel over `σ, ρ`): returned as `log2` of that bound, about `−245` for small
/// tiles.
pub fn tile_identity_error_log2(tm: usize, tn: usize) -> f64 {
    ((tm + tn) as f64).log2() - 253.6
}

/// The check summary a receipt for `spec` states: what a verifier runs under the spec's
/// policy and the bounds that follow. A function of the spec alone, so the verifier node
/// fills receipts with it and an auditor recomputes it and compares.
pub fn check_summary(spec: &JobSpec) -> Result<CheckSummary, SpecError> {
    let tiles = spec.tiling()?.tile_count();
    let samples = spec.policy.samples;
    let policy_fraction = f64::from(spec.policy.target_fraud_ppm) / 1e6;
    let escape_one_wrong_tile = sampling_escape_probability(1.0 / tiles as f64, samples);
    let escape_policy_fraction = sampling_escape_probability(policy_fraction, samples);
    let identity = tile_identity_error_log2(spec.shape.tm, spec.shape.tn);
    let (freivalds_rounds, freivalds_words) = match spec.policy.mode {
        VerificationMode::Full => {
            let rounds = spec.policy.freivalds_rounds;
            (
                rounds,
                format!(
                    "full mode: Freivalds, {rounds} rounds over 2^61-1 on all of C (a wrong C passes with probability \
                     <= 2^-{}); ",
                    freivalds_error_exponent(rounds)
                ),
            )
        }
        VerificationMode::Succinct => (0, "succinct mode: commitments only, no Freivalds; ".to_string()),
    };
    let statement = match samples {
        // Nothing sampled: the tile bounds are 1 (no tile is checked by proof); what binds C
        // is the full check alone. The sha256 input commitments carry no Poseidon digests.
        0 => format!(
            "{freivalds_words}no tiles sampled (samples = 0, sha256 input commitments): no tile proofs, so the \
             bound on C is Freivalds' alone, and only an auditor with A, B and C can re-check it"
        ),
        _ => format!(
            "{freivalds_words}{samples} of {tiles} tiles sampled, opened and proven with Groth16: a cheater with one \
             wrong tile escapes with probability <= {escape_one_wrong_tile:.6}, with {:.4}% of tiles wrong <= \
             {escape_policy_fraction:.6}; an opened wrong tile passes its proof's identity with probability <= \
             2^{identity:.1}",
            policy_fraction * 100.0
        ),
    };
    Ok(CheckSummary {
        mode: spec.policy.mode,
        freivalds_rounds,
        samples,
        tiles: tiles as u64,
        target_fraud_ppm: spec.policy.target_fraud_ppm,
        escape_one_wrong_tile,
        escape_policy_fraction,
        policy_fraction,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!((sampling_escape_probability(0.5, 4) - 0.0625).abs() < 1e-12);
        assert_eq!(sampling_escape_probability(0.0, 10), 1.0);
        assert_eq!(sampling_escape_probability(1.0, 1), 0.0);
        assert_eq!(freivalds_error_exponent(2), 122);
        assert!(tile_identity_error_log2(4, 4) < -250.0);
    }
}
