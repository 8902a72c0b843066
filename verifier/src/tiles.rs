//! The check of sampled tile openings (DESIGN §5.2).

use ark_bn254::Fr;
use matproof_circuits::tile::tile_z;
use matproof_circuits::{PinnedVerifyingKey, TileProof, TilePublicInputs, VerifyError};
use matproof_protocol::commit::c_leaf_hash;
use matproof_protocol::ids::VkHash;
use matproof_protocol::merkle::{MerkleError, MerkleRoot, leaf_hash};
use matproof_protocol::opening::TileOpening;
use matproof_protocol::poseidon::fr_from_bytes;
use matproof_protocol::spec::{JobSpec, SpecError};
use matproof_protocol::transcript::{Challenge, TranscriptError};

use crate::soundness::{sampling_escape_probability, tile_identity_error_log2};

/// Why the sampled tiles were not accepted. Every variant names the tile (by position in
/// the sample) where one is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TileCheckError {
    /// The job spec is invalid.
    #[error("job spec: {0}")]
    Spec(#[from] SpecError),
    /// The challenge cannot be derived.
    #[error("challenge: {0}")]
    Transcript(#[from] TranscriptError),
    /// The job pins another verifying key.
    #[error("the job pins verifying key {pinned}, the verifier holds {held}")]
    WrongKey {
        /// The job's `vk_hash`.
        pinned: VkHash,
        /// The held key's hash.
        held: VkHash,
    },
    /// The key was made for another circuit shape.
    #[error("the verifying key is for another circuit shape")]
    WrongShape,
    /// The challenge is for another job or commitment.
    #[error("the challenge is for another job or commitment")]
    WrongChallenge,
    /// The opened tiles are not the sampled ones.
    #[error("opening {position} is tile {got}, the challenge sampled tile {expected}")]
    WrongTile {
        /// Position in the sample.
        position: usize,
        /// The sampled tile.
        expected: u64,
        /// The opened tile.
        got: u64,
    },
    /// Too few or too many openings.
    #[error("{got} openings for {expected} sampled tiles")]
    OpeningCount {
        /// Samples.
        expected: usize,
        /// Openings.
        got: usize,
    },
    /// A C tile has the wrong number of entries.
    #[error("tile {tile}: {got} entries, expected {expected}")]
    TileLength {
        /// Tile number.
        tile: u64,
        /// Expected.
        expected: usize,
        /// Found.
        got: usize,
    },
    /// A padding entry of a tile is not zero.
    #[error("tile {tile}: padding entry ({row}, {col}) is {value}, must be 0")]
    NonZeroPadding {
        /// Tile number.
        tile: u64,
        /// Local row.
        row: usize,
        /// Local column.
        col: usize,
        /// The value.
        value: i32,
    },
    /// A Merkle path does not lead to its root (or names the wrong leaf or tree).
    #[error("tile {tile}: the {which} path fails: {reason}")]
    Path {
        /// Tile number.
        tile: u64,
        /// `C`, `A` or `B`.
        which: &'static str,
        /// Why.
        reason: String,
    },
    /// A block digest is not a canonical field element.
    #[error("tile {tile}: digest {which} is not canonical")]
    NonCanonicalDigest {
        /// Tile number.
        tile: u64,
        /// `d_A` or `d_B`.
        which: &'static str,
    },
    /// A tile proof is malformed or fails.
    #[error("tile {tile}: proof rejected: {source}")]
    Proof {
        /// Tile number.
        tile: u64,
        /// Why.
        source: VerifyError,
    },
}

/// What was checked, with the bounds a receipt states.
#[derive(Debug, Clone, PartialEq)]
pub struct TileCheckSummary {
    /// Tiles in the job, `T`.
    pub tiles: usize,
    /// Tiles sampled and proven, `s`.
    pub samples: usize,
    /// `(1 − 1/T)^s`: the chance a cheater with one wrong tile escapes.
    pub escape_one_wrong_tile: f64,
    /// `(1 − f)^s` for the policy's `f`.
    pub escape_policy_fraction: f64,
    /// The policy's `f`.
    pub policy_fraction: f64,
    /// `log2((tm + tn)/r)`: the chance a wrong opened tile passes its proof's identity.
    pub tile_identity_error_log2: f64,
}

fn path_error(tile: u64, which: &'static str) -> impl Fn(MerkleError) -> TileCheckError {
    move |e| TileCheckError::Path { tile, which, reason: e.to_string() }
}

/// Checks the openings of the sampled tiles against the job's commitments and the
/// challenge, and their proofs (batch-verified; the bad one is named on failure).
pub fn check_sampled_tiles(
    spec: &JobSpec,
    r_c: &MerkleRoot,
    challenge: &Challenge,
    openings: &[TileOpening],
    key: &PinnedVerifyingKey,
) -> Result<TileCheckSummary, TileCheckError> {
    let tiling = spec.tiling()?;
    let shape = tiling.shape;
    let held = key.key().hash();
    if held != spec.vk_hash {
        return Err(TileCheckError::WrongKey { pinned: spec.vk_hash, held });
    }
    if key.key().shape != shape {
        return Err(TileCheckError::WrongShape);
    }
    if challenge.job_id != spec.job_id() || challenge.r_c != *r_c {
        return Err(TileCheckError::WrongChallenge);
    }
    let samples = spec.policy.samples as usize;
    let sampled = challenge.sample_tiles(samples, tiling.tile_count())?;
    if openings.len() != sampled.len() {
        return Err(TileCheckError::OpeningCount { expected: sampled.len(), got: openings.len() });
    }
    let (sigma, rho) = (challenge.sigma(), challenge.rho());
    let tiles = tiling.tile_count() as u64;
    let mut items = Vec::with_capacity(openings.len());
    for (position, (opening, &expected)) in openings.iter().zip(&sampled).enumerate() {
        let tile = opening.tile_index;
        if tile != expected {
            return Err(TileCheckError::WrongTile { position, expected, got: tile });
        }
        let (row_block, col_block) = tiling.tile_coords(tile as usize).map_err(|_| TileCheckError::WrongTile {
            position,
            expected,
            got: tile,
        })?;
        if opening.c_tile.len() != shape.tm * shape.tn {
            return Err(TileCheckError::TileLength { tile, expected: shape.tm * shape.tn, got: opening.c_tile.len() });
        }
        for (index, &value) in opening.c_tile.iter().enumerate() {
            let (row, col) = (index / shape.tn, index % shape.tn);
            if value != 0 && tiling.is_padding(row_block, col_block, row, col) {
                return Err(TileCheckError::NonZeroPadding { tile, row, col, value });
            }
        }
        check_path(&opening.c_path, tile, tiles, "C")?;
        opening
            .c_path
            .verify(&c_leaf_hash(row_block as u64, col_block as u64, &opening.c_tile), r_c)
            .map_err(path_error(tile, "C"))?;
        check_path(&opening.a_path, row_block as u64, tiling.row_blocks() as u64, "A")
            .map_err(|_| TileCheckError::Path { tile, which: "A", reason: "names the wrong block".into() })?;
        opening.a_path.verify(&leaf_hash(&opening.d_a), &spec.r_a).map_err(path_error(tile, "A"))?;
        check_path(&opening.b_path, col_block as u64, tiling.col_blocks() as u64, "B")
            .map_err(|_| TileCheckError::Path { tile, which: "B", reason: "names the wrong block".into() })?;
        opening.b_path.verify(&leaf_hash(&opening.d_b), &spec.r_b).map_err(path_error(tile, "B"))?;
        let d_a = fr_from_bytes(&opening.d_a).ok_or(TileCheckError::NonCanonicalDigest { tile, which: "d_A" })?;
        let d_b = fr_from_bytes(&opening.d_b).ok_or(TileCheckError::NonCanonicalDigest { tile, which: "d_B" })?;
        let z: Fr = tile_z(&opening.c_tile, shape.tm, shape.tn, sigma, rho);
        let proof = TileProof::from_bytes(&opening.proof).map_err(|source| TileCheckError::Proof { tile, source })?;
        items.push((proof, TilePublicInputs { d_a, d_b, sigma, rho, z }));
    }
    key.batch_verify(&items).map_err(|source| match &source {
        VerifyError::BatchRejected { bad } if !bad.is_empty() => {
            TileCheckError::Proof { tile: openings[bad[0]].tile_index, source }
        }
        _ => TileCheckError::Proof { tile: openings.first().map_or(0, |o| o.tile_index), source },
    })?;
    let policy_fraction = f64::from(spec.policy.target_fraud_ppm) / 1e6;
    Ok(TileCheckSummary {
        tiles: tiling.tile_count(),
        samples: openings.len(),
        escape_one_wrong_tile: sampling_escape_probability(1.0 / tiling.tile_count() as f64, samples as u32),
        escape_policy_fraction: sampling_escape_probability(policy_fraction, samples as u32),
        policy_fraction,
        tile_identity_error_log2: tile_identity_error_log2(shape.tm, shape.tn),
    })
}

/// The path must name the expected leaf of a tree of the expected size.
fn check_path(
    path: &matproof_protocol::merkle::InclusionProof,
    leaf_index: u64,
    tree_size: u64,
    which: &'static str,
) -> Result<(), TileCheckError> {
    if path.leaf_index != leaf_index || path.tree_size != tree_size {
        return Err(TileCheckError::Path {
            tile: leaf_index,
            which,
            reason: format!(
                "names leaf {} of {}, expected leaf {leaf_index} of {tree_size}",
                path.leaf_index, path.tree_size
            ),
        });
    }
    Ok(())
}
