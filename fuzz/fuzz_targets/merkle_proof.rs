//! RFC 9162 inclusion proofs against a real root. The tree has 1..=64 leaves (`"leaf" ‖
//! u32le(i)`); the fuzzer either writes a whole proof (index, size, path) for leaf data of
//! its choice, or edits a valid proof of a real leaf. Oracles: no panic; whenever a proof
//! verifies with the tree's true size, the leaf data is that leaf of the tree at the
//! proof's index (anything else is a forged inclusion). A proof that names another tree
//! size may verify (RFC 9162 roots do not bind the size: callers pin it, as `tiles.rs` and
//! `fraud.rs` do); such proofs are counted by no oracle but must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matproof_protocol::merkle::{InclusionProof, MerkleTree, leaf_hash};

fn leaf(i: u64) -> Vec<u8> {
    let mut l = b"leaf".to_vec();
    l.extend_from_slice(&(i as u32).to_le_bytes());
    l
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = data.get(at + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = u64::from(data[0] % 64) + 1;
    let leaves: Vec<Vec<u8>> = (0..n).map(leaf).collect();
    let tree = MerkleTree::from_leaves(&leaves);
    let root = tree.root();
    let mode = data[1] % 3;
    let rest = &data[2..];
    let (proof, leaf_data) = match mode {
        // A whole proof from the fuzzer: index, size, then 32-byte path entries; the leaf
        // data is a real leaf's (chosen by index byte) or the fuzzer's own bytes.
        0 | 1 => {
            let leaf_index = u64_at(rest, 0) % 128;
            let tree_size = u64_at(rest, 8) % 130;
            let body = rest.get(16..).unwrap_or_default();
            let (path_bytes, leaf_data) = if mode == 0 {
                let real = u64::from(body.first().copied().unwrap_or(0)) % n;
                (body.get(1..).unwrap_or_default(), leaf(real))
            } else {
                let split = usize::from(body.first().copied().unwrap_or(0)).min(body.len().saturating_sub(1));
                (body.get(1 + split..).unwrap_or_default(), body.get(1..1 + split).unwrap_or_default().to_vec())
            };
            let path = path_bytes.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect();
            (InclusionProof { leaf_index, tree_size, path }, leaf_data)
        }
        // A valid proof of a real leaf, then edits.
        _ => {
            let index = u64::from(rest.first().copied().unwrap_or(0)) % n;
            let mut proof = tree.prove(index).expect("index in range");
            let mut leaf_data = leaf(index);
            for edit in rest.get(1..).unwrap_or_default().chunks_exact(3) {
                match edit[0] % 6 {
                    0 => proof.leaf_index ^= u64::from(edit[1]),
                    1 => proof.tree_size ^= u64::from(edit[1]),
                    2 if !proof.path.is_empty() => {
                        let i = usize::from(edit[1]) % proof.path.len();
                        proof.path[i][usize::from(edit[2]) % 32] ^= 1 << (edit[2] % 8);
                    }
                    3 if !proof.path.is_empty() => {
                        proof.path.remove(usize::from(edit[1]) % proof.path.len());
                    }
                    4 => proof.path.push([edit[1]; 32]),
                    _ => {
                        let i = usize::from(edit[1]) % leaf_data.len();
                        leaf_data[i] ^= edit[2];
                    }
                }
            }
            (proof, leaf_data)
        }
    };
    if proof.verify(&leaf_hash(&leaf_data), &root).is_ok() && proof.tree_size == n {
        assert_eq!(
            leaves.get(proof.leaf_index as usize),
            Some(&leaf_data),
            "a proof for leaf {} of {n} verified with data that is not that leaf",
            proof.leaf_index
        );
    }
});
