//! The `.npy` reader, for both element types. Oracles: no panic, no allocation beyond the
//! limits (libFuzzer's -rss_limit_mb / -malloc_limit_mb catch one); a matrix that parses
//! writes back to bytes that parse to the same matrix. The first byte picks raw bytes or a
//! patch of a valid i8 or i32 file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matproof_fuzz::{patch, sample_npy};
use matproof_protocol::matrix::Matrix;
use matproof_protocol::npy::{NpyElement, read_header, read_matrix, write_matrix};

fn round_trip<T: NpyElement + PartialEq>(data: &[u8]) {
    if let Ok(m) = read_matrix::<T, _>(&mut &data[..]) {
        let mut out = Vec::new();
        write_matrix(&mut out, &m).expect("writing to a Vec");
        let again: Matrix<T> = read_matrix(&mut out.as_slice()).expect("written matrix reads back");
        assert!(again == m, "round trip changed the matrix");
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, raw)) = input.split_first() else { return };
    let data = match selector % 3 {
        0 => raw.to_vec(),
        1 => patch(&sample_npy::<i8>(-3), raw),
        _ => patch(&sample_npy::<i32>(-70_000), raw),
    };
    let _ = read_header(&mut &data[..], "<fuzz>");
    round_trip::<i8>(&data);
    round_trip::<i32>(&data);
});
