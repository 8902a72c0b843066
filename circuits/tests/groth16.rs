//! Groth16 tile proofs end to end on a small shape: honest proofs verify; every listed
//! cheat is rejected.

use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_snark::SNARK;
use matproof_circuits::keys::{KeyFileError, check_vk_structure};
use matproof_circuits::verify::modulus_bytes;
use matproof_circuits::{
    PinnedVerifyingKey, TileFreivalds, TileProof, TileProvingKey, TilePublicInputs, TileVerifyingKey, TileWitness,
    VerifyError, development_setup, prove_tile, prove_tiles,
};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::poseidon::fr_to_bytes;
use matproof_protocol::tiling::CircuitShape;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const SHAPE: CircuitShape = CircuitShape { tm: 2, tn: 2, kc: 16 };

fn keys() -> &'static (TileProvingKey, TileVerifyingKey) {
    matproof_testkit::dev_keys(SHAPE)
}

fn pinned() -> PinnedVerifyingKey {
    matproof_testkit::pinned(SHAPE)
}

fn witness(seed: u64) -> TileWitness {
    TileWitness {
        a_block: random_i8(1, SHAPE.tm * SHAPE.kc, seed).unwrap().into_vec(),
        b_block: random_i8(1, SHAPE.kc * SHAPE.tn, seed + 100).unwrap().into_vec(),
    }
}

fn challenge() -> (Fr, Fr) {
    (Fr::from(0x1234_5678_9abc_u64), Fr::from(0xfeed_beef_u64))
}

fn honest(seed: u64) -> (TileProof, TilePublicInputs) {
    let (sigma, rho) = challenge();
    prove_tile(&keys().0, witness(seed), sigma, rho).unwrap()
}

fn input_bytes(p: &TilePublicInputs) -> Vec<[u8; 32]> {
    p.to_vec().iter().map(fr_to_bytes).collect()
}

#[test]
fn honest_proofs_verify_and_are_128_bytes() {
    let (proof, public) = honest(1);
    let key = pinned();
    key.verify(&proof, &public).unwrap();
    let bytes = proof.to_bytes();
    assert_eq!(bytes.len(), 128);
    key.verify_bytes(&bytes, &input_bytes(&public)).unwrap();
}

/// A proof made from a witness that does not satisfy the circuit, claiming honest inputs.
fn proof_with_witness(w: TileWitness, public: TilePublicInputs) -> TileProof {
    let circuit = TileFreivalds { shape: SHAPE, witness: Some(w), public: Some(public) };
    TileProof(Groth16::<Bn254>::prove(&keys().0.pk, circuit, &mut ChaCha20Rng::seed_from_u64(9)).unwrap())
}

#[test]
fn a_witness_byte_differing_from_the_digest_is_rejected() {
    let (sigma, rho) = challenge();
    let w = witness(2);
    let public = w.public_inputs(SHAPE, sigma, rho);
    for (which, index) in [("A", 5usize), ("B", 30)] {
        let mut bad = w.clone();
        let block = if which == "A" { &mut bad.a_block } else { &mut bad.b_block };
        block[index] = block[index].wrapping_add(3);
        let proof = proof_with_witness(bad, public);
        assert_eq!(pinned().verify(&proof, &public), Err(VerifyError::Rejected), "{which}");
    }
}

#[test]
fn wrong_public_inputs_are_rejected() {
    let (proof, public) = honest(3);
    let key = pinned();
    let one = Fr::from(1u64);
    for (what, bad) in [
        ("z", TilePublicInputs { z: public.z + one, ..public }),
        ("sigma", TilePublicInputs { sigma: public.sigma + one, ..public }),
        ("rho", TilePublicInputs { rho: public.rho + one, ..public }),
        ("d_a", TilePublicInputs { d_a: public.d_a + one, ..public }),
        ("d_b", TilePublicInputs { d_b: public.d_b + one, ..public }),
    ] {
        assert_eq!(key.verify(&proof, &bad), Err(VerifyError::Rejected), "{what}");
    }
}

#[test]
fn a_proof_for_another_tile_is_rejected() {
    let (proof_1, _) = honest(4);
    let (_, public_2) = honest(5);
    assert_eq!(pinned().verify(&proof_1, &public_2), Err(VerifyError::Rejected));
}

#[test]
fn a_proof_under_another_verifying_key_is_rejected() {
    let (other_pk, other_vk) = development_setup(SHAPE, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
    let (sigma, rho) = challenge();
    let (proof, public) = prove_tile(&other_pk, witness(6), sigma, rho).unwrap();
    assert_eq!(pinned().verify(&proof, &public), Err(VerifyError::Rejected));
    // And the other key is refused outright where ours is pinned.
    let err = PinnedVerifyingKey::new(other_vk, &keys().1.hash()).unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotPinned { .. }));
}

#[test]
fn every_single_bit_flip_of_a_valid_proof_is_rejected() {
    let (proof, public) = honest(7);
    let key = pinned();
    let bytes = proof.to_bytes();
    let inputs = input_bytes(&public);
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes;
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(key.verify_bytes(&flipped, &inputs).is_err(), "bit {bit} accepted");
    }
    assert!(key.verify_bytes(&bytes[..127], &inputs).is_err());
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(key.verify_bytes(&longer, &inputs).is_err());
}

#[test]
fn non_canonical_public_inputs_are_rejected() {
    let (proof, public) = honest(8);
    let key = pinned();
    let bytes = proof.to_bytes();
    let r = modulus_bytes();
    for index in 0..5 {
        let honest_inputs = input_bytes(&public);
        // x + r (the same residue, non-canonical), r itself, and 2^256 − 1.
        let mut x_plus_r = honest_inputs[index];
        let mut carry = 0u16;
        for (byte, r_byte) in x_plus_r.iter_mut().zip(r) {
            let sum = u16::from(*byte) + u16::from(r_byte) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        for bad in [x_plus_r, r, [0xff; 32]] {
            if carry != 0 && bad == x_plus_r {
                continue; // x + r overflowed 256 bits: not representable, covered by 2^256 − 1
            }
            let mut inputs = honest_inputs.clone();
            inputs[index] = bad;
            assert_eq!(key.verify_bytes(&bytes, &inputs), Err(VerifyError::NonCanonicalInput { index }));
        }
    }
    let inputs = input_bytes(&public);
    assert!(matches!(key.verify_bytes(&bytes, &inputs[..4]), Err(VerifyError::InputCount { .. })));
}

#[test]
fn a_key_with_gamma_equal_delta_is_refused() {
    let mut vk = keys().1.clone();
    vk.vk.delta_g2 = vk.vk.gamma_g2;
    assert!(matches!(check_vk_structure(&vk.vk), Err(KeyFileError::Degenerate { .. })));
    let hash = vk.hash();
    assert!(matches!(PinnedVerifyingKey::new(vk.clone(), &hash), Err(VerifyError::Key { .. })));
    assert!(TileVerifyingKey::from_file_bytes(&vk.to_file_bytes()).is_err());
    let mut short = keys().1.clone();
    short.vk.gamma_abc_g1.pop();
    let hash = short.hash();
    assert!(matches!(PinnedVerifyingKey::new(short, &hash), Err(VerifyError::Key { .. })));
}

#[test]
fn batch_verification_accepts_honest_and_names_the_bad_proof() {
    let (sigma, rho) = challenge();
    let results = prove_tiles(&keys().0, (10..16).map(witness).collect(), sigma, rho, 2);
    let mut items: Vec<(TileProof, TilePublicInputs)> = results.into_iter().map(Result::unwrap).collect();
    let key = pinned();
    key.batch_verify(&items).unwrap();
    key.batch_verify(&[]).unwrap();
    items[3].1.z += Fr::from(1u64);
    assert_eq!(key.batch_verify(&items), Err(VerifyError::BatchRejected { bad: vec![3] }));
    items.swap(0, 4);
    assert_eq!(key.batch_verify(&items), Err(VerifyError::BatchRejected { bad: vec![3] }));
}

#[test]
fn key_files_round_trip_and_refuse_corruption() {
    let (pk, vk) = keys();
    let vk_bytes = vk.to_file_bytes();
    assert_eq!(&TileVerifyingKey::from_file_bytes(&vk_bytes).unwrap(), vk);
    let pk_back = TileProvingKey::from_file_bytes(&pk.to_file_bytes()).unwrap();
    assert_eq!(pk_back.verifying_key(), *vk);
    assert!(matches!(TileProvingKey::from_file_bytes(&vk_bytes), Err(KeyFileError::WrongKind { .. })));
    // A flipped byte anywhere in the verifying-key file is refused.
    for pos in 0..vk_bytes.len() {
        let mut bad = vk_bytes.clone();
        bad[pos] ^= 0x01;
        assert!(TileVerifyingKey::from_file_bytes(&bad).is_err(), "byte {pos} accepted");
    }
    for cut in [0, 10, 60, vk_bytes.len() - 1] {
        assert!(TileVerifyingKey::from_file_bytes(&vk_bytes[..cut]).is_err());
    }
    let dir = std::env::temp_dir().join(format!("matproof-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    vk.write(&dir.join("vk.key")).unwrap();
    assert_eq!(&TileVerifyingKey::read(&dir.join("vk.key")).unwrap(), vk);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_witness_lengths_are_errors() {
    let (sigma, rho) = challenge();
    let mut w = witness(20);
    w.a_block.pop();
    assert!(prove_tile(&keys().0, w, sigma, rho).is_err());
}

/// Where proving time goes, for tuning: `cargo test --release -p matproof-circuits --test
/// groth16 -- --ignored --nocapture proving_phases`.
#[test]
#[ignore]
fn proving_phases() {
    use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem, OptimizationGoal};
    use std::time::Instant;
    let shape = CircuitShape { tm: 64, tn: 64, kc: 64 };
    let w = TileWitness {
        a_block: random_i8(1, 64 * 64, 1).unwrap().into_vec(),
        b_block: random_i8(1, 64 * 64, 2).unwrap().into_vec(),
    };
    let (sigma, rho) = challenge();
    let start = Instant::now();
    let public = w.public_inputs(shape, sigma, rho);
    println!("native public inputs: {:?}", start.elapsed());
    let start = Instant::now();
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    TileFreivalds { shape, witness: Some(w.clone()), public: Some(public) }.generate_constraints(cs.clone()).unwrap();
    println!("synthesis: {:?} ({} constraints)", start.elapsed(), cs.num_constraints());
    let start = Instant::now();
    cs.finalize();
    println!("finalize: {:?}", start.elapsed());
    let (pk, _) = development_setup(shape, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
    let start = Instant::now();
    prove_tile(&pk, w, sigma, rho).unwrap();
    println!("whole prove: {:?}", start.elapsed());
}

#[test]
fn the_proving_key_load_cache_is_used_only_when_both_digests_match() {
    use matproof_circuits::CacheOutcome;
    use matproof_circuits::keys::load_cache_path;
    let (pk, vk) = keys();
    let dir = std::env::temp_dir().join(format!("matproof-pkcache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tile.pk");
    pk.write(&path).unwrap();
    let cache = load_cache_path(&path);
    let same = |key: &TileProvingKey| key.to_file_bytes() == pk.to_file_bytes();

    // First read validates and writes the cache; the second loads from it.
    let (first, outcome) = TileProvingKey::read_cached(&path).unwrap();
    assert_eq!(outcome, CacheOutcome::Written { previous_error: None });
    assert!(same(&first));
    let (second, outcome) = TileProvingKey::read_cached(&path).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
    assert!(same(&second));
    // A proof from the cached key verifies.
    let (proof, public) = prove_tile(&second, witness(7), Fr::from(3u64), Fr::from(5u64)).unwrap();
    pinned().verify(&proof, &public).unwrap();

    // A flipped byte in every header field and at 16 places spread over the body is never
    // used: the key is re-validated and the cache rewritten. (Each try re-validates the whole
    // key, so the body is sampled; the body digest covers every byte alike.)
    let good_cache = std::fs::read(&cache).unwrap();
    let body = good_cache.len() - 88;
    let positions: Vec<usize> = [0, 15, 16, 47, 48, 79, 80, 87]
        .into_iter()
        .chain((0..16).map(|i| 88 + i * body / 16))
        .chain([good_cache.len() - 1])
        .collect();
    for pos in positions {
        let mut bad = good_cache.clone();
        bad[pos] ^= 0x40;
        std::fs::write(&cache, &bad).unwrap();
        let (key, outcome) = TileProvingKey::read_cached(&path).unwrap();
        assert!(same(&key), "byte {pos}");
        assert!(matches!(outcome, CacheOutcome::Written { previous_error: Some(_) }), "byte {pos}: {outcome:?}");
    }

    // A different key file under the same name: the old cache is not used.
    let (other_pk, other_vk) = development_setup(SHAPE, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
    assert_ne!(other_vk, *vk);
    other_pk.write(&path).unwrap();
    let (key, outcome) = TileProvingKey::read_cached(&path).unwrap();
    assert_eq!(key.verifying_key(), other_vk);
    match outcome {
        CacheOutcome::Written { previous_error: Some(e) } => assert!(e.contains("another key file"), "{e}"),
        other => panic!("expected a rebuilt cache, got {other:?}"),
    }

    // A cache that cannot be written is skipped, not an error.
    std::fs::remove_file(&cache).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let (key, outcome) = TileProvingKey::read_cached(&path).unwrap();
    assert_eq!(key.verifying_key(), other_vk);
    assert!(matches!(outcome, CacheOutcome::NotWritten { .. }), "{outcome:?}");

    // A corrupted key file (here its verifying-key hash, header byte 50) is still refused,
    // although a valid cache for the intact file is there.
    std::fs::remove_dir(&cache).unwrap();
    TileProvingKey::read_cached(&path).unwrap();
    let mut bad_key = std::fs::read(&path).unwrap();
    bad_key[50] ^= 0x01;
    std::fs::write(&path, &bad_key).unwrap();
    assert!(TileProvingKey::read_cached(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
