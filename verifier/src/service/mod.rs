//! The verifier node (DESIGN §4): the `matproof.v1.Verifier` gRPC service over the escrow
//! [`Ledger`], with gRPC health (`grpc.health.v1.Health`) and server reflection.
//!
//! ```no_run
//! # async fn run(identity: matproof_protocol::identity::Identity,
//! #              keys: Vec<matproof_circuits::TileVerifyingKey>) -> Result<(), Box<dyn std::error::Error>> {
//! use matproof_verifier::service::{NodeConfig, NodeLimits, start};
//! let node = start(NodeConfig {
//!     listen: "127.0.0.1:0".parse()?,
//!     database_url: "sqlite:///tmp/verifier.db?mode=rwc".into(),
//!     identity,
//!     verifying_keys: keys,
//!     limits: NodeLimits::default(),
//!     tls: Default::default(),
//! })
//! .await?;
//! println!("verifier {:?} listening on {}", node.verifier_key(), node.url());
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Session
//!
//! * `OpenJob`: every field is validated at the boundary; the consumer's signature over the
//!   canonical spec must verify; the spec's `vk_hash` must be one of the node's keys; the
//!   deadline must be in the future; full mode brings `A`, `B` whose recomputed `R_A`, `R_B`
//!   must equal the spec's. The job is persisted if fewer than
//!   [`NodeLimits::max_open_jobs`] await a response (counted and inserted under one
//!   database lock, so the bound is hard; `RESOURCE_EXHAUSTED` otherwise), then the price
//!   moves into escrow (idempotent: the same spec again answers the same `job_id`).
//! * `Commit`: **one commitment per job.** The first signed `R_C` draws a 32-byte seed from
//!   the OS CSPRNG and persists it (a conditional `UPDATE`: two racing commits cannot both
//!   win) before the signed challenge is returned; the same `R_C` again gets the same
//!   challenge, another `R_C` is refused (`FAILED_PRECONDITION`).
//! * `Respond`: `C` rows (full mode), then the sampled openings, then a signed end. Nothing
//!   is judged before the end's signature verifies (a forged stream is `UNAUTHENTICATED`
//!   and leaves the job untouched). Then: the deadline, `R_C` against the streamed `C` and
//!   Freivalds (full mode; a fraud proof on failure), the sampled tiles; the verdict is
//!   signed, the receipt persisted, and only then does money move: the ledger records the
//!   verdict, then posts (approved), voids (rejected) or slashes the provider's stake (a
//!   fraud proof). **Settled once:** a repeat response gets the stored verdict back and
//!   moves nothing.
//! * `GetReceipt`, `GetJobStatus`.
//!
//! At start-up the node runs the migrations, [`Ledger::recover`] and its own recovery (every
//! stored verdict not yet settled is settled), then voids expired jobs every
//! [`NodeLimits::expiry_interval`], and prunes the inputs of released jobs
//! [`NodeLimits::input_retention`] after their release. A job expires `expiry_grace` after its deadline, so
//! that a response that arrived in time is never voided while it is being checked.

pub use crate::accounts;
mod judge;
mod metrics;
mod records;
mod rpc;
mod settle;
mod status_page;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matproof_circuits::{PinnedVerifyingKey, TileVerifyingKey};
use matproof_protocol::identity::{Identity, PublicKey};
use matproof_protocol::ids::VkHash;
use matproof_protocol::limits::{CONNECTION_WINDOW_BYTES, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, STREAM_WINDOW_BYTES};
pub use matproof_protocol::tls::{TlsError, TlsOptions, Transport};
use matproof_protocol::wire::pb;
use matproof_protocol::wire::pb::verifier_server::VerifierServer;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

use crate::ledger::{Ledger, LedgerError, LedgerOptions};

pub use matproof_telemetry::{HttpError, HttpServer};
pub use store::StoreError;

/// Bounds on what one node accepts and how long it waits.
#[derive(Debug, Clone)]
pub struct NodeLimits {
    /// Per-RPC deadline (a `Respond` stream included); a client's shorter `grpc-timeout`
    /// wins.
    pub rpc_timeout: Duration,
    /// RPCs served at once across all connections; more wait (within `rpc_timeout`).
    pub max_concurrent_rpcs: usize,
    /// Jobs awaiting a response (opened or challenged) at once, counted over the whole
    /// database (every node sharing it); a new `OpenJob` beyond it is `RESOURCE_EXHAUSTED`.
    /// A hard bound: concurrent `OpenJob`s are admitted one at a time.
    pub max_open_jobs: u64,
    /// The largest gRPC message decoded or encoded, at most
    /// [`MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// How often expired jobs are voided.
    pub expiry_interval: Duration,
    /// How long after its deadline a job that got no verdict is voided (at least the time
    /// a response that arrived in time may take to check).
    pub expiry_grace: Duration,
    /// Database connections (the ledger and the node's tables each get this many).
    pub max_db_connections: u32,
    /// Bytes of full-mode inputs stored at once, over the whole database (`|A| + |B|` of
    /// every job whose inputs are not pruned yet); an `OpenJob` that would exceed it is
    /// `RESOURCE_EXHAUSTED` before any of its rows is read.
    pub max_stored_bytes: u64,
    /// How long a job's inputs are kept after it was released (settled or expired).
    pub input_retention: Duration,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            rpc_timeout: Duration::from_secs(300),
            max_concurrent_rpcs: 64,
            max_open_jobs: 10_000,
            max_message_bytes: MAX_MESSAGE_BYTES,
            expiry_interval: Duration::from_secs(1),
            expiry_grace: Duration::from_secs(300),
            max_db_connections: 8,
            max_stored_bytes: 16 << 30,
            input_retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a verifier node needs to start.
#[derive(Debug)]
pub struct NodeConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port; see [`RunningNode::addr`]).
    pub listen: SocketAddr,
    /// `sqlite://path?mode=rwc` (embedded) or `postgres://…` (shared by many nodes).
    pub database_url: String,
    /// The node's signing identity: it signs challenges and verdicts.
    pub identity: Identity,
    /// The verifying keys it accepts jobs for (pinned by hash: a job names one by `vk_hash`).
    pub verifying_keys: Vec<TileVerifyingKey>,
    /// Bounds.
    pub limits: NodeLimits,
    /// TLS: the node's certificate, and the CA of providers' client certificates (then
    /// `Commit` and `Respond` need one). Without a certificate the node listens in
    /// plaintext, on loopback only unless `insecure`.
    pub tls: TlsOptions,
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The ledger could not be opened, migrated or recovered.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The node's tables failed.
    #[error("node tables: {0}")]
    Store(#[from] StoreError),
    /// A verifying key is malformed.
    #[error("verifying key {index}: {reason}")]
    Key {
        /// Its position in [`NodeConfig::verifying_keys`].
        index: usize,
        /// Why.
        reason: String,
    },
    /// A limit is out of range.
    #[error("limit {field}: {reason}")]
    Limit {
        /// Which.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The listening socket could not be bound.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// gRPC reflection could not be built.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The TLS options are refused (plaintext off loopback, a malformed certificate).
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The metrics or status page server could not start.
    #[error("HTTP: {0}")]
    Http(#[from] HttpError),
}

/// A node serving on [`RunningNode::addr`] until [`RunningNode::shutdown`].
pub struct RunningNode {
    addr: SocketAddr,
    transport: Transport,
    ledger: Ledger,
    verifier_key: PublicKey,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    expiry: JoinHandle<()>,
    store: store::Store,
    node: Arc<Node>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("addr", &self.addr)
            .field("transport", &self.transport)
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

impl RunningNode {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ip:port` (with TLS) or `http://ip:port`, for a tonic client.
    pub fn url(&self) -> String {
        format!("{}://{}", self.transport.scheme(), self.addr)
    }

    /// Whether it serves TLS, or plaintext and why that is allowed (its line at start).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The node's ledger (to deposit funds, read balances, check conservation).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The node's public key (it signs challenges and verdicts).
    pub fn verifier_key(&self) -> PublicKey {
        self.verifier_key
    }

    /// Serves the node's metrics (Prometheus text format) on `listen` at `/metrics`, and,
    /// with `status_page`, the read-only status page at `/` (jobs, ledger totals, keys,
    /// health) with each job's receipt at `/jobs/<job id>/receipt`. Plaintext HTTP: refused
    /// off loopback unless `insecure` (the operator's explicit choice, as for gRPC).
    pub async fn serve_http(&self, listen: SocketAddr, pages: HttpPages) -> Result<HttpServer, NodeError> {
        let handler = status_page::handler(self.node.clone(), pages.status_page);
        Ok(matproof_telemetry::http::serve(listen, pages.insecure, handler).await?)
    }

    /// Stops accepting calls, lets calls in flight finish, stops the expiry task and
    /// closes the database pools.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        if let Ok(Err(e)) = self.server.await {
            tracing::warn!("verifier node server ended with: {e}");
        }
        self.expiry.abort();
        let _ = self.expiry.await;
        self.store.close().await;
        self.ledger.close().await;
    }
}

/// What [`RunningNode::serve_http`] serves.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpPages {
    /// The status page at `/` besides `/metrics`.
    pub status_page: bool,
    /// Allow a non-loopback address.
    pub insecure: bool,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The shared state of a node's RPC handlers.
pub(crate) struct Node {
    pub(crate) identity: Identity,
    pub(crate) keys: HashMap<VkHash, PinnedVerifyingKey>,
    pub(crate) ledger: Ledger,
    pub(crate) store: store::Store,
    pub(crate) limits: NodeLimits,
    /// `Commit` and `Respond` need a client certificate (`--tls-ca` is set).
    pub(crate) provider_certificate_required: bool,
    pub(crate) permits: Arc<Semaphore>,
    /// Serializes `OpenJob` admissions within this process, so that a burst queues here
    /// instead of in the database's lock (SQLite's busy wait, or one pooled connection per
    /// waiter on PostgreSQL). Not what makes `max_open_jobs` hard: the database check is
    /// (`store::Store::admit_job`), and it holds across processes.
    pub(crate) admission: tokio::sync::Mutex<()>,
    /// Input bytes of uploads in progress on this node, not yet stored: counted against
    /// `max_stored_bytes` with what the database holds.
    pub(crate) reserved_bytes: std::sync::Mutex<u64>,
    /// What this node has done since it started (`/metrics`).
    pub(crate) metrics: Arc<metrics::NodeMetrics>,
    /// Set at start: what the status page shows.
    pub(crate) transport: Transport,
}

/// Checks the limits a node cannot run with.
fn check_limits(limits: &NodeLimits) -> Result<(), NodeError> {
    if limits.max_message_bytes == 0 || limits.max_message_bytes > MAX_MESSAGE_BYTES {
        return Err(NodeError::Limit { field: "max_message_bytes", reason: "must be in 1..=MAX_MESSAGE_BYTES" });
    }
    if limits.max_concurrent_rpcs == 0 {
        return Err(NodeError::Limit { field: "max_concurrent_rpcs", reason: "must be at least 1" });
    }
    if limits.rpc_timeout.is_zero() || limits.expiry_interval.is_zero() {
        return Err(NodeError::Limit { field: "rpc_timeout", reason: "timeouts and intervals must be positive" });
    }
    Ok(())
}

/// Each verifying key, checked and pinned by its own hash.
fn pin_keys(verifying_keys: Vec<TileVerifyingKey>) -> Result<HashMap<VkHash, PinnedVerifyingKey>, NodeError> {
    let mut keys = HashMap::new();
    for (index, key) in verifying_keys.into_iter().enumerate() {
        let hash = key.hash();
        let pinned =
            PinnedVerifyingKey::new(key, &hash).map_err(|e| NodeError::Key { index, reason: e.to_string() })?;
        keys.insert(hash, pinned);
    }
    Ok(keys)
}

/// Recovery: every verdict recorded in the ledger but not released is released, then every
/// verdict the node stored but did not settle is settled (both idempotent).
async fn recover(node: &Node) -> Result<(), NodeError> {
    let report = node.ledger.recover().await?;
    if !report.posted.is_empty() || !report.voided.is_empty() {
        tracing::info!(posted = report.posted.len(), voided = report.voided.len(), "ledger recovery released jobs");
    }
    for job_id in node.store.unsettled().await? {
        if let Err(e) = node.settle_job(&job_id).await {
            tracing::warn!(job = %job_id, "settlement at start-up failed: {e}");
        }
    }
    Ok(())
}

/// Voids expired jobs every `expiry_interval`, until aborted.
fn spawn_expiry(node: Arc<Node>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(node.limits.expiry_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = node.expire_jobs().await {
                tracing::warn!("voiding expired jobs failed: {e}");
            }
            match node.prune_inputs().await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned the inputs of released jobs"),
                Err(e) => tracing::warn!("pruning inputs failed: {e}"),
            }
        }
    })
}

/// Serves the node's gRPC services (health, reflection, `Verifier`) on `listener`, over TLS
/// when `server_tls` is set, until `shutdown` fires.
async fn spawn_server(
    node: &Arc<Node>,
    listener: tokio::net::TcpListener,
    server_tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: oneshot::Receiver<()>,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, NodeError> {
    let limits = &node.limits;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<VerifierServer<rpc::VerifierService>>().await;
    // Reflection lists what this node serves (the descriptor set also holds the sidecar's
    // service, which a verifier node does not serve).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("matproof.v1.Verifier")
            .with_service_name("grpc.health.v1.Health")
    };
    let reflection_v1 = reflection().build_v1().map_err(|e| NodeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| NodeError::Reflection(e.to_string()))?;
    let verifier = VerifierServer::new(rpc::VerifierService(node.clone()))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
    let mut builder = tonic::transport::Server::builder();
    if let Some(server_tls) = server_tls {
        let listen = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        builder = builder.tls_config(server_tls).map_err(|source| TlsError::Transport { url: listen, source })?;
    }
    let incoming = matproof_telemetry::counted_incoming(listener, node.metrics.open_connections.clone());
    let server = builder
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .timeout(limits.rpc_timeout)
        .concurrency_limit_per_connection(limits.max_concurrent_rpcs)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(verifier)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = shutdown.await;
        });
    Ok(tokio::spawn(server))
}

/// Opens the database (running the migrations), recovers, and starts serving.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let NodeConfig { listen, database_url, identity, verifying_keys, limits, tls } = config;
    check_limits(&limits)?;
    // Refused before anything is opened: plaintext off loopback without `insecure`.
    let (server_tls, transport) = tls.server(listen)?;
    let keys = pin_keys(verifying_keys)?;
    let ledger = Ledger::open_with(
        &database_url,
        LedgerOptions { max_connections: limits.max_db_connections, ..LedgerOptions::default() },
    )
    .await?;
    let store = store::Store::open(&database_url, limits.max_db_connections).await?;
    let verifier_key = identity.public_key();
    let node = Arc::new(Node {
        identity,
        keys,
        ledger: ledger.clone(),
        store: store.clone(),
        permits: Arc::new(Semaphore::new(limits.max_concurrent_rpcs)),
        admission: tokio::sync::Mutex::new(()),
        reserved_bytes: std::sync::Mutex::new(0),
        limits: limits.clone(),
        provider_certificate_required: transport == Transport::Tls { client_ca: true },
        metrics: Arc::new(metrics::NodeMetrics::default()),
        transport,
    });
    recover(&node).await?;

    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| NodeError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| NodeError::Bind { addr: listen, source })?;

    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    let server = spawn_server(&node, listener, server_tls, shutdown_rx).await?;

    let expiry = spawn_expiry(node.clone());
    Ok(RunningNode { addr, transport, ledger, verifier_key, shutdown, server, expiry, store, node })
}
