//! Receipts (DESIGN §6): everything an auditor needs to re-check a verifier's decision
//! offline, and the signed messages inside one.
//!
//! The signed bytes of each message are defined here (docs/formats.md restates them); the
//! protobuf form, which is what travels and what is stored on disk, is in [`crate::wire`].

use crate::fraud::FraudProof;
use crate::identity::{Identity, PublicKey, Signature, SignatureError, verify};
use crate::ids::{JobId, MerkleRoot};
use crate::merkle::{Digest, InclusionProof};
use crate::opening::TileOpening;
use crate::spec::{JobSpec, VerificationMode};
use crate::transcript::Challenge;
use sha2::{Digest as _, Sha256};

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
/// Signature purpose of the end of a provider's response (over [`respond_signing_bytes`]).
pub const PURPOSE_RESPOND: &str = "respond";
/// Signature purpose of a verifier's verdict (over [`SignedVerdict::signing_bytes`]).
pub const PURPOSE_VERDICT: &str = "verdict";

/// `job_id ‖ R_C`: the bytes a provider signs to commit.
pub fn job_commitment_bytes(job_id: &JobId, r_c: &MerkleRoot) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(job_id.as_bytes());
    out[32..].copy_from_slice(r_c.as_bytes());
    out
}

/// Domain tag of the response digest.
pub const RESPONSE_DOMAIN: &[u8] = b"matproof/v1/resp";

/// The digest of a provider's response, which its end signature covers, so that a signature
/// seen once cannot be replayed under other contents (a third party could otherwise get an
/// honest provider rejected). SHA-256 over `"matproof/v1/resp" ‖ job_id ‖ R_C ‖
/// u64le(c_values) ‖ every streamed C entry, row-major, as i32le ‖ u64le(openings) ‖ each
/// opening's canonical bytes` (docs/formats.md): independent of how rows are cut into
/// messages.
#[derive(Debug, Clone)]
pub struct ResponseHasher {
    hasher: Sha256,
    openings: u64,
    openings_started: bool,
}

impl ResponseHasher {
    /// Starts the digest of a response with `c_values` entries of `C` (`m·n` in full mode,
    /// 0 in succinct mode) and `openings` openings.
    pub fn new(job_id: &JobId, r_c: &MerkleRoot, c_values: u64, openings: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(RESPONSE_DOMAIN);
        hasher.update(job_id.as_bytes());
        hasher.update(r_c.as_bytes());
        hasher.update(c_values.to_le_bytes());
        Self { hasher, openings, openings_started: false }
    }

    /// Absorbs the next entries of `C` (whole rows, in order).
    pub fn rows(&mut self, values: &[i32]) {
        debug_assert!(!self.openings_started, "rows after openings");
        let mut bytes = vec![0u8; 4 * values.len().min(4096)];
        for chunk in values.chunks(4096) {
            for (slot, value) in bytes.chunks_exact_mut(4).zip(chunk) {
                slot.copy_from_slice(&value.to_le_bytes());
            }
            self.hasher.update(&bytes[..4 * chunk.len()]);
        }
    }

    fn start_openings(&mut self) {
        if !self.openings_started {
            self.openings_started = true;
            self.hasher.update(self.openings.to_le_bytes());
        }
    }

    /// Absorbs the next opening: `u64le(tile) ‖ u64le(len) ‖ c_tile i32le ‖ path(C) ‖ d_A ‖
    /// path(A) ‖ d_B ‖ path(B) ‖ u64le(len) ‖ proof`, a path being `u64le(leaf) ‖
    /// u64le(size) ‖ u64le(len) ‖ hashes`.
    pub fn opening(&mut self, opening: &TileOpening) {
        self.start_openings();
        let h = &mut self.hasher;
        h.update(opening.tile_index.to_le_bytes());
        h.update((opening.c_tile.len() as u64).to_le_bytes());
        for value in &opening.c_tile {
            h.update(value.to_le_bytes());
        }
        absorb_path(h, &opening.c_path);
        h.update(opening.d_a);
        absorb_path(h, &opening.a_path);
        h.update(opening.d_b);
        absorb_path(h, &opening.b_path);
        h.update((opening.proof.len() as u64).to_le_bytes());
        h.update(&opening.proof);
    }

    /// The digest.
    pub fn finish(mut self) -> Digest {
        self.start_openings();
        self.hasher.finalize().into()
    }
}

fn absorb_path(h: &mut Sha256, path: &InclusionProof) {
    h.update(path.leaf_index.to_le_bytes());
    h.update(path.tree_size.to_le_bytes());
    h.update((path.path.len() as u64).to_le_bytes());
    for hash in &path.path {
        h.update(hash);
    }
}

/// `job_id ‖ R_C ‖ response digest`: what a provider signs to end its response.
pub fn respond_signing_bytes(job_id: &JobId, r_c: &MerkleRoot, response_digest: &Digest) -> [u8; 96] {
    let mut out = [0u8; 96];
    out[..32].copy_from_slice(job_id.as_bytes());
    out[32..64].copy_from_slice(r_c.as_bytes());
    out[64..].copy_from_slice(response_digest);
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
    pub job_id: JobId,
    /// The commitment judged.
    pub r_c: MerkleRoot,
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
    pub fn signing_bytes(job_id: &JobId, r_c: &MerkleRoot, verdict: Verdict, reason: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(69 + reason.len());
        out.extend_from_slice(job_id.as_bytes());
        out.extend_from_slice(r_c.as_bytes());
        out.push(verdict.code());
        out.extend_from_slice(&(reason.len() as u32).to_le_bytes());
        out.extend_from_slice(reason.as_bytes());
        out
    }

    /// Signs a verdict as `verifier`; the reason is cut to [`MAX_REASON_BYTES`] at a
    /// character boundary.
    pub fn sign(job_id: JobId, r_c: MerkleRoot, verdict: Verdict, reason: &str, verifier: &Identity) -> Self {
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
    pub r_c: MerkleRoot,
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
    use crate::ids::Seed;

    #[test]
    fn verdict_signing_bytes_known_answer() {
        let bytes = SignedVerdict::signing_bytes(&JobId([1; 32]), &MerkleRoot([2; 32]), Verdict::Rejected, "ab");
        let mut expected = vec![1u8; 32];
        expected.extend([2u8; 32]);
        expected.extend([2, 2, 0, 0, 0, b'a', b'b']);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn signed_messages_verify_and_bind_every_field() {
        let verifier = Identity::from_seed([3; 32]);
        let v =
            SignedVerdict::sign(JobId([1; 32]), MerkleRoot([2; 32]), Verdict::Approved, "all checks passed", &verifier);
        v.verify().unwrap();
        let mut changed = v.clone();
        changed.verdict = Verdict::Rejected;
        assert!(changed.verify().is_err());
        let mut changed = v.clone();
        changed.r_c.0[5] ^= 1;
        assert!(changed.verify().is_err());
        let mut changed = v.clone();
        changed.reason.push('!');
        assert!(changed.verify().is_err());
        let mut changed = v;
        changed.job_id.0[0] ^= 1;
        assert!(changed.verify().is_err());

        let c = SignedChallenge::sign(
            Challenge { job_id: JobId([1; 32]), r_c: MerkleRoot([2; 32]), seed: Seed([3; 32]) },
            &verifier,
        );
        c.verify().unwrap();
        let mut changed = c;
        changed.challenge.seed.0[31] ^= 0x80;
        assert!(changed.verify().is_err());
    }

    #[test]
    fn response_digest_known_answer_and_binding() {
        let digest = |rows: &[&[i32]], tile: u64| {
            let mut h = ResponseHasher::new(&JobId([1; 32]), &MerkleRoot([2; 32]), 4, 1);
            for r in rows {
                h.rows(r);
            }
            let path = InclusionProof { leaf_index: 0, tree_size: 1, path: vec![] };
            h.opening(&TileOpening {
                tile_index: tile,
                c_tile: vec![-1],
                c_path: path.clone(),
                d_a: [3; 32],
                a_path: path.clone(),
                d_b: [4; 32],
                b_path: path,
                proof: vec![5; 2],
            });
            h.finish()
        };
        // Independent of how rows are cut into messages; bound to every value.
        assert_eq!(digest(&[&[1, 2], &[3, 4]], 0), digest(&[&[1, 2, 3, 4]], 0));
        assert_ne!(digest(&[&[1, 2, 3, 5]], 0), digest(&[&[1, 2, 3, 4]], 0));
        assert_ne!(digest(&[&[1, 2, 3, 4]], 1), digest(&[&[1, 2, 3, 4]], 0));
        // The layout, spelled out byte by byte.
        let mut bytes = RESPONSE_DOMAIN.to_vec();
        bytes.extend([1; 32]);
        bytes.extend([2; 32]);
        bytes.extend(4u64.to_le_bytes());
        for v in [1i32, 2, 3, 4] {
            bytes.extend(v.to_le_bytes());
        }
        bytes.extend(1u64.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(1u64.to_le_bytes());
        bytes.extend((-1i32).to_le_bytes());
        let empty_path = [0u64.to_le_bytes(), 1u64.to_le_bytes(), 0u64.to_le_bytes()].concat();
        bytes.extend(&empty_path);
        bytes.extend([3; 32]);
        bytes.extend(&empty_path);
        bytes.extend([4; 32]);
        bytes.extend(&empty_path);
        bytes.extend(2u64.to_le_bytes());
        bytes.extend([5, 5]);
        let expected: Digest = Sha256::digest(&bytes).into();
        assert_eq!(digest(&[&[1, 2, 3, 4]], 0), expected);
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let v = SignedVerdict::sign(
            JobId([0; 32]),
            MerkleRoot([0; 32]),
            Verdict::Rejected,
            &long,
            &Identity::from_seed([1; 32]),
        );
        assert!(v.reason.len() <= MAX_REASON_BYTES);
        v.verify().unwrap();
        assert_eq!(truncate_utf8("abc", 2), "ab");
    }
}
