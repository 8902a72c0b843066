//! Fixtures shared by the fuzz targets: a tiny development key pair and a valid tile proof,
//! built once per process (deterministic key, so findings replay).
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use ark_bn254::Fr;
use matproof_circuits::{
    TileProof, TileProvingKey, TilePublicInputs, TileVerifyingKey, TileWitness, development_setup, prove_tile,
};
use matproof_protocol::tiling::CircuitShape;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The smallest useful circuit: 2×2 tiles, `kc = 16`.
pub const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };

/// A development key pair, one valid proof and its public inputs.
pub struct Fixture {
    /// Proving key.
    pub pk: TileProvingKey,
    /// Verifying key.
    pub vk: TileVerifyingKey,
    /// A valid proof.
    pub proof: TileProof,
    /// Its public inputs.
    pub public: TilePublicInputs,
    /// `vk.to_file_bytes()`.
    pub vk_file: Vec<u8>,
    /// `pk.to_file_bytes()`.
    pub pk_file: Vec<u8>,
}

/// The process-wide fixture.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (pk, vk) = development_setup(SHAPE, &mut ChaCha20Rng::seed_from_u64(1)).expect("setup");
        let witness = TileWitness {
            a_block: (0..SHAPE.tm * SHAPE.kc).map(|i| (i as i8).wrapping_mul(37)).collect(),
            b_block: (0..SHAPE.kc * SHAPE.tn).map(|i| (i as i8).wrapping_mul(-53)).collect(),
        };
        let (proof, public) = prove_tile(&pk, witness, Fr::from(3u64), Fr::from(5u64)).expect("prove");
        let vk_file = vk.to_file_bytes();
        let pk_file = pk.to_file_bytes();
        Fixture { pk, vk, proof, public, vk_file, pk_file }
    })
}

/// Applies a patch to `base`: the data is read as records `(u32le offset, u8 xor)`, each
/// XORing one byte at `offset % len`; a trailing partial record truncates (first byte) or
/// extends (others) the result, so length changes are explored too.
pub fn patch(base: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let mut chunks = data.chunks_exact(5);
    for c in &mut chunks {
        if out.is_empty() {
            break;
        }
        let offset = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize % out.len();
        out[offset] ^= c[4];
    }
    match chunks.remainder() {
        [] => {}
        [cut] => {
            let keep = out.len().saturating_sub(usize::from(*cut));
            out.truncate(keep);
        }
        extra => out.extend_from_slice(&extra[1..]),
    }
    out
}

/// A valid job spec (the shape of `protocol`'s own sample).
pub fn sample_spec() -> matproof_protocol::spec::JobSpec {
    use matproof_protocol::spec::{JobSpec, VerificationMode, example_spec};
    let base = example_spec();
    let policy = matproof_protocol::spec::Policy { mode: VerificationMode::Succinct, ..base.policy };
    JobSpec { m: 40, k: 13, n: 40, shape: SHAPE, policy, ..base }
}

/// A valid inclusion proof (leaf 5 of 9).
pub fn sample_path() -> matproof_protocol::merkle::InclusionProof {
    let leaves: Vec<[u8; 4]> = (0..9u32).map(u32::to_le_bytes).collect();
    matproof_protocol::merkle::MerkleTree::from_leaves(&leaves).prove(5).expect("in range")
}

/// A well-formed tile opening.
pub fn sample_opening() -> matproof_protocol::opening::TileOpening {
    matproof_protocol::opening::TileOpening {
        tile_index: 5,
        c_tile: vec![1, -2, i32::MIN, i32::MAX],
        c_path: sample_path(),
        d_a: [1; 32],
        a_path: sample_path(),
        d_b: [2; 32],
        b_path: sample_path(),
        proof: vec![7; 128],
    }
}

/// A well-formed fraud proof.
pub fn sample_fraud_proof() -> matproof_protocol::fraud::FraudProof {
    matproof_protocol::fraud::FraudProof {
        row: 5,
        col: 6,
        a_block: vec![-128, 0, 127, 3],
        a_path: sample_path(),
        b_block: vec![-1, 1, 2, 3],
        b_path: sample_path(),
        c_tile: vec![9, -9, 0, 1],
        c_path: sample_path(),
    }
}

/// A valid `.npy` file of `T` (3×5).
pub fn sample_npy<T: matproof_protocol::npy::NpyElement>(value: T) -> Vec<u8> {
    let m = matproof_protocol::matrix::Matrix::from_vec(3, 5, vec![value; 15]).expect("shape");
    let mut out = Vec::new();
    matproof_protocol::npy::write_matrix(&mut out, &m).expect("Vec");
    out
}
