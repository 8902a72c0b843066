//! The bounds a receipt states (DESIGN §5).

/// A cheater who corrupts a fraction `f` of the `T` tiles escapes `s` distinct uniform
/// samples with probability at most `(1 − f)^s` (sampling without replacement makes it
/// slightly smaller still; this is the stated, conservative figure).
pub fn sampling_escape_probability(fraction_wrong: f64, samples: u32) -> f64 {
    (1.0 - fraction_wrong.clamp(0.0, 1.0)).powi(samples as i32)
}

/// A wrong `C` passes `rounds` Freivalds rounds over `2^61 − 1` with probability at most
/// `2^(−61·rounds)`; returned as the exponent `61·rounds`.
pub fn freivalds_error_exponent(rounds: u32) -> u32 {
    61 * rounds
}

/// A wrong tile passes its identity check with probability at most `(tm + tn)/r`
/// (Schwartz–Zippel over `σ, ρ`): returned as `log2` of that bound, about `−245` for small
/// tiles.
pub fn tile_identity_error_log2(tm: usize, tn: usize) -> f64 {
    ((tm + tn) as f64).log2() - 253.6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!((sampling_escape_probability(0.5, 4) - 0.0625).abs() < 1e-12);
        assert_eq!(sampling_escape_probability(0.0, 10), 1.0);
        assert_eq!(sampling_escape_probability(1.0, 1), 0.0);
        assert_eq!(freivalds_error_exponent(2), 122);
        assert!(tile_identity_error_log2(4, 4) < -250.0);
    }
}
