//! Fixtures shared by the workspace's tests (a dev-dependency only, never in a release
//! build): development key pairs made once per process and shape, fixed identities,
//! honest jobs on random data, the standard test spec, small arithmetic helpers, and a
//! throw-away certificate authority for the TLS tests ([`pki`]).
//! Everything is deterministic, so a failure replays.
#![forbid(unsafe_code)]
#![allow(clippy::missing_panics_doc)] // fixtures panic on a broken set-up, by design

pub mod pki;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use matproof_circuits::{PinnedVerifyingKey, TileProvingKey, TileVerifyingKey, development_setup};
use matproof_protocol::identity::{Identity, Signature};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::matrix::{MatrixI8, random_i8};
use matproof_protocol::opening::TileOpening;
use matproof_protocol::receipt::{
    PURPOSE_COMMIT, PURPOSE_RESPOND, SignedResponseEnd, c_digest, job_commitment_bytes, respond_signing_bytes,
    response_digest,
};
use matproof_protocol::spec::{InputScheme, JobSpec, Policy, VerificationMode};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;
use matproof_prover::{CommittedJob, CpuBackend, Execution, execute};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A development key pair.
pub type KeyPair = (TileProvingKey, TileVerifyingKey);

/// The seed of every development key pair here.
pub const KEY_SEED: u64 = 7;

/// The development key pair for `shape` (setup seeded with [`KEY_SEED`]), made once per
/// process and shape.
pub fn dev_keys(shape: CircuitShape) -> &'static KeyPair {
    type ByShape = HashMap<(usize, usize, usize), &'static KeyPair>;
    static KEYS: OnceLock<Mutex<ByShape>> = OnceLock::new();
    let mut keys = KEYS.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    keys.entry((shape.tm, shape.tn, shape.kc)).or_insert_with(|| {
        let pair = development_setup(shape, &mut ChaCha20Rng::seed_from_u64(KEY_SEED)).expect("development setup");
        Box::leak(Box::new(pair))
    })
}

/// [`dev_keys`]' verifying key, pinned by its own hash.
pub fn pinned(shape: CircuitShape) -> PinnedVerifyingKey {
    let vk = &dev_keys(shape).1;
    PinnedVerifyingKey::new(vk.clone(), &vk.hash()).expect("a development key pins")
}

/// The identity with seed `[n; 32]`: the consumer is 1, the provider 2, verifiers 3 and up.
pub fn identity(n: u8) -> Identity {
    Identity::from_seed([n; 32])
}

/// A challenge for no job (zero job id and root), as a provider's self-check draws one.
pub fn self_check_challenge(seed: u8) -> Challenge {
    Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed([seed; 32]) }
}

/// An honest job: `A` (seed 1), `B` (seed 2) random, `C` computed and committed on the CPU.
pub fn honest_job(m: usize, k: usize, n: usize, shape: CircuitShape) -> CommittedJob {
    let (tiling, a, b, execution) = executed(m, k, n, shape);
    CommittedJob::new(tiling, a, b, execution).expect("committed job")
}

/// `A` (seed 1), `B` (seed 2) and their product with its tree, on the CPU.
fn executed(m: usize, k: usize, n: usize, shape: CircuitShape) -> (Tiling, MatrixI8, MatrixI8, Execution) {
    let tiling = Tiling::new(m, k, n, shape).expect("tiling");
    let a = random_i8(m, k, 1).expect("A");
    let b = random_i8(k, n, 2).expect("B");
    let vectors = self_check_challenge(9).freivalds_vectors(2, n).expect("vectors");
    let execution = execute(&CpuBackend::best(), &tiling, &a, &b, &vectors).expect("execute");
    (tiling, a, b, execution)
}

/// A job whose provider commits to the product changed by `tamper` (row-major `C`).
pub fn job_with_c(m: usize, k: usize, n: usize, shape: CircuitShape, tamper: impl FnOnce(&mut [i32])) -> CommittedJob {
    let (tiling, a, b, mut execution) = executed(m, k, n, shape);
    tamper(execution.c.as_mut_slice());
    execution.c_tree = matproof_protocol::commit::c_tree(&tiling, &execution.c).expect("C tree");
    CommittedJob::new(tiling, a, b, execution).expect("committed job")
}

/// The standard test spec of `job`: pins [`dev_keys`]' key for its shape; price 10, slash
/// 20, consumer [`identity`] 1, provider 2, target fraction 10%, no deadline, nonce `1 2 3`.
pub fn spec_of(job: &CommittedJob, mode: VerificationMode, samples: u32) -> JobSpec {
    let tiling = &job.tiling;
    JobSpec {
        m: tiling.m as u64,
        k: tiling.k as u64,
        n: tiling.n as u64,
        shape: tiling.shape,
        r_a: job.a_tree.root(),
        r_b: job.b_tree.root(),
        vk_hash: dev_keys(tiling.shape).1.hash(),
        policy: Policy {
            mode,
            input_scheme: matproof_protocol::spec::InputScheme::Poseidon,
            samples,
            freivalds_rounds: if mode == VerificationMode::Full { 2 } else { 0 },
            quorum: 1,
            target_fraud_ppm: 100_000,
            deadline_unix_ms: u64::MAX,
        },
        price: 10,
        slash_amount: 20,
        consumer: identity(1).public_key(),
        provider: identity(2).public_key(),
        nonce: vec![1, 2, 3],
    }
}

/// The provider's signatures a receipt carries for the job `spec` committed to `r_c`: its
/// `commit` signature and its response end, over `c` (the streamed `C`, full mode) and
/// `openings`, all signed by `provider`.
pub fn provider_signatures(
    spec: &JobSpec,
    r_c: MerkleRoot,
    c: Option<&[i32]>,
    openings: &[TileOpening],
    provider: &Identity,
) -> (Signature, SignedResponseEnd) {
    let job_id = spec.job_id();
    let commit = provider.sign(PURPOSE_COMMIT, &job_commitment_bytes(&job_id, &r_c));
    let c_digest = c_digest(c.unwrap_or(&[]));
    let digest = response_digest(&job_id, &r_c, c_digest, openings);
    let signature = provider.sign(PURPOSE_RESPOND, &respond_signing_bytes(&job_id, &r_c, &digest));
    (commit, SignedResponseEnd { c_digest, signature })
}

/// `a + b` over 256-bit little-endian integers; panics on overflow (never for the values
/// tests use: a canonical field element plus the modulus).
pub fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    assert_eq!(carry, 0, "sum overflows 256 bits");
    out
}

/// The policy of a full-mode job with no sampled tiles (`sha256` inputs, no keys, two
/// Freivalds rounds, quorum 1) due `deadline_in` from now: what the end-to-end result and
/// TLS tests run.
pub fn full_mode_policy(deadline_in: std::time::Duration) -> Policy {
    let deadline = std::time::SystemTime::now() + deadline_in;
    let deadline_unix_ms = deadline.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Policy {
        mode: VerificationMode::Full,
        input_scheme: InputScheme::Sha256,
        samples: 0,
        freivalds_rounds: 2,
        quorum: 1,
        target_fraud_ppm: 10_000,
        deadline_unix_ms,
    }
}
