//! Steps 2–3 and the end: the provider's signed commitment, the verifier's signed
//! challenge, and the verifier's signed verdict, each read back by the other side.

use super::{SessionError, signature_field};
use crate::identity::{Identity, PublicKey, Signature, verify};
use crate::ids::{JobId, MerkleRoot};
use crate::receipt::{PURPOSE_COMMIT, SignedChallenge, SignedVerdict, job_commitment_bytes};
use crate::wire::{digest_from_wire, pb};

/// A provider's commitment to `R_C` for one job, signed over `job_id ‖ R_C` (purpose
/// `commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedCommit {
    /// The job.
    pub job_id: JobId,
    /// The commitment to `C`.
    pub r_c: MerkleRoot,
    /// The provider's signature.
    pub signature: Signature,
}

impl SignedCommit {
    /// Signs `r_c` for `job_id` as `provider`.
    pub fn sign(job_id: JobId, r_c: MerkleRoot, provider: &Identity) -> Self {
        let signature = provider.sign(PURPOSE_COMMIT, &job_commitment_bytes(&job_id, &r_c));
        Self { job_id, r_c, signature }
    }

    /// Checks the signature against the job's provider.
    pub fn verify(&self, provider: &PublicKey) -> Result<(), SessionError> {
        verify(provider, PURPOSE_COMMIT, &job_commitment_bytes(&self.job_id, &self.r_c), &self.signature)
            .map_err(|source| SessionError::Signature { field: "provider_signature", source })
    }
}

impl From<&SignedCommit> for pb::CommitRequest {
    fn from(c: &SignedCommit) -> Self {
        pb::CommitRequest { job_id: c.job_id.to_vec(), r_c: c.r_c.to_vec(), provider_signature: c.signature.0.to_vec() }
    }
}

impl TryFrom<&pb::CommitRequest> for SignedCommit {
    type Error = SessionError;

    fn try_from(c: &pb::CommitRequest) -> Result<Self, SessionError> {
        Ok(Self {
            job_id: digest_from_wire("job_id", &c.job_id)?,
            r_c: digest_from_wire("r_c", &c.r_c)?,
            signature: signature_field("provider_signature", &c.provider_signature)?,
        })
    }
}

/// Reads the verifier's answer to a commit: decodes it, checks its signature, and that it
/// is for `job_id` and `r_c`. Which verifier may sign is the caller's policy.
pub fn read_challenge(wire: &pb::Challenge, job_id: &JobId, r_c: &MerkleRoot) -> Result<SignedChallenge, SessionError> {
    let challenge = SignedChallenge::try_from(wire)?;
    challenge.verify().map_err(|source| SessionError::Signature { field: "challenge.verifier_signature", source })?;
    if challenge.challenge.job_id != *job_id || challenge.challenge.r_c != *r_c {
        return Err(SessionError::Mismatch { what: "challenge", reason: "is for another job or commitment" });
    }
    Ok(challenge)
}

/// Reads a verdict: decodes it, checks its signature, that it is for `job_id` and `r_c`,
/// and that it is signed by `verifier` (the key that signed the challenge).
pub fn read_verdict(
    wire: &pb::SignedVerdict,
    job_id: &JobId,
    r_c: &MerkleRoot,
    verifier: &PublicKey,
) -> Result<SignedVerdict, SessionError> {
    let verdict = SignedVerdict::try_from(wire)?;
    verdict.verify().map_err(|source| SessionError::Signature { field: "verdict.verifier_signature", source })?;
    if verdict.job_id != *job_id || verdict.r_c != *r_c {
        return Err(SessionError::Mismatch { what: "verdict", reason: "is for another job or commitment" });
    }
    if verdict.verifier_key != *verifier {
        return Err(SessionError::Mismatch {
            what: "verdict",
            reason: "is signed by another verifier than the challenge",
        });
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Seed;
    use crate::receipt::Verdict;
    use crate::transcript::Challenge;

    #[test]
    fn commits_round_trip_and_bind_both_values() {
        let provider = Identity::from_seed([7; 32]);
        let commit = SignedCommit::sign(JobId([1; 32]), MerkleRoot([2; 32]), &provider);
        let wire = pb::CommitRequest::from(&commit);
        let back = SignedCommit::try_from(&wire).unwrap();
        assert_eq!(back, commit);
        back.verify(&provider.public_key()).unwrap();
        let swapped = SignedCommit { job_id: JobId([2; 32]), r_c: MerkleRoot([1; 32]), ..commit };
        assert!(matches!(swapped.verify(&provider.public_key()), Err(SessionError::Signature { .. })));
        let short = pb::CommitRequest { r_c: vec![0; 31], ..wire };
        let err = SignedCommit::try_from(&short).unwrap_err();
        assert!(err.to_string().contains("invalid field r_c"), "{err}");
    }

    #[test]
    fn challenges_and_verdicts_are_checked_against_the_session() {
        let verifier = Identity::from_seed([8; 32]);
        let (job_id, r_c) = (JobId([1; 32]), MerkleRoot([2; 32]));
        let signed = SignedChallenge::sign(Challenge { job_id, r_c, seed: Seed([3; 32]) }, &verifier);
        let wire = pb::Challenge::from(&signed);
        assert_eq!(read_challenge(&wire, &job_id, &r_c).unwrap(), signed);
        let other = read_challenge(&wire, &job_id, &MerkleRoot([9; 32])).unwrap_err();
        assert!(matches!(other, SessionError::Mismatch { what: "challenge", .. }));

        let verdict = SignedVerdict::sign(job_id, r_c, Verdict::Approved, "ok", &verifier);
        let wire = pb::SignedVerdict::from(&verdict);
        assert_eq!(read_verdict(&wire, &job_id, &r_c, &verifier.public_key()).unwrap(), verdict);
        let stranger = Identity::from_seed([9; 32]).public_key();
        assert!(matches!(read_verdict(&wire, &job_id, &r_c, &stranger), Err(SessionError::Mismatch { .. })));
    }
}
