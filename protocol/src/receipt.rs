//! Receipts (DESIGN §6): everything an auditor needs to re-check a verifier's decision
//! offline, and the signed messages inside one.
//!
//! The signed bytes of each message are defined here (docs/formats.md restates them); the
//! protobuf form, which is what travels and what is stored on disk, is in [`crate::wire`].

use crate::fraud::FraudProof;
use crate::identity::{Identity, PublicKey, Signature, SignatureError, verify};
use crate::merkle::Digest;
use crate::opening::TileOpening;
use crate::spec::{JobSpec, VerificationMode};
use crate::transcript::Challenge;

/// The receipt format version this code writes and reads.
pub const RECEIPT_VERSION: u32 = 1;

/// Most verdicts (one per verifier of a quorum) in one receipt.
pub const MAX_VERDICTS: usize = 64;

/// Longest verdict reason, in bytes of UTF-8.
pub const MAX_REASON_BYTES: usize = 1024;

/// Longest check-summary statement, in bytes of UTF-8.
pub const MAX_STATEMENT_BYTES: usize = 4096;

/// Signature purpose of a consumer's job spec (over the canonical spec bytes).
pub const PURPOSE_JOB: &str = "job";
/// Signature purpose of a provider's commitment (over `job_id ‖ R_C`).
pub const PURPOSE_COMMIT: &str = "commit";
/// Signature purpose of a verifier's challenge (over `job_id ‖ R_C ‖ seed`).
pub const PURPOSE_CHALLENGE: &str = "challenge";
/// Signature purpose of the end of a provider's response (over `job_id ‖ R_C`).
pub const PURPOSE_RESPOND: &str = "respond";
/// Signature purpose of a verifier's verdict (over [`SignedVerdict::signing_bytes`]).
pub const PURPOSE_VERDICT: &str = "verdict";

/// `job_id ‖ R_C`: the bytes a provider signs to commit and to end its response.
pub fn job_commitment_bytes(job_id: &Digest, r_c: &Digest) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(job_id);
    out[32..].copy_from_slice(r_c);
    out
}

/// A verifier's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every check passed: the escrow is posted to the provider.
    Approved,
    /// A check failed: the escrow is voided back to the consumer.
    Rejected,
}

impl Verdict {
    /// Its byte in the signed encoding.
    pub fn code(self) -> u8 {
        match self {
            Verdict::Approved => 1,
            Verdict::Rejected => 2,
        }
    }

    /// The verdict with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Verdict::Approved),
            2 => Some(Verdict::Rejected),
            _ => None,
        }
    }

    /// `approved` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Rejected => "rejected",
        }
    }
}

/// A challenge with the signature of the verifier that chose it, so an auditor knows who
/// drew the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChallenge {
    /// `(job_id, R_C, seed)`.
    pub challenge: Challenge,
    /// The verifier's key.
    pub verifier_key: PublicKey,
    /// Over [`Challenge::signing_bytes`], purpose [`PURPOSE_CHALLENGE`].
    pub signature: Signature,
}

impl SignedChallenge {
    /// Signs `challenge` as `verifier`.
    pub fn sign(challenge: Challenge, verifier: &Identity) -> Self {
        let signature = verifier.sign(PURPOSE_CHALLENGE, &challenge.signing_bytes());
        Self { challenge, verifier_key: verifier.public_key(), signature }
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        verify(&self.verifier_key, PURPOSE_CHALLENGE, &self.challenge.signing_bytes(), &self.signature)
    }
}

/// A verifier's signed verdict on one job and commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVerdict {
    /// The job.
    pub job_id: Digest,
    /// The commitment judged.
    pub r_c: Digest,
    /// The decision.
    pub verdict: Verdict,
    /// Why, for people (at most [`MAX_REASON_BYTES`]).
    pub reason: String,
    /// The verifier's key.
    pub verifier_key: PublicKey,
    /// Over [`SignedVerdict::signing_bytes`], purpose [`PURPOSE_VERDICT`].
    pub signature: Signature,
}

impl SignedVerdict {
    /// The canonical verdict: `job_id (32) ‖ R_C (32) ‖ u8(verdict) ‖ u32le(len(reason)) ‖
    /// reason (UTF-8)`.
    pub fn signing_bytes(job_id: &Digest, r_c: &Digest, verdict: Verdict, reason: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(69 + reason.len());
        out.extend_from_slice(job_id);
        out.extend_from_slice(r_c);
        out.push(verdict.code());
        out.extend_from_slice(&(reason.len() as u32).to_le_bytes());
        out.extend_from_slice(reason.as_bytes());
        out
    }

    /// Signs a verdict as `verifier`; the reason is cut to [`MAX_REASON_BYTES`] at a
    /// character boundary.
    pub fn sign(job_id: Digest, r_c: Digest, verdict: Verdict, reason: &str, verifier: &Identity) -> Self {
        let reason = truncate_utf8(reason, MAX_REASON_BYTES).to_string();
        let signature = verifier.sign(PURPOSE_VERDICT, &Self::signing_bytes(&job_id, &r_c, verdict, &reason));
        Self { job_id, r_c, verdict, reason, verifier_key: verifier.public_key(), signature }
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<(), SignatureError> {
        let bytes = Self::signing_bytes(&self.job_id, &self.r_c, self.verdict, &self.reason);
        verify(&self.verifier_key, PURPOSE_VERDICT, &bytes, &self.signature)
    }
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character
/// boundary.
pub fn truncate_utf8(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What a verifier checked and the bounds that follow, as stated in a receipt. An auditor
/// recomputes the numbers from the spec and does not trust these.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSummary {
    /// Full or succinct.
    pub mode: VerificationMode,
    /// Freivalds rounds run over all of `C` (0 in succinct mode).
    pub freivalds_rounds: u32,
    /// Tiles sampled and proven.
    pub samples: u32,
    /// Tiles in the job.
    pub tiles: u64,
    /// `(1 − 1/T)^s`.
    pub escape_one_wrong_tile: f64,
    /// `(1 − f)^s` for the policy's `f`.
    pub escape_policy_fraction: f64,
    /// The policy's `f`.
    pub policy_fraction: f64,
    /// The bounds in words (at most [`MAX_STATEMENT_BYTES`]).
    pub statement: String,
}

/// Everything an auditor needs to re-check a decision offline (DESIGN §6).
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// [`RECEIPT_VERSION`].
    pub version: u32,
    /// The job.
    pub spec: JobSpec,
    /// The consumer's signature over the canonical spec, purpose [`PURPOSE_JOB`].
    pub consumer_signature: Signature,
    /// The provider's commitment to `C`.
    pub r_c: Digest,
    /// The signed challenge.
    pub challenge: SignedChallenge,
    /// The sampled tiles' openings and proofs, in sample order (may be fewer than sampled
    /// on a rejection that stopped early).
    pub openings: Vec<TileOpening>,
    /// What was checked.
    pub summary: CheckSummary,
    /// The verifiers' signed verdicts (at least one, at most [`MAX_VERDICTS`]).
    pub verdicts: Vec<SignedVerdict>,
    /// On a full-mode rejection: the evidence of one wrong entry.
    pub fraud_proof: Option<FraudProof>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_signing_bytes_known_answer() {
        let bytes = SignedVerdict::signing_bytes(&[1; 32], &[2; 32], Verdict::Rejected, "ab");
        let mut expected = vec![1u8; 32];
        expected.extend([2u8; 32]);
        expected.extend([2, 2, 0, 0, 0, b'a', b'b']);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn signed_messages_verify_and_bind_every_field() {
        let verifier = Identity::from_seed([3; 32]);
        let v = SignedVerdict::sign([1; 32], [2; 32], Verdict::Approved, "all checks passed", &verifier);
        v.verify().unwrap();
        let mut changed = v.clone();
        changed.verdict = Verdict::Rejected;
        assert!(changed.verify().is_err());
        let mut changed = v.clone();
        changed.r_c[5] ^= 1;
        assert!(changed.verify().is_err());
        let mut changed = v.clone();
        changed.reason.push('!');
        assert!(changed.verify().is_err());
        let mut changed = v;
        changed.job_id[0] ^= 1;
        assert!(changed.verify().is_err());

        let c = SignedChallenge::sign(Challenge { job_id: [1; 32], r_c: [2; 32], seed: [3; 32] }, &verifier);
        c.verify().unwrap();
        let mut changed = c;
        changed.challenge.seed[31] ^= 0x80;
        assert!(changed.verify().is_err());
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let v = SignedVerdict::sign([0; 32], [0; 32], Verdict::Rejected, &long, &Identity::from_seed([1; 32]));
        assert!(v.reason.len() <= MAX_REASON_BYTES);
        v.verify().unwrap();
        assert_eq!(truncate_utf8("abc", 2), "ab");
    }
}
