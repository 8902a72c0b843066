//! Proving tiles, one or many (in parallel, with bounded memory).

use ark_bn254::{Bn254, Fr};
use ark_ec::AffineRepr;
use ark_groth16::{Groth16, Proof};
use ark_relations::gr1cs::SynthesisError;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_snark::SNARK;
use rand::rngs::OsRng;
use rayon::prelude::*;

use crate::keys::TileProvingKey;
use crate::tile::{TileFreivalds, TilePublicInputs, TileWitness};
use crate::verify::VerifyError;

/// Size of a compressed proof: A (G1, 32) ‖ B (G2, 64) ‖ C (G1, 32).
pub const PROOF_BYTES: usize = 128;

/// A Groth16 proof of one tile. Groth16 proofs are re-randomizable: never use the bytes as
/// an identity.
#[derive(Debug, Clone, PartialEq)]
pub struct TileProof(pub Proof<Bn254>);

impl TileProof {
    /// Compressed bytes (128).
    pub fn to_bytes(&self) -> [u8; PROOF_BYTES] {
        let mut out = Vec::with_capacity(PROOF_BYTES);
        self.0.serialize_compressed(&mut out).expect("serializing into a Vec cannot fail");
        out.try_into().expect("a compressed BN254 Groth16 proof is 128 bytes")
    }

    /// Decodes compressed bytes, validating every point (on the curve, in the subgroup, not
    /// the identity) and the exact length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.len() != PROOF_BYTES {
            return Err(VerifyError::ProofEncoding {
                reason: format!("{} bytes, expected {PROOF_BYTES}", bytes.len()),
            });
        }
        let proof = Proof::<Bn254>::deserialize_compressed(bytes)
            .map_err(|e| VerifyError::ProofEncoding { reason: e.to_string() })?;
        if proof.a.is_zero() || proof.b.is_zero() || proof.c.is_zero() {
            return Err(VerifyError::ProofEncoding { reason: "a proof point is the identity".into() });
        }
        Ok(Self(proof))
    }
}

/// Proving failed.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// Block sizes do not match the key's shape.
    #[error("witness block {block} has {actual} bytes, the key's shape needs {expected}")]
    WitnessLength {
        /// Which block.
        block: &'static str,
        /// Expected.
        expected: usize,
        /// Found.
        actual: usize,
    },
    /// The prover failed.
    #[error("proving failed: {0}")]
    Synthesis(#[from] SynthesisError),
}

/// Proves one tile: computes the public inputs from the witness and `σ, ρ`, then the proof.
pub fn prove_tile(
    key: &TileProvingKey,
    witness: TileWitness,
    sigma: Fr,
    rho: Fr,
) -> Result<(TileProof, TilePublicInputs), ProveError> {
    let shape = key.shape;
    for (block, expected, actual) in
        [("A", shape.tm * shape.kc, witness.a_block.len()), ("B", shape.kc * shape.tn, witness.b_block.len())]
    {
        if expected != actual {
            return Err(ProveError::WitnessLength { block, expected, actual });
        }
    }
    let public = witness.public_inputs(shape, sigma, rho);
    let circuit = TileFreivalds { shape, witness: Some(witness), public: Some(public) };
    let proof = Groth16::<Bn254>::prove(&key.pk, circuit, &mut OsRng)?;
    Ok((TileProof(proof), public))
}

/// Proves many tiles in parallel, at most `max_in_flight` at a time (each proof holds its
/// constraint system in memory, so this bounds peak memory). Results keep the input order.
pub fn prove_tiles(
    key: &TileProvingKey,
    witnesses: Vec<TileWitness>,
    sigma: Fr,
    rho: Fr,
    max_in_flight: usize,
) -> Vec<Result<(TileProof, TilePublicInputs), ProveError>> {
    let max_in_flight = max_in_flight.max(1);
    let mut out = Vec::with_capacity(witnesses.len());
    let mut witnesses = witnesses.into_iter().peekable();
    while witnesses.peek().is_some() {
        let batch: Vec<TileWitness> = witnesses.by_ref().take(max_in_flight).collect();
        out.extend(batch.into_par_iter().map(|w| prove_tile(key, w, sigma, rho)).collect::<Vec<_>>());
    }
    out
}
