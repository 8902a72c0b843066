//! The policy a consumer asks for, from the few choices it makes: the rules the CLI's job
//! file and the Python package's keyword arguments share (defaults, the input scheme that
//! follows from `samples`, the deadline from now).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matproof_protocol::spec::{InputScheme, Policy, VerificationMode};

use crate::ClientError;

/// A consumer's choices for a job's policy; [`JobOptions::default`] holds the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOptions {
    /// `full` (the verifier takes `A`, `B` and runs Freivalds) or `succinct`.
    pub mode: VerificationMode,
    /// Sampled tiles with proofs (0: no tile proofs, which needs no keys).
    pub samples: u32,
    /// The input commitment scheme; `None` takes the one `samples` needs
    /// ([`input_scheme_for`]).
    pub input_scheme: Option<InputScheme>,
    /// Freivalds rounds the verifier runs (full mode; 0 in succinct mode).
    pub freivalds_rounds: u32,
    /// Verifier approvals needed.
    pub quorum: u32,
    /// The fraud fraction the receipt states a bound for, parts per million.
    pub target_fraud_ppm: u32,
    /// Time from opening to the response deadline.
    pub deadline: Duration,
}

impl Default for JobOptions {
    /// Full mode without tile proofs, 2 Freivalds rounds, 1 verifier, a 1% target fraud
    /// fraction, 10 minutes.
    fn default() -> Self {
        Self {
            mode: VerificationMode::Full,
            samples: 0,
            input_scheme: None,
            freivalds_rounds: 2,
            quorum: 1,
            target_fraud_ppm: 10_000,
            deadline: Duration::from_secs(600),
        }
    }
}

/// The input scheme a job with `samples` sampled tiles uses: tile proofs open Poseidon
/// digests; without them SHA-256 (far faster) is the rule.
pub fn input_scheme_for(samples: u32) -> InputScheme {
    if samples == 0 { InputScheme::Sha256 } else { InputScheme::Poseidon }
}

/// `full` or `succinct`.
pub fn parse_mode(text: &str) -> Result<VerificationMode, ClientError> {
    match text {
        "full" => Ok(VerificationMode::Full),
        "succinct" => Ok(VerificationMode::Succinct),
        other => Err(ClientError::Mode { given: other.to_string() }),
    }
}

impl JobOptions {
    /// The policy, its deadline `deadline` from `now`.
    pub fn policy(&self, now: SystemTime) -> Result<Policy, ClientError> {
        let deadline_unix_ms = (now + self.deadline)
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ClientError::Clock)?
            .as_millis()
            .try_into()
            .map_err(|_| ClientError::Clock)?;
        Ok(Policy {
            mode: self.mode,
            input_scheme: self.input_scheme.unwrap_or_else(|| input_scheme_for(self.samples)),
            samples: self.samples,
            freivalds_rounds: if self.mode == VerificationMode::Full { self.freivalds_rounds } else { 0 },
            quorum: self.quorum,
            target_fraud_ppm: self.target_fraud_ppm,
            deadline_unix_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_follows_the_rules() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let policy = JobOptions::default().policy(now).unwrap();
        assert_eq!((policy.input_scheme, policy.freivalds_rounds), (InputScheme::Sha256, 2));
        assert_eq!(policy.deadline_unix_ms, 1_600_000);
        let proofs = JobOptions { samples: 3, mode: VerificationMode::Succinct, ..JobOptions::default() };
        let policy = proofs.policy(now).unwrap();
        assert_eq!((policy.input_scheme, policy.freivalds_rounds), (InputScheme::Poseidon, 0));
        let err = parse_mode("fast").unwrap_err();
        assert_eq!(err.to_string(), r#"mode "fast": expected "full" or "succinct""#);
        assert_eq!(parse_mode("succinct").unwrap(), VerificationMode::Succinct);
    }
}
