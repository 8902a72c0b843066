//! docs/formats.md restated for another implementation: each layout and generation step
//! written out there is recomputed here from the words of the doc (not through the code
//! that implements it) and the vectors the doc quotes are checked.

use ark_bn254::Fr;
use ark_ff::{BigInteger, Field, PrimeField};
use matproof_protocol::poseidon::{self, FULL_ROUNDS, PARTIAL_ROUNDS};

const DOC: &str = include_str!("../../docs/formats.md");

fn doc_mentions(text: &str) {
    assert!(DOC.contains(text), "docs/formats.md does not quote {text:?}");
}

/// The Grain LFSR of docs/formats.md, "Poseidon constants", step by step.
struct Grain {
    state: [bool; 80],
    head: usize,
}

impl Grain {
    fn new(field_bits: u64, width: u64, full: u64, partial: u64) -> Self {
        let mut bits = Vec::with_capacity(80);
        let mut push = |value: u64, len: usize| bits.extend((0..len).rev().map(|i| (value >> i) & 1 == 1));
        push(1, 2); // prime field
        push(0, 4); // S-box x^alpha
        push(field_bits, 12);
        push(width, 12);
        push(full, 10);
        push(partial, 10);
        push((1 << 30) - 1, 30);
        let mut state = [false; 80];
        state.copy_from_slice(&bits);
        let mut grain = Grain { state, head: 0 };
        for _ in 0..160 {
            grain.raw();
        }
        grain
    }

    /// `b_{i+80} = b_{i+62} ⊕ b_{i+51} ⊕ b_{i+38} ⊕ b_{i+23} ⊕ b_{i+13} ⊕ b_i`.
    fn raw(&mut self) -> bool {
        let (s, h) = (&self.state, self.head);
        let bit = s[(h + 62) % 80] ^ s[(h + 51) % 80] ^ s[(h + 38) % 80] ^ s[(h + 23) % 80] ^ s[(h + 13) % 80] ^ s[h];
        self.state[h] = bit;
        self.head = (h + 1) % 80;
        bit
    }

    /// Self-shrinking: pairs `(a, b)`, `b` is output when `a = 1`, else both are dropped.
    fn bit(&mut self) -> bool {
        loop {
            let (keep, bit) = (self.raw(), self.raw());
            if keep {
                return bit;
            }
        }
    }

    /// 254 output bits, the first the most significant.
    fn integer(&mut self) -> ark_ff::BigInt<4> {
        let bits: Vec<bool> = (0..254).map(|_| self.bit()).collect();
        ark_ff::BigInt::from_bits_be(&bits)
    }

    fn rejection_sampled(&mut self) -> Fr {
        loop {
            if let Some(f) = Fr::from_bigint(self.integer()) {
                return f;
            }
        }
    }

    fn reduced(&mut self) -> Fr {
        let mut v = self.integer();
        if Fr::from_bigint(v).is_none() {
            v.sub_with_borrow(&Fr::MODULUS); // 2^254 < 2r: one subtraction reduces
        }
        Fr::from_bigint(v).expect("reduced below r")
    }
}

fn hex_le(f: &Fr) -> String {
    hex::encode(poseidon::fr_to_bytes(f))
}

#[test]
fn poseidon_constants_follow_the_documented_grain_lfsr() {
    let mut grain = Grain::new(254, 3, FULL_ROUNDS as u64, PARTIAL_ROUNDS as u64);
    let ark: Vec<Vec<Fr>> =
        (0..FULL_ROUNDS + PARTIAL_ROUNDS).map(|_| (0..3).map(|_| grain.rejection_sampled()).collect()).collect();
    let xs: Vec<Fr> = (0..3).map(|_| grain.reduced()).collect();
    let ys: Vec<Fr> = (0..3).map(|_| grain.reduced()).collect();
    let mds: Vec<Vec<Fr>> =
        xs.iter().map(|x| ys.iter().map(|y| (*x + y).inverse().expect("x + y ≠ 0")).collect()).collect();
    let config = poseidon::config();
    assert_eq!(ark, config.ark, "round constants");
    assert_eq!(mds, config.mds, "MDS matrix");
    doc_mentions(&hex_le(&ark[0][0]));
    doc_mentions(&hex_le(&ark[64][2]));
    doc_mentions(&hex_le(&mds[0][0]));
    doc_mentions(&hex_le(&mds[2][2]));
}

#[test]
fn the_scalar_field_modulus_is_the_documented_one() {
    let r = Fr::MODULUS;
    doc_mentions(&r.to_string());
    doc_mentions(&hex::encode(r.to_bytes_le()));
    doc_mentions(&ark_bn254::Fq::MODULUS.to_string());
}

#[test]
fn the_documented_poseidon_digest_vectors_hold() {
    let block: Vec<i8> = (0..64).map(|i| (i * 7 - 100) as i8).collect();
    let d_a = poseidon::block_digest(poseidon::BlockKind::A, 4, 16, &block);
    doc_mentions(&hex_le(&d_a));
    doc_mentions(&hex_le(&poseidon::block_digest(poseidon::BlockKind::A, 1, 0, &[])));
    doc_mentions(&hex_le(&poseidon::BlockKind::A.domain_tag()));
}

/// Every limit in `protocol::limits` (and the receipt's) appears in the doc's limits table
/// with its value.
#[test]
fn the_limits_table_is_the_code() {
    use matproof_protocol::limits::*;
    use matproof_protocol::receipt::{MAX_REASON_BYTES, MAX_STATEMENT_BYTES, MAX_VERDICTS};
    for (name, value) in [
        ("MAX_DIM", MAX_DIM as u64),
        ("MAX_K", MAX_K as u64),
        ("MAX_MATRIX_ELEMENTS", MAX_MATRIX_ELEMENTS as u64),
        ("MAX_TILE_SIDE", MAX_TILE_SIDE as u64),
        ("MAX_TILES", MAX_TILES as u64),
        ("MAX_SAMPLES", MAX_SAMPLES as u64),
        ("MAX_FREIVALDS_ROUNDS", MAX_FREIVALDS_ROUNDS as u64),
        ("MAX_NPY_HEADER_BYTES", MAX_NPY_HEADER_BYTES as u64),
        ("MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES as u64),
        ("MAX_MERKLE_PATH_LEN", MAX_MERKLE_PATH_LEN as u64),
        ("MAX_CANONICAL_BYTES", MAX_CANONICAL_BYTES as u64),
        ("MAX_VERDICTS", MAX_VERDICTS as u64),
        ("MAX_REASON_BYTES", MAX_REASON_BYTES as u64),
        ("MAX_STATEMENT_BYTES", MAX_STATEMENT_BYTES as u64),
    ] {
        doc_mentions(&format!("| `{name}` | {value} |"));
    }
}

/// The protobuf decoding rules the doc states: a known field with the wrong wire type is
/// refused; an unknown field is skipped; a repeated scalar scalar field is read last-wins.
#[test]
fn protobuf_decoding_rules() {
    use matproof_protocol::wire::pb;
    use prost::Message;
    // Field 1 of GetReceiptRequest (job_id, bytes: wire type 2) sent as a varint (type 0).
    assert!(pb::GetReceiptRequest::decode(&[0x08, 0x01][..]).is_err());
    // An unknown field 15 (varint) is skipped.
    let with_unknown = [0x0a, 0x01, 0xaa, 0x78, 0x05];
    assert_eq!(pb::GetReceiptRequest::decode(&with_unknown[..]).unwrap().job_id, vec![0xaa]);
    // A scalar field given twice: the last value wins.
    let twice = [0x08, 0x01, 0x08, 0x02];
    assert_eq!(pb::Receipt::decode(&twice[..]).unwrap().version, 2);
    doc_mentions("`08 01`");
    doc_mentions("`0a 01 aa 78 05`");
}

/// The `sha256` input scheme's leaves, built byte by byte from the doc's words and hashed
/// with SHA-256 directly, equal the library's; the roots of the documented example too
/// (plain RFC 9162 over those leaves).
#[test]
fn sha256_input_leaves_follow_the_documented_layout() {
    use matproof_protocol::commit::{a_sha256_leaf_hash, a_sha256_tree, b_sha256_leaf_hash, b_sha256_tree};
    use matproof_protocol::matrix::MatrixI8;
    use matproof_protocol::merkle::{Digest, MerkleTree, leaf_hash};
    use matproof_protocol::tiling::{CircuitShape, Tiling};
    let block: Vec<i8> = (0..64).map(|i: i32| (7 * i - 100) as i8).collect();
    let leaf = |prefix: &[u8], index: u64, bytes: &[u8]| -> Digest {
        leaf_hash(&[prefix, &index.to_le_bytes()[..], bytes].concat())
    };
    let bytes: Vec<u8> = block.iter().map(|v| *v as u8).collect();
    let a_leaf = leaf(b"matproof/v1/a", 3, &bytes);
    let b_leaf = leaf(b"matproof/v1/b", 3, &bytes);
    assert_eq!(a_leaf, a_sha256_leaf_hash(3, &block));
    assert_eq!(b_leaf, b_sha256_leaf_hash(3, &block));
    doc_mentions(&hex::encode(a_leaf));
    doc_mentions(&hex::encode(b_leaf));

    let (m, k, n, tm, tn, kc) = (6usize, 5usize, 7usize, 4usize, 4usize, 8usize);
    let a_at = |i: usize, j: usize| (37 * (5 * i + j) as i32 - 100) as i8 as u8;
    let b_at = |t: usize, j: usize| (53 * (7 * t + j) as i32 + 11) as i8 as u8;
    let a_leaves: Vec<Digest> = (0..m.div_ceil(tm))
        .map(|block| {
            let rows = (block * tm..(block + 1) * tm)
                .flat_map(|i| (0..kc).map(move |j| if i < m && j < k { a_at(i, j) } else { 0 }));
            leaf(b"matproof/v1/a", block as u64, &rows.collect::<Vec<u8>>())
        })
        .collect();
    let b_leaves: Vec<Digest> = (0..n.div_ceil(tn))
        .map(|block| {
            let cols = (block * tn..(block + 1) * tn)
                .flat_map(|j| (0..kc).map(move |t| if j < n && t < k { b_at(t, j) } else { 0 }));
            leaf(b"matproof/v1/b", block as u64, &cols.collect::<Vec<u8>>())
        })
        .collect();
    let r_a = MerkleTree::from_leaf_hashes(a_leaves).root();
    let r_b = MerkleTree::from_leaf_hashes(b_leaves).root();
    let tiling = Tiling::new(m, k, n, CircuitShape { tm, tn, kc }).unwrap();
    let a = MatrixI8::from_vec(m, k, (0..m * k).map(|x| a_at(x / k, x % k) as i8).collect()).unwrap();
    let b = MatrixI8::from_vec(k, n, (0..k * n).map(|x| b_at(x / n, x % n) as i8).collect()).unwrap();
    assert_eq!(a_sha256_tree(&tiling, &a).unwrap().root(), r_a);
    assert_eq!(b_sha256_tree(&tiling, &b).unwrap().root(), r_b);
    doc_mentions(&hex::encode(r_a));
    doc_mentions(&hex::encode(r_b));
}
