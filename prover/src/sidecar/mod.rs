//! The prover sidecar (feature `sidecar`; DESIGN §4): a gRPC service next to the provider's
//! workers. `SubmitJob` takes the consumer's upload (the signed spec, then `A` and `B` in
//! whole rows: `session::UploadWriter`'s stream). The spec is checked first (the consumer's
//! signature, that it names this provider, a loaded proving key when it asks for tile
//! proofs, the deadline), before any row is read; then `A` and `B` must match `R_A`, `R_B`
//! before anything reaches the verifier. It runs the job against the verifier node
//! ([`run_job`]: execute with a self-check, `Commit`, `Challenge`, prove, stream `Respond`,
//! verdict, `GetReceipt`) and answers with the result stream (`session::ResultWriter`): the
//! receipt, then, if approved, all of `C` in whole rows, then the end.
//!
//! ```no_run
//! # async fn demo(identity: matproof_protocol::Identity, keys: Vec<matproof_circuits::TileProvingKey>)
//! # -> Result<(), matproof_prover::sidecar::SidecarError> {
//! use matproof_prover::sidecar::{SidecarConfig, start};
//! let sidecar = start(SidecarConfig::new("http://127.0.0.1:7001", identity, keys)).await?;
//! println!("sidecar on {}", sidecar.url());
//! sidecar.shutdown().await?;
//! # Ok(()) }
//! ```

mod job;
mod metrics;

pub use job::{
    JobOutcome, Phase, Progress, ProvingKeys, RunJob, SELF_CHECK_ROUNDS, SidecarError, VERIFIER_CALL_TIMEOUT,
    VerifierTarget, check_spec, check_submission, connect_verifier, run_job,
};

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use matproof_circuits::TileProvingKey;
use matproof_protocol::identity::{Identity, PublicKey};
use matproof_protocol::limits::{CONNECTION_WINDOW_BYTES, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, STREAM_WINDOW_BYTES};
use matproof_protocol::matrix::MatrixI8;
use matproof_protocol::receipt::Verdict;
use matproof_protocol::session;
use matproof_protocol::session::ResultWriter;
use matproof_protocol::tls::{Peer, TlsError, TlsOptions, Transport};
use matproof_protocol::wire::WireError;
use matproof_protocol::wire::pb;
use matproof_telemetry::counted_incoming;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::respond::CommittedJob;

/// A callback that sees every job's [`Progress`] (for logs and progress bars).
pub type ProgressObserver = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How to run a sidecar.
pub struct SidecarConfig {
    /// Where to listen (port 0: any free port; see [`RunningSidecar::addr`]).
    pub listen: SocketAddr,
    /// The verifier node, e.g. `http://127.0.0.1:7001`.
    pub verifier_url: String,
    /// The verifier's public key, when known: a challenge signed by any other key is refused
    /// before any proving work, so a node impersonating the verifier (a wrong URL, a hijacked
    /// address) gets no work done. `None` accepts any verifier that signs consistently.
    pub verifier_key: Option<PublicKey>,
    /// The provider's identity: jobs must name its public key, and it signs commitments and
    /// responses.
    pub identity: Identity,
    /// The proving keys this sidecar serves; a job must pin one of them by `vk_hash`.
    pub proving_keys: Vec<TileProvingKey>,
    /// Jobs run at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_jobs_in_flight: usize,
    /// Sees every job's progress (optional).
    pub observer: Option<ProgressObserver>,
    /// The sidecar's own endpoint: its certificate (TLS), or plaintext on loopback only
    /// unless `insecure`.
    pub tls: TlsOptions,
    /// Dialling the verifier: the CA of its certificate and the sidecar's client
    /// certificate (mTLS, when the node requires one of providers).
    pub verifier_tls: TlsOptions,
}

impl SidecarConfig {
    /// On `127.0.0.1:0`, two jobs in flight, no observer.
    pub fn new(verifier_url: impl Into<String>, identity: Identity, proving_keys: Vec<TileProvingKey>) -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            verifier_url: verifier_url.into(),
            verifier_key: None,
            identity,
            proving_keys,
            max_jobs_in_flight: 2,
            observer: None,
            tls: TlsOptions::default(),
            verifier_tls: TlsOptions::default(),
        }
    }
}

impl std::fmt::Debug for SidecarConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidecarConfig")
            .field("listen", &self.listen)
            .field("verifier_url", &self.verifier_url)
            .field("verifier_key", &self.verifier_key)
            .field("identity", &self.identity)
            .field("proving_keys", &self.proving_keys.len())
            .field("max_jobs_in_flight", &self.max_jobs_in_flight)
            .field("tls", &self.tls)
            .field("verifier_tls", &self.verifier_tls)
            .finish_non_exhaustive()
    }
}

struct Inner {
    verifier: VerifierTarget,
    identity: Identity,
    keys: ProvingKeys,
    permits: Arc<Semaphore>,
    max_jobs_in_flight: usize,
    observer: Option<ProgressObserver>,
    metrics: Arc<metrics::SidecarMetrics>,
}

/// The `ProverSidecar` gRPC service.
#[derive(Clone)]
pub struct SidecarService {
    inner: Arc<Inner>,
}

impl SidecarService {
    /// The service for `config` (its `listen` is not used: see [`start`]).
    pub fn new(config: SidecarConfig) -> Result<Self, SidecarError> {
        if config.max_jobs_in_flight == 0 {
            return Err(SidecarError::Config { field: "max_jobs_in_flight", reason: "must be at least 1" });
        }
        let verifier = Peer::new(config.verifier_url, config.verifier_tls);
        // Checked at start: a bad URL or plaintext off loopback is a set-up error, not a
        // failure of the first job.
        verifier.endpoint()?;
        Ok(Self {
            inner: Arc::new(Inner {
                verifier: VerifierTarget { peer: verifier, pinned_key: config.verifier_key },
                identity: config.identity,
                keys: ProvingKeys::new(config.proving_keys),
                permits: Arc::new(Semaphore::new(config.max_jobs_in_flight)),
                max_jobs_in_flight: config.max_jobs_in_flight,
                observer: config.observer,
                metrics: Arc::new(metrics::SidecarMetrics::default()),
            }),
        })
    }

    /// This sidecar's public key (what job specs must name as the provider).
    pub fn public_key(&self) -> PublicKey {
        self.inner.identity.public_key()
    }

    /// The loaded proving keys.
    pub fn keys(&self) -> &ProvingKeys {
        &self.inner.keys
    }

    /// Decodes and runs one submission.
    /// Reads an upload (its spec checked before any row is taken), runs the job, and
    /// returns the result: the receipt, then `C` if approved.
    async fn submit<S>(&self, mut upload: S) -> Result<ResultStream, SidecarError>
    where
        S: Stream<Item = Result<pb::JobUpload, Status>> + Unpin + Send,
    {
        let inner = &self.inner;
        let permit = Arc::clone(&inner.permits)
            .try_acquire_owned()
            .map_err(|_| SidecarError::Busy { max: inner.max_jobs_in_flight })?;
        let stream_error = |status| SidecarError::UploadStream { status };
        let first = upload.next().await.ok_or_else(|| WireError { field: "spec".into(), reason: "missing".into() })?;
        let head = session::read_upload_head(first.map_err(stream_error)?)?;
        check_spec(&inner.identity, &inner.keys, &head.spec, &head.consumer_signature)?;
        let mut reader = session::InputsReader::new(&head);
        while !reader.is_complete() {
            let Some(message) = upload.next().await else { break };
            reader.push(message.map_err(stream_error)?)?;
        }
        let (a, b) = reader.finish()?;
        inner.metrics.input_bytes.add(head.input_bytes());
        tracing::Span::current().record("job_id", tracing::field::display(head.job_id()));
        let outcome = {
            let _in_flight = inner.metrics.in_flight.track();
            self.run(head, a, b).await
        };
        let outcome = outcome.inspect_err(|_| inner.metrics.failed.inc())?;
        inner.metrics.finished(outcome.verdict.verdict, outcome.receipt.openings.len());
        tracing::info!(verdict = outcome.verdict.verdict.as_str(), backend = %outcome.backend, "job finished");
        let n = outcome.committed.tiling.n;
        let c = (outcome.verdict.verdict == Verdict::Approved).then(|| JobResult(Arc::clone(&outcome.committed)));
        let metrics = Arc::clone(&inner.metrics);
        let replies = ResultWriter::new(outcome.receipt_wire, c, n).inspect(move |reply| {
            if let Some(pb::submit_job_reply::Part::CRows(rows)) = &reply.part {
                metrics.result_bytes.add(rows.values.len() as u64);
            }
        });
        Ok(Box::pin(tokio_stream::iter(replies.map(Ok)).chain(release_after(permit))))
    }

    async fn run(&self, head: session::UploadHead, a: MatrixI8, b: MatrixI8) -> Result<JobOutcome, SidecarError> {
        let inner = &self.inner;
        let observer = inner.observer.clone();
        let metrics = Arc::clone(&inner.metrics);
        let progress = move |p: &Progress| {
            if let Progress::Finished { phase, elapsed, .. } = p {
                metrics.phase(*phase, *elapsed);
                tracing::info!(phase = phase.as_str(), seconds = elapsed.as_secs_f64(), "phase finished");
            }
            if let Some(observer) = &observer {
                observer(p);
            }
        };
        run_job(RunJob {
            verifier: &inner.verifier,
            identity: &inner.identity,
            keys: &inner.keys,
            spec: head.spec,
            consumer_signature: head.consumer_signature,
            a,
            b,
            progress: &progress,
        })
        .await
    }
}

/// The result stream a `SubmitJob` answers with.
pub type ResultStream = std::pin::Pin<Box<dyn Stream<Item = Result<pb::SubmitJobReply, Status>> + Send>>;

/// `C` of a finished job, as the result stream reads it.
struct JobResult(Arc<CommittedJob>);

impl AsRef<[i32]> for JobResult {
    fn as_ref(&self) -> &[i32] {
        self.0.execution.c.as_slice()
    }
}

/// An empty stream that holds the job's permit until the result has been sent: a job counts
/// against `max_jobs_in_flight` while its `C` is still in memory.
fn release_after(
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = Result<pb::SubmitJobReply, Status>> + Send {
    tokio_stream::iter(std::iter::once(permit)).filter_map(|permit| {
        drop(permit);
        None
    })
}

#[tonic::async_trait]
impl pb::prover_sidecar_server::ProverSidecar for SidecarService {
    type SubmitJobStream = ResultStream;

    async fn submit_job(&self, request: Request<Streaming<pb::JobUpload>>) -> Result<Response<ResultStream>, Status> {
        // One span per job: every log line of it names the job (once its spec is read).
        let span = tracing::info_span!("job", method = "SubmitJob", job_id = tracing::field::Empty);
        let answer = self.submit(request.into_inner()).instrument(span.clone()).await.map_err(Status::from);
        self.inner.metrics.refusals.count("SubmitJob", &span, answer).map(Response::new)
    }
}

/// A sidecar serving on a port; stop it with [`RunningSidecar::shutdown`].
#[derive(Debug)]
pub struct RunningSidecar {
    addr: SocketAddr,
    transport: Transport,
    public_key: PublicKey,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    metrics: Arc<metrics::SidecarMetrics>,
}

impl RunningSidecar {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR` (with TLS) or `http://ADDR`, for a `ProverSidecarClient`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.transport.scheme(), self.addr)
    }

    /// Whether it serves TLS, or plaintext and why that is allowed (its line at start).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The provider's public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Serves the sidecar's metrics (Prometheus text format) at `/metrics` on `listen`.
    /// Plaintext HTTP: refused off loopback unless `insecure`.
    pub async fn serve_metrics(
        &self,
        listen: SocketAddr,
        insecure: bool,
    ) -> Result<matproof_telemetry::HttpServer, SidecarError> {
        let metrics = Arc::clone(&self.metrics);
        let handler: matproof_telemetry::Handler = Arc::new(move |request: matproof_telemetry::HttpRequest| {
            let metrics = Arc::clone(&metrics);
            Box::pin(async move {
                match request.path.as_str() {
                    "/metrics" => matproof_telemetry::HttpResponse::ok(
                        matproof_telemetry::metrics::TEXT_CONTENT_TYPE,
                        metrics.text(),
                    ),
                    _ => matproof_telemetry::HttpResponse::error(404, "this address serves /metrics only"),
                }
            })
        });
        matproof_telemetry::http::serve(listen, insecure, handler).await.map_err(SidecarError::from)
    }

    /// Stops accepting, lets jobs in flight finish, and waits for the server to end.
    pub async fn shutdown(mut self) -> Result<(), SidecarError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| SidecarError::Worker { reason: e.to_string() })?
            .map_err(|source| SidecarError::Server { source })
    }
}

impl Drop for RunningSidecar {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `config.listen` and serves the sidecar on the current tokio runtime until
/// [`RunningSidecar::shutdown`] (or the handle is dropped).
pub async fn start(config: SidecarConfig) -> Result<RunningSidecar, SidecarError> {
    let listen = config.listen;
    let (server_tls, transport) = config.tls.server(listen)?;
    let service = SidecarService::new(config)?;
    let public_key = service.public_key();
    let metrics = Arc::clone(&service.inner.metrics);
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| SidecarError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| SidecarError::Bind { addr: listen, source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = pb::prover_sidecar_server::ProverSidecarServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut builder = tonic::transport::Server::builder();
    if let Some(server_tls) = server_tls {
        builder =
            builder.tls_config(server_tls).map_err(|source| TlsError::Transport { url: listen.to_string(), source })?;
    }
    let task = tokio::spawn(
        builder
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_frame_size(MAX_FRAME_BYTES)
            .serve_with_incoming_shutdown(
                server,
                counted_incoming(listener, metrics.open_connections.clone()),
                async move {
                    let _ = stopped.await;
                },
            ),
    );
    Ok(RunningSidecar { addr, transport, public_key, stop: Some(stop), task, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn service(max_jobs_in_flight: usize) -> SidecarService {
        let shape = matproof_protocol::tiling::CircuitShape { tm: 1, tn: 1, kc: 2 };
        let (pk, _) = matproof_circuits::development_setup(shape, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
        let mut config = SidecarConfig::new("http://127.0.0.1:9", Identity::from_seed([3; 32]), vec![pk]);
        config.max_jobs_in_flight = max_jobs_in_flight;
        SidecarService::new(config).unwrap()
    }

    #[tokio::test]
    async fn jobs_beyond_the_bound_are_refused_as_resource_exhausted() {
        let service = service(1);
        let _running = Arc::clone(&service.inner.permits).try_acquire_owned().unwrap();
        let empty = || tokio_stream::iter(Vec::<Result<pb::JobUpload, Status>>::new());
        let err = service.submit(empty()).await.err().unwrap();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        drop(_running);
        // With the permit free, the same empty upload gets as far as validation.
        let err = service.submit(empty()).await.err().unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert_eq!(err.to_string(), "invalid field spec: missing");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let shape = matproof_protocol::tiling::CircuitShape { tm: 1, tn: 1, kc: 2 };
        let (pk, _) = matproof_circuits::development_setup(shape, &mut rand::rngs::StdRng::seed_from_u64(2)).unwrap();
        let mut config = SidecarConfig::new("http://127.0.0.1:9", Identity::from_seed([3; 32]), vec![pk.clone()]);
        config.max_jobs_in_flight = 0;
        assert!(SidecarService::new(config).is_err());
        // No proving key: it serves jobs without tile proofs only.
        assert!(
            SidecarService::new(SidecarConfig::new("http://127.0.0.1:9", Identity::from_seed([3; 32]), vec![])).is_ok()
        );
        assert!(SidecarService::new(SidecarConfig::new("not a url", Identity::from_seed([3; 32]), vec![pk])).is_err());
        assert_eq!(service(2).keys().len(), 1);
    }
}
