//! Mutation tests at the verifier's boundary (docs/reliability.md, "Mutation tests"):
//!
//! - every transcript input bit (`job_id`, `R_C`, seed) changes every challenge value;
//! - every single-bit flip of a valid tile opening's fields makes `check_sampled_tiles` fail;
//! - non-canonical `d_A`, `d_B` encodings are refused even when a (malicious) commitment
//!   contains them;
//! - every single-byte change of the canonical job spec changes `job_id` or fails to decode.
//!
//! Counts are printed (`--nocapture`) for the doc.

use matproof_circuits::verify::modulus_bytes;
use matproof_circuits::{PinnedVerifyingKey, TileProvingKey, TileVerifyingKey};
use matproof_protocol::commit::a_digests;
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::merkle::{InclusionProof, MerkleTree};
use matproof_protocol::opening::TileOpening;
use matproof_protocol::poseidon::fr_to_bytes;
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::transcript::Challenge;
use matproof_prover::CommittedJob;
use matproof_testkit::{add_le, dev_keys, honest_job, pinned as testkit_pinned, spec_of};
use matproof_verifier::{TileCheckError, check_sampled_tiles};

const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };
const M: usize = 5;
const K: usize = 13;
const N: usize = 3;
const SAMPLES: u32 = 4;

fn keys() -> &'static (TileProvingKey, TileVerifyingKey) {
    dev_keys(SHAPE)
}

fn pinned() -> PinnedVerifyingKey {
    testkit_pinned(SHAPE)
}

fn job() -> CommittedJob {
    honest_job(M, K, N, SHAPE)
}

fn spec(job: &CommittedJob) -> JobSpec {
    spec_of(job, VerificationMode::Succinct, SAMPLES)
}

fn challenge_for(spec: &JobSpec, job: &CommittedJob) -> Challenge {
    Challenge { job_id: spec.job_id(), r_c: job.execution.c_tree.root(), seed: Seed([42; 32]) }
}

/// Every value a challenge fixes, for comparison.
#[derive(Debug, PartialEq)]
struct Derived {
    tiles: Vec<u64>,
    sigma: ark_bn254::Fr,
    rho: ark_bn254::Fr,
    vectors: Vec<Vec<u64>>,
}

fn derive(c: &Challenge) -> Derived {
    Derived {
        // 8 of 2^20 tiles: two different challenges draw the same list with probability ≈ 2^-160.
        tiles: c.sample_tiles(8, 1 << 20).unwrap(),
        sigma: c.sigma(),
        rho: c.rho(),
        vectors: c.freivalds_vectors(2, 16).unwrap(),
    }
}

#[test]
fn every_transcript_bit_changes_every_challenge_value() {
    let base = Challenge { job_id: JobId([0x11; 32]), r_c: MerkleRoot([0x22; 32]), seed: Seed([0x33; 32]) };
    let d0 = derive(&base);
    let mut variants = 0;
    for field in 0..3 {
        for byte in 0..32 {
            for bit in 0..8 {
                let mut c = base;
                let target = match field {
                    0 => &mut c.job_id.0,
                    1 => &mut c.r_c.0,
                    _ => &mut c.seed.0,
                };
                target[byte] ^= 1 << bit;
                let d = derive(&c);
                let what = ["job_id", "r_c", "seed"][field];
                assert_ne!(d.tiles, d0.tiles, "{what}[{byte}] bit {bit}: same sampled tiles");
                assert_ne!(d.sigma, d0.sigma, "{what}[{byte}] bit {bit}: same sigma");
                assert_ne!(d.rho, d0.rho, "{what}[{byte}] bit {bit}: same rho");
                assert_ne!(d.vectors[0], d0.vectors[0], "{what}[{byte}] bit {bit}: same Freivalds vector 0");
                assert_ne!(d.vectors[1], d0.vectors[1], "{what}[{byte}] bit {bit}: same Freivalds vector 1");
                assert_ne!(c.signing_bytes(), base.signing_bytes());
                variants += 1;
            }
        }
    }
    println!(
        "transcript: {variants} single-bit changes of (job_id, R_C, seed); each changed tiles, σ, ρ and both vectors"
    );
    assert_eq!(variants, 768);
}

/// Flips one bit of a 64-bit value, of a digest, or of a path's fields, collecting variants.
fn path_variants(path: &InclusionProof, out: &mut Vec<(String, InclusionProof)>, name: &str) {
    for bit in 0..64 {
        let mut p = path.clone();
        p.leaf_index ^= 1 << bit;
        out.push((format!("{name}.leaf_index bit {bit}"), p));
        let mut p = path.clone();
        p.tree_size ^= 1 << bit;
        out.push((format!("{name}.tree_size bit {bit}"), p));
    }
    for (h, _) in path.path.iter().enumerate() {
        for bit in 0..256 {
            let mut p = path.clone();
            p.path[h][bit / 8] ^= 1 << (bit % 8);
            out.push((format!("{name}.path[{h}] bit {bit}"), p));
        }
    }
}

#[test]
fn every_single_bit_flip_of_an_opening_fails_the_check() {
    let job = job();
    let spec = spec(&job);
    let challenge = challenge_for(&spec, &job);
    let key = pinned();
    let honest = job.respond(&keys().0, &challenge, SAMPLES as usize, 2).unwrap();
    check_sampled_tiles(&spec, &challenge.r_c, &challenge, &honest, &key).unwrap();
    let mut flips = 0usize;
    let mut by_error: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for position in 0..honest.len() {
        let o = &honest[position];
        let mut variants: Vec<(String, TileOpening)> = Vec::new();
        for bit in 0..64 {
            let mut v = o.clone();
            v.tile_index ^= 1 << bit;
            variants.push((format!("tile_index bit {bit}"), v));
        }
        for entry in 0..o.c_tile.len() {
            for bit in 0..32 {
                let mut v = o.clone();
                v.c_tile[entry] ^= 1 << bit;
                variants.push((format!("c_tile[{entry}] bit {bit}"), v));
            }
        }
        for bit in 0..256 {
            let mut v = o.clone();
            v.d_a[bit / 8] ^= 1 << (bit % 8);
            variants.push((format!("d_a bit {bit}"), v));
            let mut v = o.clone();
            v.d_b[bit / 8] ^= 1 << (bit % 8);
            variants.push((format!("d_b bit {bit}"), v));
        }
        for (name, path) in [("c_path", &o.c_path), ("a_path", &o.a_path), ("b_path", &o.b_path)] {
            let mut paths = Vec::new();
            path_variants(path, &mut paths, name);
            for (label, p) in paths {
                let mut v = o.clone();
                match name {
                    "c_path" => v.c_path = p,
                    "a_path" => v.a_path = p,
                    _ => v.b_path = p,
                }
                variants.push((label, v));
            }
        }
        // The proof's bits: all 1024 for the first opening (the circuits crate's mutation test
        // covers proof bits exhaustively against the key; here they go through the whole check).
        if position == 0 {
            for bit in 0..o.proof.len() * 8 {
                let mut v = o.clone();
                v.proof[bit / 8] ^= 1 << (bit % 8);
                variants.push((format!("proof bit {bit}"), v));
            }
        }
        for (label, variant) in variants {
            let mut openings = honest.clone();
            openings[position] = variant;
            let err = check_sampled_tiles(&spec, &challenge.r_c, &challenge, &openings, &key)
                .expect_err(&format!("opening {position}, {label}: accepted"));
            let kind = match err {
                TileCheckError::WrongTile { .. } => "WrongTile",
                TileCheckError::Path { .. } => "Path",
                TileCheckError::NonZeroPadding { .. } => "NonZeroPadding",
                TileCheckError::NonCanonicalDigest { .. } => "NonCanonicalDigest",
                TileCheckError::Proof { .. } => "Proof",
                TileCheckError::TileLength { .. } => "TileLength",
                other => panic!("opening {position}, {label}: unexpected error {other}"),
            };
            *by_error.entry(kind).or_default() += 1;
            flips += 1;
        }
    }
    println!("opening bit flips: {flips} flips over {} openings, 0 accepted; errors: {by_error:?}", honest.len());
}

#[test]
fn non_canonical_digests_are_refused_even_when_committed() {
    // A malicious consumer commits R_A (or R_B) over digest encodings that are not canonical
    // field elements: `x + r` (the same element as x), `r` (zero) and 2^256 − 1. Every path
    // then verifies, and the canonicality check itself must refuse.
    let job = job();
    let tiling = job.tiling;
    let honest_a: Vec<[u8; 32]> = a_digests(&tiling, &job.a).unwrap().iter().map(fr_to_bytes).collect();
    let honest_b: Vec<[u8; 32]> =
        matproof_protocol::commit::b_digests(&tiling, &job.b).unwrap().iter().map(fr_to_bytes).collect();
    let r = modulus_bytes();
    let mut cases = 0;
    for which in ["d_A", "d_B"] {
        let honest = if which == "d_A" { &honest_a } else { &honest_b };
        for bad in 0..3 {
            let leaves: Vec<[u8; 32]> = honest
                .iter()
                .map(|x| match bad {
                    0 => add_le(x, &r),
                    1 => r,
                    _ => [0xff; 32],
                })
                .collect();
            let tree = MerkleTree::from_leaves(&leaves);
            let mut spec = spec(&job);
            if which == "d_A" {
                spec.r_a = tree.root();
            } else {
                spec.r_b = tree.root();
            }
            let challenge = challenge_for(&spec, &job);
            let mut openings = job.respond(&keys().0, &challenge, SAMPLES as usize, 2).unwrap();
            for o in &mut openings {
                let (i, j) = tiling.tile_coords(o.tile_index as usize).unwrap();
                if which == "d_A" {
                    o.d_a = leaves[i];
                    o.a_path = tree.prove(i as u64).unwrap();
                } else {
                    o.d_b = leaves[j];
                    o.b_path = tree.prove(j as u64).unwrap();
                }
            }
            let err = check_sampled_tiles(&spec, &challenge.r_c, &challenge, &openings, &pinned()).unwrap_err();
            assert!(
                matches!(err, TileCheckError::NonCanonicalDigest { which: w, tile } if w == which && tile == openings[0].tile_index),
                "{which}: {err}"
            );
            cases += 1;
        }
    }
    println!("non-canonical digests in a committed tree: {cases} cases, 0 accepted");
}

#[test]
fn every_single_byte_change_of_the_canonical_spec_changes_job_id_or_fails() {
    let job = job();
    let spec = spec(&job);
    let bytes = spec.canonical_bytes();
    let id = spec.job_id();
    assert_eq!(JobSpec::from_canonical_bytes(&bytes).unwrap(), spec);
    let (mut refused, mut new_id) = (0usize, 0usize);
    for position in 0..bytes.len() {
        for x in 1..=255u8 {
            let mut b = bytes.clone();
            b[position] ^= x;
            match JobSpec::from_canonical_bytes(&b) {
                Err(_) => refused += 1,
                Ok(other) => {
                    assert_ne!(other.job_id(), id, "byte {position} ^ {x:#04x}: same job id");
                    assert_eq!(other.canonical_bytes(), b, "byte {position} ^ {x:#04x}: decoded non-canonically");
                    new_id += 1;
                }
            }
        }
    }
    println!(
        "canonical spec ({} bytes): {} single-byte changes, {refused} refused, {new_id} decoded with a new job_id, 0 kept the id",
        bytes.len(),
        refused + new_id
    );
    assert_eq!(refused + new_id, bytes.len() * 255);
}
