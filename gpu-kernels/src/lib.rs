//! CUDA C kernels (int8 GEMM on tensor cores, C-tile leaf hashing, Freivalds projections),
//! compiled at run time by NVRTC through cudarc with dynamic loading, and the device API the
//! prover's CUDA backend calls.
//!
//! Not filled yet: this crate lands with the CUDA issue. It is the one crate allowed
//! `unsafe` for FFI, and it must probe for libcuda/libnvrtc before any cudarc call.
