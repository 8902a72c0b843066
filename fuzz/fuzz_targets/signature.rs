//! Ed25519 identities (`protocol::identity::verify`): arbitrary public-key bytes, signature
//! bytes and message. The first byte picks raw input (key ‖ signature ‖ message) or a patch of
//! a valid triple. Oracles: no panic; a patched triple verifies only if the patch changed
//! nothing (strict verification: no malleated signature, no other key or message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use matproof_fuzz::patch;
use matproof_protocol::identity::{Identity, PublicKey, Signature, verify};

const PURPOSE: &str = "challenge";

fn split(bytes: &[u8]) -> Option<(PublicKey, Signature, &[u8])> {
    let key: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let sig: [u8; 64] = bytes.get(32..96)?.try_into().ok()?;
    Some((PublicKey(key), Signature(sig), &bytes[96..]))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let id = Identity::from_seed([7; 32]);
    let message = b"matproof fuzz message".to_vec();
    let mut valid = id.public_key().0.to_vec();
    valid.extend_from_slice(&id.sign(PURPOSE, &message).0);
    valid.extend_from_slice(&message);
    let bytes = if selector & 1 == 0 { rest.to_vec() } else { patch(&valid, rest) };
    if let Some((key, sig, msg)) = split(&bytes) {
        let ok = verify(&key, PURPOSE, msg, &sig).is_ok();
        if selector & 1 == 1 {
            assert_eq!(ok, bytes == valid, "a patched signature triple verified");
        }
    }
});
