//! Poseidon block digests `d_A(I)`, `d_B(J)` over BN254 `Fr` (DESIGN §3).
//!
//! Parameters: width 3 (rate 2, capacity 1), α = 5, 8 full and 57 partial rounds, round
//! constants and MDS matrix from arkworks' `find_poseidon_ark_and_mds(254, 2, 8, 57, 0)`.
//! The sponge absorbs, in order: the domain tag (the ASCII bytes `matproof/v1/A` or
//! `matproof/v1/B` read as a little-endian integer), `tm` (or `tn`), `kc`, then the block's
//! bytes biased by +128 to `0..=255`, packed 31 per element little-endian with the last
//! element zero-filled; it then squeezes one element.
//!
//! Digests bind but do not hide: a low-entropy block can be found by trying candidates.

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::poseidon::{PoseidonConfig, PoseidonSponge, find_poseidon_ark_and_mds};
use ark_crypto_primitives::sponge::{CryptographicSponge, FieldBasedCryptographicSponge};
use ark_ff::{BigInteger, Field, PrimeField};
use rayon::prelude::*;

/// Bytes packed into one field element.
pub const BYTES_PER_ELEMENT: usize = 31;
/// Full rounds.
pub const FULL_ROUNDS: usize = 8;
/// Partial rounds.
pub const PARTIAL_ROUNDS: usize = 57;
/// S-box exponent.
pub const ALPHA: u64 = 5;
/// Sponge rate.
pub const RATE: usize = 2;
/// Sponge capacity.
pub const CAPACITY: usize = 1;

/// Domain tag bytes for A row blocks.
pub const DOMAIN_A: &[u8] = b"matproof/v1/A";
/// Domain tag bytes for B column blocks.
pub const DOMAIN_B: &[u8] = b"matproof/v1/B";

/// Which operand a block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A row block (`tm` rows).
    A,
    /// B column block (`tn` columns).
    B,
}

impl BlockKind {
    /// The domain tag as a field element.
    pub fn domain_tag(self) -> Fr {
        Fr::from_le_bytes_mod_order(match self {
            BlockKind::A => DOMAIN_A,
            BlockKind::B => DOMAIN_B,
        })
    }
}

/// The Poseidon configuration of DESIGN §3, built once.
pub fn config() -> &'static PoseidonConfig<Fr> {
    static CONFIG: OnceLock<PoseidonConfig<Fr>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let (ark, mds) = find_poseidon_ark_and_mds::<Fr>(
            u64::from(Fr::MODULUS_BIT_SIZE),
            RATE,
            FULL_ROUNDS as u64,
            PARTIAL_ROUNDS as u64,
            0,
        );
        PoseidonConfig::new(FULL_ROUNDS, PARTIAL_ROUNDS, ALPHA, mds, ark, RATE, CAPACITY)
    })
}

/// Packs block bytes as DESIGN §3 says: each byte biased by +128, 31 bytes per element,
/// little-endian, the last element zero-filled.
pub fn pack_block(block: &[i8]) -> Vec<Fr> {
    block.chunks(BYTES_PER_ELEMENT).map(pack_chunk).collect()
}

/// The round constants and MDS matrix of [`config`] in fixed-size arrays, for the
/// allocation-free native permutation.
struct Permutation {
    ark: Vec<[Fr; 3]>,
    mds: [[Fr; 3]; 3],
}

fn permutation() -> &'static Permutation {
    static PERMUTATION: OnceLock<Permutation> = OnceLock::new();
    PERMUTATION.get_or_init(|| {
        let c = config();
        let row = |v: &Vec<Fr>| [v[0], v[1], v[2]];
        Permutation { ark: c.ark.iter().map(row).collect(), mds: [row(&c.mds[0]), row(&c.mds[1]), row(&c.mds[2])] }
    })
}

impl Permutation {
    /// The Poseidon permutation exactly as arkworks' `PoseidonSponge::permute` computes it
    /// (half the full rounds, the partial rounds, the other half), without its per-round
    /// allocations; `x^5` as two squarings and a product.
    fn permute(&self, state: &mut [Fr; 3]) {
        let sbox = |x: Fr| {
            let x2 = x.square();
            x2.square() * x
        };
        let half_full = FULL_ROUNDS / 2;
        for (round, ark) in self.ark.iter().enumerate() {
            for (s, c) in state.iter_mut().zip(ark) {
                *s += c;
            }
            if round < half_full || round >= half_full + PARTIAL_ROUNDS {
                for s in state.iter_mut() {
                    *s = sbox(*s);
                }
            } else {
                state[0] = sbox(state[0]);
            }
            let old = *state;
            for (s, m) in state.iter_mut().zip(&self.mds) {
                *s = old[0] * m[0] + old[1] * m[1] + old[2] * m[2];
            }
        }
    }
}

/// The digest of one block: `side` is `tm` for A blocks and `tn` for B blocks.
///
/// Computes exactly what arkworks' duplex sponge computes for the absorb-all-then-squeeze-one
/// sequence (state `[capacity, rate₀, rate₁]`; each pair of elements is added to the rate
/// and permuted, the squeeze reads `rate₀`), with the native permutation above; a proptest
/// holds it equal to the arkworks sponge.
pub fn block_digest(kind: BlockKind, side: usize, kc: usize, block: &[i8]) -> Fr {
    let p = permutation();
    let mut state = [Fr::from(0u64); 3];
    let header = [kind.domain_tag(), Fr::from(side as u64), Fr::from(kc as u64)];
    let packed = block.chunks(BYTES_PER_ELEMENT).map(pack_chunk);
    let mut elements = header.into_iter().chain(packed);
    while let Some(first) = elements.next() {
        state[1] += first;
        if let Some(second) = elements.next() {
            state[2] += second;
        }
        p.permute(&mut state);
    }
    state[1]
}

/// Reference digest through arkworks' own `PoseidonSponge` (the tests hold
/// [`block_digest`] equal to it).
pub fn block_digest_reference(kind: BlockKind, side: usize, kc: usize, block: &[i8]) -> Fr {
    let mut sponge = PoseidonSponge::new(config());
    let mut input = Vec::with_capacity(3 + block.len().div_ceil(BYTES_PER_ELEMENT));
    input.push(kind.domain_tag());
    input.push(Fr::from(side as u64));
    input.push(Fr::from(kc as u64));
    input.extend(pack_block(block));
    sponge.absorb(&input);
    sponge.squeeze_native_field_elements(1)[0]
}

fn pack_chunk(chunk: &[i8]) -> Fr {
    let mut bytes = [0u8; 32];
    for (dst, &src) in bytes.iter_mut().zip(chunk) {
        *dst = (src as u8) ^ 0x80; // i8 + 128 as u8
    }
    Fr::from_le_bytes_mod_order(&bytes)
}

/// Digests of many blocks, in parallel; `blocks(i)` yields block `i` (or the error that
/// stops the whole computation).
pub fn block_digests<F, E>(kind: BlockKind, side: usize, kc: usize, count: usize, blocks: F) -> Result<Vec<Fr>, E>
where
    F: Fn(usize) -> Result<Vec<i8>, E> + Sync,
    E: Send,
{
    (0..count).into_par_iter().map(|i| Ok(block_digest(kind, side, kc, &blocks(i)?))).collect()
}

/// The canonical 32-byte little-endian encoding of a field element.
pub fn fr_to_bytes(value: &Fr) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&value.into_bigint().to_bytes_le());
    out
}

/// Decodes a canonical 32-byte little-endian field element; `None` when the value is `≥ r`.
pub fn fr_from_bytes(bytes: &[u8; 32]) -> Option<Fr> {
    let value = Fr::from_le_bytes_mod_order(bytes);
    (fr_to_bytes(&value) == *bytes).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_biases_and_zero_fills() {
        let block: Vec<i8> = (0..33u8).map(|i| (i ^ 0x80) as i8).collect();
        let packed = pack_block(&block);
        assert_eq!(packed.len(), 2);
        let first = fr_to_bytes(&packed[0]);
        assert_eq!(&first[..31], &(0u8..31).collect::<Vec<_>>()[..]);
        assert_eq!(first[31], 0);
        let second = fr_to_bytes(&packed[1]);
        assert_eq!(&second[..2], &[31, 32]);
        assert!(second[2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn canonical_encoding_round_trips_and_rejects_values_above_r() {
        let x = Fr::from(123456789u64);
        assert_eq!(fr_from_bytes(&fr_to_bytes(&x)), Some(x));
        assert_eq!(fr_from_bytes(&[0xff; 32]), None);
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&Fr::MODULUS.to_bytes_le());
        assert_eq!(fr_from_bytes(&r_bytes), None);
    }

    #[test]
    fn known_answer_digests() {
        // Pinned: a change here is a protocol change (every R_A, R_B moves).
        let block: Vec<i8> = (0..64).map(|i| (i * 7 - 100) as i8).collect();
        let d_a = block_digest(BlockKind::A, 4, 16, &block);
        let d_b = block_digest(BlockKind::B, 4, 16, &block);
        assert_ne!(d_a, d_b);
        assert_eq!(hex::encode(fr_to_bytes(&d_a)), KNOWN_D_A);
        assert_eq!(hex::encode(fr_to_bytes(&d_b)), KNOWN_D_B);
        let empty = block_digest(BlockKind::A, 1, 0, &[]);
        assert_eq!(hex::encode(fr_to_bytes(&empty)), KNOWN_EMPTY);
    }

    const KNOWN_D_A: &str = "50803fbbba9758dee4ff164c967849d1eca82aef1e52273c116b0c327ff3311f";
    const KNOWN_D_B: &str = "107f8e5d51ccc87b2fb6398e4ef7a7bc692dab07138a77a7de32c7a7bebb7323";
    const KNOWN_EMPTY: &str = "38d9a6e5e4d1a40385e032f827a3cd8037ae19c2adeece8cd92979ba16488f02";

    #[test]
    fn digest_depends_on_every_absorbed_field() {
        let block = vec![5i8; 62];
        let base = block_digest(BlockKind::A, 2, 31, &block);
        assert_ne!(base, block_digest(BlockKind::A, 3, 31, &block));
        assert_ne!(base, block_digest(BlockKind::A, 2, 32, &block));
        let mut changed = block.clone();
        changed[61] = 6;
        assert_ne!(base, block_digest(BlockKind::A, 2, 31, &changed));
    }

    proptest::proptest! {
        #[test]
        fn native_permutation_equals_the_arkworks_sponge(
            block in proptest::collection::vec(proptest::num::i8::ANY, 0..200),
            side in 1usize..300,
            kc in 0usize..100_000,
            is_a in proptest::bool::ANY,
        ) {
            let kind = if is_a { BlockKind::A } else { BlockKind::B };
            proptest::prop_assert_eq!(block_digest(kind, side, kc, &block), block_digest_reference(kind, side, kc, &block));
        }
    }

    #[test]
    fn parallel_digests_equal_sequential() {
        let blocks: Vec<Vec<i8>> = (0..9).map(|i| vec![i as i8; 40]).collect();
        let par = block_digests(BlockKind::B, 5, 8, blocks.len(), |i| Ok::<_, ()>(blocks[i].clone())).unwrap();
        let seq: Vec<Fr> = blocks.iter().map(|b| block_digest(BlockKind::B, 5, 8, b)).collect();
        assert_eq!(par, seq);
    }
}
