//! Hardened and batched verification.

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective};
use ark_ec::pairing::{Pairing, PairingOutput};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_ff::{One, PrimeField, UniformRand};
use ark_groth16::{Groth16, PreparedVerifyingKey, prepare_verifying_key};
use matproof_protocol::ids::VkHash;
use matproof_protocol::poseidon::fr_from_bytes;
use rand::rngs::OsRng;

use crate::keys::{KeyFileError, TileVerifyingKey, check_vk_structure};
use crate::prove::TileProof;
use crate::tile::{PUBLIC_INPUTS, TilePublicInputs};

/// Why a proof was not accepted. A rejection is always this error value, never a `bool`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The proof bytes are not a valid compressed proof.
    #[error("malformed proof: {reason}")]
    ProofEncoding {
        /// What.
        reason: String,
    },
    /// A public input is not the canonical encoding of a field element (`≥ r`).
    #[error("public input {index} is not canonical (not below the field modulus)")]
    NonCanonicalInput {
        /// Which input.
        index: usize,
    },
    /// Wrong number of public inputs.
    #[error("expected {expected} public inputs, got {actual}")]
    InputCount {
        /// Expected.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// The verifying key is not the pinned one.
    #[error("verifying key hash {actual} is not the pinned {expected}")]
    KeyNotPinned {
        /// The pinned hash.
        expected: VkHash,
        /// The key's hash.
        actual: VkHash,
    },
    /// The key is structurally unusable.
    #[error("unusable verifying key: {reason}")]
    Key {
        /// What.
        reason: String,
    },
    /// The pairing check failed.
    #[error("proof rejected: the pairing check failed")]
    Rejected,
    /// Batch verification failed; these proofs (indices into the batch) are the bad ones.
    #[error("batch rejected: proofs {bad:?} fail")]
    BatchRejected {
        /// Indices of the failing proofs.
        bad: Vec<usize>,
    },
}

/// A verifying key checked against its pinned hash, `γ ≠ δ` and the input count, prepared
/// for pairings.
#[derive(Clone)]
pub struct PinnedVerifyingKey {
    key: TileVerifyingKey,
    prepared: PreparedVerifyingKey<Bn254>,
}

impl std::fmt::Debug for PinnedVerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinnedVerifyingKey({:?})", self.key.shape)
    }
}

impl PinnedVerifyingKey {
    /// Accepts `key` only if it hashes to `pinned_hash` and is structurally sound.
    pub fn new(key: TileVerifyingKey, pinned_hash: &VkHash) -> Result<Self, VerifyError> {
        let actual = key.hash();
        if actual != *pinned_hash {
            return Err(VerifyError::KeyNotPinned { expected: *pinned_hash, actual });
        }
        check_vk_structure(&key.vk).map_err(|e: KeyFileError| VerifyError::Key { reason: e.to_string() })?;
        let prepared = prepare_verifying_key(&key.vk);
        Ok(Self { key, prepared })
    }

    /// The key.
    pub fn key(&self) -> &TileVerifyingKey {
        &self.key
    }

    /// Verifies proof bytes against public inputs given as 32-byte little-endian encodings
    /// (each must be canonical, `< r`).
    pub fn verify_bytes(&self, proof: &[u8], public_inputs: &[[u8; 32]]) -> Result<(), VerifyError> {
        if public_inputs.len() != PUBLIC_INPUTS {
            return Err(VerifyError::InputCount { expected: PUBLIC_INPUTS, actual: public_inputs.len() });
        }
        let inputs = public_inputs
            .iter()
            .enumerate()
            .map(|(index, bytes)| fr_from_bytes(bytes).ok_or(VerifyError::NonCanonicalInput { index }))
            .collect::<Result<Vec<Fr>, _>>()?;
        let proof = TileProof::from_bytes(proof)?;
        self.verify_inputs(&proof, &inputs)
    }

    /// Verifies a decoded proof.
    pub fn verify(&self, proof: &TileProof, public: &TilePublicInputs) -> Result<(), VerifyError> {
        self.verify_inputs(proof, &public.to_vec())
    }

    fn verify_inputs(&self, proof: &TileProof, inputs: &[Fr]) -> Result<(), VerifyError> {
        if inputs.len() != PUBLIC_INPUTS {
            return Err(VerifyError::InputCount { expected: PUBLIC_INPUTS, actual: inputs.len() });
        }
        match Groth16::<Bn254>::verify_proof(&self.prepared, &proof.0, inputs) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(VerifyError::Rejected),
        }
    }

    /// Verifies many proofs at once with a random linear combination: one multi-Miller loop
    /// over `n + 3` pairs and one final exponentiation. On failure, checks one by one and
    /// names every bad proof. A false batch acceptance needs the verifier's random 128-bit
    /// coefficients guessed: probability ≤ 2^-128.
    pub fn batch_verify(&self, items: &[(TileProof, TilePublicInputs)]) -> Result<(), VerifyError> {
        if items.is_empty() {
            return Ok(());
        }
        if self.batch_pairing_check(items) {
            return Ok(());
        }
        let bad: Vec<usize> =
            items.iter().enumerate().filter(|(_, (p, x))| self.verify(p, x).is_err()).map(|(i, _)| i).collect();
        if bad.is_empty() {
            // Cannot happen for a sound combination; fail closed rather than accept.
            return Err(VerifyError::BatchRejected { bad: (0..items.len()).collect() });
        }
        Err(VerifyError::BatchRejected { bad })
    }

    fn batch_pairing_check(&self, items: &[(TileProof, TilePublicInputs)]) -> bool {
        let vk = &self.key.vk;
        let coefficients: Vec<Fr> = items
            .iter()
            .map(|_| {
                let r = u128::rand(&mut OsRng);
                Fr::from(r | 1) // nonzero
            })
            .collect();
        let sum: Fr = coefficients.iter().sum();
        // Σ r_i·IC(x_i) = γ_abc[0]·Σr_i + Σ_j γ_abc[j+1]·(Σ_i r_i·x_ij)
        let mut input_scalars = vec![sum];
        for j in 0..PUBLIC_INPUTS {
            input_scalars.push(items.iter().zip(&coefficients).map(|((_, x), r)| x.to_vec()[j] * r).sum());
        }
        let ic = G1Projective::msm(&vk.gamma_abc_g1, &input_scalars).expect("lengths match");
        let c_points: Vec<G1Affine> = items.iter().map(|(p, _)| p.0.c).collect();
        let c_sum = G1Projective::msm(&c_points, &coefficients).expect("lengths match");
        let alpha_sum = vk.alpha_g1 * sum;

        let mut g1: Vec<G1Affine> =
            items.iter().zip(&coefficients).map(|((p, _), r)| (p.0.a * r).into_affine()).collect();
        let mut g2: Vec<_> = items.iter().map(|(p, _)| p.0.b).collect();
        g1.extend(G1Projective::normalize_batch(&[-ic, -c_sum, -alpha_sum]));
        g2.extend([vk.gamma_g2, vk.delta_g2, vk.beta_g2]);
        let miller = Bn254::multi_miller_loop(g1, g2);
        match Bn254::final_exponentiation(miller) {
            Some(PairingOutput(value)) => value.is_one(),
            None => false,
        }
    }
}

/// Whether 32 bytes are the canonical encoding of an `Fr` element.
pub fn is_canonical(bytes: &[u8; 32]) -> bool {
    fr_from_bytes(bytes).is_some()
}

/// `r`, the BN254 scalar field modulus, little-endian (for tests of non-canonical inputs).
pub fn modulus_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    let limbs = Fr::MODULUS.0;
    for (i, limb) in limbs.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
    }
    out
}
