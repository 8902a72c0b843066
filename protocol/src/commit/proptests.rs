//! The fast paths against the plain references, over random shapes with padding.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::matrix::random_i8;
use crate::tiling::CircuitShape;

fn random_c(m: usize, n: usize, seed: u64) -> MatrixI32 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    MatrixI32::from_vec(m, n, (0..m * n).map(|_| rng.r#gen()).collect()).unwrap()
}

fn c_case() -> impl Strategy<Value = (Tiling, MatrixI32)> {
    (1usize..=40, 1usize..=40, 1usize..=9, 1usize..=9, any::<u64>()).prop_map(|(m, n, tm, tn, seed)| {
        let tiling = Tiling::new(m, 1, n, CircuitShape { tm, tn, kc: 1 }).unwrap();
        (tiling, random_c(m, n, seed))
    })
}

/// Pushes `c` through a builder in pieces of `pieces[i]` rows (cycled; at least one row).
fn streamed(tiling: &Tiling, c: &MatrixI32, pieces: &[usize]) -> MerkleTree {
    let mut builder = CTreeBuilder::new(tiling);
    let mut row = 0;
    for piece in pieces.iter().cycle() {
        if row == tiling.m {
            break;
        }
        let rows = (*piece).clamp(1, tiling.m - row);
        builder.push_rows(row, &c.as_slice()[row * tiling.n..(row + rows) * tiling.n]).unwrap();
        row += rows;
        assert_eq!(builder.rows_pushed(), row);
    }
    builder.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fast_c_leaves_equal_the_reference((tiling, c) in c_case()) {
        let fast = c_leaf_hashes(&tiling, &c).unwrap();
        prop_assert_eq!(&fast, &c_leaf_hashes_reference(&tiling, &c).unwrap());
        for (index, leaf) in fast.iter().enumerate() {
            let (i, j) = tiling.tile_coords(index).unwrap();
            prop_assert_eq!(*leaf, c_leaf_hash(i as u64, j as u64, &tiling.c_tile(&c, i, j).unwrap()));
        }
    }

    #[test]
    fn streamed_rows_give_the_same_tree(
        (tiling, c) in c_case(),
        pieces in proptest::collection::vec(0usize..12, 1..8),
    ) {
        let whole = c_tree(&tiling, &c).unwrap();
        prop_assert_eq!(streamed(&tiling, &c, &pieces), whole);
    }

    #[test]
    fn fast_sha256_input_trees_equal_the_reference(
        (m, k, n) in (1usize..=30, 1usize..=30, 1usize..=90),
        (tm, tn, extra) in (1usize..=9, 1usize..=70, 0usize..=5),
        seed in any::<u64>(),
    ) {
        let tiling = Tiling::new(m, k, n, CircuitShape { tm, tn, kc: k + extra }).unwrap();
        let a = random_i8(m, k, seed).unwrap();
        let b = random_i8(k, n, seed ^ 1).unwrap();
        prop_assert_eq!(a_sha256_tree(&tiling, &a).unwrap(), a_sha256_tree_reference(&tiling, &a).unwrap());
        prop_assert_eq!(b_sha256_tree(&tiling, &b).unwrap(), b_sha256_tree_reference(&tiling, &b).unwrap());
    }
}

#[test]
fn large_shapes_use_many_tasks_consistently() {
    // Enough tiles for the tile tasks and the tree's parallel levels; padding on both sides.
    let tiling = Tiling::new(515, 1, 333, CircuitShape { tm: 2, tn: 3, kc: 1 }).unwrap();
    let c = random_c(515, 333, 9);
    let leaves = c_leaf_hashes(&tiling, &c).unwrap();
    assert_eq!(leaves, c_leaf_hashes_reference(&tiling, &c).unwrap());
    assert_eq!(streamed(&tiling, &c, &[7, 1, 64, 3]), MerkleTree::from_leaf_hashes(leaves));
}

#[test]
fn stream_errors_are_structured() {
    let tiling = Tiling::new(5, 1, 3, CircuitShape { tm: 2, tn: 2, kc: 1 }).unwrap();
    let mut builder = CTreeBuilder::new(&tiling);
    assert_eq!(builder.push_rows(0, &[1, 2]), Err(CommitStreamError::PartialRow { values: 2, cols: 3 }));
    assert_eq!(builder.push_rows(1, &[1, 2, 3]), Err(CommitStreamError::OutOfOrder { first_row: 1, expected_row: 0 }));
    builder.push_rows(0, &[0; 9]).unwrap();
    assert_eq!(builder.push_rows(3, &[0; 9]), Err(CommitStreamError::PastEnd { first_row: 3, end_row: 6, rows: 5 }));
    assert_eq!(builder.rows_pushed(), 3);
    builder.push_rows(3, &[]).unwrap();
    assert_eq!(builder.clone().finish(), Err(CommitStreamError::MissingRows { rows_pushed: 3, rows: 5 }));
    builder.push_rows(3, &[0; 6]).unwrap();
    let c = MatrixI32::zeros(5, 3).unwrap();
    assert_eq!(builder.finish().unwrap(), c_tree(&tiling, &c).unwrap());
}

#[test]
fn transpose_8x8_transposes() {
    let mut words: [u64; 8] = std::array::from_fn(|r| u64::from_le_bytes(std::array::from_fn(|c| (16 * r + c) as u8)));
    super::sha256_inputs::transpose_8x8(&mut words);
    for (c, word) in words.iter().enumerate() {
        assert_eq!(word.to_le_bytes(), std::array::from_fn::<u8, 8, _>(|r| (16 * r + c) as u8));
    }
}
