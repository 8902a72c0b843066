//! Key generation.

use ark_bn254::Bn254;
use ark_groth16::Groth16;
use ark_relations::gr1cs::SynthesisError;
use ark_snark::SNARK;
use matproof_protocol::tiling::CircuitShape;
use rand::{CryptoRng, RngCore};

use crate::keys::{KeyOrigin, TileProvingKey, TileVerifyingKey};
use crate::tile::TileFreivalds;

/// Key generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The circuit could not be synthesized.
    #[error("circuit synthesis failed for {shape:?}: {source}")]
    Synthesis {
        /// Shape.
        shape: CircuitShape,
        /// Cause.
        source: SynthesisError,
    },
}

/// `circuit_specific_setup` run by this one party: for development only (whoever ran it
/// could forge proofs). The key files say so; production keys come from a ceremony.
pub fn development_setup<R: RngCore + CryptoRng>(
    shape: CircuitShape,
    rng: &mut R,
) -> Result<(TileProvingKey, TileVerifyingKey), SetupError> {
    let (pk, _vk) = Groth16::<Bn254>::circuit_specific_setup(TileFreivalds::for_setup(shape), rng)
        .map_err(|source| SetupError::Synthesis { shape, source })?;
    let proving = TileProvingKey { shape, origin: KeyOrigin::DevelopmentSingleParty, pk };
    let verifying = proving.verifying_key();
    Ok((proving, verifying))
}
