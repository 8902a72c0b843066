//! Freivalds check (2 rounds over 2^61−1) against two baselines: a plain pass summing the
//! same bytes (the memory-read ceiling) and the scalar u128 reference projections.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use matproof_protocol::freivalds::{self, Dims, Path};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed};
use matproof_protocol::matrix::{naive_product, random_i8};
use matproof_protocol::transcript::Challenge;
use matproof_prover::{Backend, CpuBackend};
use rayon::prelude::*;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("freivalds");
    group.sample_size(10);
    for n in [512usize, 2048] {
        let a = random_i8(n, n, 1).unwrap();
        let b = random_i8(n, n, 2).unwrap();
        let product = if n <= 512 { naive_product(&a, &b).unwrap() } else { CpuBackend::best().gemm(&a, &b).unwrap() };
        let vectors = Challenge { job_id: JobId([1; 32]), r_c: MerkleRoot([2; 32]), seed: Seed([3; 32]) }
            .freivalds_vectors(2, n)
            .unwrap();
        let dims = Dims { m: n, k: n, n };
        group.throughput(Throughput::Bytes((6 * n * n) as u64));
        for path in Path::available() {
            group.bench_with_input(BenchmarkId::new(path.name(), n), &n, |bench, _| {
                bench.iter(|| {
                    freivalds::check_with_path(a.as_slice(), b.as_slice(), product.as_slice(), dims, &vectors, path)
                        .unwrap()
                })
            });
        }
        group.bench_with_input(BenchmarkId::new("baseline-plain-read", n), &n, |bench, _| {
            bench.iter(|| {
                let s8: i64 = a.as_slice().par_iter().chain(b.as_slice()).map(|&v| i64::from(v)).sum();
                let s32: i64 = product.as_slice().par_iter().map(|&v| i64::from(v)).sum();
                black_box(s8 + s32)
            })
        });
        if n <= 512 {
            group.bench_with_input(BenchmarkId::new("baseline-u128-reference", n), &n, |bench, _| {
                bench.iter(|| freivalds::reference::project_i32(product.as_slice(), n, n, black_box(&vectors)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
