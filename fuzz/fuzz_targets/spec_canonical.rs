//! `JobSpec::from_canonical_bytes`. Oracles: no panic; the encoding is canonical, i.e. a
//! decoded spec re-encodes to exactly the input bytes (so one spec has one byte string and
//! one `job_id`). The first byte picks raw bytes or a patch of a valid spec's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matproof_fuzz::{patch, sample_spec};
use matproof_protocol::spec::JobSpec;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, raw)) = input.split_first() else { return };
    let data = if selector & 1 == 0 { raw.to_vec() } else { patch(&sample_spec().canonical_bytes(), raw) };
    if let Ok(spec) = JobSpec::from_canonical_bytes(&data) {
        assert_eq!(spec.canonical_bytes(), data, "a decoded spec must re-encode to its input");
        let _ = spec.tiling().expect("a validated spec has a tiling");
    }
});
