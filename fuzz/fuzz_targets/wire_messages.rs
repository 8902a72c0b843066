//! protobuf bytes → `pb::` message → validated core type, for every message that crosses
//! the wire today: JobSpec, TileOpening, FraudProof, InclusionProof, Challenge. The first
//! byte picks the message, and raw bytes or a patch (`matproof_fuzz::patch`) of a valid
//! encoding of that message (so most inputs get past the protobuf decoder). Oracles: no panic; a message that converts round-trips
//! (core → pb → core is the identity); a converted JobSpec also round-trips through its
//! canonical bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matproof_fuzz::{patch, sample_fraud_proof, sample_opening, sample_path, sample_spec};
use matproof_protocol::fraud::FraudProof;
use matproof_protocol::merkle::InclusionProof;
use matproof_protocol::opening::TileOpening;
use matproof_protocol::spec::JobSpec;
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::pb;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, raw)) = data.split_first() else { return };
    let which = selector % 5;
    let owned;
    let bytes: &[u8] = if selector / 5 % 2 == 0 {
        raw
    } else {
        let valid = match which {
            0 => pb::JobSpec::from(&sample_spec()).encode_to_vec(),
            1 => pb::TileOpening::from(&sample_opening()).encode_to_vec(),
            2 => pb::FraudProof::from(&sample_fraud_proof()).encode_to_vec(),
            3 => pb::InclusionProof::from(&sample_path()).encode_to_vec(),
            _ => pb::Challenge { job_id: vec![1; 32], r_c: vec![2; 32], seed: vec![3; 32], ..Default::default() }
                .encode_to_vec(),
        };
        owned = patch(&valid, raw);
        &owned
    };
    match which {
        0 => {
            if let Ok(p) = pb::JobSpec::decode(bytes) {
                if let Ok(spec) = JobSpec::try_from(&p) {
                    assert_eq!(JobSpec::try_from(&pb::JobSpec::from(&spec)).as_ref(), Ok(&spec));
                    let canonical = spec.canonical_bytes();
                    assert_eq!(JobSpec::from_canonical_bytes(&canonical).as_ref(), Ok(&spec));
                    let _ = spec.job_id();
                }
            }
        }
        1 => {
            if let Ok(p) = pb::TileOpening::decode(bytes) {
                if let Ok(o) = TileOpening::try_from(&p) {
                    assert_eq!(TileOpening::try_from(&pb::TileOpening::from(&o)).as_ref(), Ok(&o));
                }
            }
        }
        2 => {
            if let Ok(p) = pb::FraudProof::decode(bytes) {
                if let Ok(f) = FraudProof::try_from(&p) {
                    assert_eq!(FraudProof::try_from(&pb::FraudProof::from(&f)).as_ref(), Ok(&f));
                }
            }
        }
        3 => {
            if let Ok(p) = pb::InclusionProof::decode(bytes) {
                if let Ok(proof) = InclusionProof::try_from(&p) {
                    assert_eq!(InclusionProof::try_from(&pb::InclusionProof::from(&proof)).as_ref(), Ok(&proof));
                    // A converted path is safe to walk.
                    let _ = proof.root_from(&[0u8; 32]);
                }
            }
        }
        _ => {
            if let Ok(p) = pb::Challenge::decode(bytes) {
                if let Ok(c) = Challenge::try_from(&p) {
                    // Deriving the challenge values from wire bytes never panics.
                    let _ = c.sample_tiles(4, 400);
                    let _ = (c.sigma(), c.rho());
                    let _ = c.freivalds_vectors(2, 8);
                }
            }
        }
    }
});
