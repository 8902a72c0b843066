//! The audit of a receipt (DESIGN §6): re-check, offline, every decision a verifier signed.
//!
//! [`audit`] takes a decoded [`Receipt`] (or [`audit_bytes`] the protobuf bytes of one),
//! the verifying key(s) the job may pin and, optionally, the set of verifier keys the
//! auditor trusts and the data `A`, `B` (and `C`). It checks, in this order, and stops at
//! the first failure with an [`AuditError`] that names exactly what failed:
//!
//! 1. the receipt version, the job spec's validity, the consumer's signature over the
//!    canonical spec (purpose `job`);
//! 2. the challenge: its `job_id` and `R_C` are the receipt's, the verifier's signature; the
//!    sampled tiles are re-derived from `(job_id, R_C, seed)` and the openings must name
//!    exactly those, in drawing order;
//! 3. the provider's signatures: its `commit` signature over `job_id ‖ R_C`, and its
//!    response end signature over `job_id ‖ R_C ‖ response digest`, the digest recomputed
//!    from the receipt's `C` digest and openings (in succinct mode the `C` digest must be
//!    that of no entries); the check summary against [`check_summary`] of the spec:
//!    integers exactly, bounds within [`crate::soundness::BOUND_RELATIVE_TOLERANCE`], the
//!    statement (words for people) not at all;
//! 4. every verdict: signature, `job_id`, `R_C`; all verdicts agree; signers are trusted
//!    (when a set is given) and never the provider; an approval needs `quorum` distinct
//!    verifier keys;
//! 5. the decision. An **approval** must carry all `samples` openings and pass
//!    [`check_sampled_tiles`] (paths to `R_C`, `R_A`, `R_B`, zero padding, `z`,
//!    batch-verified Groth16 proofs) and carry no fraud proof. A **rejection** must be
//!    justified: a fraud proof that [`check_fraud_proof`] accepts, or openings that fail the
//!    tile check, or (with data) a `C` that fails Freivalds; a fraud proof that does not
//!    check is an error (a false accusation). A rejection with none of these rests on the
//!    verifier's signed reason alone (a missed deadline, a streamed `C` that did not match
//!    `R_C`): the audit returns `Ok` with [`AuditReport::rejection_unverifiable`] set and the
//!    reason quoted, because there is nothing offline to check it against;
//! 6. with data: `R_A`, `R_B` recomputed from `A`, `B` must equal the spec's; with `C`,
//!    `R_C` must equal the receipt's, in full mode the digest of `C` must equal the receipt's
//!    `C` digest (under a rejection a difference is its grounds: the provider streamed
//!    another `C` than it committed to), and Freivalds runs twice, with the challenge's vectors
//!    and with fresh vectors from the OS random number generator (the auditor need not
//!    trust the verifier's seed). A wrong `C` under an approval is an error.
//!
//! A job without tile proofs (`samples = 0`, full mode, the `sha256` input scheme) has no
//! openings and needs no verifying key: its approval is re-checked only with data, and
//! without `C` the report sets [`AuditReport::approval_unverifiable`].
//!
//! Without a trusted set, any verifier key is accepted and the report says so: the audit
//! then shows the receipt is internally consistent and its proofs hold, not who may sign.

use std::collections::BTreeSet;
use std::fmt;

use matproof_circuits::{PinnedVerifyingKey, TileVerifyingKey, VerifyError};
use matproof_protocol::commit::{c_tree, input_roots};
use matproof_protocol::freivalds::{self, Dims, FreivaldsError};
use matproof_protocol::identity::{Identity, PublicKey, SignatureError, verify};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed, VkHash};
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::receipt::{
    PURPOSE_JOB, RECEIPT_VERSION, Receipt, Verdict, c_digest, response_digest, verify_commit,
};
use matproof_protocol::spec::{SpecError, VerificationMode};
use matproof_protocol::tiling::TilingError;
use matproof_protocol::transcript::{Challenge, TranscriptError};
use matproof_protocol::wire::{ReceiptDecodeError, decode_receipt};

use crate::fraud::{FraudError, check_fraud_proof};
use crate::soundness::{
    SummaryMismatch, check_summary, freivalds_error_exponent, summary_matches, tile_identity_error_log2,
};
use crate::tiles::{TileCheckError, check_sampled_tiles};

/// Freivalds rounds the auditor runs with its own fresh vectors (each lets a wrong `C` pass
/// with probability at most `2^-61`).
pub const AUDIT_FRESH_ROUNDS: u32 = 2;

/// The keys an auditor brings: verifying keys (the one whose identity hash the job pins is
/// used) and, optionally, the verifier keys it trusts to challenge and sign verdicts.
#[derive(Debug, Clone, Default)]
pub struct AuditKeys {
    verifying_keys: Vec<TileVerifyingKey>,
    trusted_verifiers: Option<BTreeSet<PublicKey>>,
}

impl AuditKeys {
    /// Keys that accept any verifier signer (the report says so).
    pub fn new(verifying_keys: Vec<TileVerifyingKey>) -> Self {
        Self { verifying_keys, trusted_verifiers: None }
    }

    /// Requires every challenge and verdict signer to be one of `keys`.
    #[must_use]
    pub fn with_trusted_verifiers(mut self, keys: impl IntoIterator<Item = PublicKey>) -> Self {
        self.trusted_verifiers = Some(keys.into_iter().collect());
        self
    }

    /// The verifying keys held.
    pub fn verifying_keys(&self) -> &[TileVerifyingKey] {
        &self.verifying_keys
    }

    /// The trusted verifier keys, if a set was given.
    pub fn trusted_verifiers(&self) -> Option<&BTreeSet<PublicKey>> {
        self.trusted_verifiers.as_ref()
    }

    /// The held key the job pins, checked (`γ ≠ δ`, input count) and prepared.
    fn pinned(&self, vk_hash: &VkHash) -> Result<PinnedVerifyingKey, AuditError> {
        let key =
            self.verifying_keys.iter().find(|k| k.hash() == *vk_hash).ok_or_else(|| AuditError::NoVerifyingKey {
                vk_hash: *vk_hash,
                held: self.verifying_keys.iter().map(TileVerifyingKey::hash).collect(),
            })?;
        PinnedVerifyingKey::new(key.clone(), vk_hash).map_err(AuditError::VerifyingKey)
    }
}

/// The job's data, when the auditor has it: `A`, `B` and optionally `C`.
#[derive(Debug, Clone)]
pub struct AuditData {
    /// `A` (`m × k`).
    pub a: MatrixI8,
    /// `B` (`k × n`).
    pub b: MatrixI8,
    /// `C` (`m × n`), if the auditor has the result.
    pub c: Option<MatrixI32>,
}

/// Which verifier signed something, for [`AuditError`]s about signers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerRole {
    /// The signer of the challenge.
    Challenge,
    /// The signer of verdict `index`.
    Verdict(usize),
}

impl fmt::Display for SignerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerRole::Challenge => write!(f, "the challenge"),
            SignerRole::Verdict(i) => write!(f, "verdict {i}"),
        }
    }
}

/// Why a receipt fails its audit. Every variant names what failed.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AuditError {
    /// The bytes are not a valid receipt.
    #[error("receipt does not decode: {0}")]
    Decode(#[from] ReceiptDecodeError),
    /// An unknown receipt version.
    #[error("receipt version {found}, this auditor reads {expected}")]
    Version {
        /// Found.
        found: u32,
        /// [`RECEIPT_VERSION`].
        expected: u32,
    },
    /// The job spec is invalid.
    #[error("job spec: {0}")]
    Spec(#[from] SpecError),
    /// The consumer's signature over the canonical spec fails.
    #[error("consumer signature over the job spec: {0}")]
    ConsumerSignature(SignatureError),
    /// The challenge names another job.
    #[error("the challenge is for job {challenge}, the spec's job is {spec}")]
    ChallengeJob {
        /// The challenge's `job_id`.
        challenge: JobId,
        /// The spec's `job_id`.
        spec: JobId,
    },
    /// The challenge names another commitment.
    #[error("the challenge is for R_C {challenge}, the receipt's R_C is {receipt}")]
    ChallengeCommitment {
        /// The challenge's `R_C`.
        challenge: MerkleRoot,
        /// The receipt's `R_C`.
        receipt: MerkleRoot,
    },
    /// The verifier's signature over the challenge fails.
    #[error("challenge signature: {0}")]
    ChallengeSignature(SignatureError),
    /// The sampled tiles cannot be derived.
    #[error("challenge derivation: {0}")]
    Transcript(#[from] TranscriptError),
    /// More openings than sampled tiles.
    #[error("{got} openings for {samples} sampled tiles")]
    TooManyOpenings {
        /// Samples.
        samples: usize,
        /// Openings.
        got: usize,
    },
    /// An opening is not the tile the challenge sampled at its position.
    #[error("opening {position} is tile {got}, the challenge sampled tile {expected}")]
    WrongTile {
        /// Position in the sample.
        position: usize,
        /// The re-derived tile.
        expected: u64,
        /// The opened tile.
        got: u64,
    },
    /// The stated check summary is not the one the spec implies.
    #[error(transparent)]
    Summary(#[from] SummaryMismatch),
    /// The provider's commit signature over `job_id ‖ R_C` fails (missing, another job's,
    /// or another key's).
    #[error("the provider's commit signature over job_id ‖ R_C: {source}")]
    CommitSignature {
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// The provider's response end signature fails over the response digest recomputed from
    /// the receipt.
    #[error("the provider's response end signature over job_id ‖ R_C ‖ response digest {response_digest}: {source}")]
    ResponseSignature {
        /// The recomputed response digest, hex.
        response_digest: String,
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// A succinct-mode receipt whose `C` digest is not that of no entries.
    #[error("succinct mode streams no C, but the receipt's C digest is {stated}, not {expected}")]
    SuccinctCDigest {
        /// The receipt's, hex.
        stated: String,
        /// The digest of no entries, hex.
        expected: String,
    },
    /// An approved receipt whose `C` digest is not the digest of the auditor's `C` (which
    /// matches `R_C`).
    #[error("approved, but the C the provider streamed (digest {stated}) is not the auditor's C (digest {recomputed})")]
    StreamedC {
        /// The receipt's, hex.
        stated: String,
        /// The auditor's, hex.
        recomputed: String,
    },
    /// A verdict's signature fails.
    #[error("verdict {index}: signature: {source}")]
    VerdictSignature {
        /// Position in the receipt.
        index: usize,
        /// Why.
        source: SignatureError,
    },
    /// A verdict is for another job.
    #[error("verdict {index} is for job {got}, not {expected}")]
    VerdictJob {
        /// Position in the receipt.
        index: usize,
        /// The spec's `job_id`.
        expected: JobId,
        /// The verdict's `job_id`.
        got: JobId,
    },
    /// A verdict is for another commitment.
    #[error("verdict {index} is for R_C {got}, not the receipt's {expected}")]
    VerdictCommitment {
        /// Position in the receipt.
        index: usize,
        /// The receipt's `R_C`.
        expected: MerkleRoot,
        /// The verdict's `R_C`.
        got: MerkleRoot,
    },
    /// A signer is not in the auditor's trusted set.
    #[error("{role} is signed by {key}, which is not a trusted verifier")]
    UntrustedVerifier {
        /// What it signed.
        role: SignerRole,
        /// Its key.
        key: PublicKey,
    },
    /// The provider signed as a verifier of its own job.
    #[error("{role} is signed by the job's provider {key}")]
    ProviderAsVerifier {
        /// What it signed.
        role: SignerRole,
        /// Its key.
        key: PublicKey,
    },
    /// The receipt carries no verdict.
    #[error("the receipt carries no verdict")]
    NoVerdicts,
    /// Some verdicts approve and some reject.
    #[error("the verdicts disagree: {approvals} verifier(s) approve, {rejections} reject")]
    ConflictingVerdicts {
        /// Distinct approving keys.
        approvals: usize,
        /// Distinct rejecting keys.
        rejections: usize,
    },
    /// Too few distinct verifiers approve.
    #[error("approved by {approvals} distinct verifier(s), the policy's quorum is {quorum}")]
    Quorum {
        /// Distinct approving keys.
        approvals: usize,
        /// The policy's quorum.
        quorum: u32,
    },
    /// No held verifying key has the hash the job pins.
    #[error("no verifying key with hash {vk_hash} (held: {})", held.iter().map(VkHash::to_hex).collect::<Vec<_>>().join(", "))]
    NoVerifyingKey {
        /// The job's `vk_hash`.
        vk_hash: VkHash,
        /// The held keys' hashes.
        held: Vec<VkHash>,
    },
    /// The pinned verifying key is unusable.
    #[error("verifying key: {0}")]
    VerifyingKey(VerifyError),
    /// An approved receipt's openings or proofs fail.
    #[error("approved, but the sampled tiles fail: {0}")]
    Openings(TileCheckError),
    /// An approved receipt carries a fraud proof.
    #[error("approved, but the receipt carries a fraud proof")]
    FraudProofOnApproval,
    /// A rejection's fraud proof does not prove fraud (a false accusation).
    #[error("the fraud proof does not prove fraud: {0}")]
    FraudProof(FraudError),
    /// The auditor's matrices do not have the job's shapes.
    #[error("data: {0}")]
    DataShape(TilingError),
    /// A commitment recomputed from the auditor's data differs.
    #[error("data does not match the commitments: {commitment} recomputed {recomputed}, the receipt has {expected}")]
    DataMismatch {
        /// `R_A`, `R_B` or `R_C`.
        commitment: &'static str,
        /// The receipt's root.
        expected: MerkleRoot,
        /// The recomputed root.
        recomputed: MerkleRoot,
    },
    /// Freivalds over the auditor's `C` fails under an approval.
    #[error("approved, but C = A·B fails Freivalds with the {vectors} vectors: {source}")]
    Freivalds {
        /// `challenge` or `fresh`.
        vectors: &'static str,
        /// Why.
        source: FreivaldsError,
    },
    /// The OS random number generator failed.
    #[error("OS random number generator: {reason}")]
    Rng {
        /// Why.
        reason: String,
    },
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed (only in a report on a rejection, where a failing check is the
    /// rejection's justification; any other failure is an [`AuditError`]).
    Failed,
    /// It could not run (e.g. no verifying key for a rejection proven by its fraud proof).
    Skipped,
}

impl Outcome {
    /// `ok`, `FAIL` or `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAIL",
            Outcome::Skipped => "skip",
        }
    }
}

/// One check of the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// Short name (stable: `version`, `spec`, `consumer-signature`, `challenge`,
    /// `summary`, `verdicts`, `quorum`, `openings`, `fraud-proof`, `data-commitments`,
    /// `data-freivalds`).
    pub name: &'static str,
    /// Passed, failed or skipped.
    pub outcome: Outcome,
    /// What exactly was checked.
    pub detail: String,
}

impl AuditCheck {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }
}

/// Why a rejection stands, as far as the auditor can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectionGrounds {
    /// The receipt's fraud proof checks: entry `(row, col)` of the committed `C` is wrong.
    FraudProven {
        /// Row.
        row: u64,
        /// Column.
        col: u64,
    },
    /// The receipt's openings fail the tile check.
    OpeningsFail {
        /// The tile check's error.
        detail: String,
    },
    /// The auditor's `C` (which matches `R_C`) fails Freivalds at this row.
    DataShowsWrongC {
        /// First bad row.
        row: usize,
    },
    /// The provider signed that it streamed a `C` other than the auditor's, which matches
    /// `R_C`: it did not deliver what it committed to.
    StreamedCNotCommitted,
    /// Nothing in the receipt or the data shows the rejection right or wrong: it rests on
    /// the verifiers' signed reasons.
    NotIndependentlyCheckable {
        /// The signed reasons, one per distinct verifier.
        reasons: Vec<String>,
    },
}

impl fmt::Display for RejectionGrounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectionGrounds::FraudProven { row, col } => write!(f, "fraud proven at ({row}, {col})"),
            RejectionGrounds::OpeningsFail { detail } => write!(f, "the openings fail the tile check: {detail}"),
            RejectionGrounds::DataShowsWrongC { row } => {
                write!(f, "the auditor's C (matching R_C) fails Freivalds at row {row}")
            }
            RejectionGrounds::StreamedCNotCommitted => {
                write!(f, "the provider signed a streamed C that is not the C matching R_C")
            }
            RejectionGrounds::NotIndependentlyCheckable { reasons } => {
                write!(f, "not independently checkable: the verifier's signed reason: ")?;
                let quoted: Vec<String> = reasons.iter().map(|r| format!("{r:?}")).collect();
                write!(f, "{}", quoted.join("; "))
            }
        }
    }
}

/// The bounds behind an audited receipt, recomputed from the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditBounds {
    /// Tiles in the job, `T`.
    pub tiles: u64,
    /// Tiles sampled, `s`.
    pub samples: u32,
    /// `(1 − 1/T)^s`.
    pub escape_one_wrong_tile: f64,
    /// The policy's `f`.
    pub policy_fraction: f64,
    /// `(1 − f)^s`.
    pub escape_policy_fraction: f64,
    /// `log2((tm + tn)/r)`: a wrong opened tile passes its proof's identity.
    pub tile_identity_error_log2: f64,
    /// Freivalds rounds the verifier states it ran (0 in succinct mode); re-checked only
    /// with data.
    pub verifier_freivalds_rounds: u32,
    /// `61·rounds` of the verifier's Freivalds check (a wrong `C` passes with probability
    /// `≤ 2^-exponent`), 0 in succinct mode.
    pub verifier_freivalds_exponent: u32,
    /// Fresh Freivalds rounds the auditor ran on its own `C`, if it had one.
    pub audit_freivalds_rounds: Option<u32>,
    /// `61·rounds` of the auditor's own Freivalds check.
    pub audit_freivalds_exponent: Option<u32>,
}

/// What the audit checked and found. Returned only when the receipt passes; see
/// [`AuditError`] otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditReport {
    /// The job.
    pub job_id: JobId,
    /// The commitment judged.
    pub r_c: MerkleRoot,
    /// Full or succinct.
    pub mode: VerificationMode,
    /// The verifiers' (agreeing) decision.
    pub verdict: Verdict,
    /// Every check, in order.
    pub checks: Vec<AuditCheck>,
    /// The bounds.
    pub bounds: AuditBounds,
    /// The key that signed the challenge.
    pub challenge_signer: PublicKey,
    /// The distinct keys that signed verdicts.
    pub verdict_signers: Vec<PublicKey>,
    /// Whether the auditor pinned a trusted verifier set (if not, any key was accepted).
    pub verifiers_pinned: bool,
    /// The hash and origin of the verifying key used, if one was needed.
    pub verifying_key: Option<(VkHash, String)>,
    /// On a rejection: why it stands.
    pub rejection: Option<RejectionGrounds>,
    /// A rejection that rests on the verifiers' signatures alone.
    pub rejection_unverifiable: bool,
    /// An approval of a job without tile proofs (`samples = 0`) audited without `C`: the
    /// full check (Freivalds over all of `C`) is the verifier's word until `A`, `B`, `C` are
    /// given; nothing in the receipt lets an auditor re-check `C`.
    pub approval_unverifiable: bool,
}

impl AuditReport {
    /// The named check, if it ran.
    pub fn check(&self, name: &str) -> Option<&AuditCheck> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            VerificationMode::Full => "full",
            VerificationMode::Succinct => "succinct",
        };
        writeln!(f, "job:     {}", self.job_id)?;
        writeln!(f, "R_C:     {}", self.r_c)?;
        writeln!(f, "mode:    {mode}")?;
        writeln!(f, "verdict: {}", self.verdict.as_str())?;
        for check in &self.checks {
            writeln!(f, "  [{:>4}] {}: {}", check.outcome.as_str(), check.name, check.detail)?;
        }
        let b = &self.bounds;
        if b.verifier_freivalds_rounds > 0 {
            writeln!(
                f,
                "bounds:  verifier's Freivalds: {} rounds over 2^61-1 on all of C (a wrong C passes with probability \
                 <= 2^-{}; as stated by the verifier, re-checked only with data)",
                b.verifier_freivalds_rounds, b.verifier_freivalds_exponent
            )?;
        }
        if let (Some(rounds), Some(exponent)) = (b.audit_freivalds_rounds, b.audit_freivalds_exponent) {
            writeln!(
                f,
                "bounds:  auditor's Freivalds: {rounds} fresh rounds on the auditor's C (a wrong C passes with \
                 probability <= 2^-{exponent})"
            )?;
        }
        writeln!(
            f,
            "bounds:  {} of {} tiles sampled: a cheater with one wrong tile escapes with probability <= {:.6}, with \
             {:.4}% of tiles wrong <= {:.6}",
            b.samples,
            b.tiles,
            b.escape_one_wrong_tile,
            b.policy_fraction * 100.0,
            b.escape_policy_fraction
        )?;
        writeln!(
            f,
            "bounds:  an opened wrong tile passes its proof's identity with probability <= 2^{:.1}",
            b.tile_identity_error_log2
        )?;
        if let Some((hash, origin)) = &self.verifying_key {
            writeln!(f, "key:     verifying key {} ({origin})", hash)?;
        }
        writeln!(f, "signers: challenge {}", self.challenge_signer)?;
        for key in &self.verdict_signers {
            writeln!(f, "signers: verdict {}", key)?;
        }
        if self.verifiers_pinned {
            writeln!(f, "signers: every signer is in the auditor's trusted set")?;
        } else {
            writeln!(
                f,
                "signers: no trusted verifier set given: any key was accepted (pass the verifiers' keys to check who \
                 signed)"
            )?;
        }
        if let Some(grounds) = &self.rejection {
            writeln!(f, "rejection: {grounds}")?;
        }
        if self.approval_unverifiable {
            writeln!(
                f,
                "cannot re-check C: the job asked for no tile proofs (samples = 0), so the approval rests on the \
                 verifier's full check; give A, B and C to re-run Freivalds"
            )?;
        }
        Ok(())
    }
}

/// Audits a receipt from its protobuf bytes (what is stored on disk).
pub fn audit_bytes(bytes: &[u8], keys: &AuditKeys, data: Option<&AuditData>) -> Result<AuditReport, AuditError> {
    let receipt = decode_receipt(bytes)?;
    audit(&receipt, keys, data)
}

fn passed(name: &'static str, detail: impl Into<String>) -> AuditCheck {
    AuditCheck { name, outcome: Outcome::Passed, detail: detail.into() }
}

/// Audits a receipt (see the module documentation for what is checked and in which order).
pub fn audit(receipt: &Receipt, keys: &AuditKeys, data: Option<&AuditData>) -> Result<AuditReport, AuditError> {
    let mut checks = Vec::new();
    let (tiling, job_id) = check_spec(receipt, &mut checks)?;
    check_challenge(receipt, keys, job_id, tiling.tile_count(), &mut checks)?;
    check_provider_signatures(receipt, job_id, &mut checks)?;
    let recomputed = check_summary(&receipt.spec)?;
    summary_matches(&receipt.summary, &recomputed)?;
    checks.push(passed(
        "summary",
        "the stated mode, rounds, samples, tiles and policy ppm are the spec's; the bounds are within 1e-9 of their \
         formula (the statement is not checked)",
    ));
    let verdicts = check_verdicts(receipt, keys, job_id, &mut checks)?;
    let mut decision = match verdicts.verdict {
        Verdict::Approved => check_approval(receipt, keys, &verdicts, tiling.tile_count(), &mut checks)?,
        Verdict::Rejected => check_rejection(receipt, keys, &verdicts, tiling.tile_count(), &mut checks)?,
    };
    let mut audit_rounds = None;
    if let Some(data) = data {
        let outcome =
            check_data(&receipt.spec, receipt, &receipt.challenge.challenge, data, verdicts.verdict, &mut checks)?;
        audit_rounds = outcome.fresh_rounds;
        if let (Some(row), None) = (outcome.wrong_row, &decision.rejection) {
            decision.rejection = Some(RejectionGrounds::DataShowsWrongC { row });
        }
        if outcome.streamed_other_c && decision.rejection.is_none() {
            decision.rejection = Some(RejectionGrounds::StreamedCNotCommitted);
        }
    }
    if verdicts.verdict == Verdict::Rejected && decision.rejection.is_none() {
        decision.rejection = Some(RejectionGrounds::NotIndependentlyCheckable { reasons: verdicts.reasons.clone() });
    }
    Ok(report(receipt, keys, job_id, &recomputed, audit_rounds, verdicts, decision, checks))
}

/// Step 1: version, spec, consumer signature. Returns the tiling and `job_id`.
fn check_spec(
    receipt: &Receipt,
    checks: &mut Vec<AuditCheck>,
) -> Result<(matproof_protocol::tiling::Tiling, JobId), AuditError> {
    if receipt.version != RECEIPT_VERSION {
        return Err(AuditError::Version { found: receipt.version, expected: RECEIPT_VERSION });
    }
    checks.push(passed("version", format!("receipt format version {RECEIPT_VERSION}")));
    let spec = &receipt.spec;
    spec.validate()?;
    let tiling = spec.tiling()?;
    let policy = &spec.policy;
    checks.push(passed(
        "spec",
        format!(
            "{}x{}x{} int8 GEMM, tile {}x{}, kc {}, {} tiles; policy: {} samples, {} Freivalds rounds, quorum {}; \
             job_id = SHA-256 of the canonical spec",
            spec.m,
            spec.k,
            spec.n,
            spec.shape.tm,
            spec.shape.tn,
            spec.shape.kc,
            tiling.tile_count(),
            policy.samples,
            policy.freivalds_rounds,
            policy.quorum
        ),
    ));
    verify(&spec.consumer, PURPOSE_JOB, &spec.canonical_bytes(), &receipt.consumer_signature)
        .map_err(AuditError::ConsumerSignature)?;
    checks.push(passed("consumer-signature", format!("consumer {} signed the canonical spec", spec.consumer)));
    Ok((tiling, spec.job_id()))
}

/// Step 2: the challenge names this job and `R_C`, is signed, and the openings name the
/// tiles it samples, in order.
fn check_challenge(
    receipt: &Receipt,
    keys: &AuditKeys,
    job_id: JobId,
    tiles: usize,
    checks: &mut Vec<AuditCheck>,
) -> Result<(), AuditError> {
    let signed = &receipt.challenge;
    let challenge = &signed.challenge;
    if challenge.job_id != job_id {
        return Err(AuditError::ChallengeJob { challenge: challenge.job_id, spec: job_id });
    }
    if challenge.r_c != receipt.r_c {
        return Err(AuditError::ChallengeCommitment { challenge: challenge.r_c, receipt: receipt.r_c });
    }
    signed.verify().map_err(AuditError::ChallengeSignature)?;
    check_signer(keys, receipt.spec.provider, SignerRole::Challenge, &signed.verifier_key)?;
    let samples = receipt.spec.policy.samples as usize;
    let sampled = challenge.sample_tiles(samples, tiles)?;
    if receipt.openings.len() > samples {
        return Err(AuditError::TooManyOpenings { samples, got: receipt.openings.len() });
    }
    for (position, (opening, &expected)) in receipt.openings.iter().zip(&sampled).enumerate() {
        if opening.tile_index != expected {
            return Err(AuditError::WrongTile { position, expected, got: opening.tile_index });
        }
    }
    checks.push(passed(
        "challenge",
        format!(
            "for this job_id and R_C, signed by verifier {}; tiles {:?} re-derived from (job_id, R_C, seed); the {} \
             opening(s) name them in order",
            signed.verifier_key,
            sampled,
            receipt.openings.len()
        ),
    ));
    Ok(())
}

/// Step 3 (first half): the provider committed to `R_C` and signed the response the receipt
/// holds, so a rejection's evidence is the provider's own, not the verifier's word.
fn check_provider_signatures(receipt: &Receipt, job_id: JobId, checks: &mut Vec<AuditCheck>) -> Result<(), AuditError> {
    let provider = receipt.spec.provider;
    verify_commit(&provider, &job_id, &receipt.r_c, &receipt.commit_signature)
        .map_err(|source| AuditError::CommitSignature { source })?;
    let end = &receipt.response_end;
    let digest = response_digest(&job_id, &receipt.r_c, end.c_digest, &receipt.openings);
    end.verify(&provider, &job_id, &receipt.r_c, &receipt.openings)
        .map_err(|source| AuditError::ResponseSignature { response_digest: hex_of(&digest), source })?;
    let c_part = match receipt.spec.policy.mode {
        VerificationMode::Succinct => {
            let none = c_digest(&[]);
            if end.c_digest != none {
                return Err(AuditError::SuccinctCDigest { stated: hex_of(&end.c_digest), expected: hex_of(&none) });
            }
            "no C (succinct mode)".to_string()
        }
        VerificationMode::Full => {
            format!("a streamed C with digest {} (checked against C when given)", hex_of(&end.c_digest))
        }
    };
    checks.push(passed(
        "provider-signatures",
        format!(
            "provider {provider} signed R_C for this job (commit) and the response: {} opening(s) and {c_part}",
            receipt.openings.len()
        ),
    ));
    Ok(())
}

fn hex_of(bytes: &[u8; 32]) -> String {
    matproof_protocol::ids::to_hex(bytes)
}

/// What step 4 found: the agreed verdict and who signed it.
struct VerdictSet {
    verdict: Verdict,
    approvals: BTreeSet<PublicKey>,
    rejections: BTreeSet<PublicKey>,
    reasons: Vec<String>,
}

/// Step 4: every verdict is signed over this job and `R_C` by an acceptable key, and they
/// agree.
fn check_verdicts(
    receipt: &Receipt,
    keys: &AuditKeys,
    job_id: JobId,
    checks: &mut Vec<AuditCheck>,
) -> Result<VerdictSet, AuditError> {
    if receipt.verdicts.is_empty() {
        return Err(AuditError::NoVerdicts);
    }
    let mut set = VerdictSet {
        verdict: Verdict::Rejected,
        approvals: BTreeSet::new(),
        rejections: BTreeSet::new(),
        reasons: Vec::new(),
    };
    for (index, v) in receipt.verdicts.iter().enumerate() {
        v.verify().map_err(|source| AuditError::VerdictSignature { index, source })?;
        if v.job_id != job_id {
            return Err(AuditError::VerdictJob { index, expected: job_id, got: v.job_id });
        }
        if v.r_c != receipt.r_c {
            return Err(AuditError::VerdictCommitment { index, expected: receipt.r_c, got: v.r_c });
        }
        check_signer(keys, receipt.spec.provider, SignerRole::Verdict(index), &v.verifier_key)?;
        let fresh = match v.verdict {
            Verdict::Approved => set.approvals.insert(v.verifier_key),
            Verdict::Rejected => set.rejections.insert(v.verifier_key),
        };
        if fresh && v.verdict == Verdict::Rejected {
            set.reasons.push(v.reason.clone());
        }
    }
    if !set.approvals.is_empty() && !set.rejections.is_empty() {
        return Err(AuditError::ConflictingVerdicts {
            approvals: set.approvals.len(),
            rejections: set.rejections.len(),
        });
    }
    if !set.approvals.is_empty() {
        set.verdict = Verdict::Approved;
    }
    checks.push(passed(
        "verdicts",
        format!(
            "{} verdict(s) from {} distinct verifier(s), all {}, each signed over this job_id and R_C",
            receipt.verdicts.len(),
            set.approvals.len() + set.rejections.len(),
            set.verdict.as_str()
        ),
    ));
    Ok(set)
}

/// What step 5 found.
#[derive(Default)]
struct Decision {
    verifying_key: Option<(VkHash, String)>,
    rejection: Option<RejectionGrounds>,
}

/// Step 5, approval: quorum, no fraud proof, every sampled tile checks.
fn check_approval(
    receipt: &Receipt,
    keys: &AuditKeys,
    verdicts: &VerdictSet,
    tiles: usize,
    checks: &mut Vec<AuditCheck>,
) -> Result<Decision, AuditError> {
    let spec = &receipt.spec;
    let quorum = spec.policy.quorum;
    if verdicts.approvals.len() < quorum as usize {
        return Err(AuditError::Quorum { approvals: verdicts.approvals.len(), quorum });
    }
    checks.push(passed(
        "quorum",
        format!("{} distinct approving verifier(s), quorum {quorum}", verdicts.approvals.len()),
    ));
    if receipt.fraud_proof.is_some() {
        return Err(AuditError::FraudProofOnApproval);
    }
    if !spec.needs_proofs() {
        if !receipt.openings.is_empty() {
            return Err(AuditError::Openings(TileCheckError::OpeningCount {
                expected: 0,
                got: receipt.openings.len(),
            }));
        }
        checks.push(passed("openings", "none: the job asked for no tile proofs (samples = 0, sha256 input scheme)"));
        return Ok(Decision { verifying_key: None, rejection: None });
    }
    let key = keys.pinned(&spec.vk_hash)?;
    check_sampled_tiles(spec, &receipt.r_c, &receipt.challenge.challenge, &receipt.openings, &key)
        .map_err(AuditError::Openings)?;
    checks.push(passed("openings", openings_detail(receipt.openings.len(), tiles)));
    Ok(Decision { verifying_key: Some((spec.vk_hash, key.key().origin.describe())), rejection: None })
}

/// Step 5, rejection: a fraud proof must prove fraud; complete openings are re-checked and
/// a failing one justifies the rejection.
fn check_rejection(
    receipt: &Receipt,
    keys: &AuditKeys,
    verdicts: &VerdictSet,
    tiles: usize,
    checks: &mut Vec<AuditCheck>,
) -> Result<Decision, AuditError> {
    checks.push(passed(
        "quorum",
        format!(
            "rejected by {} distinct verifier(s); a rejection needs no quorum (one rejection voids the escrow)",
            verdicts.rejections.len()
        ),
    ));
    let mut decision = Decision::default();
    if let Some(proof) = &receipt.fraud_proof {
        check_fraud_proof(&receipt.spec, &receipt.r_c, proof).map_err(AuditError::FraudProof)?;
        checks.push(passed(
            "fraud-proof",
            format!(
                "entry ({}, {}) of the committed C differs from the product of the opened A row block and B \
                 column block; all three openings lead to R_A, R_B, R_C",
                proof.row, proof.col
            ),
        ));
        decision.rejection = Some(RejectionGrounds::FraudProven { row: proof.row, col: proof.col });
    }
    let samples = receipt.spec.policy.samples as usize;
    if receipt.openings.len() != samples {
        checks.push(AuditCheck {
            name: "openings",
            outcome: Outcome::Skipped,
            detail: format!(
                "the receipt holds {} of {samples} openings (the response was incomplete or never checked): \
                 nothing to re-check",
                receipt.openings.len()
            ),
        });
        return Ok(decision);
    }
    recheck_rejected_openings(receipt, keys, tiles, &mut decision, checks)?;
    Ok(decision)
}

/// Re-checks a rejected receipt's complete openings: a failure is grounds for the
/// rejection; a missing key is fatal unless a fraud proof already proves it.
fn recheck_rejected_openings(
    receipt: &Receipt,
    keys: &AuditKeys,
    tiles: usize,
    decision: &mut Decision,
    checks: &mut Vec<AuditCheck>,
) -> Result<(), AuditError> {
    let spec = &receipt.spec;
    let key = match keys.pinned(&spec.vk_hash) {
        Ok(key) => key,
        Err(e) if decision.rejection.is_some() => {
            checks.push(AuditCheck {
                name: "openings",
                outcome: Outcome::Skipped,
                detail: format!("not checked ({e}); the fraud proof already proves the rejection"),
            });
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    decision.verifying_key = Some((spec.vk_hash, key.key().origin.describe()));
    match check_sampled_tiles(spec, &receipt.r_c, &receipt.challenge.challenge, &receipt.openings, &key) {
        Ok(_) => checks.push(passed("openings", openings_detail(receipt.openings.len(), tiles))),
        Err(e) => {
            checks.push(AuditCheck { name: "openings", outcome: Outcome::Failed, detail: e.to_string() });
            decision.rejection.get_or_insert(RejectionGrounds::OpeningsFail { detail: e.to_string() });
        }
    }
    Ok(())
}

/// The report of a receipt that passed.
#[allow(clippy::too_many_arguments)] // the findings of each step, gathered once
fn report(
    receipt: &Receipt,
    keys: &AuditKeys,
    job_id: JobId,
    recomputed: &matproof_protocol::receipt::CheckSummary,
    audit_rounds: Option<u32>,
    verdicts: VerdictSet,
    decision: Decision,
    checks: Vec<AuditCheck>,
) -> AuditReport {
    let spec = &receipt.spec;
    let bounds = AuditBounds {
        tiles: recomputed.tiles,
        samples: recomputed.samples,
        escape_one_wrong_tile: recomputed.escape_one_wrong_tile,
        policy_fraction: recomputed.policy_fraction,
        escape_policy_fraction: recomputed.escape_policy_fraction,
        tile_identity_error_log2: tile_identity_error_log2(spec.shape.tm, spec.shape.tn),
        verifier_freivalds_rounds: recomputed.freivalds_rounds,
        verifier_freivalds_exponent: freivalds_error_exponent(recomputed.freivalds_rounds),
        audit_freivalds_rounds: audit_rounds,
        audit_freivalds_exponent: audit_rounds.map(freivalds_error_exponent),
    };
    let rejection_unverifiable = matches!(decision.rejection, Some(RejectionGrounds::NotIndependentlyCheckable { .. }));
    let approval_unverifiable = verdicts.verdict == Verdict::Approved && !spec.needs_proofs() && audit_rounds.is_none();
    AuditReport {
        job_id,
        r_c: receipt.r_c,
        mode: spec.policy.mode,
        verdict: verdicts.verdict,
        checks,
        bounds,
        challenge_signer: receipt.challenge.verifier_key,
        verdict_signers: verdicts.approvals.union(&verdicts.rejections).copied().collect(),
        verifiers_pinned: keys.trusted_verifiers.is_some(),
        verifying_key: decision.verifying_key,
        rejection: decision.rejection,
        rejection_unverifiable,
        approval_unverifiable,
    }
}

fn openings_detail(openings: usize, tiles: usize) -> String {
    format!(
        "{openings} of {tiles} tiles: C paths to R_C, d_A/d_B paths to R_A/R_B, zero padding, z recomputed, \
         {openings} Groth16 proofs batch-verified under the pinned key"
    )
}

fn check_signer(keys: &AuditKeys, provider: PublicKey, role: SignerRole, key: &PublicKey) -> Result<(), AuditError> {
    if *key == provider {
        return Err(AuditError::ProviderAsVerifier { role, key: *key });
    }
    if let Some(trusted) = &keys.trusted_verifiers
        && !trusted.contains(key)
    {
        return Err(AuditError::UntrustedVerifier { role, key: *key });
    }
    Ok(())
}

struct DataOutcome {
    fresh_rounds: Option<u32>,
    wrong_row: Option<usize>,
    streamed_other_c: bool,
}

fn root_matches(commitment: &'static str, expected: &MerkleRoot, recomputed: &MerkleRoot) -> Result<(), AuditError> {
    if expected != recomputed {
        return Err(AuditError::DataMismatch { commitment, expected: *expected, recomputed: *recomputed });
    }
    Ok(())
}

fn check_data(
    spec: &matproof_protocol::spec::JobSpec,
    receipt: &Receipt,
    challenge: &Challenge,
    data: &AuditData,
    verdict: Verdict,
    checks: &mut Vec<AuditCheck>,
) -> Result<DataOutcome, AuditError> {
    let tiling = spec.tiling()?;
    tiling.check_matrices(&data.a, &data.b, data.c.as_ref()).map_err(AuditError::DataShape)?;
    let scheme = spec.policy.input_scheme;
    let (r_a, r_b) = input_roots(scheme, &tiling, &data.a, &data.b).map_err(AuditError::DataShape)?;
    root_matches("R_A", &spec.r_a, &r_a)?;
    root_matches("R_B", &spec.r_b, &r_b)?;
    let Some(c) = &data.c else {
        checks.push(passed("data-commitments", "R_A and R_B recomputed from A and B equal the spec's"));
        return Ok(DataOutcome { fresh_rounds: None, wrong_row: None, streamed_other_c: false });
    };
    let r_c = c_tree(&tiling, c).map_err(AuditError::DataShape)?.root();
    root_matches("R_C", &receipt.r_c, &r_c)?;
    checks.push(passed("data-commitments", "R_A, R_B recomputed from A, B equal the spec's; R_C from C the receipt's"));
    let streamed_other_c = check_streamed_c(spec, receipt, c, verdict, checks)?;

    let dims = Dims { m: tiling.m, k: tiling.k, n: tiling.n };
    let challenge_rounds = spec.policy.freivalds_rounds as usize;
    // Fresh vectors: the same derivation (rejection sampling below 2^61 − 1) keyed by 32
    // bytes from the OS RNG that nobody else has seen (drawn through `Identity::generate`,
    // which is `getrandom` into a 32-byte seed, so this crate needs no RNG dependency).
    let fresh_seed = Identity::generate().map_err(|e| AuditError::Rng { reason: e.to_string() })?.seed();
    let fresh = Challenge { seed: Seed(fresh_seed), ..*challenge };
    let mut runs = Vec::new();
    if challenge_rounds > 0 {
        runs.push(("challenge", challenge.freivalds_vectors(challenge_rounds, tiling.n)?));
    }
    runs.push(("fresh", fresh.freivalds_vectors(AUDIT_FRESH_ROUNDS as usize, tiling.n)?));
    let mut wrong_row = None;
    let mut ran = Vec::new();
    for (vectors, v) in runs {
        match freivalds::check(data.a.as_slice(), data.b.as_slice(), c.as_slice(), dims, &v) {
            Ok(()) => ran.push(format!("{} {vectors}", v.len())),
            Err(FreivaldsError::Mismatch { row, .. }) if verdict == Verdict::Rejected => {
                wrong_row.get_or_insert(row);
                ran.push(format!("{} {vectors} (fail at row {row})", v.len()));
            }
            Err(source) => return Err(AuditError::Freivalds { vectors, source }),
        }
    }
    let detail = match wrong_row {
        None => format!("C = A·B holds under Freivalds over 2^61-1 with {} round(s)", ran.join(" + ")),
        Some(row) => format!("C != A·B: Freivalds over 2^61-1 fails at row {row} ({})", ran.join(" + ")),
    };
    let outcome = if wrong_row.is_some() { Outcome::Failed } else { Outcome::Passed };
    checks.push(AuditCheck { name: "data-freivalds", outcome, detail });
    Ok(DataOutcome { fresh_rounds: Some(AUDIT_FRESH_ROUNDS), wrong_row, streamed_other_c })
}

/// Full mode with `C`: the receipt's `C` digest (what the provider signed it streamed) must
/// be the digest of the auditor's `C`, which matches `R_C`. Under a rejection a difference
/// is returned as grounds (`true`): the provider streamed another `C` than it committed to.
fn check_streamed_c(
    spec: &matproof_protocol::spec::JobSpec,
    receipt: &Receipt,
    c: &MatrixI32,
    verdict: Verdict,
    checks: &mut Vec<AuditCheck>,
) -> Result<bool, AuditError> {
    if spec.policy.mode != VerificationMode::Full {
        return Ok(false);
    }
    let recomputed = c_digest(c.as_slice());
    let stated = receipt.response_end.c_digest;
    if stated == recomputed {
        checks.push(passed("data-streamed-c", "the C the provider signed it streamed is this C"));
        return Ok(false);
    }
    if verdict == Verdict::Approved {
        return Err(AuditError::StreamedC { stated: hex_of(&stated), recomputed: hex_of(&recomputed) });
    }
    checks.push(AuditCheck {
        name: "data-streamed-c",
        outcome: Outcome::Failed,
        detail: format!(
            "the provider signed a streamed C with digest {}, but the C matching R_C has digest {}",
            hex_of(&stated),
            hex_of(&recomputed)
        ),
    });
    Ok(true)
}
