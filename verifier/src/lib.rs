//! Verification and the audit library (default features), and, behind the `service`
//! feature, the gRPC verifier node and the escrow ledger (DESIGN §4, §6, §7).
//!
//! Not filled yet: this crate lands with the gRPC pipeline issue. With default features it
//! must never link tokio, tonic, sqlx, CUDA or the prover.
#![forbid(unsafe_code)]
