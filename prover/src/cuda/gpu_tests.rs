//! GPU tests: bit-exact against the CPU backend and the protocol's references. They need a
//! CUDA device; without one each test prints one line and returns. Each test runs every GEMM
//! kernel the device has (`mma` and `dp4a` on sm_80+, `dp4a` below), and the leaf tests both
//! leaf kernels.

use matproof_protocol::commit::c_leaf_hashes;
use matproof_protocol::freivalds::{self, Path as FreivaldsPath};
use matproof_protocol::ids::JobId;
use matproof_protocol::ids::{MerkleRoot, Seed};
use matproof_protocol::matrix::{MatrixI8, MatrixI32, random_i8};
use matproof_protocol::tiling::{CircuitShape, Tiling};
use matproof_protocol::transcript::Challenge;

use matproof_gpu_kernels::cublaslt::{CublasError, NoAlgorithmReason};
use matproof_gpu_kernels::{GemmKernel, LeafKernel, TimingRequest};

use super::CudaBackend;
use crate::{Backend, CpuBackend, execute};

/// The device once per GEMM kernel it can run (the default first); empty without a GPU.
fn gpus() -> Vec<CudaBackend> {
    let first = match CudaBackend::on_device_with(0, None) {
        Ok(gpu) => gpu,
        Err(e) => {
            println!("skipped: no usable GPU ({e})");
            return Vec::new();
        }
    };
    let mut all = Vec::new();
    for kernel in GemmKernel::available_for(first.device().arch()) {
        if kernel == first.device().gemm_kernel() {
            continue;
        }
        let gpu = CudaBackend::on_device_with(0, Some(kernel))
            .unwrap_or_else(|e| panic!("the {} GEMM kernel is available but does not open: {e}", kernel.name()));
        all.push(gpu);
    }
    all.insert(0, first);
    for gpu in &all {
        println!("GPU: {} ({})", gpu.name(), gpu.describe());
    }
    all
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (17, 33, 65),
    (130, 70, 90),
    (256, 256, 256),
    (3, 1000, 5),
    (129, 65, 127),
    (1, 4096, 300),
    (200, 31, 1),
];

fn vectors(rounds: usize, n: usize, seed: u8) -> Vec<Vec<u64>> {
    Challenge { job_id: JobId([seed; 32]), r_c: MerkleRoot([1; 32]), seed: Seed([2; 32]) }
        .freivalds_vectors(rounds, n)
        .unwrap()
}

#[test]
fn gemm_is_bit_exact_with_the_cpu() {
    let cpu = CpuBackend::best();
    for gpu in gpus() {
        for (index, &(m, k, n)) in SHAPES.iter().enumerate() {
            let a = random_i8(m, k, 2 * index as u64 + 1).unwrap();
            let b = random_i8(k, n, 2 * index as u64 + 2).unwrap();
            let expected = cpu.gemm(&a, &b).unwrap();
            let got = gpu.try_gemm(&a, &b).unwrap_or_else(|e| panic!("{}: {m}x{k}x{n}: {e}", gpu.name()));
            assert_eq!(got, expected, "{}: {m}x{k}x{n}", gpu.name());
        }
    }
}

#[test]
fn gemm_extremes_wrap_like_the_cpu() {
    let cpu = CpuBackend::best();
    for gpu in gpus() {
        // k = 2^17 with every entry −128: the one sum that wraps i32.
        for (m, k, n, value) in [(3, 1 << 17, 2, -128i8), (70, 1000, 130, 127), (5, 513, 9, -128)] {
            let a = MatrixI8::from_vec(m, k, vec![value; m * k]).unwrap();
            let b = MatrixI8::from_vec(k, n, vec![-128; k * n]).unwrap();
            let expected = cpu.gemm(&a, &b).unwrap();
            assert_eq!(gpu.try_gemm(&a, &b).unwrap(), expected, "{}: {m}x{k}x{n} of {value}", gpu.name());
        }
    }
}

#[test]
fn leaf_hashes_equal_the_protocol() {
    let cpu = CpuBackend::best();
    for gpu in gpus() {
        for (index, &(m, k, n)) in SHAPES.iter().enumerate() {
            let a = random_i8(m, k, 100 + index as u64).unwrap();
            let b = random_i8(k, n, 200 + index as u64).unwrap();
            let c = cpu.gemm(&a, &b).unwrap();
            for (tm, tn) in [(1, 1), (4, 4), (8, 8), (3, 5), (16, 1), (32, 64)] {
                let tiling = Tiling::new(m, k, n, CircuitShape { tm, tn, kc: k }).unwrap();
                let expected = c_leaf_hashes(&tiling, &c).unwrap();
                let got = gpu.try_c_leaf_hashes(&tiling, &c).unwrap();
                assert_eq!(got, expected, "{m}x{n} tiles {tm}x{tn}");
                assert_eq!(gpu.c_tree(&tiling, &c).unwrap().root(), cpu.c_tree(&tiling, &c).unwrap().root());
            }
        }
    }
}

/// Both leaf kernels on every tiling, small tiles and large ones (up to 1024×1024, the
/// protocol's largest side), whichever the device would pick.
#[test]
fn both_leaf_kernels_equal_the_protocol_on_small_and_large_tiles() {
    let Some(gpu) = gpus().into_iter().next() else { return };
    let cpu = CpuBackend::best();
    for (m, k, n) in [(600, 64, 520), (1030, 16, 1100), (7, 3, 9)] {
        let c = cpu.gemm(&random_i8(m, k, 700).unwrap(), &random_i8(k, n, 701).unwrap()).unwrap();
        for (tm, tn) in [(1, 1), (1, 7), (7, 1), (5, 3), (64, 64), (256, 256), (255, 257), (1024, 1024)] {
            let tiling = Tiling::new(m, k, n, CircuitShape { tm, tn, kc: k }).unwrap();
            let expected = c_leaf_hashes(&tiling, &c).unwrap();
            for kernel in [LeafKernel::PerThread, LeafKernel::PerWarp] {
                let got = gpu.device().c_leaf_hashes_with(Some(kernel), c.as_slice(), (m, n), (tm, tn)).unwrap();
                assert_eq!(got, expected, "{} leaf kernel, {m}x{n} in {tm}x{tn} tiles", kernel.name());
            }
        }
    }
}

#[test]
fn projections_equal_the_reference() {
    let Some(gpu) = gpus().into_iter().next() else { return };
    for (index, &(m, _, n)) in SHAPES.iter().enumerate() {
        let values: Vec<i32> = (0..m * n)
            .map(|i| match i % 7 {
                0 => i32::MIN,
                1 => i32::MAX,
                2 => -1,
                _ => (i as i32).wrapping_mul(-1_640_531_527),
            })
            .collect();
        let c = MatrixI32::from_vec(m, n, values).unwrap();
        for rounds in [1, 2, 5] {
            let v = vectors(rounds, n, index as u8);
            let expected = freivalds::reference::project_i32(c.as_slice(), m, n, &v);
            assert_eq!(gpu.try_project_c(&c, &v).unwrap(), expected, "{m}x{n}, {rounds} rounds");
        }
        let a = random_i8(m, n, 300 + index as u64).unwrap();
        let v = vectors(3, n, index as u8);
        let flat: Vec<u64> = v.iter().flatten().copied().collect();
        let got = gpu.device().project_i8(a.as_slice(), m, n, &flat, 3).unwrap();
        let expected = freivalds::project_i8(a.as_slice(), m, n, &v, FreivaldsPath::Portable).unwrap();
        assert_eq!(got, expected.concat(), "i8 {m}x{n}");
    }
}

#[test]
fn execute_on_the_gpu_matches_the_cpu_end_to_end() {
    let a = random_i8(300, 200, 7).unwrap();
    let b = random_i8(200, 170, 8).unwrap();
    let tiling = Tiling::new(300, 200, 170, CircuitShape { tm: 8, tn: 8, kc: 200 }).unwrap();
    let v = vectors(2, 170, 9);
    let on_cpu = execute(&CpuBackend::best(), &tiling, &a, &b, &v).unwrap();
    for gpu in gpus() {
        let on_gpu = execute(&gpu, &tiling, &a, &b, &v).unwrap();
        assert_eq!(on_gpu.c, on_cpu.c, "{}", gpu.name());
        assert_eq!(on_gpu.c_tree.root(), on_cpu.c_tree.root(), "{}", gpu.name());
        assert_eq!(gpu.fallbacks(), 0, "{}: every call ran on the GPU", gpu.name());
    }
}

#[test]
fn gemm_with_leaf_hashes_hashes_c_on_the_device_like_the_cpu() {
    let cpu = CpuBackend::best();
    for gpu in gpus() {
        for (index, &(m, k, n)) in SHAPES.iter().enumerate() {
            let a = random_i8(m, k, 400 + index as u64).unwrap();
            let b = random_i8(k, n, 500 + index as u64).unwrap();
            let expected = cpu.gemm(&a, &b).unwrap();
            for (tm, tn) in [(1, 1), (4, 4), (3, 5), (32, 64), (256, 256)] {
                let tiling = Tiling::new(m, k, n, CircuitShape { tm, tn, kc: k }).unwrap();
                let (c, leaves) = gpu.try_gemm_with_leaf_hashes(&tiling, &a, &b).unwrap();
                assert_eq!(c, expected, "{}: {m}x{k}x{n}", gpu.name());
                let expected_leaves = c_leaf_hashes(&tiling, &expected).unwrap();
                assert_eq!(leaves, expected_leaves, "{}: {m}x{k}x{n} tiles {tm}x{tn}", gpu.name());
            }
        }
    }
}

#[test]
fn pipeline_timing_runs_and_cublas_agrees_with_our_product() {
    for gpu in gpus() {
        for (m, k, n) in [(512, 512, 512), (300, 200, 170), (1024, 4096, 768)] {
            let a = random_i8(m, k, 600).unwrap();
            let b = random_i8(k, n, 601).unwrap();
            let request = TimingRequest { m, k, n, tm: 4, tn: 4, rounds: 2, runs: 3 };
            let timings = gpu.device().time_pipeline(a.as_slice(), b.as_slice(), request).unwrap();
            assert!(timings.gemm_ms > 0.0 && timings.leaf_ms > 0.0 && timings.project_ms > 0.0, "{timings:?}");
            let off_rule = n % 4 != 0 || k % 4 != 0;
            match &timings.cublas {
                Ok(cublas) => {
                    assert!(!off_rule, "cuBLASLt ran at {m}x{k}x{n}, off its multiple-of-4 rule");
                    assert!(cublas.agrees, "cuBLASLt's product differs from ours at {m}x{k}x{n}");
                }
                // n = 170 breaks cuBLASLt's multiple-of-4 rule: said, not run.
                Err(CublasError::NoAlgorithm { reason: NoAlgorithmReason::NotMultipleOf4 { .. }, .. }) => {
                    assert!(off_rule, "{m}x{k}x{n} keeps the rule")
                }
                Err(e @ (CublasError::Library(_) | CublasError::NoAlgorithm { .. })) => {
                    println!("{m}x{k}x{n}: cuBLASLt did not run: {e}")
                }
                Err(e) => panic!("{}: {m}x{k}x{n}: cuBLASLt failed: {e}", gpu.name()),
            }
            println!("{}: {m}x{k}x{n}: {timings:?}", gpu.name());
        }
    }
}
