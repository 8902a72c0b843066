//! Mutation tests of proofs, public inputs and keys (docs/reliability.md, "Mutation tests"):
//! every single-bit flip of a valid proof and of a verifying-key file is refused; public
//! inputs that are not canonical field encodings are refused; proofs carrying points that
//! are off the curve, outside the prime-order subgroup, the identity or non-canonically
//! encoded are refused at decoding. Counts are printed (`--nocapture`) for the doc.

use std::sync::OnceLock;

use ark_bn254::{Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ff::{Field, PrimeField};
use ark_groth16::Proof;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use matproof_circuits::verify::modulus_bytes;
use matproof_circuits::{
    PinnedVerifyingKey, TileProof, TileProvingKey, TilePublicInputs, TileVerifyingKey, TileWitness, VerifyError,
    prove_tile,
};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::poseidon::fr_to_bytes;
use matproof_protocol::tiling::CircuitShape;
use matproof_testkit::add_le;

const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };

fn keys() -> &'static (TileProvingKey, TileVerifyingKey) {
    matproof_testkit::dev_keys(SHAPE)
}

fn pinned() -> PinnedVerifyingKey {
    matproof_testkit::pinned(SHAPE)
}

fn honest() -> &'static (TileProof, TilePublicInputs) {
    static P: OnceLock<(TileProof, TilePublicInputs)> = OnceLock::new();
    P.get_or_init(|| {
        let witness = TileWitness {
            a_block: random_i8(1, SHAPE.tm * SHAPE.kc, 5).unwrap().into_vec(),
            b_block: random_i8(1, SHAPE.kc * SHAPE.tn, 6).unwrap().into_vec(),
        };
        prove_tile(&keys().0, witness, Fr::from(0x1234_5678_u64), Fr::from(0x9abc_def0_u64)).unwrap()
    })
}

fn input_bytes(p: &TilePublicInputs) -> Vec<[u8; 32]> {
    p.to_vec().iter().map(fr_to_bytes).collect()
}

#[test]
fn every_single_bit_flip_of_a_proof_is_rejected() {
    let (proof, public) = honest();
    let key = pinned();
    let valid = proof.to_bytes();
    key.verify_bytes(&valid, &input_bytes(public)).unwrap();
    let (mut decode_errors, mut verify_errors) = (0usize, 0usize);
    for bit in 0..valid.len() * 8 {
        let mut bytes = valid;
        bytes[bit / 8] ^= 1 << (bit % 8);
        match TileProof::from_bytes(&bytes) {
            Err(VerifyError::ProofEncoding { .. }) => decode_errors += 1,
            Err(other) => panic!("bit {bit}: unexpected decode error {other}"),
            Ok(p) => {
                assert!(key.verify(&p, public).is_err(), "bit {bit}: a modified proof verified");
                assert!(
                    key.batch_verify(&[(p, *public)]).is_err(),
                    "bit {bit}: a modified proof passed batch verification"
                );
                verify_errors += 1;
            }
        }
    }
    println!(
        "proof bit flips: {} flips, {decode_errors} decode errors, {verify_errors} verify errors, 0 accepted",
        valid.len() * 8
    );
    assert_eq!(decode_errors + verify_errors, 1024);
}

#[test]
fn non_canonical_public_inputs_are_rejected() {
    let (proof, public) = honest();
    let key = pinned();
    let bytes = proof.to_bytes();
    let good = input_bytes(public);
    key.verify_bytes(&bytes, &good).unwrap();
    let r = modulus_bytes();
    let mut cases = 0;
    for index in 0..good.len() {
        for bad in [add_le(&good[index], &r), r, [0xff; 32]] {
            let mut inputs = good.clone();
            inputs[index] = bad;
            assert_eq!(key.verify_bytes(&bytes, &inputs), Err(VerifyError::NonCanonicalInput { index }));
            cases += 1;
        }
    }
    // r − 1 is the largest canonical value: decodes, then fails the pairing check.
    let mut r_minus_1 = r;
    r_minus_1[0] -= 1;
    let mut inputs = good.clone();
    inputs[0] = r_minus_1;
    assert_eq!(key.verify_bytes(&bytes, &inputs), Err(VerifyError::Rejected));
    println!("non-canonical public inputs: {cases} cases (x + r, r, 2^256 - 1 for each of 5 inputs), 0 accepted");
}

/// Compressed proof bytes of `(a, b, c)`, whatever the points are (no validation).
fn proof_bytes(a: G1Affine, b: G2Affine, c: G1Affine) -> Vec<u8> {
    let mut out = Vec::new();
    Proof::<ark_bn254::Bn254> { a, b, c }.serialize_compressed(&mut out).unwrap();
    assert_eq!(out.len(), 128);
    out
}

/// A point on the BN254 twist `E'(Fq2)` that is not in the prime-order subgroup `G2`.
fn g2_outside_subgroup() -> G2Affine {
    for i in 1u64.. {
        let x = Fq2::new(Fq::from(i), Fq::from(7u64));
        if let Some(p) = G2Affine::get_point_from_x_unchecked(x, true) {
            assert!(p.is_on_curve());
            if !p.is_in_correct_subgroup_assuming_on_curve() {
                return p;
            }
        }
    }
    unreachable!()
}

/// An x in Fq with no point of `E(Fq)` above it (x³ + 3 is not a square).
fn g1_x_off_curve() -> Fq {
    (1u64..).map(Fq::from).find(|x| (x.square() * x + ark_bn254::g1::Config::COEFF_B).sqrt().is_none()).unwrap()
}

/// An x in Fq2 with no point of the twist above it.
fn g2_x_off_curve() -> Fq2 {
    (1u64..)
        .map(|i| Fq2::new(Fq::from(i), Fq::from(3u64)))
        .find(|x| (x.square() * x + ark_bn254::g2::Config::COEFF_B).sqrt().is_none())
        .unwrap()
}

#[test]
fn off_curve_non_subgroup_identity_and_non_canonical_points_are_rejected() {
    let (proof, public) = honest();
    let key = pinned();
    let (a, b, c) = (proof.0.a, proof.0.b, proof.0.c);
    let valid = proof_bytes(a, b, c);
    TileProof::from_bytes(&valid).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    // B on the twist but outside G2 (the twist's cofactor is not 1). The bytes are a
    // well-formed compressed point: they decode without validation, so the rejection below
    // is the subgroup check's.
    let b_bad = g2_outside_subgroup();
    let bytes = proof_bytes(a, b_bad, c);
    let unchecked = Proof::<ark_bn254::Bn254>::deserialize_compressed_unchecked(bytes.as_slice()).unwrap();
    assert_eq!(unchecked.b, b_bad);
    cases.push(("B on the curve, not in G2", bytes));
    // Also a non-subgroup point that is a small-order-free multiple: -B_bad.
    cases.push(("-B on the curve, not in G2", proof_bytes(a, (-b_bad.into_group()).into(), c)));

    // Off-curve x coordinates (compressed: only x and the sign flag travel).
    let mut bytes = valid.clone();
    let mut x = Vec::new();
    g1_x_off_curve().serialize_compressed(&mut x).unwrap();
    bytes[..32].copy_from_slice(&x);
    cases.push(("A off the curve", bytes.clone()));
    bytes = valid.clone();
    bytes[96..].copy_from_slice(&x);
    cases.push(("C off the curve", bytes));
    let mut x2 = Vec::new();
    g2_x_off_curve().serialize_compressed(&mut x2).unwrap();
    let mut bytes = valid.clone();
    bytes[32..96].copy_from_slice(&x2);
    cases.push(("B off the curve", bytes));

    // The identity (G1 has cofactor 1: every curve point is in G1, so identity and off-curve
    // are the G1 cases).
    cases.push(("A = identity", proof_bytes(G1Affine::zero(), b, c)));
    cases.push(("B = identity", proof_bytes(a, G2Affine::zero(), c)));
    cases.push(("C = identity", proof_bytes(a, b, G1Affine::zero())));

    // Non-canonical coordinates: x + p for A's x (x < p < 2^254, so x + p < 2^255 fits and
    // leaves the flag bits as they were only if no carry reaches them: checked).
    let p_bytes = {
        let mut out = [0u8; 32];
        for (i, limb) in Fq::MODULUS.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    };
    let mut ax = [0u8; 32];
    ax.copy_from_slice(&valid[..32]);
    let flags = ax[31] & 0xc0;
    ax[31] &= 0x3f;
    let mut shifted = add_le(&ax, &p_bytes);
    if shifted[31] & 0xc0 == 0 {
        shifted[31] |= flags;
        let mut bytes = valid.clone();
        bytes[..32].copy_from_slice(&shifted);
        cases.push(("A with x + p", bytes));
    }
    let mut bytes = valid.clone();
    bytes[..32].copy_from_slice(&p_bytes);
    cases.push(("A with x = p", bytes));
    let mut bytes = valid.clone();
    bytes[..31].fill(0xff);
    bytes[31] = 0x3f;
    cases.push(("A with x = 2^254 - 1", bytes));
    // Both flag bits set (infinity and negative): not a valid flag combination.
    let mut bytes = valid.clone();
    bytes[31] |= 0xc0;
    cases.push(("A with both flags", bytes));

    for (what, bytes) in &cases {
        match TileProof::from_bytes(bytes) {
            Err(VerifyError::ProofEncoding { .. }) => {}
            Err(e) => panic!("{what}: unexpected error {e}"),
            Ok(p) => panic!("{what}: decoded (verify says {:?})", key.verify(&p, public)),
        }
    }
    println!("invalid proof points: {} cases, all refused at decoding, 0 accepted", cases.len());
}

#[test]
fn every_single_bit_flip_of_a_verifying_key_file_is_refused() {
    let vk = &keys().1;
    let file = vk.to_file_bytes();
    TileVerifyingKey::from_file_bytes(&file).unwrap();
    let mut refused = 0;
    for bit in 0..file.len() * 8 {
        let mut bytes = file.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        assert!(TileVerifyingKey::from_file_bytes(&bytes).is_err(), "bit {bit} of the key file: loaded");
        refused += 1;
    }
    println!("verifying-key file bit flips: {} bytes, {refused} flips, {refused} refused, 0 loaded", file.len());
}
