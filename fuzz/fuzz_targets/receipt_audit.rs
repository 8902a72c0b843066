//! Receipts through the audit: `wire::decode_receipt` then `verifier::audit` with a pinned
//! development key. The first byte picks raw bytes, or a patch applied to a valid approved
//! full-mode receipt (so most inputs decode and reach the signature, path and proof
//! checks). Oracles: no panic; bytes that audit as an approval decode to the valid receipt
//! but for the summary's informational parts (the statement, the bounds' last bits: the
//! summary's integers are compared by the audit itself), since protobuf may encode one
//! receipt several ways but no other receipt passes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use matproof_circuits::{TileVerifyingKey, development_setup};
use matproof_fuzz::patch;
use matproof_protocol::identity::Identity;
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::receipt::{
    PURPOSE_COMMIT, PURPOSE_JOB, PURPOSE_RESPOND, RECEIPT_VERSION, Receipt, SignedChallenge, SignedResponseEnd,
    SignedVerdict, Verdict, c_digest, job_commitment_bytes, respond_signing_bytes, response_digest,
};
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::{decode_receipt, encode_receipt};
use matproof_prover::{CommittedJob, CpuBackend, execute};
use matproof_verifier::{AuditKeys, audit, check_summary};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 8 };

struct ReceiptFixture {
    receipt: Receipt,
    bytes: Vec<u8>,
    keys: AuditKeys,
}

fn fixture() -> &'static ReceiptFixture {
    static F: OnceLock<ReceiptFixture> = OnceLock::new();
    F.get_or_init(|| {
        let (pk, vk): (_, TileVerifyingKey) =
            development_setup(SHAPE, &mut ChaCha20Rng::seed_from_u64(3)).expect("setup");
        let (m, k, n) = (6, 8, 6);
        let tiling = Tiling::new(m, k, n, SHAPE).expect("tiling");
        let a = random_i8(m, k, 1).expect("a");
        let b = random_i8(k, n, 2).expect("b");
        let vectors = Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed([9; 32]) }.freivalds_vectors(2, n).expect("v");
        let execution = execute(&CpuBackend::best(), &tiling, &a, &b, &vectors).expect("execute");
        let job = CommittedJob::new(tiling, a, b, execution).expect("job");
        let (consumer, provider, verifier) =
            (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]), Identity::from_seed([3; 32]));
        let spec = JobSpec {
            m: m as u64,
            k: k as u64,
            n: n as u64,
            shape: SHAPE,
            r_a: job.a_tree.root(),
            r_b: job.b_tree.root(),
            vk_hash: vk.hash(),
            policy: Policy {
                mode: VerificationMode::Full,
                input_scheme: matproof_protocol::spec::InputScheme::Poseidon,
                samples: 2,
                freivalds_rounds: 2,
                quorum: 1,
                target_fraud_ppm: 100_000,
                deadline_unix_ms: u64::MAX,
            },
            price: 10,
            slash_amount: 20,
            consumer: consumer.public_key(),
            provider: provider.public_key(),
            nonce: vec![7],
        };
        let job_id = spec.job_id();
        let r_c = job.execution.c_tree.root();
        let challenge = Challenge { job_id, r_c, seed: Seed([5; 32]) };
        let openings = job.respond(&pk, &challenge, 2, 1).expect("respond");
        // The provider's signatures, as the session's writer makes them (full mode: over C).
        let streamed = c_digest(job.execution.c.as_slice());
        let digest = response_digest(&job_id, &r_c, streamed, &openings);
        let response_end = SignedResponseEnd {
            c_digest: streamed,
            signature: provider.sign(PURPOSE_RESPOND, &respond_signing_bytes(&job_id, &r_c, &digest)),
        };
        let commit_signature = provider.sign(PURPOSE_COMMIT, &job_commitment_bytes(&job_id, &r_c));
        let receipt = Receipt {
            version: RECEIPT_VERSION,
            commit_signature,
            response_end,
            summary: check_summary(&spec).expect("summary"),
            consumer_signature: consumer.sign(PURPOSE_JOB, &spec.canonical_bytes()),
            r_c,
            challenge: SignedChallenge::sign(challenge, &verifier),
            openings,
            verdicts: vec![SignedVerdict::sign(job_id, r_c, Verdict::Approved, "all checks passed", &verifier)],
            fraud_proof: None,
            spec,
        };
        let keys = AuditKeys::new(vec![vk]);
        audit(&receipt, &keys, None).expect("the fixture receipt audits");
        ReceiptFixture { bytes: encode_receipt(&receipt), receipt, keys }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let f = fixture();
    let bytes = if selector & 1 == 0 { rest.to_vec() } else { patch(&f.bytes, rest) };
    let Ok(receipt) = decode_receipt(&bytes) else { return };
    if let Ok(report) = audit(&receipt, &f.keys, None)
        && report.verdict == Verdict::Approved
    {
        // The audit does not compare the statement, and compares the bounds within a
        // tolerance: those may differ; nothing else may.
        let mut same = receipt.clone();
        same.summary = f.receipt.summary.clone();
        assert!(same == f.receipt, "a receipt other than the valid one audited as an approval");
    }
});
