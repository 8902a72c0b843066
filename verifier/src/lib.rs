//! Verification and the audit library (default features), and, behind the
//! `service` feature (later), the gRPC verifier node and the escrow ledger (DESIGN §4, §6,
//! §7).
//!
//! Today: [`tiles`], the check of sampled tile openings and their Groth16 proofs (DESIGN
//! §5.2); [`fraud`], building and checking fraud proofs (DESIGN §5.1); and [`soundness`],
//! the stated bounds; [`audit`], the offline audit of a receipt (DESIGN §6). With the
//! `service` feature: `ledger`, the escrow ledger (DESIGN §7), and `service`, the gRPC
//! verifier node over it (DESIGN §4).
//! With default features this crate never links tokio, tonic, sqlx, CUDA or the prover.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod audit;
pub mod fraud;
#[cfg(feature = "service")]
pub mod ledger;
#[cfg(feature = "service")]
pub mod service;
pub mod soundness;
pub mod tiles;

pub use audit::{AuditData, AuditError, AuditKeys, AuditReport, audit, audit_bytes};
pub use fraud::{FraudError, build_fraud_proof, check_fraud_proof};
pub use soundness::check_summary;
pub use tiles::{TileCheckError, TileCheckSummary, check_sampled_tiles};
