//! Groth16 proofs of sampled C tiles (DESIGN §5.2), in the manner of `ark-groth16`'s small
//! modules:
//!
//! - [`gadgets`]: range-checked byte unpacking and packing, in-circuit Poseidon block
//!   digests equal to `matproof_protocol::poseidon`, powers of a challenge.
//! - [`tile`]: the `TileFreivalds(tm, tn, kc)` circuit, its public inputs and the native
//!   computation of `z`.
//! - [`setup`], [`prove`], [`verify`]: key generation, (parallel) proving, hardened and
//!   batched verification.
//! - [`keys`]: key files with a header (shape, origin, verifying-key hash).
//!
//! Public inputs, in order: `d_A(I)`, `d_B(J)`, `σ`, `ρ`, `z`. Witness: the bytes of `A_I`
//! and `B_J`. If `C_IJ ≠ A_I·B_J`, an honest `z` satisfies the identity with probability at
//! most `(tm + tn)/r` over `σ, ρ`.
#![forbid(unsafe_code)]

pub mod gadgets;
pub mod keys;
pub mod prove;
pub mod setup;
pub mod tile;
pub mod verify;

pub use keys::{CacheOutcome, KeyOrigin, TileProvingKey, TileVerifyingKey};
pub use prove::{ProveError, TileProof, prove_tile, prove_tiles};
pub use setup::{SetupError, development_setup};
pub use tile::{TileFreivalds, TilePublicInputs, TileWitness, constraint_count, tile_z};
pub use verify::{PinnedVerifyingKey, VerifyError};

/// The pairing-friendly curve.
pub type Curve = ark_bn254::Bn254;
/// Its scalar field (the circuit's field).
pub type Fr = ark_bn254::Fr;
