//! Fraud proofs (DESIGN §5.1): one wrong entry of `C`, with everything needed to show it is
//! wrong in `O(kc)` work and no other data.

use crate::merkle::InclusionProof;

/// Evidence that the committed `C` has a wrong entry `(row, col)`: the A row block and B
/// column block that entry depends on, with their digests' paths to `R_A`, `R_B`, and the C
/// tile holding it with its path to `R_C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudProof {
    /// Row of the wrong entry.
    pub row: u64,
    /// Column of the wrong entry.
    pub col: u64,
    /// Bytes of `A_I`, `I = row / tm` (`tm·kc`, row by row, zero-padded).
    pub a_block: Vec<i8>,
    /// Path of `d_A(I)` to `R_A`.
    pub a_path: InclusionProof,
    /// Bytes of `B_J`, `J = col / tn` (`kc·tn`, column by column, zero-padded).
    pub b_block: Vec<i8>,
    /// Path of `d_B(J)` to `R_B`.
    pub b_path: InclusionProof,
    /// The committed tile `C_IJ`.
    pub c_tile: Vec<i32>,
    /// Path of the tile's leaf to `R_C`.
    pub c_path: InclusionProof,
}
