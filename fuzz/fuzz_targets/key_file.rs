//! Key files (`circuits::keys`): verifying-key and proving-key readers. The first byte picks
//! raw bytes or a patch of a valid file, and which kind. Oracles: no panic; a file that
//! loads re-encodes to exactly its bytes, and a patched verifying-key file loads only if the
//! patch changed nothing (the header's key hash binds shape, origin and points).
#![no_main]

use libfuzzer_sys::fuzz_target;
use matproof_circuits::{PinnedVerifyingKey, TileProvingKey, TileVerifyingKey};
use matproof_fuzz::{fixture, patch};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let f = fixture();
    // Proving-key files take ~1 s each to validate (every point subgroup-checked): one input
    // in 16 patches one, the rest exercise the verifying-key reader and raw bytes.
    match selector % 16 {
        0..=13 => {
            let bytes = if selector % 2 == 0 { rest.to_vec() } else { patch(&f.vk_file, rest) };
            if let Ok(key) = TileVerifyingKey::from_file_bytes(&bytes) {
                assert_eq!(key.to_file_bytes(), bytes, "a verifying-key file loaded but re-encodes differently");
                assert_eq!(bytes, f.vk_file, "a modified verifying-key file loaded");
                PinnedVerifyingKey::new(key.clone(), &key.hash()).expect("a loaded key can be pinned");
            }
        }
        14 => {
            if let Ok(key) = TileProvingKey::from_file_bytes(rest) {
                assert_eq!(key.to_file_bytes(), rest, "a proving-key file loaded but re-encodes differently");
            }
        }
        _ => {
            let bytes = patch(&f.pk_file, rest);
            if let Ok(key) = TileProvingKey::from_file_bytes(&bytes) {
                // The header hash binds the verifying-key part only: a patched proving-key
                // point loads (and yields proofs that fail verification), a patched
                // verifying-key part or header does not.
                assert_eq!(key.to_file_bytes(), bytes, "a proving-key file loaded but re-encodes differently");
                assert_eq!(
                    key.verifying_key().to_file_bytes(),
                    f.vk_file,
                    "a proving key with a modified verifying key loaded"
                );
            }
        }
    }
});
