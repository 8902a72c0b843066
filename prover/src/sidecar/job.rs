//! One job, end to end, as the provider: check the submission, execute, commit to the
//! verifier, answer its challenge, collect the verdict and the receipt.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use matproof_circuits::TileProvingKey;
use matproof_protocol::identity::{Identity, PublicKey, Signature, SignatureError};
use matproof_protocol::ids::{JobId, MerkleRoot, Seed, VkHash};
use matproof_protocol::limits::{CONNECTION_WINDOW_BYTES, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, STREAM_WINDOW_BYTES};
use matproof_protocol::matrix::MatrixI8;
use matproof_protocol::opening::TileOpening;
use matproof_protocol::receipt::{Receipt, SignedChallenge, SignedVerdict};
use matproof_protocol::session::{
    self, ResponseExpectation, ResponseWriter, SessionError, SignedCommit, rows_per_chunk,
};
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::tls::{Peer, TlsError, is_transport_failure};
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::{WireError, pb};
use tonic::transport::Channel;

use crate::backend::{Backend, BackendError, execute};
use crate::respond::{CommittedJob, RespondError};

/// The longest the sidecar waits for one verifier call (a `Respond` stream included).
pub const VERIFIER_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Freivalds rounds of the provider's self-check (each lets a wrong `C` pass with
/// probability ≤ 2^-61).
pub const SELF_CHECK_ROUNDS: usize = 2;

/// The phases of a job, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Signature, provider key, proving key, deadline and input shapes.
    Check,
    /// GEMM, Freivalds self-check, the trees of `A`, `B`, `C`; `R_A`, `R_B` compared.
    Execute,
    /// `Commit` to the verifier, the signed challenge back.
    Commit,
    /// Opening and proving the sampled tiles.
    Prove,
    /// Streaming the response (full mode: all of `C` first) and the verdict back.
    Respond,
    /// `GetReceipt`.
    Receipt,
}

impl Phase {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Check => "check",
            Phase::Execute => "execute",
            Phase::Commit => "commit",
            Phase::Prove => "prove",
            Phase::Respond => "respond",
            Phase::Receipt => "receipt",
        }
    }
}

/// What [`run_job`] reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A phase started.
    Started {
        /// The job.
        job_id: JobId,
        /// The phase.
        phase: Phase,
    },
    /// The backend that executes the job (during [`Phase::Execute`]).
    Backend {
        /// The job.
        job_id: JobId,
        /// Its name and why it was chosen, e.g. `cpu/avx2 (no usable GPU: …; using the CPU)`.
        name: String,
    },
    /// A phase ended.
    Finished {
        /// The job.
        job_id: JobId,
        /// The phase.
        phase: Phase,
        /// How long it took.
        elapsed: Duration,
        /// What it did, for people.
        detail: String,
    },
}

/// The proving keys a provider has loaded, found by the verifying-key hash a spec pins.
#[derive(Clone, Default)]
pub struct ProvingKeys {
    by_vk_hash: HashMap<VkHash, Arc<TileProvingKey>>,
}

impl std::fmt::Debug for ProvingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_vk_hash.values().map(|k| k.shape)).finish()
    }
}

impl ProvingKeys {
    /// Indexes `keys` by their verifying-key hash.
    pub fn new(keys: Vec<TileProvingKey>) -> Self {
        let by_vk_hash = keys.into_iter().map(|k| (k.verifying_key().hash(), Arc::new(k))).collect();
        Self { by_vk_hash }
    }

    /// The key for this shape and verifying-key hash, if loaded.
    pub fn get(&self, shape: CircuitShape, vk_hash: &VkHash) -> Option<Arc<TileProvingKey>> {
        self.by_vk_hash.get(vk_hash).filter(|k| k.shape == shape).cloned()
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.by_vk_hash.len()
    }

    /// No key loaded.
    pub fn is_empty(&self) -> bool {
        self.by_vk_hash.is_empty()
    }

    /// The loaded shapes with their verifying-key hashes.
    pub fn shapes(&self) -> Vec<(CircuitShape, VkHash)> {
        let mut out: Vec<_> = self.by_vk_hash.iter().map(|(h, k)| (k.shape, *h)).collect();
        out.sort_by_key(|(s, h)| (s.tm, s.tn, s.kc, *h));
        out
    }
}

/// Why the sidecar refused or could not finish a job. [`SidecarError::code`] is the gRPC
/// status a `SubmitJob` caller sees.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A request field is invalid (INVALID_ARGUMENT, naming the field).
    #[error(transparent)]
    Invalid(#[from] WireError),
    /// The consumer's signature over the spec does not verify (UNAUTHENTICATED, as the
    /// verifier node answers it).
    #[error("consumer_signature: {0}")]
    ConsumerSignature(#[source] SignatureError),
    /// The data does not match the spec's commitment (INVALID_ARGUMENT): accepting could
    /// get honest proofs rejected and the provider's stake slashed.
    #[error("invalid field {field}: the data does not match spec.{commitment} (computed {computed}): refusing the job")]
    CommitmentMismatch {
        /// `a_npy` or `b_npy`.
        field: &'static str,
        /// `r_a` or `r_b`.
        commitment: &'static str,
        /// The root computed from the data.
        computed: MerkleRoot,
    },
    /// The challenge is signed by another verifier than the pinned one.
    #[error("the challenge is signed by verifier {}, not the pinned verifier {}: refusing to prove", signed_by, pinned)]
    UntrustedVerifier {
        /// The key this sidecar was configured with.
        pinned: PublicKey,
        /// The key that signed the challenge.
        signed_by: PublicKey,
    },
    /// The spec names another provider (FAILED_PRECONDITION).
    #[error("spec.provider is {named:?}, but this sidecar is {ours:?}")]
    WrongProvider {
        /// The key in the spec.
        named: PublicKey,
        /// This sidecar's key.
        ours: PublicKey,
    },
    /// No proving key for the spec's shape and verifying-key hash (FAILED_PRECONDITION).
    #[error("no proving key loaded for tile {}x{}, kc {} with vk_hash {vk_hash}", shape.tm, shape.tn, shape.kc)]
    UnknownKey {
        /// The spec's circuit shape.
        shape: CircuitShape,
        /// The spec's verifying-key hash.
        vk_hash: VkHash,
    },
    /// The job's deadline has passed (INVALID_ARGUMENT, as the verifier node answers it).
    #[error("invalid field spec.deadline_unix_ms: {deadline_unix_ms} is in the past")]
    Expired {
        /// The spec's deadline.
        deadline_unix_ms: u64,
    },
    /// The consumer's upload broke the session's rules otherwise (INVALID_ARGUMENT).
    #[error("the upload: {0}")]
    Upload(#[source] SessionError),
    /// The consumer's upload stream failed (its status is passed on).
    #[error("the upload stream failed: {status}")]
    UploadStream {
        /// The transport's status.
        status: tonic::Status,
    },
    /// Too many jobs in flight (RESOURCE_EXHAUSTED).
    #[error("busy: {max} jobs in flight, the most this sidecar runs at once")]
    Busy {
        /// The bound.
        max: usize,
    },
    /// The backend failed, or the self-check caught a wrong `C` (INTERNAL): nothing was
    /// committed.
    #[error("executing the job (nothing committed): {0}")]
    Backend(#[from] BackendError),
    /// The sampled tiles could not be opened or proven (INTERNAL).
    #[error("answering the challenge: {0}")]
    Respond(#[from] RespondError),
    /// The verifier cannot be reached (UNAVAILABLE).
    #[error("cannot reach the verifier at {url}: {reason}")]
    Connect {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The verifier refused a call (its status code is passed on).
    #[error("the verifier refused {call}: {status}")]
    Verifier {
        /// `Commit`, `Respond`, `GetReceipt`.
        call: &'static str,
        /// Its answer.
        status: tonic::Status,
    },
    /// The verifier's answer does not check (INTERNAL; the job is abandoned).
    #[error("the verifier's {what} does not check: {source}")]
    BadVerifierAnswer {
        /// Which answer.
        what: &'static str,
        /// Why.
        #[source]
        source: SessionError,
    },
    /// The OS random number generator failed (INTERNAL).
    #[error("OS random number generator: {source}")]
    Rng {
        /// Why.
        #[source]
        source: getrandom::Error,
    },
    /// The self-check's vectors could not be derived (INTERNAL; never for a valid spec).
    #[error("self-check vectors: {source}")]
    SelfCheckVectors {
        /// Why.
        #[source]
        source: matproof_protocol::transcript::TranscriptError,
    },
    /// A worker task died (INTERNAL).
    #[error("worker task: {reason}")]
    Worker {
        /// The join error, for people.
        reason: String,
    },
    /// The listener could not be bound (a start-up problem).
    #[error("sidecar set-up: binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The metrics listener did not start (a start-up problem).
    #[error("sidecar set-up: metrics: {0}")]
    Metrics(#[from] matproof_telemetry::HttpError),
    /// The configuration cannot run (a start-up problem).
    #[error("sidecar set-up: {field}: {reason}")]
    Config {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLS options are refused: a verifier URL that does not parse, plaintext off
    /// loopback, a malformed certificate (a start-up problem).
    #[error("sidecar set-up: TLS: {0}")]
    Tls(#[from] TlsError),
    /// The server ended with an error.
    #[error("sidecar server: {source}")]
    Server {
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
}

impl SidecarError {
    /// The gRPC status code for this error.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            SidecarError::Invalid(_)
            | SidecarError::CommitmentMismatch { .. }
            | SidecarError::Expired { .. }
            | SidecarError::Upload(_) => Code::InvalidArgument,
            SidecarError::UploadStream { status } => status.code(),
            SidecarError::ConsumerSignature(_) => Code::Unauthenticated,
            SidecarError::WrongProvider { .. }
            | SidecarError::UnknownKey { .. }
            | SidecarError::UntrustedVerifier { .. } => Code::FailedPrecondition,
            SidecarError::Busy { .. } => Code::ResourceExhausted,
            SidecarError::Connect { .. } => Code::Unavailable,
            // The link to the node failed (TLS refused, connection lost): the node is
            // unavailable to this sidecar, whatever tonic's UNKNOWN says.
            SidecarError::Verifier { status, .. } if is_transport_failure(status) => Code::Unavailable,
            SidecarError::Verifier { status, .. } => status.code(),
            SidecarError::Backend(_)
            | SidecarError::Respond(_)
            | SidecarError::BadVerifierAnswer { .. }
            | SidecarError::Rng { .. }
            | SidecarError::SelfCheckVectors { .. }
            | SidecarError::Worker { .. }
            | SidecarError::Bind { .. }
            | SidecarError::Metrics(_)
            | SidecarError::Config { .. }
            | SidecarError::Tls(_)
            | SidecarError::Server { .. } => Code::Internal,
        }
    }
}

impl From<SessionError> for SidecarError {
    /// A consumer's upload refused by the session's reader.
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Invalid(wire) => SidecarError::Invalid(wire),
            SessionError::Signature { source, .. } => SidecarError::ConsumerSignature(source),
            other => SidecarError::Upload(other),
        }
    }
}

impl From<SidecarError> for tonic::Status {
    fn from(error: SidecarError) -> Self {
        tonic::Status::new(error.code(), error.to_string())
    }
}

/// What a finished job leaves the provider.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// The job.
    pub job_id: JobId,
    /// The commitment to `C`.
    pub r_c: MerkleRoot,
    /// The verifier's verdict (signature checked).
    pub verdict: SignedVerdict,
    /// The receipt, validated field by field and matched to the job.
    pub receipt: Receipt,
    /// The receipt as the verifier sent it (what goes on disk).
    pub receipt_wire: pb::Receipt,
    /// The backend that computed `C`, and why it was chosen.
    pub backend: String,
    /// Time per phase, in order.
    pub timings: Vec<(Phase, Duration)>,
    /// The inputs, `C` and the trees (what the result stream sends `C` from).
    pub committed: Arc<CommittedJob>,
}

/// The best backend this machine has ([`crate::best_backend`]: CUDA when usable, else the
/// CPU), chosen once per process, and a line saying which and why.
fn best_backend() -> (Arc<dyn Backend>, &'static str) {
    static BEST: OnceLock<(Arc<dyn Backend>, String)> = OnceLock::new();
    let (backend, line) = BEST.get_or_init(|| {
        let (backend, line) = crate::best_backend();
        let line = line.strip_prefix("backend: ").map(str::to_string).unwrap_or(line);
        (Arc::from(backend), line)
    });
    (Arc::clone(backend), line.as_str())
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Every check the provider makes of a spec before taking its inputs: the spec names this
/// provider, the consumer signed it, the proving key for its shape and `vk_hash` is loaded
/// (when it asks for tile proofs), and the deadline is ahead. Returns the proving key.
pub fn check_spec(
    identity: &Identity,
    keys: &ProvingKeys,
    spec: &JobSpec,
    consumer_signature: &Signature,
) -> Result<Option<Arc<TileProvingKey>>, SidecarError> {
    spec.validate().map_err(|e| WireError { field: "spec".into(), reason: e.to_string() })?;
    if spec.provider != identity.public_key() {
        return Err(SidecarError::WrongProvider { named: spec.provider, ours: identity.public_key() });
    }
    session::verify_spec_signature(spec, consumer_signature).map_err(SidecarError::ConsumerSignature)?;
    let key = match spec.needs_proofs() {
        true => Some(
            keys.get(spec.shape, &spec.vk_hash)
                .ok_or_else(|| SidecarError::UnknownKey { shape: spec.shape, vk_hash: spec.vk_hash })?,
        ),
        false => None,
    };
    if spec.policy.deadline_unix_ms <= now_unix_ms() {
        return Err(SidecarError::Expired { deadline_unix_ms: spec.policy.deadline_unix_ms });
    }
    Ok(key)
}

/// [`check_spec`], then that the inputs have the spec's dimensions: every check the
/// provider makes before spending compute.
pub fn check_submission(
    identity: &Identity,
    keys: &ProvingKeys,
    spec: &JobSpec,
    consumer_signature: &Signature,
    a: &MatrixI8,
    b: &MatrixI8,
) -> Result<Option<Arc<TileProvingKey>>, SidecarError> {
    let key = check_spec(identity, keys, spec, consumer_signature)?;
    for (field, matrix, rows, cols) in [("rows (A)", a, spec.m, spec.k), ("rows (B)", b, spec.k, spec.n)] {
        if (matrix.rows() as u64, matrix.cols() as u64) != (rows, cols) {
            return Err(WireError {
                field: field.into(),
                reason: format!("{}×{}, the spec says {rows}×{cols}", matrix.rows(), matrix.cols()),
            }
            .into());
        }
    }
    Ok(key)
}

/// A client for the verifier `peer` (over TLS for `https://`, with the sidecar's client
/// certificate if it has one), with the protocol's message-size limits.
pub async fn connect_verifier(peer: &Peer) -> Result<pb::verifier_client::VerifierClient<Channel>, SidecarError> {
    let url = peer.url.as_str();
    let connect_error = |reason: String| SidecarError::Connect { url: url.to_string(), reason };
    let (endpoint, _) = peer.endpoint()?;
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(10))
        .timeout(VERIFIER_CALL_TIMEOUT)
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES);
    let channel = endpoint.connect().await.map_err(|e| {
        connect_error(format!("{e} ({})", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))
    })?;
    Ok(pb::verifier_client::VerifierClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

struct Clock<'a> {
    job_id: JobId,
    progress: &'a (dyn Fn(&Progress) + Send + Sync),
    timings: Vec<(Phase, Duration)>,
    current: Option<(Phase, Instant)>,
}

impl Clock<'_> {
    fn start(&mut self, phase: Phase) {
        (self.progress)(&Progress::Started { job_id: self.job_id, phase });
        self.current = Some((phase, Instant::now()));
    }

    fn finish(&mut self, detail: String) {
        if let Some((phase, start)) = self.current.take() {
            let elapsed = start.elapsed();
            self.timings.push((phase, elapsed));
            (self.progress)(&Progress::Finished { job_id: self.job_id, phase, elapsed, detail });
        }
    }
}

fn worker_error(e: tokio::task::JoinError) -> SidecarError {
    SidecarError::Worker { reason: e.to_string() }
}

fn bad_answer(what: &'static str, source: SessionError) -> SidecarError {
    SidecarError::BadVerifierAnswer { what, source }
}

/// Chunks buffered between the thread that writes (and hashes) the response and the
/// stream that sends it: bounds the memory a response holds beyond `C` itself.
const RESPONSE_QUEUE_CHUNKS: usize = 4;

/// The response stream, written on a blocking thread through the session's
/// [`ResponseWriter`] (full mode: all of `C` in whole-row chunks of at most
/// [`RESPONSE_CHUNK_BYTES`]; then the openings in sample order; then the signed end) and
/// sent as it is written.
fn response_stream(
    job: Arc<CommittedJob>,
    expect: ResponseExpectation,
    openings: Vec<TileOpening>,
    identity: Identity,
) -> tokio_stream::wrappers::ReceiverStream<pb::RespondChunk> {
    let (tx, rx) = tokio::sync::mpsc::channel(RESPONSE_QUEUE_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut writer = ResponseWriter::new(expect);
        let c = job.execution.c.as_slice();
        if expect.c_rows > 0 {
            for rows in c.chunks(rows_per_chunk(expect.row_len) * expect.row_len.max(1)) {
                if tx.blocking_send(writer.rows(rows)).is_err() {
                    return; // the call ended: nothing more to send
                }
            }
        }
        for opening in &openings {
            if tx.blocking_send(writer.opening(opening)).is_err() {
                return;
            }
        }
        let _ = tx.blocking_send(writer.end(&identity));
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The verifier node a job runs against.
#[derive(Debug, Clone)]
pub struct VerifierTarget {
    /// Its gRPC URL, e.g. `https://verifier.example:7001`, and the TLS options to dial it
    /// with (the CA of its certificate, the sidecar's client certificate).
    pub peer: Peer,
    /// Its public key, when known: the challenge must be signed by it (see
    /// [`super::SidecarConfig::verifier_key`]).
    pub pinned_key: Option<PublicKey>,
}

/// One job for [`run_job`]: who runs it, against which verifier, and the consumer's
/// submission.
pub struct RunJob<'a> {
    /// The verifier node.
    pub verifier: &'a VerifierTarget,
    /// The provider: jobs must name its key; it signs the commitment and the response.
    pub identity: &'a Identity,
    /// The proving keys it holds.
    pub keys: &'a ProvingKeys,
    /// The consumer's spec.
    pub spec: JobSpec,
    /// The consumer's signature over it.
    pub consumer_signature: Signature,
    /// `A`.
    pub a: MatrixI8,
    /// `B`.
    pub b: MatrixI8,
    /// Called from the calling task at the start and end of each [`Phase`].
    pub progress: &'a (dyn Fn(&Progress) + Send + Sync),
}

/// Runs one job as the provider against its verifier: checks the submission
/// ([`check_submission`]), executes on the best backend with a CSPRNG Freivalds
/// self-check, recomputes `R_A`, `R_B` and refuses a mismatch, commits `R_C`, checks the
/// signed challenge, proves the sampled tiles in parallel, streams the response, checks the
/// signed verdict and fetches the receipt. Nothing reaches the verifier before every local
/// check has passed. The job must already be open on the verifier.
pub async fn run_job(job: RunJob<'_>) -> Result<JobOutcome, SidecarError> {
    let RunJob { verifier, identity, keys, spec, consumer_signature, a, b, progress } = job;
    let job_id = spec.job_id();
    let mut clock = Clock { job_id, progress, timings: Vec::new(), current: None };

    clock.start(Phase::Check);
    let key = check_submission(identity, keys, &spec, &consumer_signature, &a, &b)?;
    clock.finish("consumer signature, provider key, proving key, deadline, input shapes".into());

    clock.start(Phase::Execute);
    let (committed, backend_line) = execute_job(&spec, a, b, &mut clock).await?;
    let r_c = committed.execution.c_tree.root();

    clock.start(Phase::Commit);
    let mut client = connect_verifier(&verifier.peer).await?;
    let challenge = commit(&mut client, verifier, identity, job_id, r_c).await?;
    clock.finish(format!("challenge signed by verifier {}", challenge.verifier_key));

    clock.start(Phase::Prove);
    let openings = prove(&spec, key, &challenge, &committed).await?;
    clock.finish(format!("{} sampled tiles opened and proven (Groth16)", openings.len()));

    clock.start(Phase::Respond);
    let expect = ResponseExpectation::for_job(&spec, r_c);
    let stream = response_stream(Arc::clone(&committed), expect, openings, Identity::from_seed(identity.seed()));
    let start = Instant::now();
    let verdict_wire =
        client.respond(stream).await.map_err(|status| SidecarError::Verifier { call: "Respond", status })?.into_inner();
    matproof_protocol::phase::phase("provider.respond_until_verdict", start, 0);
    let verdict = session::read_verdict(&verdict_wire, &job_id, &r_c, &challenge.verifier_key)
        .map_err(|e| bad_answer("verdict", e))?;
    let streamed =
        if spec.policy.mode == VerificationMode::Full { "all of C, then the openings" } else { "the openings" };
    clock.finish(format!("streamed {streamed}; verdict: {} ({})", verdict.verdict.as_str(), verdict.reason));

    clock.start(Phase::Receipt);
    let (receipt, receipt_wire) = fetch_receipt(&mut client, &spec, r_c).await?;
    clock.finish(format!("{} verdict(s), {} openings", receipt.verdicts.len(), receipt.openings.len()));
    Ok(JobOutcome {
        job_id,
        r_c,
        verdict,
        receipt,
        receipt_wire,
        backend: backend_line.to_string(),
        timings: clock.timings,
        committed,
    })
}

/// [`Phase::Prove`]: the sampled tiles opened and proven in parallel (none when the job asks
/// for no tile proofs).
async fn prove(
    spec: &JobSpec,
    key: Option<Arc<TileProvingKey>>,
    challenge: &SignedChallenge,
    committed: &Arc<CommittedJob>,
) -> Result<Vec<TileOpening>, SidecarError> {
    let Some(key) = key else { return Ok(Vec::new()) };
    let (samples, values, proving_job) = (spec.policy.samples as usize, challenge.challenge, Arc::clone(committed));
    tokio::task::spawn_blocking(move || {
        proving_job.respond(&key, &values, samples, rayon::current_num_threads().max(1))
    })
    .await
    .map_err(worker_error)?
    .map_err(SidecarError::from)
}

/// [`Phase::Execute`]: GEMM and self-check on the best backend, the trees of `A`, `B`, `C`;
/// `R_A`, `R_B` must be the spec's.
async fn execute_job(
    spec: &JobSpec,
    a: MatrixI8,
    b: MatrixI8,
    clock: &mut Clock<'_>,
) -> Result<(Arc<CommittedJob>, &'static str), SidecarError> {
    let tiling = spec.tiling().map_err(|e| WireError { field: "spec".into(), reason: e.to_string() })?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|source| SidecarError::Rng { source })?;
    let vectors = Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed(seed) }
        .freivalds_vectors(SELF_CHECK_ROUNDS, tiling.n)
        .map_err(|source| SidecarError::SelfCheckVectors { source })?;
    let scheme = spec.policy.input_scheme;
    let (backend, backend_line) = tokio::task::spawn_blocking(best_backend).await.map_err(worker_error)?;
    let backend_name = backend.name();
    (clock.progress)(&Progress::Backend { job_id: clock.job_id, name: backend_line.to_string() });
    let job = tokio::task::spawn_blocking(move || -> Result<_, SidecarError> {
        let execution = execute(backend.as_ref(), &tiling, &a, &b, &vectors)?;
        let start = Instant::now();
        let bytes = (a.as_slice().len() + b.as_slice().len()) as u64;
        let job = CommittedJob::with_scheme(scheme, tiling, a, b, execution)?;
        matproof_protocol::phase::phase("provider.input_commitments", start, bytes);
        Ok(job)
    })
    .await
    .map_err(worker_error)??;
    for (field, commitment, root, expected) in
        [("rows (A)", "r_a", job.a_tree.root(), spec.r_a), ("rows (B)", "r_b", job.b_tree.root(), spec.r_b)]
    {
        if root != expected {
            return Err(SidecarError::CommitmentMismatch { field, commitment, computed: root });
        }
    }
    let r_c = job.execution.c_tree.root();
    clock.finish(format!(
        "{backend_name}: C computed, self-checked ({SELF_CHECK_ROUNDS} Freivalds rounds), R_A and R_B match, R_C {r_c}"
    ));
    Ok((Arc::new(job), backend_line))
}

/// [`Phase::Commit`]: the signed commitment out, the signed challenge back (for this job
/// and `R_C`, from the pinned verifier when one is set).
async fn commit(
    client: &mut pb::verifier_client::VerifierClient<Channel>,
    verifier: &VerifierTarget,
    identity: &Identity,
    job_id: JobId,
    r_c: MerkleRoot,
) -> Result<SignedChallenge, SidecarError> {
    let request = pb::CommitRequest::from(&SignedCommit::sign(job_id, r_c, identity));
    let wire = client.commit(request).await.map_err(|status| SidecarError::Verifier { call: "Commit", status })?;
    let challenge =
        session::read_challenge(&wire.into_inner(), &job_id, &r_c).map_err(|e| bad_answer("challenge", e))?;
    if let Some(pinned) = verifier.pinned_key
        && challenge.verifier_key != pinned
    {
        return Err(SidecarError::UntrustedVerifier { pinned, signed_by: challenge.verifier_key });
    }
    Ok(challenge)
}

/// [`Phase::Receipt`]: the receipt, validated field by field and matched to the job.
async fn fetch_receipt(
    client: &mut pb::verifier_client::VerifierClient<Channel>,
    spec: &JobSpec,
    r_c: MerkleRoot,
) -> Result<(Receipt, pb::Receipt), SidecarError> {
    let receipt_wire = client
        .get_receipt(pb::GetReceiptRequest { job_id: spec.job_id().to_vec() })
        .await
        .map_err(|status| SidecarError::Verifier { call: "GetReceipt", status })?
        .into_inner();
    let receipt = Receipt::try_from(&receipt_wire).map_err(|e| bad_answer("receipt", e.into()))?;
    if receipt.spec != *spec || receipt.r_c != r_c {
        return Err(bad_answer(
            "receipt",
            SessionError::Mismatch { what: "receipt", reason: "is for another job or commitment" },
        ));
    }
    Ok((receipt, receipt_wire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use matproof_protocol::commit::{a_digests, digest_tree};
    use matproof_protocol::matrix::random_i8;
    use matproof_protocol::session::RESPONSE_CHUNK_BYTES;
    use matproof_protocol::tiling::Tiling;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn full_mode_chunks_cover_c_in_whole_rows_within_the_bound() {
        let shape = CircuitShape { tm: 2, tn: 2, kc: 4 };
        let (m, k, n) = (7, 4, 5);
        let tiling = Tiling::new(m, k, n, shape).unwrap();
        let a = random_i8(m, k, 1).unwrap();
        let b = random_i8(k, n, 2).unwrap();
        let challenge = Challenge { job_id: JobId([0; 32]), r_c: MerkleRoot([0; 32]), seed: Seed([1; 32]) };
        let vectors = challenge.freivalds_vectors(1, n).unwrap();
        let execution = execute(&CpuBackend::best(), &tiling, &a, &b, &vectors).unwrap();
        let c = execution.c.clone();
        let job = Arc::new(CommittedJob::new(tiling, a.clone(), b, execution).unwrap());
        assert_eq!(job.a_tree.root(), digest_tree(&a_digests(&tiling, &a).unwrap()).root());
        let provider = Identity::from_seed([4; 32]);
        let r_c = job.execution.c_tree.root();
        let expect = ResponseExpectation {
            job_id: JobId([3; 32]),
            r_c,
            provider: provider.public_key(),
            c_rows: m,
            row_len: n,
            openings: 0,
            budget_bytes: u64::MAX,
        };
        let messages: Vec<_> =
            response_stream(Arc::clone(&job), expect, vec![], Identity::from_seed([4; 32])).collect().await;
        let mut rows = Vec::new();
        for message in &messages[..messages.len() - 1] {
            assert_eq!(message.job_id, vec![3; 32]);
            let Some(pb::respond_chunk::Part::CRows(chunk)) = &message.part else { panic!("expected rows") };
            assert_eq!(chunk.first_row as usize * n, rows.len());
            assert_eq!(chunk.values.len() % (4 * n), 0);
            assert!(chunk.values.len() <= RESPONSE_CHUNK_BYTES);
            rows.extend(chunk.values.chunks_exact(4).map(|e| i32::from_le_bytes(e.try_into().unwrap())));
        }
        assert_eq!(rows, c.as_slice());
        assert!(matches!(messages.last().unwrap().part, Some(pb::respond_chunk::Part::End(_))));
        // What the sidecar streams, the session's reader authenticates.
        let mut reader = session::ResponseReader::new(expect);
        for message in messages {
            reader.push(message).unwrap();
        }
        assert_eq!(reader.finish().unwrap().c_rows.unwrap(), c.as_slice());
        let succinct = ResponseExpectation { c_rows: 0, ..expect };
        let succinct: Vec<_> = response_stream(job, succinct, vec![], provider).collect().await;
        assert_eq!(succinct.len(), 1);
    }

    #[test]
    fn status_codes_follow_the_error() {
        let wire = SidecarError::from(WireError { field: "a_npy".into(), reason: "bad".into() });
        assert_eq!(wire.code(), tonic::Code::InvalidArgument);
        assert!(tonic::Status::from(wire).message().contains("a_npy"));
        assert_eq!(SidecarError::Busy { max: 1 }.code(), tonic::Code::ResourceExhausted);
        assert_eq!(SidecarError::Expired { deadline_unix_ms: 0 }.code(), tonic::Code::InvalidArgument);
        let refused = SidecarError::Verifier { call: "Commit", status: tonic::Status::not_found("job") };
        assert_eq!(refused.code(), tonic::Code::NotFound);
    }
}
