//! What a provider sends for each sampled tile (DESIGN §5.2): the C tile with its path to
//! `R_C`, the digests `d_A(I)`, `d_B(J)` with their paths to `R_A`, `R_B`, and the tile's
//! Groth16 proof (compressed bytes, checked by the verifier).

use crate::merkle::InclusionProof;

/// Size of a compressed Groth16 proof over BN254.
pub const TILE_PROOF_BYTES: usize = 128;

/// The opening of one sampled tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileOpening {
    /// Tile number (row-major over tiles).
    pub tile_index: u64,
    /// The `tm × tn` tile, row-major, zero-padded.
    pub c_tile: Vec<i32>,
    /// Path of the tile's leaf to `R_C`.
    pub c_path: InclusionProof,
    /// `d_A(I)`, 32-byte little-endian.
    pub d_a: [u8; 32],
    /// Path of `d_A(I)` to `R_A`.
    pub a_path: InclusionProof,
    /// `d_B(J)`, 32-byte little-endian.
    pub d_b: [u8; 32],
    /// Path of `d_B(J)` to `R_B`.
    pub b_path: InclusionProof,
    /// The Groth16 proof of `TileFreivalds`, compressed.
    pub proof: Vec<u8>,
}
