//! The provider's answer to a challenge: open the sampled tiles and prove each one.

use matproof_circuits::{ProveError, TileProvingKey, TileWitness, prove_tiles};
use matproof_protocol::commit::{a_digests, a_sha256_tree, b_digests, b_sha256_tree, digest_tree};
use matproof_protocol::matrix::MatrixI8;
use matproof_protocol::merkle::{MerkleError, MerkleTree};
use matproof_protocol::opening::TileOpening;
use matproof_protocol::poseidon::fr_to_bytes;
use matproof_protocol::spec::InputScheme;
use matproof_protocol::tiling::{Tiling, TilingError};
use matproof_protocol::transcript::{Challenge, TranscriptError};

use crate::backend::Execution;

/// Why the provider could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// Tiling problem.
    #[error(transparent)]
    Tiling(#[from] TilingError),
    /// The challenge could not be derived.
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    /// A Merkle path could not be built.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// A proof could not be made.
    #[error("proving tile {tile}: {source}")]
    Prove {
        /// Tile number.
        tile: u64,
        /// Why.
        source: ProveError,
    },
    /// The proving key is for another circuit shape.
    #[error("the proving key is for another circuit shape")]
    WrongShape,
    /// A tile is to be opened but the job's inputs were committed without block digests
    /// (the `sha256` input scheme, which a job with tile proofs cannot have).
    #[error("block {block} has no Poseidon digest to open (sha256 input scheme)")]
    NoDigest {
        /// The block.
        block: usize,
    },
}

/// Everything the provider keeps for a committed job: inputs, result and the three trees.
#[derive(Debug)]
pub struct CommittedJob {
    /// The job's tiling.
    pub tiling: Tiling,
    /// A.
    pub a: MatrixI8,
    /// B.
    pub b: MatrixI8,
    /// C and its tree.
    pub execution: Execution,
    /// The tree behind `R_A` (over `d_A(I)`, or SHA-256 leaves of the blocks).
    pub a_tree: MerkleTree,
    /// The tree behind `R_B`.
    pub b_tree: MerkleTree,
    a_digests: Vec<[u8; 32]>,
    b_digests: Vec<[u8; 32]>,
}

impl CommittedJob {
    /// Recomputes the digests and trees of `A`, `B` under the Poseidon input scheme (the
    /// provider checks `R_A`, `R_B` against the job before accepting it: a mismatch could get
    /// honest proofs rejected).
    pub fn new(tiling: Tiling, a: MatrixI8, b: MatrixI8, execution: Execution) -> Result<Self, RespondError> {
        Self::with_scheme(InputScheme::Poseidon, tiling, a, b, execution)
    }

    /// Like [`CommittedJob::new`], under the job's input scheme. Under `sha256` (a job with
    /// no tile proofs) only the trees are kept: no tile is ever opened.
    pub fn with_scheme(
        scheme: InputScheme,
        tiling: Tiling,
        a: MatrixI8,
        b: MatrixI8,
        execution: Execution,
    ) -> Result<Self, RespondError> {
        if scheme == InputScheme::Sha256 {
            let (a_tree, b_tree) = rayon::join(|| a_sha256_tree(&tiling, &a), || b_sha256_tree(&tiling, &b));
            let (a_tree, b_tree) = (a_tree?, b_tree?);
            return Ok(Self { tiling, a, b, execution, a_tree, b_tree, a_digests: Vec::new(), b_digests: Vec::new() });
        }
        let (a_digests, b_digests) = rayon::join(|| a_digests(&tiling, &a), || b_digests(&tiling, &b));
        let (a_digests, b_digests) = (a_digests?, b_digests?);
        let a_tree = digest_tree(&a_digests);
        let b_tree = digest_tree(&b_digests);
        Ok(Self {
            tiling,
            a,
            b,
            execution,
            a_tree,
            b_tree,
            a_digests: a_digests.iter().map(fr_to_bytes).collect(),
            b_digests: b_digests.iter().map(fr_to_bytes).collect(),
        })
    }

    /// Opens and proves the tiles the challenge samples, proving at most `max_in_flight` at
    /// once. Openings come in the challenge's sample order.
    pub fn respond(
        &self,
        key: &TileProvingKey,
        challenge: &Challenge,
        samples: usize,
        max_in_flight: usize,
    ) -> Result<Vec<TileOpening>, RespondError> {
        if key.shape != self.tiling.shape {
            return Err(RespondError::WrongShape);
        }
        let sampled = challenge.sample_tiles(samples, self.tiling.tile_count())?;
        let mut witnesses = Vec::with_capacity(sampled.len());
        let mut openings = Vec::with_capacity(sampled.len());
        for &tile in &sampled {
            let (i, j) = self.tiling.tile_coords(tile as usize)?;
            witnesses.push(TileWitness {
                a_block: self.tiling.a_block(&self.a, i)?,
                b_block: self.tiling.b_block(&self.b, j)?,
            });
            openings.push(TileOpening {
                tile_index: tile,
                c_tile: self.tiling.c_tile(&self.execution.c, i, j)?,
                c_path: self.execution.c_tree.prove(tile)?,
                d_a: *self.a_digests.get(i).ok_or(RespondError::NoDigest { block: i })?,
                a_path: self.a_tree.prove(i as u64)?,
                d_b: *self.b_digests.get(j).ok_or(RespondError::NoDigest { block: j })?,
                b_path: self.b_tree.prove(j as u64)?,
                proof: Vec::new(),
            });
        }
        let proofs = prove_tiles(key, witnesses, challenge.sigma(), challenge.rho(), max_in_flight);
        for (opening, result) in openings.iter_mut().zip(proofs) {
            let (proof, _public) = result.map_err(|source| RespondError::Prove { tile: opening.tile_index, source })?;
            opening.proof = proof.to_bytes().to_vec();
        }
        Ok(openings)
    }
}
