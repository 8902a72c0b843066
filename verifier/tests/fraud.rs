//! Fraud proofs: built from a failed full-mode check, verified from commitments alone;
//! false accusations and tampered evidence are refused.

use matproof_protocol::commit::{a_digests, b_digests, c_tree, digest_tree};
use matproof_protocol::freivalds::{self, Dims, FreivaldsError};
use matproof_protocol::identity::PublicKey;
use matproof_protocol::ids::{JobId, MerkleRoot, Seed, VkHash};
use matproof_protocol::matrix::{MatrixI8, MatrixI32, naive_product, random_i8};
use matproof_protocol::spec::{JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_verifier::{FraudError, build_fraud_proof, check_fraud_proof};

const SHAPE: CircuitShape = CircuitShape { tm: 4, tn: 3, kc: 24 };
const M: usize = 10;
const K: usize = 21;
const N: usize = 8;

struct Job {
    spec: JobSpec,
    a: MatrixI8,
    b: MatrixI8,
    c: MatrixI32,
}

fn job() -> Job {
    let tiling = Tiling::new(M, K, N, SHAPE).unwrap();
    let a = random_i8(M, K, 11).unwrap();
    let b = random_i8(K, N, 12).unwrap();
    let c = naive_product(&a, &b).unwrap();
    let spec = JobSpec {
        m: M as u64,
        k: K as u64,
        n: N as u64,
        shape: SHAPE,
        r_a: digest_tree(&a_digests(&tiling, &a).unwrap()).root(),
        r_b: digest_tree(&b_digests(&tiling, &b).unwrap()).root(),
        vk_hash: VkHash([0; 32]),
        policy: Policy {
            mode: VerificationMode::Full,
            input_scheme: matproof_protocol::spec::InputScheme::Poseidon,
            samples: 1,
            freivalds_rounds: 2,
            quorum: 1,
            target_fraud_ppm: 1,
            deadline_unix_ms: u64::MAX,
        },
        price: 1,
        slash_amount: 1,
        consumer: PublicKey([1; 32]),
        provider: PublicKey([2; 32]),
        nonce: vec![0],
    };
    Job { spec, a, b, c }
}

fn r_c(job: &Job, c: &MatrixI32) -> MerkleRoot {
    c_tree(&job.spec.tiling().unwrap(), c).unwrap().root()
}

#[test]
fn a_failed_freivalds_check_yields_a_checkable_fraud_proof() {
    let job = job();
    for (row, col, delta) in [(0usize, 0usize, 1i32), (9, 7, -1), (5, 3, i32::MIN), (6, 4, 12345)] {
        let mut c = job.c.clone();
        let cell = &mut c.as_mut_slice()[row * N + col];
        *cell = cell.wrapping_add(delta);
        let vectors = Challenge { job_id: JobId([1; 32]), r_c: MerkleRoot([2; 32]), seed: Seed([3; 32]) }
            .freivalds_vectors(2, N)
            .unwrap();
        let err =
            freivalds::check(job.a.as_slice(), job.b.as_slice(), c.as_slice(), Dims { m: M, k: K, n: N }, &vectors)
                .unwrap_err();
        let FreivaldsError::Mismatch { row: bad_row, .. } = err else { panic!("{err}") };
        assert_eq!(bad_row, row);
        let proof = build_fraud_proof(&job.spec, &job.a, &job.b, &c, bad_row).unwrap();
        assert_eq!((proof.row, proof.col), (row as u64, col as u64));
        check_fraud_proof(&job.spec, &r_c(&job, &c), &proof).unwrap();
    }
}

#[test]
fn an_honest_result_admits_no_fraud_proof() {
    let job = job();
    assert_eq!(build_fraud_proof(&job.spec, &job.a, &job.b, &job.c, 3), Err(FraudError::RowCorrect { row: 3 }));
    // A forged accusation against a correct entry, with valid openings, is refused.
    let mut c = job.c.clone();
    c.as_mut_slice()[3 * N + 5] += 1;
    let mut proof = build_fraud_proof(&job.spec, &job.a, &job.b, &c, 3).unwrap();
    proof.c_tile = job.spec.tiling().unwrap().c_tile(&job.c, 0, 1).unwrap();
    assert!(matches!(check_fraud_proof(&job.spec, &r_c(&job, &job.c), &proof), Err(FraudError::EntryCorrect { .. })));
}

#[test]
fn tampered_evidence_is_refused() {
    let job = job();
    let mut c = job.c.clone();
    c.as_mut_slice()[7 * N + 2] -= 3;
    let root = r_c(&job, &c);
    let proof = build_fraud_proof(&job.spec, &job.a, &job.b, &c, 7).unwrap();
    check_fraud_proof(&job.spec, &root, &proof).unwrap();
    for pos in 0..proof.a_block.len() {
        let mut bad = proof.clone();
        bad.a_block[pos] ^= 1;
        assert!(check_fraud_proof(&job.spec, &root, &bad).is_err(), "A byte {pos}");
    }
    for pos in 0..proof.b_block.len() {
        let mut bad = proof.clone();
        bad.b_block[pos] ^= 1;
        assert!(check_fraud_proof(&job.spec, &root, &bad).is_err(), "B byte {pos}");
    }
    for pos in 0..proof.c_tile.len() {
        let mut bad = proof.clone();
        bad.c_tile[pos] ^= 1;
        assert!(check_fraud_proof(&job.spec, &root, &bad).is_err(), "C entry {pos}");
    }
    for which in 0..3 {
        let mut bad = proof.clone();
        let path = match which {
            0 => &mut bad.a_path,
            1 => &mut bad.b_path,
            _ => &mut bad.c_path,
        };
        path.path[0][0] ^= 1;
        assert!(check_fraud_proof(&job.spec, &root, &bad).is_err(), "path {which}");
    }
    let mut bad = proof.clone();
    bad.col = 0; // another column of the same tiles: that entry is correct
    assert!(check_fraud_proof(&job.spec, &root, &bad).is_err());
    let mut bad = proof.clone();
    bad.row = M as u64;
    assert!(matches!(check_fraud_proof(&job.spec, &root, &bad), Err(FraudError::OutOfRange { .. })));
    let mut bad = proof.clone();
    bad.a_block.pop();
    assert!(matches!(check_fraud_proof(&job.spec, &root, &bad), Err(FraudError::Length { .. })));
    assert!(check_fraud_proof(&job.spec, &r_c(&job, &job.c), &proof).is_err(), "against the honest R_C");
}
