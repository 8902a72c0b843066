//! The matproof protocol core: matrix types and `.npy` files, named limits, tiling, RFC 9162
//! Merkle trees, Poseidon block digests, the commitments `R_A`, `R_B`, `R_C`, the canonical
//! job spec and `job_id`, challenge derivation, the Freivalds check over `2^61 − 1`, and
//! Ed25519 identities, and receipts with their signed messages.
//!
//! `../shared/DESIGN.md` §1–3, §4 (transcript) and §5.1 are normative for what is here; the
//! byte layouts are restated in `docs/formats.md`. This crate knows no GPU and no prover, and
//! no crate here panics on untrusted bytes. `unsafe` is denied except in the explicit SIMD
//! modules of [`freivalds`], each block with a `SAFETY:` comment.
#![deny(unsafe_code)]

pub mod commit;
pub mod fraud;
pub mod freivalds;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod matrix;
pub mod merkle;
pub mod npy;
pub mod opening;
pub mod phase;
pub mod poseidon;
pub mod receipt;
pub mod records;
pub mod session;
pub mod spec;
pub mod tiling;
#[cfg(feature = "grpc")]
pub mod tls;
pub mod transcript;
pub mod wire;

pub use commit::Commitments;
pub use identity::{Identity, PublicKey, Signature};
pub use ids::{IdError, JobId, MerkleRoot, Seed, VkHash};
pub use matrix::{Matrix, MatrixError, MatrixI8, MatrixI32, MatrixView};
pub use merkle::{Digest, InclusionProof, MerkleTree};
pub use spec::{JobSpec, Policy, VerificationMode};
pub use tiling::{CircuitShape, Tiling};
pub use transcript::Challenge;
