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

/// The receipt format version this code writes and reads. Version 2 added the provider's
/// `commit` and `respond` signatures and the integer inputs of the bounds; version 1
/// receipts are refused with [`crate::wire::ReceiptDecodeError::Version`].
pub const RECEIPT_VERSION: u32 = 2;

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

/// Domain tag of the digest of a response's streamed `C` (its own hash, so that a receipt,
/// which does not carry `C`, can carry this digest instead and an auditor can still
/// recompute the response digest the provider signed).
pub const RESPONSE_C_DOMAIN: &[u8] = b"matproof/v1/resp/c";

/// The digest of the `C` part of a response: SHA-256 over `"matproof/v1/resp/c" ‖
/// u64le(c_values) ‖ every streamed C entry, row-major, as i32le` (`c_values` is `m·n` in
/// full mode and 0 in succinct mode, where nothing follows).
#[derive(Debug, Clone)]
pub struct CDigestHasher {
    hasher: Sha256,
}

impl CDigestHasher {
    /// Starts the digest of `c_values` entries.
    pub fn new(c_values: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(RESPONSE_C_DOMAIN);
        hasher.update(c_values.to_le_bytes());
        Self { hasher }
    }

    /// Absorbs the next entries of `C` (whole rows, in order).
    pub fn rows(&mut self, values: &[i32]) {
        let mut bytes = vec![0u8; 4 * values.len().min(4096)];
        for chunk in values.chunks(4096) {
            for (slot, value) in bytes.chunks_exact_mut(4).zip(chunk) {
                slot.copy_from_slice(&value.to_le_bytes());
            }
            self.hasher.update(&bytes[..4 * chunk.len()]);
        }
    }

    /// Absorbs the next entries of `C` already in their wire form (whole rows, each entry
    /// i32le, as a `CRows` message carries them): the bytes [`CDigestHasher::rows`] hashes.
    pub fn row_bytes(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len().is_multiple_of(4), "whole entries only");
        self.hasher.update(bytes);
    }

    /// The digest.
    pub fn finish(self) -> Digest {
        self.hasher.finalize().into()
    }
}

/// The `C` digest of a whole streamed `C` (row-major), or of none (`&[]`, succinct mode).
pub fn c_digest(values: &[i32]) -> Digest {
    let mut h = CDigestHasher::new(values.len() as u64);
    h.rows(values);
    h.finish()
}

/// Both digests of a finished response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseDigests {
    /// The digest of the streamed `C` ([`CDigestHasher`]).
    pub c_digest: Digest,
    /// The response digest, which the end signature covers.
    pub response_digest: Digest,
}

/// The digest of a provider's response, which its end signature covers, so that a signature
/// seen once cannot be replayed under other contents (a third party could otherwise get an
/// honest provider rejected). SHA-256 over `"matproof/v1/resp" ‖ job_id ‖ R_C ‖ c_digest ‖
/// u64le(openings) ‖ each opening's canonical bytes`, `c_digest` being [`CDigestHasher`]'s
/// (docs/formats.md): independent of how rows are cut into messages, and recomputable from a
/// receipt, which carries the openings and `c_digest` but not `C`.
#[derive(Debug, Clone)]
pub struct ResponseHasher {
    job_id: JobId,
    r_c: MerkleRoot,
    openings: u64,
    c: Option<CDigestHasher>,
    outer: Option<(Sha256, Digest)>,
}

impl ResponseHasher {
    /// Starts the digest of a response with `c_values` entries of `C` (`m·n` in full mode,
    /// 0 in succinct mode) and `openings` openings.
    pub fn new(job_id: &JobId, r_c: &MerkleRoot, c_values: u64, openings: u64) -> Self {
        Self { job_id: *job_id, r_c: *r_c, openings, c: Some(CDigestHasher::new(c_values)), outer: None }
    }

    /// Starts the digest of a response whose `C` part hashed to `c_digest` (an auditor's
    /// view: the receipt carries `c_digest` and the openings); only openings follow.
    pub fn with_c_digest(job_id: &JobId, r_c: &MerkleRoot, c_digest: Digest, openings: u64) -> Self {
        let outer = outer_start(job_id, r_c, &c_digest, openings);
        Self { job_id: *job_id, r_c: *r_c, openings, c: None, outer: Some((outer, c_digest)) }
    }

    /// Absorbs the next entries of `C` (whole rows, in order).
    pub fn rows(&mut self, values: &[i32]) {
        debug_assert!(self.outer.is_none(), "rows after openings");
        if let Some(c) = &mut self.c {
            c.rows(values);
        }
    }

    /// Absorbs the next entries of `C` in their wire form (whole rows, each entry i32le).
    pub fn row_bytes(&mut self, bytes: &[u8]) {
        debug_assert!(self.outer.is_none(), "rows after openings");
        if let Some(c) = &mut self.c {
            c.row_bytes(bytes);
        }
    }

    /// The outer hasher, started (with the finished `C` digest) on first use.
    fn outer(&mut self) -> &mut Sha256 {
        let (job_id, r_c, openings, c) = (&self.job_id, &self.r_c, self.openings, &mut self.c);
        let (outer, _) = self.outer.get_or_insert_with(|| {
            let c_digest = c.take().map_or_else(|| c_digest(&[]), CDigestHasher::finish);
            (outer_start(job_id, r_c, &c_digest, openings), c_digest)
        });
        outer
    }

    /// Absorbs the next opening: `u64le(tile) ‖ u64le(len) ‖ c_tile i32le ‖ path(C) ‖ d_A ‖
    /// path(A) ‖ d_B ‖ path(B) ‖ u64le(len) ‖ proof`, a path being `u64le(leaf) ‖
    /// u64le(size) ‖ u64le(len) ‖ hashes`.
    pub fn opening(&mut self, opening: &TileOpening) {
        let h = self.outer();
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

    /// Both digests.
    pub fn finish(mut self) -> ResponseDigests {
        self.outer();
        match self.outer {
            Some((outer, c_digest)) => ResponseDigests { c_digest, response_digest: outer.finalize().into() },
            // `outer()` just set it; an empty response digest would never verify.
            None => ResponseDigests { c_digest: [0; 32], response_digest: [0; 32] },
        }
    }
}

/// `"matproof/v1/resp" ‖ job_id ‖ R_C ‖ c_digest ‖ u64le(openings)`, absorbed.
fn outer_start(job_id: &JobId, r_c: &MerkleRoot, c_digest: &Digest, openings: u64) -> Sha256 {
    let mut outer = Sha256::new();
    outer.update(RESPONSE_DOMAIN);
    outer.update(job_id.as_bytes());
    outer.update(r_c.as_bytes());
    outer.update(c_digest);
    outer.update(openings.to_le_bytes());
    outer
}

/// The response digest an auditor recomputes from a receipt: its `c_digest` and openings.
pub fn response_digest(job_id: &JobId, r_c: &MerkleRoot, c_digest: Digest, openings: &[TileOpening]) -> Digest {
    let mut h = ResponseHasher::with_c_digest(job_id, r_c, c_digest, openings.len() as u64);
    for opening in openings {
        h.opening(opening);
    }
    h.finish().response_digest
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
/// checks the integers exactly against the spec and the floating-point bounds within a
/// stated tolerance of their formula (docs/formats.md, "Check summary").
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSummary {
    /// Full or succinct.
    pub mode: VerificationMode,
    /// Freivalds rounds run over all of `C` (0 in succinct mode).
    pub freivalds_rounds: u32,
    /// Tiles sampled and proven.
    pub samples: u32,
    /// Tiles in the job, `T`.
    pub tiles: u64,
    /// The policy's fraction of wrong tiles, in parts per million (`f = ppm / 10^6`).
    pub target_fraud_ppm: u32,
    /// `(1 − 1/T)^s`.
    pub escape_one_wrong_tile: f64,
    /// `(1 − f)^s` for the policy's `f`.
    pub escape_policy_fraction: f64,
    /// The policy's `f`.
    pub policy_fraction: f64,
    /// The bounds in words, for people (at most [`MAX_STATEMENT_BYTES`]); informational: the
    /// audit does not compare it (docs/formats.md, "Check summary").
    pub statement: String,
}

/// The end of a provider's response as a receipt keeps it: the `C` digest (the receipt does
/// not carry the streamed `C`) and the end signature, over `job_id ‖ R_C ‖
/// response_digest(job_id, R_C, c_digest, openings)`, purpose [`PURPOSE_RESPOND`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedResponseEnd {
    /// [`CDigestHasher`]'s digest of the streamed `C` (of no entries in succinct mode).
    pub c_digest: Digest,
    /// The provider's end signature.
    pub signature: Signature,
}

impl SignedResponseEnd {
    /// Checks the end signature by `provider` over the response made of `c_digest` and
    /// `openings`.
    pub fn verify(
        &self,
        provider: &PublicKey,
        job_id: &JobId,
        r_c: &MerkleRoot,
        openings: &[TileOpening],
    ) -> Result<(), SignatureError> {
        let digest = response_digest(job_id, r_c, self.c_digest, openings);
        verify(provider, PURPOSE_RESPOND, &respond_signing_bytes(job_id, r_c, &digest), &self.signature)
    }
}

/// Checks a provider's commit signature over `job_id ‖ R_C`.
pub fn verify_commit(
    provider: &PublicKey,
    job_id: &JobId,
    r_c: &MerkleRoot,
    signature: &Signature,
) -> Result<(), SignatureError> {
    verify(provider, PURPOSE_COMMIT, &job_commitment_bytes(job_id, r_c), signature)
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
    /// The provider's signature over `job_id ‖ R_C`, purpose [`PURPOSE_COMMIT`]: the
    /// provider committed to this `R_C` (so a fraud proof's tile, whose path leads to
    /// `R_C`, is the provider's own).
    pub commit_signature: Signature,
    /// The provider's signed end of its response.
    pub response_end: SignedResponseEnd,
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
    fn c_digest_of_wire_bytes_equals_that_of_entries() {
        let values: Vec<i32> = (0..10_000).map(|i| i * 7919 - 40_000_000).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut from_bytes = CDigestHasher::new(values.len() as u64);
        from_bytes.row_bytes(&bytes[..4 * 6_000]);
        from_bytes.row_bytes(&bytes[4 * 6_000..]);
        assert_eq!(from_bytes.finish(), c_digest(&values));
    }

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

    fn sample_opening(tile: u64) -> TileOpening {
        let path = InclusionProof { leaf_index: 0, tree_size: 1, path: vec![] };
        TileOpening {
            tile_index: tile,
            c_tile: vec![-1],
            c_path: path.clone(),
            d_a: [3; 32],
            a_path: path.clone(),
            d_b: [4; 32],
            b_path: path,
            proof: vec![5; 2],
        }
    }

    fn digests(rows: &[&[i32]], tile: u64) -> ResponseDigests {
        let mut h = ResponseHasher::new(&JobId([1; 32]), &MerkleRoot([2; 32]), 4, 1);
        for r in rows {
            h.rows(r);
        }
        h.opening(&sample_opening(tile));
        h.finish()
    }

    #[test]
    fn response_digest_known_answer_and_binding() {
        let digest = |rows: &[&[i32]], tile: u64| digests(rows, tile).response_digest;
        // Independent of how rows are cut into messages; bound to every value.
        assert_eq!(digest(&[&[1, 2], &[3, 4]], 0), digest(&[&[1, 2, 3, 4]], 0));
        assert_ne!(digest(&[&[1, 2, 3, 5]], 0), digest(&[&[1, 2, 3, 4]], 0));
        assert_ne!(digest(&[&[1, 2, 3, 4]], 1), digest(&[&[1, 2, 3, 4]], 0));
        // The layout, spelled out byte by byte.
        let mut c_bytes = RESPONSE_C_DOMAIN.to_vec();
        c_bytes.extend(4u64.to_le_bytes());
        for v in [1i32, 2, 3, 4] {
            c_bytes.extend(v.to_le_bytes());
        }
        let c: Digest = Sha256::digest(&c_bytes).into();
        let mut bytes = RESPONSE_DOMAIN.to_vec();
        bytes.extend([1; 32]);
        bytes.extend([2; 32]);
        bytes.extend(c);
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
        let got = digests(&[&[1, 2, 3, 4]], 0);
        assert_eq!(got, ResponseDigests { c_digest: c, response_digest: expected });
        assert_eq!(c_digest(&[1, 2, 3, 4]), c);
        // The vectors quoted in docs/formats.md.
        assert_eq!(hex::encode(c), "7b2d45974e63af099bfc19a9708dc0cb590145266375d4b7345f899ab076123c");
        assert_eq!(hex::encode(expected), "765351e485af57011b76f7f14207b660ba43980b90670a1682c8a5db1bcc2cd2");
        // The succinct-mode C digest (no entries).
        assert_eq!(hex::encode(c_digest(&[])), "f8a971d97f89c528d5c168d018bd03e8255ff19ef1e5aa6479efd68c5fe0188d");
    }

    #[test]
    fn an_auditor_recomputes_the_signed_response_digest_from_a_receipt() {
        let got = digests(&[&[1, 2], &[3, 4]], 7);
        let (job_id, r_c) = (JobId([1; 32]), MerkleRoot([2; 32]));
        assert_eq!(response_digest(&job_id, &r_c, got.c_digest, &[sample_opening(7)]), got.response_digest);
        let provider = Identity::from_seed([9; 32]);
        let signature = provider.sign(PURPOSE_RESPOND, &respond_signing_bytes(&job_id, &r_c, &got.response_digest));
        let end = SignedResponseEnd { c_digest: got.c_digest, signature };
        end.verify(&provider.public_key(), &job_id, &r_c, &[sample_opening(7)]).unwrap();
        assert!(end.verify(&provider.public_key(), &job_id, &r_c, &[sample_opening(6)]).is_err());
        assert!(end.verify(&provider.public_key(), &JobId([3; 32]), &r_c, &[sample_opening(7)]).is_err());
        let other_c = SignedResponseEnd { c_digest: c_digest(&[1, 2, 3, 5]), ..end };
        assert!(other_c.verify(&provider.public_key(), &job_id, &r_c, &[sample_opening(7)]).is_err());
        let commit = provider.sign(PURPOSE_COMMIT, &job_commitment_bytes(&job_id, &r_c));
        verify_commit(&provider.public_key(), &job_id, &r_c, &commit).unwrap();
        assert!(verify_commit(&provider.public_key(), &job_id, &MerkleRoot([0; 32]), &commit).is_err());
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
