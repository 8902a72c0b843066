//! int8 GEMM: every CPU kernel available here against the naive triple loop (the baseline),
//! and the best kernel at larger sizes. The peer figure (numpy float32 `A @ B` on OpenBLAS)
//! is measured by `benches/numpy_gemm.py` and recorded in `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use matproof_protocol::matrix::random_i8;
use matproof_prover::cpu::{GemmPath, gemm_i8};

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_i8");
    group.sample_size(10);
    for n in [256usize, 1024] {
        let a = random_i8(n, n, 1).unwrap();
        let b = random_i8(n, n, 2).unwrap();
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        for path in GemmPath::available() {
            if path == GemmPath::Naive && n > 256 {
                continue; // the baseline is measured where it finishes in reasonable time
            }
            group.bench_with_input(BenchmarkId::new(path.name(), n), &n, |bench, &n| {
                bench.iter(|| gemm_i8(black_box(a.as_slice()), black_box(b.as_slice()), n, n, n, path).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
