//! RFC 9162 §2.1 Merkle trees over SHA-256: root, inclusion proofs and their verification,
//! for any number of leaves.

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

pub use crate::ids::MerkleRoot;
use crate::limits::MAX_MERKLE_PATH_LEN;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// A problem with an inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {leaf_index} is not below the tree size {tree_size}")]
    IndexOutOfRange {
        /// The leaf index.
        leaf_index: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// The path is longer than [`MAX_MERKLE_PATH_LEN`].
    #[error("inclusion path has {len} hashes, more than the limit {max}")]
    PathTooLong {
        /// Path length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path has the wrong length for this index and tree size.
    #[error("inclusion path has the wrong length for leaf {leaf_index} of {tree_size}")]
    PathLength {
        /// The leaf index.
        leaf_index: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// The path leads to another root.
    #[error("inclusion proof for leaf {leaf_index} of {tree_size} does not lead to the root")]
    RootMismatch {
        /// The leaf index.
        leaf_index: u64,
        /// The tree size.
        tree_size: u64,
    },
}

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x00 ‖ part₀ ‖ part₁ ‖ …)`: the leaf hash of a leaf given in pieces.
pub fn leaf_hash_parts(parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    h.update([0u8]);
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`, the 65-byte message laid out on the stack and hashed in
/// one call (the tree's internal levels are half of `R_C`'s hashing).
/// [`node_hash_reference`] is the plain streaming version it is tested against.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut message = [1u8; 65];
    message[1..33].copy_from_slice(left);
    message[33..].copy_from_slice(right);
    Sha256::digest(message).into()
}

/// `SHA-256(0x01 ‖ left ‖ right)` through the streaming hasher: the reference for
/// [`node_hash`].
pub fn node_hash_reference(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of an empty tree, `SHA-256("")`.
pub fn empty_root() -> Digest {
    Sha256::digest([]).into()
}

/// A Merkle tree kept level by level, so that inclusion proofs cost `O(log n)`.
///
/// RFC 9162 splits `n` leaves at the largest power of two below `n`; that tree is exactly
/// the one built by hashing adjacent pairs level by level and carrying an odd last node up
/// unchanged, which is what this does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Digest>>,
}

/// An RFC 9162 inclusion proof: the audit path from a leaf up to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the leaf.
    pub leaf_index: u64,
    /// Number of leaves in the tree.
    pub tree_size: u64,
    /// Sibling hashes, leaf level first.
    pub path: Vec<Digest>,
}

impl MerkleTree {
    /// Builds the tree over already-hashed leaves; each level above the leaves is hashed in
    /// parallel once it is large enough to be worth splitting.
    pub fn from_leaf_hashes(leaf_hashes: Vec<Digest>) -> Self {
        let mut levels = vec![leaf_hashes];
        while let Some(below) = levels.last().filter(|level| level.len() > 1) {
            let above = parent_level(below);
            levels.push(above);
        }
        Self { levels }
    }

    /// Builds the tree over raw leaves, hashing them in parallel.
    pub fn from_leaves<L: AsRef<[u8]> + Sync>(leaves: &[L]) -> Self {
        Self::from_leaf_hashes(leaves.par_iter().map(|leaf| leaf_hash(leaf.as_ref())).collect())
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The root (`SHA-256("")` for no leaves).
    pub fn root(&self) -> MerkleRoot {
        match self.levels.last().and_then(|top| top.first()) {
            Some(root) if !self.is_empty() => MerkleRoot(*root),
            _ => MerkleRoot(empty_root()),
        }
    }

    /// The leaf hash at `index`.
    pub fn leaf_hash(&self, index: u64) -> Option<Digest> {
        self.levels[0].get(usize::try_from(index).ok()?).copied()
    }

    /// The inclusion proof of leaf `leaf_index`.
    pub fn prove(&self, leaf_index: u64) -> Result<InclusionProof, MerkleError> {
        let tree_size = self.len();
        if leaf_index >= tree_size {
            return Err(MerkleError::IndexOutOfRange { leaf_index, tree_size });
        }
        let mut path = Vec::new();
        let mut index = leaf_index as usize;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = index ^ 1;
            if sibling < level.len() {
                path.push(level[sibling]);
            }
            index /= 2;
        }
        Ok(InclusionProof { leaf_index, tree_size, path })
    }
}

/// Node pairs one parallel task hashes (about 0.3 ms of work).
const PAIRS_PER_TASK: usize = 1 << 11;

/// The level above `below`: adjacent pairs hashed, an odd last node carried up unchanged.
fn parent_level(below: &[Digest]) -> Vec<Digest> {
    let mut above = vec![[0u8; 32]; below.len().div_ceil(2)];
    if below.len() >= 4 * PAIRS_PER_TASK {
        above
            .par_chunks_mut(PAIRS_PER_TASK)
            .zip(below.par_chunks(2 * PAIRS_PER_TASK))
            .for_each(|(out, pairs)| pair_up(pairs, out));
    } else {
        pair_up(below, &mut above);
    }
    above
}

fn pair_up(below: &[Digest], above: &mut [Digest]) {
    for (out, pair) in above.iter_mut().zip(below.chunks(2)) {
        *out = match pair {
            [left, right] => node_hash(left, right),
            [single] => *single,
            _ => unreachable!("chunks(2) yields one or two items"),
        };
    }
}

impl InclusionProof {
    /// Verifies that `leaf_hash` is leaf `leaf_index` of the tree of `tree_size` leaves with
    /// root `root` (RFC 9162 §2.1.3.2).
    pub fn verify(&self, leaf_hash: &Digest, root: &MerkleRoot) -> Result<(), MerkleError> {
        let computed = self.root_from(leaf_hash)?;
        if computed != *root {
            return Err(MerkleError::RootMismatch { leaf_index: self.leaf_index, tree_size: self.tree_size });
        }
        Ok(())
    }

    /// The root that this path leads to from `leaf_hash`.
    pub fn root_from(&self, leaf_hash: &Digest) -> Result<MerkleRoot, MerkleError> {
        let (leaf_index, tree_size) = (self.leaf_index, self.tree_size);
        if leaf_index >= tree_size {
            return Err(MerkleError::IndexOutOfRange { leaf_index, tree_size });
        }
        if self.path.len() > MAX_MERKLE_PATH_LEN {
            return Err(MerkleError::PathTooLong { len: self.path.len(), max: MAX_MERKLE_PATH_LEN });
        }
        let mut f_n = leaf_index;
        let mut s_n = tree_size - 1;
        let mut r = *leaf_hash;
        for p in &self.path {
            if s_n == 0 {
                return Err(MerkleError::PathLength { leaf_index, tree_size });
            }
            if f_n & 1 == 1 || f_n == s_n {
                r = node_hash(p, &r);
                if f_n & 1 == 0 {
                    while f_n & 1 == 0 && f_n != 0 {
                        f_n >>= 1;
                        s_n >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            f_n >>= 1;
            s_n >>= 1;
        }
        if s_n != 0 {
            return Err(MerkleError::PathLength { leaf_index, tree_size });
        }
        Ok(MerkleRoot(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's definition, written plainly and recursively: the independent reference.
    fn mth(leaves: &[Vec<u8>]) -> Digest {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Digest> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    #[test]
    fn matches_the_recursive_definition_for_0_to_64_leaves() {
        for n in 0..=64 {
            let data = leaves(n);
            let tree = MerkleTree::from_leaves(&data);
            assert_eq!(tree.root().0, mth(&data), "root, n = {n}");
            for m in 0..n {
                let proof = tree.prove(m as u64).unwrap();
                assert_eq!(proof.path, path(m, &data), "path, n = {n}, m = {m}");
                proof.verify(&leaf_hash(&data[m]), &tree.root()).unwrap();
                assert!(proof.verify(&leaf_hash(b"other"), &tree.root()).is_err());
                if !proof.path.is_empty() {
                    let mut short = proof.clone();
                    short.path.pop();
                    assert!(short.verify(&leaf_hash(&data[m]), &tree.root()).is_err());
                }
                let mut long = proof.clone();
                long.path.push([7; 32]);
                assert!(long.verify(&leaf_hash(&data[m]), &tree.root()).is_err());
                for other in 0..n {
                    if other != m {
                        let moved = InclusionProof { leaf_index: other as u64, ..proof.clone() };
                        assert!(moved.verify(&leaf_hash(&data[m]), &tree.root()).is_err(), "n {n} m {m} other {other}");
                    }
                }
            }
            assert!(tree.prove(n as u64).is_err());
        }
    }

    #[test]
    fn known_answer_roots_from_rfc6962_test_data() {
        // The leaf inputs and roots of the certificate-transparency reference tests.
        let inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            (0x60..=0x6f).collect(),
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, expected) in roots.iter().enumerate() {
            let tree = MerkleTree::from_leaves(&inputs[..=n]);
            assert_eq!(hex::encode(tree.root()), *expected, "{} leaves", n + 1);
        }
        assert_eq!(
            hex::encode(MerkleTree::from_leaves::<Vec<u8>>(&[]).root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn node_hash_equals_the_streaming_reference() {
        for seed in 0u8..=255 {
            let left: Digest = std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8));
            let right: Digest = std::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(7));
            assert_eq!(node_hash(&left, &right), node_hash_reference(&left, &right));
        }
    }

    #[test]
    fn malformed_proofs_are_errors_not_panics() {
        let proof = InclusionProof { leaf_index: 5, tree_size: 5, path: vec![] };
        assert!(matches!(proof.verify(&[0; 32], &MerkleRoot([0; 32])), Err(MerkleError::IndexOutOfRange { .. })));
        let proof = InclusionProof { leaf_index: 0, tree_size: u64::MAX, path: vec![[0; 32]; 65] };
        assert!(matches!(proof.verify(&[0; 32], &MerkleRoot([0; 32])), Err(MerkleError::PathTooLong { .. })));
        let proof = InclusionProof { leaf_index: u64::MAX - 1, tree_size: u64::MAX, path: vec![[0; 32]; 64] };
        assert!(proof.verify(&[0; 32], &MerkleRoot([0; 32])).is_err());
    }

    #[test]
    fn large_trees_use_the_parallel_path_consistently() {
        let hashes: Vec<Digest> = (0..(1u32 << 14) + 3).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let tree = MerkleTree::from_leaf_hashes(hashes.clone());
        let data: Vec<Vec<u8>> = (0..(1u32 << 14) + 3).map(|i| i.to_le_bytes().to_vec()).collect();
        assert_eq!(tree.root().0, mth(&data));
        let proof = tree.prove(12345).unwrap();
        proof.verify(&hashes[12345], &tree.root()).unwrap();
    }
}
