//! The audit of receipts (DESIGN §6), on real receipts built in process: honest approvals
//! (full and succinct) pass with and without data; rejections are justified by a fraud
//! proof, by a failing opening, or flagged as not independently checkable; every forgery
//! and every single-bit corruption of an approved receipt fails.

use matproof_circuits::{TileProvingKey, TileVerifyingKey, development_setup};
use matproof_protocol::commit::c_tree;
use matproof_protocol::freivalds::{self, Dims, FreivaldsError};
use matproof_protocol::identity::{Identity, Signature};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::matrix::{MatrixI8, MatrixI32, naive_product, random_i8};
use matproof_protocol::receipt::{
    PURPOSE_JOB, PURPOSE_RESPOND, RECEIPT_VERSION, Receipt, SignedChallenge, SignedVerdict, Verdict,
    respond_signing_bytes, response_digest,
};
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::{decode_receipt, encode_receipt};
use matproof_prover::{CommittedJob, CpuBackend, execute};
use matproof_testkit::provider_signatures;
use matproof_verifier::audit::{Outcome, RejectionGrounds, SignerRole};
use matproof_verifier::soundness::{bound_within_tolerance, summary_matches};
use matproof_verifier::{
    AuditData, AuditError, AuditKeys, TileCheckError, audit, audit_bytes, build_fraud_proof, check_sampled_tiles,
    check_summary,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 4, kc: 16 };
const M: usize = 18;
const K: usize = 16;
const N: usize = 20;

fn keys() -> &'static (TileProvingKey, TileVerifyingKey) {
    matproof_testkit::dev_keys(SHAPE)
}

fn consumer() -> Identity {
    Identity::from_seed([1; 32])
}

fn provider() -> Identity {
    Identity::from_seed([2; 32])
}

fn verifier(i: usize) -> Identity {
    Identity::from_seed([10 + i as u8; 32])
}

fn audit_keys() -> AuditKeys {
    AuditKeys::new(vec![keys().1.clone()])
}

/// Where the sampled tiles fall relative to a cheat.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sampling {
    /// Seed `[42; 32]`.
    Fixed,
    /// The first seed whose sample includes the cheated tile.
    CatchCheat,
    /// The first seed whose sample misses the cheated tile (a lucky cheater).
    MissCheat,
}

#[derive(Clone, Copy)]
struct Params {
    mode: VerificationMode,
    samples: u32,
    quorum: u32,
    verifiers: usize,
    nonce: u8,
    /// The provider commits to a C with entry `(row, col)` off by one.
    cheat: Option<(usize, usize)>,
    sampling: Sampling,
}

const HONEST_FULL: Params = Params {
    mode: VerificationMode::Full,
    samples: 4,
    quorum: 1,
    verifiers: 1,
    nonce: 1,
    cheat: None,
    sampling: Sampling::Fixed,
};

const HONEST_SUCCINCT: Params = Params { mode: VerificationMode::Succinct, ..HONEST_FULL };

struct Built {
    receipt: Receipt,
    a: MatrixI8,
    b: MatrixI8,
    /// The committed C (wrong where the provider cheated).
    c: MatrixI32,
}

impl Built {
    fn data(&self, with_c: bool) -> AuditData {
        AuditData { a: self.a.clone(), b: self.b.clone(), c: with_c.then(|| self.c.clone()) }
    }
}

fn seed_for(p: &Params, tiling: &Tiling, job_id: JobId, r_c: MerkleRoot) -> Seed {
    let Some((row, col)) = p.cheat.filter(|_| p.sampling != Sampling::Fixed) else { return Seed([42; 32]) };
    let cheated = tiling.tile_index(row / SHAPE.tm, col / SHAPE.tn).unwrap() as u64;
    (0u8..=255)
        .map(|s| Seed([s; 32]))
        .find(|&seed| {
            let sampled =
                Challenge { job_id, r_c, seed }.sample_tiles(p.samples as usize, tiling.tile_count()).unwrap();
            sampled.contains(&cheated) == (p.sampling == Sampling::CatchCheat)
        })
        .unwrap()
}

/// Consumer, provider and verifier(s) in process, the verifier deciding as a node would:
/// Freivalds over the streamed C in full mode (a failure yields a fraud proof), then the
/// sampled tiles.
fn build(p: Params) -> Built {
    let tiling = Tiling::new(M, K, N, SHAPE).unwrap();
    let a = random_i8(M, K, 1).unwrap();
    let b = random_i8(K, N, 2).unwrap();
    let self_check = Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed([9; 32]) }
        .freivalds_vectors(2, N)
        .unwrap();
    let mut execution = execute(&CpuBackend::best(), &tiling, &a, &b, &self_check).unwrap();
    if let Some((row, col)) = p.cheat {
        execution.c.as_mut_slice()[row * N + col] += 1;
        execution.c_tree = c_tree(&tiling, &execution.c).unwrap();
    }
    let job = CommittedJob::new(tiling, a.clone(), b.clone(), execution).unwrap();
    let standard = matproof_testkit::spec_of(&job, p.mode, p.samples);
    let policy = Policy { quorum: p.quorum, target_fraud_ppm: 50_000, ..standard.policy };
    let spec = JobSpec { policy, price: 100, slash_amount: 500, nonce: vec![p.nonce], ..standard };
    let consumer_signature = consumer().sign(PURPOSE_JOB, &spec.canonical_bytes());
    let job_id = spec.job_id();
    let r_c = job.execution.c_tree.root();
    let challenge = Challenge { job_id, r_c, seed: seed_for(&p, &tiling, job_id, r_c) };
    let openings = job.respond(&keys().0, &challenge, p.samples as usize, 2).unwrap();

    let c = job.execution.c.clone();
    let mut fraud_proof = None;
    let mut decision = (Verdict::Approved, "all checks passed".to_string());
    if p.mode == VerificationMode::Full {
        let vectors = challenge.freivalds_vectors(2, N).unwrap();
        if let Err(FreivaldsError::Mismatch { row, .. }) =
            freivalds::check(a.as_slice(), b.as_slice(), c.as_slice(), Dims { m: M, k: K, n: N }, &vectors)
        {
            fraud_proof = Some(build_fraud_proof(&spec, &a, &b, &c, row).unwrap());
            decision = (Verdict::Rejected, format!("Freivalds failed at row {row}"));
        }
    }
    if fraud_proof.is_none() {
        let pinned = matproof_circuits::PinnedVerifyingKey::new(keys().1.clone(), &spec.vk_hash).unwrap();
        if let Err(e) = check_sampled_tiles(&spec, &r_c, &challenge, &openings, &pinned) {
            decision = (Verdict::Rejected, e.to_string());
        }
    }
    let verdicts =
        (0..p.verifiers).map(|i| SignedVerdict::sign(job_id, r_c, decision.0, &decision.1, &verifier(i))).collect();
    let streamed = (p.mode == VerificationMode::Full).then(|| c.as_slice());
    let (commit_signature, response_end) = provider_signatures(&spec, r_c, streamed, &openings, &provider());
    let receipt = Receipt {
        version: RECEIPT_VERSION,
        summary: check_summary(&spec).unwrap(),
        spec,
        consumer_signature,
        r_c,
        commit_signature,
        response_end,
        challenge: SignedChallenge::sign(challenge, &verifier(0)),
        openings,
        verdicts,
        fraud_proof,
    };
    Built { receipt, a, b, c }
}

/// The provider signs `receipt`'s commitment and openings as they now are (a lying provider
/// signs its own lies: what the audit must then catch is the lie, not the signature).
fn provider_resigns(receipt: &mut Receipt) {
    let (job_id, r_c) = (receipt.spec.job_id(), receipt.r_c);
    let digest = response_digest(&job_id, &r_c, receipt.response_end.c_digest, &receipt.openings);
    receipt.response_end.signature = provider().sign(PURPOSE_RESPOND, &respond_signing_bytes(&job_id, &r_c, &digest));
}

/// Re-signs every verdict of `receipt` with `verdict` and `reason`.
fn resign(receipt: &mut Receipt, verdict: Verdict, reason: &str) {
    let (job_id, r_c) = (receipt.spec.job_id(), receipt.r_c);
    for (i, v) in receipt.verdicts.iter_mut().enumerate() {
        *v = SignedVerdict::sign(job_id, r_c, verdict, reason, &verifier(i));
    }
}

fn names(report: &matproof_verifier::AuditReport) -> Vec<&'static str> {
    report.checks.iter().map(|c| c.name).collect()
}

#[test]
fn honest_approvals_audit_ok_with_and_without_data() {
    for params in [HONEST_FULL, HONEST_SUCCINCT] {
        let built = build(params);
        assert_eq!(built.receipt.verdicts[0].verdict, Verdict::Approved);
        let summary = check_summary(&built.receipt.spec).unwrap();
        for data in [None, Some(built.data(false)), Some(built.data(true))] {
            let report = audit(&built.receipt, &audit_keys(), data.as_ref()).unwrap();
            assert_eq!(report.verdict, Verdict::Approved);
            assert_eq!(report.mode, params.mode);
            assert_eq!(report.job_id, built.receipt.spec.job_id());
            assert!(report.rejection.is_none() && !report.rejection_unverifiable);
            assert!(report.checks.iter().all(|c| c.outcome == Outcome::Passed), "{report}");
            assert_eq!(report.bounds.tiles, 25);
            assert_eq!(report.bounds.samples, 4);
            assert_eq!(report.bounds.escape_one_wrong_tile, summary.escape_one_wrong_tile);
            assert_eq!(report.bounds.escape_policy_fraction, summary.escape_policy_fraction);
            assert!(report.bounds.tile_identity_error_log2 < -245.0);
            let full = params.mode == VerificationMode::Full;
            assert_eq!(report.bounds.verifier_freivalds_exponent, if full { 122 } else { 0 });
            let with_c = data.as_ref().is_some_and(|d| d.c.is_some());
            assert_eq!(report.bounds.audit_freivalds_exponent, with_c.then_some(122));
            assert_eq!(report.challenge_signer, verifier(0).public_key());
            assert_eq!(report.verdict_signers, vec![verifier(0).public_key()]);
            assert!(!report.verifiers_pinned);
            assert_eq!(report.verifying_key.as_ref().map(|k| k.0), Some(keys().1.hash()));
            let text = report.to_string();
            assert!(text.contains("verdict: approved"), "{text}");
            assert!(text.contains("no trusted verifier set given"), "{text}");
            assert_eq!(text.contains("auditor's Freivalds: 2 fresh rounds"), with_c, "{text}");
            assert_eq!(text.contains("verifier's Freivalds: 2 rounds"), full, "{text}");
        }
        // And from the bytes on disk.
        audit_bytes(&encode_receipt(&built.receipt), &audit_keys(), None).unwrap();
    }
}

#[test]
fn the_report_names_each_check() {
    let built = build(HONEST_FULL);
    let report = audit(&built.receipt, &audit_keys(), None).unwrap();
    assert_eq!(
        names(&report),
        [
            "version",
            "spec",
            "consumer-signature",
            "challenge",
            "provider-signatures",
            "summary",
            "verdicts",
            "quorum",
            "openings"
        ]
    );
    let report = audit(&built.receipt, &audit_keys(), Some(&built.data(true))).unwrap();
    assert_eq!(names(&report)[9..], ["data-commitments", "data-streamed-c", "data-freivalds"]);
    let detail = &report.check("data-freivalds").unwrap().detail;
    assert!(detail.contains("2 challenge + 2 fresh"), "{detail}");
    let detail = &report.check("openings").unwrap().detail;
    assert!(detail.contains("4 of 25 tiles") && detail.contains("batch-verified"), "{detail}");
    let detail = &report.check("challenge").unwrap().detail;
    assert!(detail.contains("re-derived from (job_id, R_C, seed)"), "{detail}");
}

#[test]
fn a_rejection_with_a_fraud_proof_is_proven() {
    let built = build(Params { cheat: Some((13, 6)), ..HONEST_FULL });
    assert!(built.receipt.fraud_proof.is_some());
    for data in [None, Some(built.data(true))] {
        let report = audit(&built.receipt, &audit_keys(), data.as_ref()).unwrap();
        assert_eq!(report.verdict, Verdict::Rejected);
        assert_eq!(report.rejection, Some(RejectionGrounds::FraudProven { row: 13, col: 6 }));
        assert!(!report.rejection_unverifiable);
        assert!(report.check("fraud-proof").unwrap().passed());
        assert!(report.to_string().contains("rejection: fraud proven at (13, 6)"), "{report}");
        if data.is_some() {
            assert_eq!(report.check("data-freivalds").unwrap().outcome, Outcome::Failed);
        }
    }
    // Without the verifying key the fraud proof still stands; the openings are skipped.
    let report = audit(&built.receipt, &AuditKeys::new(vec![]), None).unwrap();
    assert_eq!(report.check("openings").unwrap().outcome, Outcome::Skipped);
    assert_eq!(report.rejection, Some(RejectionGrounds::FraudProven { row: 13, col: 6 }));
}

#[test]
fn a_rejection_for_a_wrong_tile_names_the_failing_opening() {
    let built = build(Params { cheat: Some((9, 17)), sampling: Sampling::CatchCheat, ..HONEST_SUCCINCT });
    let v = &built.receipt.verdicts[0];
    assert_eq!(v.verdict, Verdict::Rejected);
    let report = audit(&built.receipt, &audit_keys(), None).unwrap();
    let cheated_tile = 2 * 5 + 4;
    match &report.rejection {
        Some(RejectionGrounds::OpeningsFail { detail }) => {
            assert!(detail.contains(&format!("tile {cheated_tile}")), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!report.rejection_unverifiable);
    assert_eq!(report.check("openings").unwrap().outcome, Outcome::Failed);
    // With data the wrong C is confirmed too (the openings' grounds come first).
    let report = audit(&built.receipt, &audit_keys(), Some(&built.data(true))).unwrap();
    assert_eq!(report.check("data-freivalds").unwrap().outcome, Outcome::Failed);
    assert!(matches!(report.rejection, Some(RejectionGrounds::OpeningsFail { .. })));
}

#[test]
fn a_rejection_with_nothing_checkable_is_flagged_unverifiable() {
    let mut built = build(HONEST_SUCCINCT);
    resign(&mut built.receipt, Verdict::Rejected, "deadline missed");
    let report = audit(&built.receipt, &audit_keys(), None).unwrap();
    assert!(report.rejection_unverifiable);
    assert_eq!(
        report.rejection,
        Some(RejectionGrounds::NotIndependentlyCheckable { reasons: vec!["deadline missed".into()] })
    );
    assert!(report.to_string().contains("not independently checkable"), "{report}");
    assert!(report.check("openings").unwrap().passed());
    // No openings at all (the provider never answered): still unverifiable, not an error.
    built.receipt.openings.clear();
    provider_resigns(&mut built.receipt);
    let report = audit(&built.receipt, &audit_keys(), None).unwrap();
    assert!(report.rejection_unverifiable);
    assert_eq!(report.check("openings").unwrap().outcome, Outcome::Skipped);
    // Data that shows C is right leaves it unverifiable; data that shows C wrong confirms it.
    let report = audit(&built.receipt, &audit_keys(), Some(&built.data(true))).unwrap();
    assert!(report.rejection_unverifiable);
    let mut lucky = build(Params { cheat: Some((0, 0)), sampling: Sampling::MissCheat, ..HONEST_SUCCINCT });
    resign(&mut lucky.receipt, Verdict::Rejected, "streamed C did not match R_C");
    let report = audit(&lucky.receipt, &audit_keys(), Some(&lucky.data(true))).unwrap();
    assert_eq!(report.rejection, Some(RejectionGrounds::DataShowsWrongC { row: 0 }));
    assert!(!report.rejection_unverifiable);
}

#[test]
fn a_lucky_cheaters_approval_passes_without_data_and_fails_with_it() {
    let built = build(Params { cheat: Some((17, 19)), sampling: Sampling::MissCheat, ..HONEST_SUCCINCT });
    assert_eq!(built.receipt.verdicts[0].verdict, Verdict::Approved);
    audit(&built.receipt, &audit_keys(), None).unwrap();
    audit(&built.receipt, &audit_keys(), Some(&built.data(false))).unwrap();
    let err = audit(&built.receipt, &audit_keys(), Some(&built.data(true))).unwrap_err();
    assert!(matches!(err, AuditError::Freivalds { source: FreivaldsError::Mismatch { row: 17, .. }, .. }), "{err}");
}

#[test]
fn verifier_keys_are_checked_against_the_trusted_set() {
    let built = build(HONEST_SUCCINCT);
    let trusted = audit_keys().with_trusted_verifiers([verifier(0).public_key()]);
    let report = audit(&built.receipt, &trusted, None).unwrap();
    assert!(report.verifiers_pinned);
    assert!(report.to_string().contains("trusted set"));
    let untrusted = audit_keys().with_trusted_verifiers([verifier(5).public_key()]);
    assert!(matches!(
        audit(&built.receipt, &untrusted, None),
        Err(AuditError::UntrustedVerifier { role: SignerRole::Challenge, .. })
    ));
    // The challenge by a trusted key, the verdict by another.
    let mut r = built.receipt.clone();
    r.verdicts[0] = SignedVerdict::sign(r.spec.job_id(), r.r_c, Verdict::Approved, "ok", &verifier(3));
    assert!(matches!(
        audit(&r, &trusted, None),
        Err(AuditError::UntrustedVerifier { role: SignerRole::Verdict(0), .. })
    ));
    audit(&r, &audit_keys(), None).unwrap();
    // The provider approving its own work.
    r.verdicts[0] = SignedVerdict::sign(r.spec.job_id(), r.r_c, Verdict::Approved, "ok", &provider());
    assert!(matches!(
        audit(&r, &audit_keys(), None),
        Err(AuditError::ProviderAsVerifier { role: SignerRole::Verdict(0), .. })
    ));
}

/// A named change to a receipt.
type Mutation = Box<dyn Fn(&mut Receipt)>;

#[test]
fn overstated_bounds_fail() {
    let built = build(HONEST_FULL);
    let mutations: Vec<(&str, Mutation)> = vec![
        ("escape_one_wrong_tile", Box::new(|r| r.summary.escape_one_wrong_tile /= 2.0)),
        ("escape_policy_fraction", Box::new(|r| r.summary.escape_policy_fraction = 0.0)),
        ("policy_fraction", Box::new(|r| r.summary.policy_fraction = 0.5)),
        ("samples", Box::new(|r| r.summary.samples = 25)),
        ("tiles", Box::new(|r| r.summary.tiles = 4)),
        ("freivalds_rounds", Box::new(|r| r.summary.freivalds_rounds = 16)),
        ("mode", Box::new(|r| r.summary.mode = VerificationMode::Succinct)),
        ("target_fraud_ppm", Box::new(|r| r.summary.target_fraud_ppm += 1)),
        ("escape_one_wrong_tile", Box::new(|r| r.summary.escape_one_wrong_tile *= 1.0 + 1e-8)),
    ];
    for (field, mutate) in mutations {
        let mut r = built.receipt.clone();
        mutate(&mut r);
        match audit(&r, &audit_keys(), None) {
            Err(AuditError::Summary(m)) => assert_eq!(m.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn an_approval_with_a_proof_from_another_job_fails() {
    let built = build(HONEST_SUCCINCT);
    let other = build(Params { nonce: 2, ..HONEST_SUCCINCT });
    let mut r = built.receipt.clone();
    r.openings[0].proof = other.receipt.openings[0].proof.clone();
    provider_resigns(&mut r);
    let err = audit(&r, &audit_keys(), None).unwrap_err();
    assert!(matches!(err, AuditError::Openings(TileCheckError::Proof { .. })), "{err}");
    // Another job's openings wholesale (other tiles, other σ, ρ).
    let mut r = built.receipt.clone();
    r.openings = other.receipt.openings.clone();
    provider_resigns(&mut r);
    assert!(audit(&r, &audit_keys(), None).is_err());
    // Another job's challenge and verdicts.
    let mut r = built.receipt.clone();
    r.challenge = other.receipt.challenge.clone();
    assert!(matches!(audit(&r, &audit_keys(), None), Err(AuditError::ChallengeJob { .. })));
    let mut r = built.receipt.clone();
    r.verdicts = other.receipt.verdicts.clone();
    assert!(matches!(audit(&r, &audit_keys(), None), Err(AuditError::VerdictJob { index: 0, .. })));
}

#[test]
fn data_that_does_not_match_the_commitments_fails() {
    let built = build(HONEST_FULL);
    let mismatch = |data: AuditData| match audit(&built.receipt, &audit_keys(), Some(&data)) {
        Err(AuditError::DataMismatch { commitment, .. }) => commitment,
        other => panic!("{other:?}"),
    };
    let mut data = built.data(true);
    data.a.as_mut_slice()[5] ^= 1;
    assert_eq!(mismatch(data), "R_A");
    let mut data = built.data(false);
    data.b.as_mut_slice()[K * N - 1] ^= 4;
    assert_eq!(mismatch(data), "R_B");
    let mut data = built.data(true);
    data.c.as_mut().unwrap().as_mut_slice()[7] += 1;
    assert_eq!(mismatch(data), "R_C");
    let data = AuditData { a: random_i8(M, K + 1, 1).unwrap(), b: built.b.clone(), c: None };
    assert!(matches!(audit(&built.receipt, &audit_keys(), Some(&data)), Err(AuditError::DataShape(_))));
    // The right product of other data is still other data.
    let a = random_i8(M, K, 3).unwrap();
    let c = naive_product(&a, &built.b).unwrap();
    assert_eq!(mismatch(AuditData { a, b: built.b.clone(), c: Some(c) }), "R_A");
}

#[test]
fn the_quorum_counts_distinct_approving_verifiers() {
    let built = build(Params { quorum: 2, verifiers: 2, ..HONEST_SUCCINCT });
    let report = audit(&built.receipt, &audit_keys(), None).unwrap();
    assert_eq!(report.verdict_signers.len(), 2);
    let mut r = built.receipt.clone();
    r.verdicts.pop();
    assert!(matches!(audit(&r, &audit_keys(), None), Err(AuditError::Quorum { approvals: 1, quorum: 2 })));
    let mut r = built.receipt.clone();
    r.verdicts[1] = r.verdicts[0].clone();
    assert!(matches!(audit(&r, &audit_keys(), None), Err(AuditError::Quorum { approvals: 1, quorum: 2 })));
    let mut r = built.receipt.clone();
    r.verdicts[1] = SignedVerdict::sign(r.spec.job_id(), r.r_c, Verdict::Rejected, "no", &verifier(1));
    assert!(matches!(
        audit(&r, &audit_keys(), None),
        Err(AuditError::ConflictingVerdicts { approvals: 1, rejections: 1 })
    ));
}

#[test]
fn forged_or_inconsistent_receipts_fail() {
    let built = build(HONEST_FULL);
    let honest = &built.receipt;
    let fraud = build(Params { cheat: Some((13, 6)), ..HONEST_FULL });
    let check = |r: &Receipt| audit(r, &audit_keys(), None);

    let mut r = honest.clone();
    r.version = 3;
    assert!(matches!(check(&r), Err(AuditError::Version { found: 3, expected: 2 })));
    let mut r = honest.clone();
    r.consumer_signature = Signature([0; 64]);
    assert!(matches!(check(&r), Err(AuditError::ConsumerSignature(_))));
    let mut r = honest.clone();
    r.spec.price += 1; // the consumer did not sign this spec
    assert!(matches!(check(&r), Err(AuditError::ConsumerSignature(_))));
    let mut r = honest.clone();
    r.challenge.challenge.seed.0[0] ^= 1;
    assert!(matches!(check(&r), Err(AuditError::ChallengeSignature(_))));
    let mut r = honest.clone();
    r.challenge = SignedChallenge::sign(Challenge { seed: Seed([43; 32]), ..r.challenge.challenge }, &verifier(0));
    assert!(matches!(check(&r), Err(AuditError::WrongTile { position: 0, .. }) | Err(AuditError::Openings(_))));
    let mut r = honest.clone();
    r.r_c.0[0] ^= 1;
    assert!(matches!(check(&r), Err(AuditError::ChallengeCommitment { .. })));
    let mut r = honest.clone();
    r.verdicts[0] = SignedVerdict::sign(r.spec.job_id(), MerkleRoot([7; 32]), Verdict::Approved, "ok", &verifier(0));
    assert!(matches!(check(&r), Err(AuditError::VerdictCommitment { index: 0, .. })));
    let mut r = honest.clone();
    r.verdicts.clear();
    assert!(matches!(check(&r), Err(AuditError::NoVerdicts)));
    let mut r = honest.clone();
    r.verdicts[0].reason.push('!');
    assert!(matches!(check(&r), Err(AuditError::VerdictSignature { index: 0, .. })));
    let mut r = honest.clone();
    r.openings.pop();
    provider_resigns(&mut r);
    assert!(matches!(check(&r), Err(AuditError::Openings(TileCheckError::OpeningCount { expected: 4, got: 3 }))));
    let mut r = honest.clone();
    r.openings.swap(1, 2);
    provider_resigns(&mut r);
    assert!(matches!(check(&r), Err(AuditError::WrongTile { position: 1, .. })));
    let mut r = honest.clone();
    r.openings.push(r.openings[0].clone());
    provider_resigns(&mut r);
    assert!(matches!(check(&r), Err(AuditError::TooManyOpenings { samples: 4, got: 5 })));
    let mut r = honest.clone();
    r.openings[2].c_tile[1] += 1;
    provider_resigns(&mut r);
    assert!(matches!(check(&r), Err(AuditError::Openings(TileCheckError::Path { which: "C", .. }))));
    // An approval that carries (even a valid) fraud proof.
    let mut r = fraud.receipt.clone();
    resign(&mut r, Verdict::Approved, "ok");
    assert!(matches!(check(&r), Err(AuditError::FraudProofOnApproval)));
    // A false accusation: an honest C with a fraud proof lifted from another commitment.
    let mut r = honest.clone();
    r.fraud_proof = fraud.receipt.fraud_proof.clone();
    resign(&mut r, Verdict::Rejected, "Freivalds failed");
    assert!(matches!(check(&r), Err(AuditError::FraudProof(_))));
    // The wrong verifying key, or none.
    let (_, other_vk) = development_setup(SHAPE, &mut ChaCha20Rng::seed_from_u64(8)).unwrap();
    assert!(matches!(audit(honest, &AuditKeys::new(vec![other_vk]), None), Err(AuditError::NoVerifyingKey { .. })));
    assert!(matches!(audit(honest, &AuditKeys::new(vec![]), None), Err(AuditError::NoVerifyingKey { .. })));
}

/// Every single-bit flip of an approved receipt's bytes either fails to decode or fails the
/// audit, except flips inside what the audit deliberately does not compare bit for bit (the
/// statement, the bounds' last bits).
#[test]
fn every_bit_flip_of_an_approved_receipt_is_rejected() {
    let built = build(Params { samples: 2, ..HONEST_FULL });
    let bytes = encode_receipt(&built.receipt);
    assert_eq!(decode_receipt(&bytes).unwrap(), built.receipt);
    audit_bytes(&bytes, &audit_keys(), None).unwrap();
    let bits = bytes.len() * 8;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    let results: Vec<(usize, usize, usize, Vec<usize>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let bytes = &bytes;
                scope.spawn(move || {
                    let (mut undecodable, mut refused, mut accepted) = (0, 0, Vec::new());
                    let keys = audit_keys();
                    for bit in (t..bits).step_by(threads) {
                        let mut flipped = bytes.clone();
                        flipped[bit / 8] ^= 1 << (bit % 8);
                        match decode_receipt(&flipped) {
                            Err(_) => undecodable += 1,
                            Ok(receipt) => match audit(&receipt, &keys, None) {
                                Err(_) => refused += 1,
                                Ok(_) => accepted.push(bit),
                            },
                        }
                    }
                    (t, undecodable, refused, accepted)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let undecodable: usize = results.iter().map(|r| r.1).sum();
    let refused: usize = results.iter().map(|r| r.2).sum();
    let accepted: Vec<usize> = results.iter().flat_map(|r| r.3.clone()).collect();
    println!(
        "bit flips of a {}-byte approved receipt: {bits} tried, {undecodable} undecodable, {refused} refused by the \
         audit, {} accepted",
        bytes.len(),
        accepted.len()
    );
    for &bit in &accepted {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let same = decode_receipt(&flipped).unwrap() == built.receipt;
        println!("accepted: bit {bit} (byte {}), decodes to the same receipt: {same}", bit / 8);
    }
    assert_eq!(undecodable + refused + accepted.len(), bits);
    // The only flips the audit may accept are in what it does not compare exactly: the
    // statement (words for people) and the floating-point bounds' last bits (within
    // tolerance of their formula). Everything else is refused.
    for &bit in &accepted {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let mut r = decode_receipt(&flipped).unwrap();
        let (s, o) = (&r.summary, &built.receipt.summary);
        assert!(bound_within_tolerance(s.escape_one_wrong_tile, o.escape_one_wrong_tile), "bit {bit}");
        assert!(bound_within_tolerance(s.escape_policy_fraction, o.escape_policy_fraction), "bit {bit}");
        assert!(bound_within_tolerance(s.policy_fraction, o.policy_fraction), "bit {bit}");
        r.summary.statement.clone_from(&o.statement);
        r.summary.escape_one_wrong_tile = o.escape_one_wrong_tile;
        r.summary.escape_policy_fraction = o.escape_policy_fraction;
        r.summary.policy_fraction = o.policy_fraction;
        assert_eq!(r, built.receipt, "bit {bit} changed more than the statement and the bounds' last bits");
    }
}

/// The statement is words for people: the audit does not compare it (docs/formats.md).
#[test]
fn the_statement_is_not_checked() {
    let mut r = build(HONEST_SUCCINCT).receipt;
    r.summary.statement = "another wording, 0.3 rounded differently".into();
    audit(&r, &audit_keys(), None).unwrap();
}

/// Double-double arithmetic (about 2^-104 relative per operation): `pow` computed this way
/// and rounded once is correctly rounded except within 2^-90 or so of a rounding midpoint.
mod correctly_rounded {
    fn two_sum(a: f64, b: f64) -> (f64, f64) {
        let s = a + b;
        let bb = s - a;
        (s, (a - (s - bb)) + (b - bb))
    }

    fn mul((ah, al): (f64, f64), (bh, bl): (f64, f64)) -> (f64, f64) {
        let p = ah * bh;
        let e = ah.mul_add(bh, -p) + (ah * bl + al * bh);
        two_sum(p, e)
    }

    /// `1 − num/den` as a double-double.
    fn one_minus_ratio(num: f64, den: f64) -> (f64, f64) {
        let q = num / den;
        let lo = (-q).mul_add(den, num) / den;
        let (h, l) = two_sum(1.0, -q);
        two_sum(h, l - lo)
    }

    /// `(1 − num/den)^s`, correctly rounded to `f64`.
    pub fn pow_one_minus(num: f64, den: f64, s: u32) -> f64 {
        let (mut acc, mut base, mut e) = ((1.0, 0.0), one_minus_ratio(num, den), s);
        while e > 0 {
            if e & 1 == 1 {
                acc = mul(acc, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        acc.0 + acc.1
    }
}

/// Rust's `powi` is not correctly rounded; an auditor in another language computing the
/// documented formula with a correctly rounded `pow` must still accept.
#[test]
fn bounds_from_a_correctly_rounded_pow_are_accepted() {
    let built = build(HONEST_FULL);
    let mut differ = 0;
    for tiles in 1..=300u64 {
        for samples in [1u32, 2, 3, 7, 24, 100, 511, 4096] {
            let ppm = (tiles as u32 * 3331) % 1_000_000;
            let mut spec = built.receipt.spec.clone();
            spec.policy.samples = samples;
            spec.policy.target_fraud_ppm = ppm;
            let mut ours = check_summary(&spec).unwrap();
            ours.tiles = tiles;
            ours.escape_one_wrong_tile = (1.0 - 1.0 / tiles as f64).powi(samples as i32);
            let mut theirs = ours.clone();
            theirs.escape_one_wrong_tile = correctly_rounded::pow_one_minus(1.0, tiles as f64, samples);
            theirs.escape_policy_fraction = correctly_rounded::pow_one_minus(f64::from(ppm), 1e6, samples);
            differ += usize::from(theirs.escape_one_wrong_tile.to_bits() != ours.escape_one_wrong_tile.to_bits());
            differ += usize::from(theirs.escape_policy_fraction.to_bits() != ours.escape_policy_fraction.to_bits());
            summary_matches(&theirs, &ours).unwrap_or_else(|e| panic!("T = {tiles}, s = {samples}: {e}"));
        }
    }
    assert!(differ > 100, "only {differ} bounds differ in their last bits: the test shows nothing");
    // And a whole receipt stating such bounds audits.
    let mut r = built.receipt.clone();
    let (t, s, ppm) = (r.summary.tiles as f64, r.summary.samples, r.summary.target_fraud_ppm);
    r.summary.escape_one_wrong_tile = correctly_rounded::pow_one_minus(1.0, t, s);
    r.summary.escape_policy_fraction = correctly_rounded::pow_one_minus(f64::from(ppm), 1e6, s);
    r.summary.policy_fraction = f64::from(ppm) / 1e6;
    audit(&r, &audit_keys(), None).unwrap();
    assert!(bound_within_tolerance(1.0, 1.0 + 9e-10) && !bound_within_tolerance(1.0, 1.0 + 2e-9));
}

/// The integers the bounds come from are checked exactly, against the spec: a receipt that
/// states other integers (and bounds consistent with them) is refused.
#[test]
fn changed_integer_inputs_of_the_bounds_are_refused() {
    let built = build(HONEST_SUCCINCT);
    let mutations: Vec<(&str, Mutation)> = vec![
        ("tiles", Box::new(|r| r.summary.tiles += 1)),
        ("samples", Box::new(|r| r.summary.samples -= 1)),
        ("target_fraud_ppm", Box::new(|r| r.summary.target_fraud_ppm = 1)),
        ("freivalds_rounds", Box::new(|r| r.summary.freivalds_rounds = 2)),
    ];
    for (field, mutate) in mutations {
        let mut r = built.receipt.clone();
        mutate(&mut r);
        let s = &mut r.summary;
        s.escape_one_wrong_tile = (1.0 - 1.0 / s.tiles as f64).powi(s.samples as i32);
        s.policy_fraction = f64::from(s.target_fraud_ppm) / 1e6;
        s.escape_policy_fraction = (1.0 - s.policy_fraction).powi(s.samples as i32);
        match audit(&r, &audit_keys(), None) {
            Err(AuditError::Summary(m)) => assert_eq!(m.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

/// The provider's signatures: removed, swapped with another job's, or made by another key,
/// each is refused; so is a succinct receipt claiming a streamed C.
#[test]
fn provider_signatures_removed_swapped_or_foreign_are_refused() {
    for params in [HONEST_FULL, HONEST_SUCCINCT, Params { cheat: Some((5, 7)), ..HONEST_FULL }] {
        let built = build(params);
        let other = build(Params { nonce: 9, ..params });
        let good = &built.receipt;
        audit(good, &audit_keys(), None).unwrap();
        let stranger = Identity::from_seed([77; 32]);
        let (job_id, r_c) = (good.spec.job_id(), good.r_c);
        let streamed = (good.spec.policy.mode == VerificationMode::Full).then(|| built.c.as_slice());
        let (foreign_commit, foreign_end) = provider_signatures(&good.spec, r_c, streamed, &good.openings, &stranger);
        let commit_cases: Vec<(&str, Mutation)> = vec![
            ("removed", Box::new(|r| r.commit_signature = Signature([0; 64]))),
            ("another job's", Box::new(move |r| r.commit_signature = other.receipt.commit_signature)),
            ("another key's", Box::new(move |r| r.commit_signature = foreign_commit)),
        ];
        for (what, mutate) in commit_cases {
            let mut r = good.clone();
            mutate(&mut r);
            let result = audit(&r, &audit_keys(), None);
            assert!(matches!(result, Err(AuditError::CommitSignature { .. })), "commit {what}: {result:?}");
        }
        let other = build(Params { nonce: 9, ..params });
        let end_cases: Vec<(&str, Mutation)> = vec![
            ("removed", Box::new(|r| r.response_end.signature = Signature([0; 64]))),
            ("another job's", Box::new(move |r| r.response_end = other.receipt.response_end)),
            ("another key's", Box::new(move |r| r.response_end = foreign_end)),
            ("over another C", Box::new(|r| r.response_end.c_digest[0] ^= 1)),
            ("over fewer openings", Box::new(|r| drop(r.openings.pop()))),
        ];
        for (what, mutate) in end_cases {
            let mut r = good.clone();
            mutate(&mut r);
            let result = audit(&r, &audit_keys(), None);
            assert!(matches!(result, Err(AuditError::ResponseSignature { .. })), "end {what}: {result:?}");
        }
        let _ = job_id;
    }
    // A succinct receipt whose provider signed a non-empty C part.
    let built = build(HONEST_SUCCINCT);
    let mut r = built.receipt.clone();
    let (commit, end) = provider_signatures(&r.spec, r.r_c, Some(&[1, 2]), &r.openings, &provider());
    (r.commit_signature, r.response_end) = (commit, end);
    assert!(matches!(audit(&r, &audit_keys(), None), Err(AuditError::SuccinctCDigest { .. })));
}

/// With `C`, the receipt's C digest must be the digest of that C: under an approval a
/// different one is an error; under a rejection it is the rejection's grounds.
#[test]
fn a_streamed_c_other_than_the_committed_one_is_caught_with_data() {
    let built = build(HONEST_FULL);
    let mut r = built.receipt.clone();
    let mut streamed = built.c.as_slice().to_vec();
    streamed[3] += 1;
    let (commit, end) = provider_signatures(&r.spec, r.r_c, Some(&streamed), &r.openings, &provider());
    (r.commit_signature, r.response_end) = (commit, end);
    audit(&r, &audit_keys(), None).unwrap();
    assert!(matches!(audit(&r, &audit_keys(), Some(&built.data(true))), Err(AuditError::StreamedC { .. })));
    resign(&mut r, Verdict::Rejected, "the streamed C does not match R_C");
    let report = audit(&r, &audit_keys(), Some(&built.data(true))).unwrap();
    assert_eq!(report.rejection, Some(RejectionGrounds::StreamedCNotCommitted));
    assert!(!report.rejection_unverifiable);
}
