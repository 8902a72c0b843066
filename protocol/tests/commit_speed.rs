//! `cargo test -p matproof-protocol --release --test commit_speed -- --ignored --nocapture`:
//! quick GB/s figures of the SHA-256 commitments (the documented ones come from
//! `matproof bench commit`).

use std::time::Instant;

use matproof_protocol::commit::{a_sha256_tree, b_sha256_tree, c_leaf_hashes, c_tree};
use matproof_protocol::matrix::{MatrixI32, random_i8};
use matproof_protocol::merkle::MerkleTree;
use matproof_protocol::tiling::{CircuitShape, Tiling};

fn median_s<T>(mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f());
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[3]
}

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn commit_speed() {
    let n = 2048;
    let c = MatrixI32::from_vec(n, n, (0..n * n).map(|x| (x as i32).wrapping_mul(-1_640_531_535)).collect()).unwrap();
    let (a, b) = (random_i8(n, n, 1).unwrap(), random_i8(n, n, 2).unwrap());
    for side in [4, 8, 16, 32, 64] {
        let tiling = Tiling::new(n, n, n, CircuitShape { tm: side, tn: side, kc: n }).unwrap();
        let gb = (4 * n * n) as f64 / 1e9;
        let r_c = median_s(|| c_tree(&tiling, &c).unwrap().root());
        let leaves = c_leaf_hashes(&tiling, &c).unwrap();
        let tree = median_s(|| MerkleTree::from_leaf_hashes(leaves.clone()).root());
        let r_a = median_s(|| a_sha256_tree(&tiling, &a).unwrap().root());
        let r_b = median_s(|| b_sha256_tree(&tiling, &b).unwrap().root());
        let mb = (n * n) as f64 / 1e9;
        println!(
            "{side}x{side}: R_C {:.2} GB/s ({:.1} ms, tree {:.1} ms); R_A {:.2} GB/s; R_B {:.2} GB/s",
            gb / r_c,
            r_c * 1e3,
            tree * 1e3,
            mb / r_a,
            mb / r_b
        );
    }
}
