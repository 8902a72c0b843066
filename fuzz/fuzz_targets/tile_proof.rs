//! `TileProof::from_bytes` (compressed BN254 Groth16 proofs) and verification with a pinned
//! development key. The first byte picks raw bytes, or a patch applied to a valid proof
//! (so most inputs decode and reach the pairing check). Oracles: no panic; a proof that
//! decodes re-encodes to its bytes (one encoding per proof); a proof other than the valid
//! one never verifies against the valid public inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matproof_circuits::{PinnedVerifyingKey, TileProof};
use matproof_fuzz::{fixture, patch};
use std::sync::OnceLock;

fn pinned() -> &'static PinnedVerifyingKey {
    static P: OnceLock<PinnedVerifyingKey> = OnceLock::new();
    P.get_or_init(|| {
        let f = fixture();
        PinnedVerifyingKey::new(f.vk.clone(), &f.vk.hash()).expect("pin")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let f = fixture();
    let valid = f.proof.to_bytes();
    let bytes = if selector & 1 == 0 { rest.to_vec() } else { patch(&valid, rest) };
    if let Ok(proof) = TileProof::from_bytes(&bytes) {
        assert_eq!(proof.to_bytes().as_slice(), bytes.as_slice(), "non-canonical proof encoding accepted");
        let verdict = pinned().verify(&proof, &f.public);
        if bytes.as_slice() != valid.as_slice() {
            assert!(verdict.is_err(), "a modified proof verified");
        } else {
            assert!(verdict.is_ok());
        }
        let batch = pinned().batch_verify(&[(proof, f.public)]);
        assert_eq!(batch.is_ok(), bytes.as_slice() == valid.as_slice());
    }
});
