//! Challenge derivation (DESIGN §4).
//!
//! The verifier draws a 32-byte `seed` from its OS CSPRNG after `R_C` arrives. Every
//! challenge value comes from
//! `expand(label, counter) = SHA-256("matproof/v1/chal" ‖ u8(len(label)) ‖ label ‖ job_id ‖
//! R_C ‖ seed ‖ u32le(counter))`.
//! A label's stream is `expand(label, 0) ‖ expand(label, 1) ‖ …`, read as consecutive
//! little-endian `u64` words where words are needed:
//! - tiles (label `tiles`): each word `w` is accepted if `w < ⌊2^64/T⌋·T` and gives index
//!   `w mod T`; an index already drawn is skipped, until `s` distinct indices are drawn. The
//!   indices are returned in drawing order.
//! - `σ`, `ρ` (labels `sigma`, `rho`): `expand(label, 0) ‖ expand(label, 1)` (64 bytes) as a
//!   little-endian integer reduced mod `r`.
//! - Freivalds vectors (label `freivalds`): each word's low 61 bits, rejected if equal to
//!   `2^61 − 1`; round 0's `n` entries first, then round 1's, and so on.

use ark_bn254::Fr;
use ark_ff::PrimeField;
use sha2::{Digest as _, Sha256};

use crate::freivalds::MODULUS;
use crate::ids::{JobId, MerkleRoot, Seed};
use crate::limits::{MAX_DIM, MAX_FREIVALDS_ROUNDS, MAX_SAMPLES, MAX_TILES};
use crate::merkle::Digest;

/// Prefix of every `expand` hash.
pub const CHALLENGE_DOMAIN: &[u8] = b"matproof/v1/chal";
/// Label of the tile sample stream.
pub const LABEL_TILES: &str = "tiles";
/// Label of `σ`.
pub const LABEL_SIGMA: &str = "sigma";
/// Label of `ρ`.
pub const LABEL_RHO: &str = "rho";
/// Label of the Freivalds vector stream.
pub const LABEL_FREIVALDS: &str = "freivalds";

/// A problem deriving challenge values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    /// More samples requested than allowed or than tiles exist.
    #[error("cannot sample {samples} distinct tiles out of {tiles} (limit {max})")]
    Samples {
        /// Requested samples.
        samples: usize,
        /// Tiles available.
        tiles: usize,
        /// [`MAX_SAMPLES`].
        max: usize,
    },
    /// The tile count is zero or above [`MAX_TILES`].
    #[error("tile count {tiles} must be in 1..={max}")]
    Tiles {
        /// Tile count.
        tiles: usize,
        /// The limit.
        max: usize,
    },
    /// Rounds or vector length out of range.
    #[error(
        "Freivalds vectors: {rounds} rounds of length {len} exceed the limits ({max_rounds} rounds, {max_len} entries)"
    )]
    VectorShape {
        /// Rounds requested.
        rounds: usize,
        /// Length requested.
        len: usize,
        /// Round limit.
        max_rounds: usize,
        /// Length limit.
        max_len: usize,
    },
    /// The counter ran out (would take ~2^32 hashes: never for valid inputs).
    #[error("challenge stream {label} exhausted")]
    Exhausted {
        /// The label.
        label: &'static str,
    },
}

/// The values a verifier fixes when it challenges a commitment; everything else derives
/// from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// The job.
    pub job_id: JobId,
    /// The provider's commitment to `C`.
    pub r_c: MerkleRoot,
    /// The verifier's 32 random bytes.
    pub seed: Seed,
}

impl Challenge {
    /// `expand(label, counter)`.
    pub fn expand(&self, label: &str, counter: u32) -> Digest {
        debug_assert!(label.len() <= usize::from(u8::MAX));
        let mut h = Sha256::new();
        h.update(CHALLENGE_DOMAIN);
        h.update([label.len() as u8]);
        h.update(label.as_bytes());
        h.update(self.job_id.as_bytes());
        h.update(self.r_c.as_bytes());
        h.update(self.seed.as_bytes());
        h.update(counter.to_le_bytes());
        h.finalize().into()
    }

    /// The bytes the verifier signs: `job_id ‖ R_C ‖ seed`.
    pub fn signing_bytes(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        out[..32].copy_from_slice(self.job_id.as_bytes());
        out[32..64].copy_from_slice(self.r_c.as_bytes());
        out[64..].copy_from_slice(self.seed.as_bytes());
        out
    }

    fn words(&self, label: &'static str) -> Words<'_> {
        Words { challenge: self, label, counter: 0, block: [0; 32], used: 4 }
    }

    /// `samples` distinct tile indices in `0..tiles`, in drawing order.
    pub fn sample_tiles(&self, samples: usize, tiles: usize) -> Result<Vec<u64>, TranscriptError> {
        if tiles == 0 || tiles > MAX_TILES {
            return Err(TranscriptError::Tiles { tiles, max: MAX_TILES });
        }
        if samples > tiles || samples > MAX_SAMPLES {
            return Err(TranscriptError::Samples { samples, tiles, max: MAX_SAMPLES });
        }
        let t = tiles as u128;
        let zone = (1u128 << 64) / t * t;
        let mut drawn = std::collections::HashSet::with_capacity(samples);
        let mut out = Vec::with_capacity(samples);
        let mut words = self.words(LABEL_TILES);
        while out.len() < samples {
            let w = u128::from(words.next_word()?);
            if w >= zone {
                continue;
            }
            let index = (w % t) as u64;
            if drawn.insert(index) {
                out.push(index);
            }
        }
        Ok(out)
    }

    fn wide_scalar(&self, label: &str) -> Fr {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&self.expand(label, 0));
        bytes[32..].copy_from_slice(&self.expand(label, 1));
        Fr::from_le_bytes_mod_order(&bytes)
    }

    /// `σ`, the row-combination point of the tile check.
    pub fn sigma(&self) -> Fr {
        self.wide_scalar(LABEL_SIGMA)
    }

    /// `ρ`, the column-combination point of the tile check.
    pub fn rho(&self) -> Fr {
        self.wide_scalar(LABEL_RHO)
    }

    /// `rounds` Freivalds vectors of length `len`, entries uniform in `F_q`, `q = 2^61 − 1`.
    pub fn freivalds_vectors(&self, rounds: usize, len: usize) -> Result<Vec<Vec<u64>>, TranscriptError> {
        if rounds > MAX_FREIVALDS_ROUNDS || len > MAX_DIM {
            return Err(TranscriptError::VectorShape {
                rounds,
                len,
                max_rounds: MAX_FREIVALDS_ROUNDS,
                max_len: MAX_DIM,
            });
        }
        let mut words = self.words(LABEL_FREIVALDS);
        let mut out = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let mut v = Vec::with_capacity(len);
            while v.len() < len {
                let w = words.next_word()? & MODULUS;
                if w != MODULUS {
                    v.push(w);
                }
            }
            out.push(v);
        }
        Ok(out)
    }
}

struct Words<'a> {
    challenge: &'a Challenge,
    label: &'static str,
    counter: u32,
    block: [u8; 32],
    used: usize,
}

impl Words<'_> {
    fn next_word(&mut self) -> Result<u64, TranscriptError> {
        if self.used == 4 {
            self.block = self.challenge.expand(self.label, self.counter);
            self.counter = self.counter.checked_add(1).ok_or(TranscriptError::Exhausted { label: self.label })?;
            self.used = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.block[self.used * 8..self.used * 8 + 8]);
        self.used += 1;
        Ok(u64::from_le_bytes(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poseidon::fr_to_bytes;

    fn challenge() -> Challenge {
        Challenge { job_id: JobId([1; 32]), r_c: MerkleRoot([2; 32]), seed: Seed([3; 32]) }
    }

    #[test]
    fn expand_layout_is_as_designed() {
        let c = challenge();
        let mut msg = b"matproof/v1/chal".to_vec();
        msg.push(5);
        msg.extend_from_slice(b"tiles");
        msg.extend_from_slice(&[1; 32]);
        msg.extend_from_slice(&[2; 32]);
        msg.extend_from_slice(&[3; 32]);
        msg.extend_from_slice(&7u32.to_le_bytes());
        let expected: [u8; 32] = Sha256::digest(&msg).into();
        assert_eq!(c.expand("tiles", 7), expected);
    }

    #[test]
    fn known_answer_vectors() {
        // Pinned: a change here is a protocol change (every challenge moves).
        let c = challenge();
        assert_eq!(hex::encode(c.expand("tiles", 0)), KNOWN_EXPAND);
        assert_eq!(c.sample_tiles(5, 64).unwrap(), KNOWN_TILES);
        assert_eq!(hex::encode(fr_to_bytes(&c.sigma())), KNOWN_SIGMA);
        assert_eq!(hex::encode(fr_to_bytes(&c.rho())), KNOWN_RHO);
        assert_eq!(c.freivalds_vectors(2, 2).unwrap(), KNOWN_FREIVALDS);
    }

    const KNOWN_EXPAND: &str = "1f9f48e1f71a2dea444e5127c11edccb9e0bda3f194d4018af221246161fc2e1";
    const KNOWN_TILES: [u64; 5] = [31, 4, 30, 47, 22];
    const KNOWN_SIGMA: &str = "a08a4883cb48eab2823d58aa32aa8db9e667989b041c001804fe8a8a151f7407";
    const KNOWN_RHO: &str = "ddb64b52c50fb8265fd28bab7710b86710965cb1b016f9e5bfc840c8e7eb7016";
    const KNOWN_FREIVALDS: [[u64; 2]; 2] =
        [[680329249834530209, 519267053183785405], [1521301363619025613, 1660629487427986933]];

    #[test]
    fn every_input_changes_every_value() {
        let base = challenge();
        let mut variants = Vec::new();
        for i in 0..3 {
            let mut c = base;
            match i {
                0 => c.job_id.0[31] ^= 1,
                1 => c.r_c.0[0] ^= 1,
                _ => c.seed.0[17] ^= 1,
            }
            variants.push(c);
        }
        for c in variants {
            assert_ne!(c.sample_tiles(8, 1 << 20).unwrap(), base.sample_tiles(8, 1 << 20).unwrap());
            assert_ne!(c.sigma(), base.sigma());
            assert_ne!(c.rho(), base.rho());
            assert_ne!(c.freivalds_vectors(1, 4).unwrap(), base.freivalds_vectors(1, 4).unwrap());
        }
        assert_ne!(base.sigma(), base.rho());
    }

    #[test]
    fn tile_samples_are_distinct_in_range_and_exhaustive() {
        let c = challenge();
        let all = c.sample_tiles(97, 97).unwrap();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..97).collect::<Vec<u64>>());
        assert!(c.sample_tiles(98, 97).is_err());
        assert!(c.sample_tiles(1, 0).is_err());
        assert!(c.sample_tiles(MAX_SAMPLES + 1, MAX_TILES).is_err());
        assert_eq!(c.sample_tiles(0, 5).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn tile_sampling_is_roughly_uniform() {
        // 4000 challenges, one sample out of 8 tiles: each bucket near 500 (±5σ ≈ ±105).
        let mut counts = [0usize; 8];
        for i in 0..4000u32 {
            let mut c = challenge();
            c.seed.0[..4].copy_from_slice(&i.to_le_bytes());
            counts[c.sample_tiles(1, 8).unwrap()[0] as usize] += 1;
        }
        for count in counts {
            assert!((395..=605).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn freivalds_entries_are_reduced_and_limits_hold() {
        let v = challenge().freivalds_vectors(3, 1000).unwrap();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|r| r.len() == 1000 && r.iter().all(|&x| x < MODULUS)));
        assert_ne!(v[0], v[1]);
        assert!(challenge().freivalds_vectors(MAX_FREIVALDS_ROUNDS + 1, 1).is_err());
        assert!(challenge().freivalds_vectors(1, MAX_DIM + 1).is_err());
    }
}
