//! One job, end to end, as the provider: check the submission, execute, commit to the
//! verifier, answer its challenge, collect the verdict and the receipt.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use matproof_circuits::TileProvingKey;
use matproof_protocol::identity::{Identity, PublicKey, Signature, SignatureError, verify};
use matproof_protocol::limits::MAX_MESSAGE_BYTES;
use matproof_protocol::matrix::MatrixI8;
use matproof_protocol::merkle::Digest;
use matproof_protocol::npy::{NpyError, read_matrix};
use matproof_protocol::receipt::{
    PURPOSE_COMMIT, PURPOSE_JOB, PURPOSE_RESPOND, Receipt, ResponseHasher, SignedChallenge, SignedVerdict,
    job_commitment_bytes, respond_signing_bytes,
};
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::tiling::CircuitShape;
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::{WireError, pb};
use tonic::transport::{Channel, Endpoint};

use crate::backend::{Backend, BackendError, execute};
use crate::respond::{CommittedJob, RespondError};

/// Largest `C` rows message of a full-mode response, in bytes of payload (each `sint32` is
/// at most 5 bytes on the wire). Whole rows always: a row longer than this goes alone.
pub const RESPONSE_CHUNK_BYTES: usize = 4 << 20;

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
        job_id: Digest,
        /// The phase.
        phase: Phase,
    },
    /// The backend that executes the job (during [`Phase::Execute`]).
    Backend {
        /// The job.
        job_id: Digest,
        /// Its name and why it was chosen, e.g. `cpu/avx2 (no usable GPU: …; using the CPU)`.
        name: String,
    },
    /// A phase ended.
    Finished {
        /// The job.
        job_id: Digest,
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
    by_vk_hash: HashMap<Digest, Arc<TileProvingKey>>,
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
    pub fn get(&self, shape: CircuitShape, vk_hash: &Digest) -> Option<Arc<TileProvingKey>> {
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
    pub fn shapes(&self) -> Vec<(CircuitShape, Digest)> {
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
    ConsumerSignature(SignatureError),
    /// The data does not match the spec's commitment (INVALID_ARGUMENT): accepting could
    /// get honest proofs rejected and the provider's stake slashed.
    #[error("invalid field {field}: the data does not match spec.{commitment} (computed {computed}): refusing the job")]
    CommitmentMismatch {
        /// `a_npy` or `b_npy`.
        field: &'static str,
        /// `r_a` or `r_b`.
        commitment: &'static str,
        /// The root computed from the data, hex.
        computed: String,
    },
    /// The challenge is signed by another verifier than the pinned one.
    #[error(
        "the challenge is signed by verifier {}, not the pinned verifier {}: refusing to prove",
        hex::encode(signed_by.0),
        hex::encode(pinned.0)
    )]
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
        /// The spec's verifying-key hash, hex.
        vk_hash: String,
    },
    /// The job's deadline has passed (INVALID_ARGUMENT, as the verifier node answers it).
    #[error("invalid field spec.deadline_unix_ms: {deadline_unix_ms} is in the past")]
    Expired {
        /// The spec's deadline.
        deadline_unix_ms: u64,
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
    #[error("the verifier's {what} does not check: {reason}")]
    BadVerifierAnswer {
        /// Which answer.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The OS random number generator failed (INTERNAL).
    #[error("OS random number generator: {0}")]
    Rng(String),
    /// A worker task died (INTERNAL).
    #[error("worker task: {0}")]
    Worker(String),
    /// A configuration or start-up problem.
    #[error("sidecar set-up: {0}")]
    Setup(String),
}

impl SidecarError {
    /// The gRPC status code for this error.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            SidecarError::Invalid(_) | SidecarError::CommitmentMismatch { .. } | SidecarError::Expired { .. } => {
                Code::InvalidArgument
            }
            SidecarError::ConsumerSignature(_) => Code::Unauthenticated,
            SidecarError::WrongProvider { .. }
            | SidecarError::UnknownKey { .. }
            | SidecarError::UntrustedVerifier { .. } => Code::FailedPrecondition,
            SidecarError::Busy { .. } => Code::ResourceExhausted,
            SidecarError::Connect { .. } => Code::Unavailable,
            SidecarError::Verifier { status, .. } => status.code(),
            SidecarError::Backend(_)
            | SidecarError::Respond(_)
            | SidecarError::BadVerifierAnswer { .. }
            | SidecarError::Rng(_)
            | SidecarError::Worker(_)
            | SidecarError::Setup(_) => Code::Internal,
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
    pub job_id: Digest,
    /// The commitment to `C`.
    pub r_c: Digest,
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
}

/// Parses an `i8` `.npy` from request bytes (size-limited), naming the field on error.
pub fn parse_npy_i8(field: &str, bytes: &[u8]) -> Result<MatrixI8, SidecarError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError {
            field: field.into(),
            reason: format!("{} bytes, at most {MAX_MESSAGE_BYTES}", bytes.len()),
        }
        .into());
    }
    read_matrix::<i8, _>(&mut &bytes[..])
        .map_err(|e: NpyError| WireError { field: field.into(), reason: e.to_string() }.into())
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

/// Every check the provider makes before spending compute: the spec names this provider,
/// the consumer signed it, the proving key for its shape and `vk_hash` is loaded, the
/// deadline is ahead, and the inputs have the spec's dimensions. Returns the proving key.
pub fn check_submission(
    identity: &Identity,
    keys: &ProvingKeys,
    spec: &JobSpec,
    consumer_signature: &Signature,
    a: &MatrixI8,
    b: &MatrixI8,
) -> Result<Arc<TileProvingKey>, SidecarError> {
    spec.validate().map_err(|e| WireError { field: "spec".into(), reason: e.to_string() })?;
    if spec.provider != identity.public_key() {
        return Err(SidecarError::WrongProvider { named: spec.provider, ours: identity.public_key() });
    }
    verify(&spec.consumer, PURPOSE_JOB, &spec.canonical_bytes(), consumer_signature)
        .map_err(SidecarError::ConsumerSignature)?;
    let key = keys
        .get(spec.shape, &spec.vk_hash)
        .ok_or_else(|| SidecarError::UnknownKey { shape: spec.shape, vk_hash: hex::encode(spec.vk_hash) })?;
    if spec.policy.deadline_unix_ms <= now_unix_ms() {
        return Err(SidecarError::Expired { deadline_unix_ms: spec.policy.deadline_unix_ms });
    }
    for (field, matrix, rows, cols) in [("a_npy", a, spec.m, spec.k), ("b_npy", b, spec.k, spec.n)] {
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

/// A client for the verifier at `url`, with the protocol's message-size limits.
pub async fn connect_verifier(url: &str) -> Result<pb::verifier_client::VerifierClient<Channel>, SidecarError> {
    let connect_error = |reason: String| SidecarError::Connect { url: url.to_string(), reason };
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| connect_error(e.to_string()))?;
    let endpoint = endpoint.connect_timeout(Duration::from_secs(10)).timeout(VERIFIER_CALL_TIMEOUT).tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| {
        connect_error(format!("{e} ({})", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))
    })?;
    Ok(pb::verifier_client::VerifierClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

struct Clock<'a> {
    job_id: Digest,
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
    SidecarError::Worker(e.to_string())
}

fn bad_answer(what: &'static str, reason: impl Into<String>) -> SidecarError {
    SidecarError::BadVerifierAnswer { what, reason: reason.into() }
}

/// The response stream: full mode, all of `C` in whole-row chunks of at most
/// [`RESPONSE_CHUNK_BYTES`]; then the openings in sample order; then the signed end.
fn response_messages(
    job: Arc<CommittedJob>,
    mode: VerificationMode,
    job_id: Digest,
    openings: Vec<pb::TileOpening>,
    end: pb::ResponseEnd,
) -> impl Iterator<Item = pb::RespondChunk> + Send + 'static {
    use pb::respond_chunk::Part;
    let (m, n) = (job.execution.c.rows(), job.execution.c.cols());
    let rows_per_chunk = (RESPONSE_CHUNK_BYTES / (5 * n.max(1))).max(1);
    let rows = if mode == VerificationMode::Full { m } else { 0 };
    let id = job_id.to_vec();
    let id2 = id.clone();
    let id3 = id.clone();
    (0..rows)
        .step_by(rows_per_chunk)
        .map(move |first| {
            let last = (first + rows_per_chunk).min(m);
            let values = job.execution.c.as_slice()[first * n..last * n].to_vec();
            pb::RespondChunk {
                job_id: id.clone(),
                part: Some(Part::CRows(pb::CRows { first_row: first as u64, values })),
            }
        })
        .chain(
            openings.into_iter().map(move |o| pb::RespondChunk { job_id: id2.clone(), part: Some(Part::Opening(o)) }),
        )
        .chain(std::iter::once(pb::RespondChunk { job_id: id3, part: Some(Part::End(end)) }))
}

/// The verifier node a job runs against.
#[derive(Debug, Clone)]
pub struct VerifierTarget {
    /// Its gRPC URL, e.g. `http://127.0.0.1:7001`.
    pub url: String,
    /// Its public key, when known: the challenge must be signed by it (see
    /// [`super::SidecarConfig::verifier_key`]).
    pub pinned_key: Option<PublicKey>,
}

/// Runs one job as the provider `identity` against the verifier `verifier`: checks
/// the submission ([`check_submission`]), executes on the best backend with a CSPRNG
/// Freivalds self-check, recomputes `R_A`, `R_B` and refuses a mismatch, commits `R_C`,
/// checks the signed challenge, proves the sampled tiles in parallel, streams the response,
/// checks the signed verdict and fetches the receipt. Nothing reaches the verifier before
/// every local check has passed. The job must already be open on the verifier.
///
/// `progress` is called from the calling task at the start and end of each [`Phase`].
#[allow(clippy::too_many_arguments)]
pub async fn run_job(
    verifier: &VerifierTarget,
    identity: &Identity,
    keys: &ProvingKeys,
    spec: JobSpec,
    consumer_signature: Signature,
    a: MatrixI8,
    b: MatrixI8,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<JobOutcome, SidecarError> {
    let job_id = spec.job_id();
    let mut clock = Clock { job_id, progress, timings: Vec::new(), current: None };

    clock.start(Phase::Check);
    let key = check_submission(identity, keys, &spec, &consumer_signature, &a, &b)?;
    let tiling = spec.tiling().map_err(|e| WireError { field: "spec".into(), reason: e.to_string() })?;
    clock.finish("consumer signature, provider key, proving key, deadline, input shapes".into());

    clock.start(Phase::Execute);
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SidecarError::Rng(e.to_string()))?;
    let vectors = Challenge { job_id: [0; 32], r_c: [0; 32], seed }
        .freivalds_vectors(SELF_CHECK_ROUNDS, tiling.n)
        .map_err(|e| SidecarError::Rng(e.to_string()))?;
    let (backend, backend_line) = tokio::task::spawn_blocking(best_backend).await.map_err(worker_error)?;
    let backend_name = backend.name();
    (clock.progress)(&Progress::Backend { job_id, name: backend_line.to_string() });
    let job = tokio::task::spawn_blocking(move || -> Result<_, SidecarError> {
        let execution = execute(backend.as_ref(), &tiling, &a, &b, &vectors)?;
        Ok(CommittedJob::new(tiling, a, b, execution)?)
    })
    .await
    .map_err(worker_error)??;
    for (field, commitment, root, expected) in
        [("a_npy", "r_a", job.a_tree.root(), spec.r_a), ("b_npy", "r_b", job.b_tree.root(), spec.r_b)]
    {
        if root != expected {
            return Err(SidecarError::CommitmentMismatch { field, commitment, computed: hex::encode(root) });
        }
    }
    let job = Arc::new(job);
    let r_c = job.execution.c_tree.root();
    clock.finish(format!(
        "{backend_name}: C computed, self-checked ({SELF_CHECK_ROUNDS} Freivalds rounds), R_A and R_B match, R_C {}",
        hex::encode(r_c)
    ));

    clock.start(Phase::Commit);
    let mut client = connect_verifier(&verifier.url).await?;
    let commit = pb::CommitRequest {
        job_id: job_id.to_vec(),
        r_c: r_c.to_vec(),
        provider_signature: identity.sign(PURPOSE_COMMIT, &job_commitment_bytes(&job_id, &r_c)).0.to_vec(),
    };
    let challenge_wire =
        client.commit(commit).await.map_err(|status| SidecarError::Verifier { call: "Commit", status })?.into_inner();
    let challenge = SignedChallenge::try_from(&challenge_wire).map_err(|e| bad_answer("challenge", e.to_string()))?;
    challenge.verify().map_err(|e| bad_answer("challenge", e.to_string()))?;
    if challenge.challenge.job_id != job_id || challenge.challenge.r_c != r_c {
        return Err(bad_answer("challenge", "it is for another job or commitment"));
    }
    if let Some(pinned) = verifier.pinned_key
        && challenge.verifier_key != pinned
    {
        return Err(SidecarError::UntrustedVerifier { pinned, signed_by: challenge.verifier_key });
    }
    clock.finish(format!("challenge signed by verifier {}", hex::encode(challenge.verifier_key.0)));

    clock.start(Phase::Prove);
    let samples = spec.policy.samples as usize;
    let proving_job = Arc::clone(&job);
    let values = challenge.challenge;
    let openings = tokio::task::spawn_blocking(move || {
        proving_job.respond(&key, &values, samples, rayon::current_num_threads().max(1))
    })
    .await
    .map_err(worker_error)??;
    clock.finish(format!("{} sampled tiles opened and proven (Groth16)", openings.len()));

    clock.start(Phase::Respond);
    // The end signature covers the whole response (DESIGN §4, docs/formats.md), so it
    // cannot be replayed under other contents.
    let full = spec.policy.mode == VerificationMode::Full;
    // Hashing all of C is CPU work: off the async threads.
    let (hashed_job, openings) = (Arc::clone(&job), Arc::new(openings));
    let hashed_openings = Arc::clone(&openings);
    let response_digest = tokio::task::spawn_blocking(move || {
        let c = hashed_job.execution.c.as_slice();
        let c_values = if full { c.len() as u64 } else { 0 };
        let mut hasher = ResponseHasher::new(&job_id, &r_c, c_values, hashed_openings.len() as u64);
        if full {
            hasher.rows(c);
        }
        for opening in hashed_openings.iter() {
            hasher.opening(opening);
        }
        hasher.finish()
    })
    .await
    .map_err(worker_error)?;
    let signed = respond_signing_bytes(&job_id, &r_c, &response_digest);
    let end = pb::ResponseEnd { provider_signature: identity.sign(PURPOSE_RESPOND, &signed).0.to_vec() };
    let openings_wire = openings.iter().map(pb::TileOpening::from).collect();
    let messages = response_messages(Arc::clone(&job), spec.policy.mode, job_id, openings_wire, end);
    let verdict_wire = client
        .respond(tokio_stream::iter(messages))
        .await
        .map_err(|status| SidecarError::Verifier { call: "Respond", status })?
        .into_inner();
    let verdict = SignedVerdict::try_from(&verdict_wire).map_err(|e| bad_answer("verdict", e.to_string()))?;
    verdict.verify().map_err(|e| bad_answer("verdict", e.to_string()))?;
    if verdict.job_id != job_id || verdict.r_c != r_c {
        return Err(bad_answer("verdict", "it is for another job or commitment"));
    }
    if verdict.verifier_key != challenge.verifier_key {
        return Err(bad_answer("verdict", "signed by another verifier than the challenge"));
    }
    let streamed =
        if spec.policy.mode == VerificationMode::Full { "all of C, then the openings" } else { "the openings" };
    clock.finish(format!("streamed {streamed}; verdict: {} ({})", verdict.verdict.as_str(), verdict.reason));

    clock.start(Phase::Receipt);
    let receipt_wire = client
        .get_receipt(pb::GetReceiptRequest { job_id: job_id.to_vec() })
        .await
        .map_err(|status| SidecarError::Verifier { call: "GetReceipt", status })?
        .into_inner();
    let receipt = Receipt::try_from(&receipt_wire).map_err(|e| bad_answer("receipt", e.to_string()))?;
    if receipt.spec != spec || receipt.r_c != r_c {
        return Err(bad_answer("receipt", "it is for another job or commitment"));
    }
    clock.finish(format!("{} verdict(s), {} openings", receipt.verdicts.len(), receipt.openings.len()));

    Ok(JobOutcome {
        job_id,
        r_c,
        verdict,
        receipt,
        receipt_wire,
        backend: backend_line.to_string(),
        timings: clock.timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use matproof_protocol::commit::{a_digests, digest_tree};
    use matproof_protocol::matrix::random_i8;
    use matproof_protocol::tiling::Tiling;

    #[test]
    fn full_mode_chunks_cover_c_in_whole_rows_within_the_bound() {
        let shape = CircuitShape { tm: 2, tn: 2, kc: 4 };
        let (m, k, n) = (7, 4, 5);
        let tiling = Tiling::new(m, k, n, shape).unwrap();
        let a = random_i8(m, k, 1).unwrap();
        let b = random_i8(k, n, 2).unwrap();
        let vectors = Challenge { job_id: [0; 32], r_c: [0; 32], seed: [1; 32] }.freivalds_vectors(1, n).unwrap();
        let execution = execute(&CpuBackend::best(), &tiling, &a, &b, &vectors).unwrap();
        let c = execution.c.clone();
        let job = Arc::new(CommittedJob::new(tiling, a.clone(), b, execution).unwrap());
        assert_eq!(job.a_tree.root(), digest_tree(&a_digests(&tiling, &a).unwrap()).root());
        let end = pb::ResponseEnd { provider_signature: vec![0; 64] };
        let messages: Vec<_> =
            response_messages(Arc::clone(&job), VerificationMode::Full, [3; 32], vec![], end.clone()).collect();
        let mut rows = Vec::new();
        for message in &messages[..messages.len() - 1] {
            assert_eq!(message.job_id, vec![3; 32]);
            let Some(pb::respond_chunk::Part::CRows(chunk)) = &message.part else { panic!("expected rows") };
            assert_eq!(chunk.first_row as usize * n, rows.len());
            assert_eq!(chunk.values.len() % n, 0);
            assert!(chunk.values.len() * 5 <= RESPONSE_CHUNK_BYTES);
            rows.extend_from_slice(&chunk.values);
        }
        assert_eq!(rows, c.as_slice());
        assert!(matches!(messages.last().unwrap().part, Some(pb::respond_chunk::Part::End(_))));
        let succinct: Vec<_> = response_messages(job, VerificationMode::Succinct, [3; 32], vec![], end).collect();
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

    #[test]
    fn npy_parsing_names_the_field() {
        let err = parse_npy_i8("b_npy", b"not a npy").unwrap_err();
        assert!(err.to_string().contains("b_npy"), "{err}");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
