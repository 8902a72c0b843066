//! docs/formats.md's key-file, verifying-key, proof and point layouts, recomputed from the
//! words of the doc (the points decompressed by hand, not by ark-serialize) and the quoted
//! vectors checked.

use ark_bn254::{Fq, Fq2, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{Field, PrimeField};
use ark_serialize::CanonicalSerialize;
use matproof_circuits::keys::{KEY_MAGIC, VK_HASH_DOMAIN};
use matproof_protocol::tiling::CircuitShape;
use sha2::{Digest, Sha256};

const DOC: &str = include_str!("../../docs/formats.md");

fn doc_mentions(text: &str) {
    assert!(DOC.contains(text), "docs/formats.md does not quote {text:?}");
}

fn compressed<T: CanonicalSerialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.serialize_compressed(&mut out).unwrap();
    out
}

/// `Fq` from 32 little-endian bytes with the flag bits (7: y is the larger root, 6: the
/// point at infinity) of the last byte cleared; refused when not below `q`.
fn fq(bytes: &[u8]) -> (Fq, bool, bool) {
    let mut b = [0u8; 32];
    b.copy_from_slice(bytes);
    let (larger, infinity) = (b[31] & 0x80 != 0, b[31] & 0x40 != 0);
    b[31] &= 0x3f;
    let x = Fq::from_le_bytes_mod_order(&b);
    let mut canonical = [0u8; 32];
    x.serialize_compressed(&mut canonical[..]).unwrap();
    assert_eq!(canonical, b, "not canonical");
    (x, larger, infinity)
}

/// A G1 point as the doc decodes it: `y² = x³ + 3`, the root chosen by the flag (`y > q − y`
/// for "larger").
fn g1(bytes: &[u8]) -> G1Affine {
    let (x, larger, infinity) = fq(bytes);
    if infinity {
        return G1Affine::zero();
    }
    let mut y = (x * x * x + Fq::from(3u64)).sqrt().expect("on the curve");
    if (y > -y) != larger {
        y = -y;
    }
    G1Affine::new(x, y) // checks the curve equation and the (trivial) subgroup
}

/// A G2 point: `x = c0 + c1·u` (c0 first), `y² = x³ + 3/(9 + u)`, "larger" comparing `c1`
/// first, then `c0`.
fn g2(bytes: &[u8]) -> G2Affine {
    let (c0, _, _) = fq(&bytes[..32]);
    let (c1, larger, infinity) = fq(&bytes[32..64]);
    if infinity {
        return G2Affine::zero();
    }
    let x = Fq2::new(c0, c1);
    let b = Fq2::new(Fq::from(3u64), Fq::from(0u64)) * Fq2::new(Fq::from(9u64), Fq::from(1u64)).inverse().unwrap();
    let mut y = (x * x * x + b).sqrt().expect("on the twist");
    let neg = -y;
    let y_larger = (y.c1, y.c0) > (neg.c1, neg.c0);
    if y_larger != larger {
        y = neg;
    }
    let p = G2Affine::new_unchecked(x, y);
    assert!(p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve(), "not in G2");
    p
}

#[test]
fn point_encodings_and_their_vectors() {
    let g = G1Affine::generator();
    assert_eq!(g1(&compressed(&g)), g);
    assert_eq!(g1(&compressed(&-g)), -g);
    assert_eq!(g2(&compressed(&G2Affine::generator())), G2Affine::generator());
    assert_eq!(g2(&compressed(&-G2Affine::generator())), -G2Affine::generator());
    assert_eq!(g1(&compressed(&G1Affine::zero())), G1Affine::zero());
    for p in [compressed(&g), compressed(&-g), compressed(&G2Affine::generator()), compressed(&G1Affine::zero())] {
        doc_mentions(&hex::encode(p));
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// The key file, the verifying key inside it, the `vk_hash` preimage and a proof, parsed as
/// the doc lays them out.
#[test]
fn key_file_vk_hash_and_proof_layouts() {
    let shape = CircuitShape { tm: 2, tn: 2, kc: 8 };
    let (pk, vk) = matproof_testkit::dev_keys(shape);
    let file = vk.to_file_bytes();
    assert_eq!(&file[..16], KEY_MAGIC);
    assert_eq!(file[16], 2, "kind: verifying key");
    assert_eq!([u64_at(&file, 17), u64_at(&file, 25), u64_at(&file, 33)], [2, 2, 8]);
    assert_eq!(file[41], 1, "origin: development");
    let note_len = u32::from_le_bytes(file[42..46].try_into().unwrap()) as usize;
    let at = 46 + note_len;
    let header_hash = &file[at..at + 32];
    let body_len = u64_at(&file, at + 32) as usize;
    let body = &file[at + 40..];
    assert_eq!(body.len(), body_len);
    // The body: alpha (G1), beta, gamma, delta (G2), u64le(count), count G1 points.
    assert_eq!(g1(&body[..32]), vk.vk.alpha_g1);
    assert_eq!(g2(&body[32..96]), vk.vk.beta_g2);
    assert_eq!(g2(&body[96..160]), vk.vk.gamma_g2);
    assert_eq!(g2(&body[160..224]), vk.vk.delta_g2);
    assert_eq!(u64_at(body, 224), 6);
    for i in 0..6 {
        assert_eq!(g1(&body[232 + 32 * i..264 + 32 * i]), vk.vk.gamma_abc_g1[i]);
    }
    assert_eq!(body.len(), 424);
    // vk_hash = SHA-256("matproof/v1/vk" ‖ u64le tm, tn, kc ‖ u8 origin ‖ u32le len ‖ note ‖ body).
    let mut h = Sha256::new();
    h.update(VK_HASH_DOMAIN);
    for v in [2u64, 2, 8] {
        h.update(v.to_le_bytes());
    }
    h.update([1u8]);
    h.update(0u32.to_le_bytes());
    h.update(body);
    let hash: [u8; 32] = h.finalize().into();
    assert_eq!(hash, header_hash);
    assert_eq!(hash, vk.hash().0);
    doc_mentions(&vk.hash().to_hex());
    // A proof: A (G1) ‖ B (G2) ‖ C (G1), 128 bytes.
    let job = matproof_testkit::honest_job(4, 8, 4, shape);
    let opening = job.respond(pk, &matproof_testkit::self_check_challenge(1), 1, 1).unwrap().remove(0);
    let proof = <ark_groth16::Proof<ark_bn254::Bn254> as ark_serialize::CanonicalDeserialize>::deserialize_compressed(
        &opening.proof[..],
    )
    .unwrap();
    assert_eq!(opening.proof.len(), 128);
    assert_eq!(g1(&opening.proof[..32]), proof.a);
    assert_eq!(g2(&opening.proof[32..96]), proof.b);
    assert_eq!(g1(&opening.proof[96..]), proof.c);
}
