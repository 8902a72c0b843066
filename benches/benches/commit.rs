//! Commitments: `R_C` (SHA-256 RFC 9162 Merkle over C tiles) against a single SHA-256 over
//! the same bytes (the hashing ceiling), and Poseidon block digests for `R_A`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matproof_protocol::commit::{a_digests, c_tree};
use matproof_protocol::matrix::random_i8;
use matproof_protocol::merkle::{MerkleTree, leaf_hash};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_prover::{Backend, CpuBackend};
use sha2::{Digest, Sha256};

fn bench(c: &mut Criterion) {
    let n = 1024;
    let a = random_i8(n, n, 1).unwrap();
    let b = random_i8(n, n, 2).unwrap();
    let product = CpuBackend::best().gemm(&a, &b).unwrap();
    let tiling = Tiling::new(n, n, n, CircuitShape { tm: 4, tn: 4, kc: n }).unwrap();
    let bytes: Vec<u8> = product.as_slice().iter().flat_map(|v| v.to_le_bytes()).collect();

    let mut group = c.benchmark_group("commit");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("r_c_merkle_tile4x4_n1024", |bench| {
        bench.iter(|| c_tree(&tiling, black_box(&product)).unwrap().root())
    });
    group.bench_function("baseline_single_sha256_n1024", |bench| bench.iter(|| Sha256::digest(black_box(&bytes))));
    let leaves: Vec<[u8; 32]> = (0..65536u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    group.throughput(Throughput::Elements(leaves.len() as u64));
    group.bench_function("merkle_tree_65536_leaf_hashes", |bench| {
        bench.iter(|| MerkleTree::from_leaf_hashes(black_box(leaves.clone())).root())
    });
    group.throughput(Throughput::Bytes((n * n) as u64));
    group.bench_function("poseidon_a_digests_tile4_n1024", |bench| {
        bench.iter(|| a_digests(&tiling, black_box(&a)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
