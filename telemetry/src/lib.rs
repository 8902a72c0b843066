//! Telemetry for matproof's servers (the verifier node and the prover sidecar): metric
//! primitives written in Prometheus' text format ([`metrics`]), a small read-only HTTP server
//! that serves them and the node's status page ([`http`]), and open gRPC connections counted
//! ([`connections`]). Each server owns its metric families; this crate knows none of them.

pub mod connections;
pub mod http;
pub mod metrics;

pub use connections::{CountedStream, counted_incoming};
pub use http::{Handler, HttpError, HttpRequest, HttpResponse, HttpServer};
pub use metrics::{Counter, Gauge, Histogram, Refusals, TextEncoder};
