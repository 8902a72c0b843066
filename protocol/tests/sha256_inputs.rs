//! Known answers of the `sha256` input commitment scheme (DESIGN §3) and of `R_C` through
//! the streaming builder. Pinned: a change here is a protocol change. The values were
//! computed independently (Python's hashlib over the layout of docs/formats.md).

use matproof_protocol::commit::{
    CTreeBuilder, a_sha256_leaf_hash, a_sha256_tree, b_sha256_leaf_hash, b_sha256_tree, c_tree,
};
use matproof_protocol::matrix::{MatrixI8, MatrixI32};
use matproof_protocol::tiling::{CircuitShape, Tiling};

/// The documented example: `m, k, n = 6, 5, 7`, `tm = tn = 4`, `kc = 8`,
/// `A[i][j] = 37·(5i + j) − 100`, `B[t][j] = 53·(7t + j) + 11` (both wrapping to `i8`).
fn example() -> (Tiling, MatrixI8, MatrixI8) {
    let tiling = Tiling::new(6, 5, 7, CircuitShape { tm: 4, tn: 4, kc: 8 }).unwrap();
    let a = MatrixI8::from_vec(6, 5, (0..30).map(|x: i32| (37 * x - 100) as i8).collect()).unwrap();
    let b = MatrixI8::from_vec(5, 7, (0..35).map(|x: i32| (53 * x + 11) as i8).collect()).unwrap();
    (tiling, a, b)
}

#[test]
fn known_answer_sha256_input_roots() {
    let (tiling, a, b) = example();
    assert_eq!(a.row(0).unwrap(), &[-100, -63, -26, 11, 48]);
    assert_eq!(b.row(4).unwrap(), &[-41, 12, 65, 118, -85, -32, 21]);
    assert_eq!(hex::encode(a_sha256_tree(&tiling, &a).unwrap().root()), KNOWN_R_A_SHA256);
    assert_eq!(hex::encode(b_sha256_tree(&tiling, &b).unwrap().root()), KNOWN_R_B_SHA256);
}

#[test]
fn known_answer_sha256_input_leaves() {
    let block: Vec<i8> = (0..64).map(|i: i32| (7 * i - 100) as i8).collect();
    assert_eq!(hex::encode(a_sha256_leaf_hash(3, &block)), KNOWN_A_LEAF);
    assert_eq!(hex::encode(b_sha256_leaf_hash(3, &block)), KNOWN_B_LEAF);
}

/// `R_C` of the known answer in `commit.rs` (`52d1…416e`), streamed one row at a time.
#[test]
fn streamed_r_c_keeps_the_pinned_known_answer() {
    use matproof_protocol::matrix::{naive_product, random_i8};
    let tiling = Tiling::new(6, 5, 7, CircuitShape { tm: 4, tn: 4, kc: 8 }).unwrap();
    let c: MatrixI32 = naive_product(&random_i8(6, 5, 1).unwrap(), &random_i8(5, 7, 2).unwrap()).unwrap();
    let mut builder = CTreeBuilder::new(&tiling);
    for row in 0..6 {
        builder.push_rows(row, c.row(row).unwrap()).unwrap();
    }
    let root = builder.finish().unwrap().root();
    assert_eq!(root, c_tree(&tiling, &c).unwrap().root());
    assert_eq!(hex::encode(root), "52d174c495e68886583ebda76aea0bc5ac1b2ef4fb4767ee7f796d3c37d7416e");
}

const KNOWN_R_A_SHA256: &str = "1c169498268d1556e5e3f14c006cefcf8b980f6b9b5bbf3625e28e52bb63c2fe";
const KNOWN_R_B_SHA256: &str = "c2774a5942c167e60679ee516f696972642587aff5008c4ca500679e599eed7f";
const KNOWN_A_LEAF: &str = "954fe2e670729512c5adff2b972ac7775b882218447ceda1a5a12c71e644e079";
const KNOWN_B_LEAF: &str = "45d7a0925eb5a3649e9d2739bfc9f3276d94baf49ca34c3fad689cb0749617f9";
