//! The `matproof.v1.Verifier` handlers. The session's rules (what each message must hold,
//! the `Respond` order, budget and end signature) are `matproof_protocol::session`'s; this
//! module adds what only a node knows: its keys, its tables, the ledger and the clock.

use std::sync::Arc;

use matproof_protocol::commit::{CTreeBuilder, CommitStreamError};
use matproof_protocol::ids::{JobId, MerkleRoot};
use matproof_protocol::phase::{phase, phase_took};
use matproof_protocol::receipt::{
    RECEIPT_VERSION, Receipt, SignedChallenge, SignedResponseEnd, SignedVerdict, Verdict,
};
use matproof_protocol::session::{
    self, AuthenticatedResponse, ReadProgress, ResponseExpectation, ResponseReader, SessionError, SignedCommit,
};
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::{self, digest_from_wire, pb};
use prost::Message;
use sha2::{Digest as _, Sha256};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::accounts::{consumer_account, provider_account};
use super::judge::{self, Judgement, Response as JudgedResponse};
use super::records;
use super::settle::SettleError;
use super::store::{Admission, JobRow, JobState, Store, StoreError};
use super::{Node, now_unix_ms};
use crate::ledger::{self, LedgerError};

/// A response read whole, with its job and the load of that job's inputs (full mode).
struct ReadResponse {
    row: JobRow,
    response: AuthenticatedResponse,
    inputs: PendingInputs,
    /// Full mode: the `R_C` of the streamed `C`, hashed as its rows arrived.
    streamed_r_c: Option<MerkleRoot>,
}

/// `R_C`'s tree over a full-mode response's rows, hashed on a blocking thread of its own as
/// the chunks arrive: hashing `C` (0.3 s of one core at n = 8192, tile 8×8) overlaps its
/// transfer instead of following it, and stays off the thread that reads the stream.
struct ArrivingCTree {
    /// Accepted chunks of `C` (wire bytes: a `Bytes` clone, not a copy); bounded, so the
    /// rows waiting for the hasher stay within [`ARRIVING_QUEUE_CHUNKS`] chunks. Dropped
    /// (the response was refused midway), the closed queue ends the hasher.
    chunks: Option<tokio::sync::mpsc::Sender<prost::bytes::Bytes>>,
    hasher: Option<tokio::task::JoinHandle<Result<(CTreeBuilder, std::time::Duration), CommitStreamError>>>,
    /// `n`: entries per row.
    row_len: usize,
}

/// Chunks of `C` queued between the reader and the hasher (4 MiB each).
const ARRIVING_QUEUE_CHUNKS: usize = 4;

impl ArrivingCTree {
    fn for_job(spec: &JobSpec) -> Result<Self, Status> {
        if spec.policy.mode != VerificationMode::Full {
            return Ok(Self { chunks: None, hasher: None, row_len: 0 });
        }
        let tiling = spec.tiling().map_err(|e| Status::internal(format!("stored spec: {e}")))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<prost::bytes::Bytes>(ARRIVING_QUEUE_CHUNKS);
        let hasher = tokio::task::spawn_blocking(move || {
            let mut tree = CTreeBuilder::new(&tiling);
            let (mut values, mut hashing) = (Vec::new(), std::time::Duration::ZERO);
            while let Some(bytes) = rx.blocking_recv() {
                let start = std::time::Instant::now();
                values.clear();
                session::extend_c_values(&mut values, &bytes);
                tree.push_rows(tree.rows_pushed(), &values)?;
                hashing += start.elapsed();
            }
            Ok((tree, hashing))
        });
        Ok(Self { chunks: Some(tx), hasher: Some(hasher), row_len: spec.n as usize })
    }

    /// Queues the rows of a chunk the reader accepted (whole rows, in order).
    async fn push(&mut self, rows: Option<prost::bytes::Bytes>) {
        if let (Some(chunks), Some(rows)) = (&self.chunks, rows) {
            // A send fails only when the hasher stopped on an error, which `finish` reports.
            let _ = chunks.send(rows).await;
        }
    }

    /// The root, once the reader accepted the whole response (so all `m` rows arrived).
    async fn finish(mut self) -> Result<Option<MerkleRoot>, Status> {
        self.chunks = None;
        let Some(hasher) = self.hasher.take() else { return Ok(None) };
        let start = std::time::Instant::now();
        let hashed = hasher.await.map_err(|_| Status::internal("hashing C panicked"))?;
        let (tree, hashing) = hashed.map_err(|e| Status::internal(format!("streamed C: {e}")))?;
        let bytes = (4 * tree.rows_pushed() * self.row_len) as u64;
        let root = tree.finish().map_err(|e| Status::internal(format!("streamed C: {e}")))?.root();
        phase_took("verifier.c_tree", hashing, bytes);
        phase("verifier.await_c_tree", start, 0);
        Ok(Some(root))
    }
}

type StoredInputs = Option<(Vec<u8>, Vec<u8>)>;

/// A full-mode job's `A`, `B` being read from the store on a task of their own, started as
/// the response's first chunk arrives: on SQLite, reading 128 MiB of BLOBs takes about as
/// long as receiving `C` at n = 8192, so the two overlap. Dropped unawaited (the response
/// was refused), the load is cancelled.
struct PendingInputs(Option<tokio::task::JoinHandle<Result<StoredInputs, StoreError>>>);

impl PendingInputs {
    fn start(store: &Store, row: &JobRow) -> Self {
        if row.spec.policy.mode != VerificationMode::Full {
            return Self(None);
        }
        let (store, job_id) = (store.clone(), row.job_id);
        Self(Some(tokio::spawn(async move {
            let start = std::time::Instant::now();
            let inputs = store.load_inputs(&job_id).await?;
            let bytes = inputs.as_ref().map_or(0, |(a, b)| (a.len() + b.len()) as u64);
            phase("verifier.load_inputs", start, bytes);
            Ok(inputs)
        })))
    }

    /// The inputs (none in succinct mode, or when the store holds none for the job).
    async fn wait(mut self) -> Result<StoredInputs, Status> {
        let Some(task) = self.0.take() else { return Ok(None) };
        let start = std::time::Instant::now();
        let loaded = task.await.map_err(|_| Status::internal("loading the job's inputs panicked"))?;
        phase("verifier.await_inputs", start, 0);
        loaded.map_err(store_status)
    }
}

impl Drop for PendingInputs {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The tonic service: a handle on the node's shared state.
#[derive(Clone)]
pub(crate) struct VerifierService(pub(crate) Arc<Node>);

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid field {field}: {reason}"))
}

fn session_status(e: SessionError) -> Status {
    match e {
        SessionError::Invalid(w) => Status::invalid_argument(w.to_string()),
        SessionError::OverBudget { .. } => Status::resource_exhausted(e.to_string()),
        SessionError::Signature { .. } => Status::unauthenticated(e.to_string()),
        SessionError::Mismatch { .. } | SessionError::ResultMismatch { .. } => {
            Status::failed_precondition(e.to_string())
        }
        SessionError::Spec(_) => Status::invalid_argument(e.to_string()),
    }
}

fn store_status(e: StoreError) -> Status {
    tracing::error!("node tables: {e}");
    Status::internal("node database error")
}

fn ledger_status(e: LedgerError) -> Status {
    match e {
        LedgerError::InsufficientFunds { account, needed, available } => Status::failed_precondition(format!(
            "insufficient funds: account {account} holds {available}, the job needs {needed}"
        )),
        LedgerError::InvalidAccount { .. } | LedgerError::OutOfRange { .. } => {
            Status::invalid_argument(format!("ledger refused: {e}"))
        }
        LedgerError::IdempotencyConflict { .. }
        | LedgerError::InvalidTransition { .. }
        | LedgerError::VerdictConflict { .. }
        | LedgerError::UnknownJob { .. } => Status::failed_precondition(format!("ledger refused: {e}")),
        other => {
            tracing::error!("ledger: {other}");
            Status::unavailable("ledger unavailable, retry")
        }
    }
}

fn settle_status(e: SettleError) -> Status {
    match e {
        SettleError::Store(e) => store_status(e),
        SettleError::Ledger(e) => ledger_status(e),
        SettleError::UnknownJob { job_id } => job_not_found(&job_id),
        SettleError::NoVerdict { .. } => Status::failed_precondition("no verdict to settle"),
    }
}

fn job_not_found(job_id: &JobId) -> Status {
    Status::not_found(format!("no job {job_id}"))
}

/// The hash of a signed verdict's body, as the ledger records it.
fn verdict_hash(v: &SignedVerdict) -> [u8; 32] {
    Sha256::digest(SignedVerdict::signing_bytes(&v.job_id, &v.r_c, v.verdict, &v.reason)).into()
}

impl Node {
    fn key_for(&self, spec: &JobSpec) -> Option<&matproof_circuits::PinnedVerifyingKey> {
        self.keys.get(&spec.vk_hash)
    }

    /// With `--tls-ca`, the provider's calls (`Commit`, `Respond`) need a client certificate
    /// that chains to it (the handshake checked the chain): only the node's known sidecars
    /// run jobs. Consumers' calls need none.
    fn check_provider_certificate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.provider_certificate_required && !matproof_protocol::tls::has_client_certificate(request) {
            return Err(Status::unauthenticated(
                "provider calls need a client certificate signed by the node's --tls-ca",
            ));
        }
        Ok(())
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.permits.clone().acquire_owned().await.map_err(|_| Status::unavailable("node shutting down"))
    }

    async fn load(&self, job_id: &JobId) -> Result<JobRow, Status> {
        self.store.load(job_id).await.map_err(store_status)?.ok_or_else(|| job_not_found(job_id))
    }

    /// The stored verdict of a judged job (settling it if that did not complete).
    async fn stored_verdict(&self, row: &JobRow) -> Result<pb::SignedVerdict, Status> {
        let bytes = row.receipt.as_deref().ok_or_else(|| Status::internal("no stored receipt"))?;
        let receipt = pb::Receipt::decode(bytes).map_err(|_| Status::internal("stored receipt does not decode"))?;
        if !row.settled {
            self.settle_job(&row.job_id).await.map_err(settle_status)?;
        }
        receipt.verdicts.into_iter().next().ok_or_else(|| Status::internal("stored receipt has no verdict"))
    }

    /// What only this node checks of a spec: it holds the key (when the job asks for tile
    /// proofs), the deadline is ahead, the amounts fit the ledger.
    fn accepts(&self, spec: &JobSpec) -> Result<(), Status> {
        if spec.needs_proofs() && self.key_for(spec).is_none() {
            return Err(Status::failed_precondition(format!(
                "spec.vk_hash {} is not a key this verifier holds",
                spec.vk_hash
            )));
        }
        if spec.policy.deadline_unix_ms <= now_unix_ms() {
            return Err(invalid("spec.deadline_unix_ms", "in the past"));
        }
        // One node's approval can never reach a quorum above 1, and verifier sets are not
        // supported yet: such a job is refused up front rather than paid below its quorum.
        if spec.policy.quorum > 1 {
            return Err(Status::failed_precondition(format!(
                "spec.policy.quorum is {}: this node settles on its own verdict, so it takes only jobs with quorum 1",
                spec.policy.quorum
            )));
        }
        if spec.price > ledger::MAX_AMOUNT || spec.slash_amount > ledger::MAX_AMOUNT {
            return Err(invalid("spec.price", "amounts must be at most i64::MAX"));
        }
        Ok(())
    }

    /// Persists a new job if a slot is free and the consumer can pay, then escrows the
    /// price; the same spec again only replays the (idempotent) escrow.
    async fn admit(&self, open: &session::UploadHead, inputs: Option<(&[u8], &[u8])>) -> Result<(), Status> {
        let (spec, job_id) = (&open.spec, open.job_id());
        let consumer = consumer_account(&spec.consumer);
        let provider = provider_account(&spec.provider);
        let escrow =
            || self.ledger.open_pending(&job_id, &consumer, &provider, spec.price, spec.policy.deadline_unix_ms);
        if self.store.load(&job_id).await.map_err(store_status)?.is_some() {
            escrow().await.map_err(ledger_status)?;
            return Ok(());
        }
        // One admission at a time in this process (FIFO, holding one pool connection); the
        // hard bound itself is the database's, which also holds across nodes. A job whose
        // escrow the ledger will refuse must not take a slot, or a consumer with no funds
        // could hold every slot until the deadlines pass: the balance check, the admission
        // and the escrow all run under the admission lock, so within a node the next
        // admission sees this one's escrow. (Nodes sharing a database can each pass the
        // check once for the same money; such a row holds its slot only until deadline +
        // grace.)
        let _admission = self.admission.lock().await;
        let available = self.ledger.balance(&consumer).await.map_err(ledger_status)?;
        if available < spec.price {
            let e = LedgerError::InsufficientFunds { account: consumer.clone(), needed: spec.price, available };
            return Err(ledger_status(e));
        }
        let admitted = self
            .store
            .admit_job(spec, &open.consumer_signature, inputs, now_unix_ms(), self.limits.max_open_jobs)
            .await
            .map_err(store_status)?;
        if admitted == Admission::Full {
            return Err(Status::resource_exhausted("too many jobs awaiting a response"));
        }
        escrow().await.map_err(ledger_status)?;
        if admitted == Admission::Inserted {
            self.metrics.jobs_opened.inc();
            tracing::info!(job_id = %job_id, price = spec.price, mode = ?spec.policy.mode, "job opened");
        }
        Ok(())
    }

    /// Reads a `Respond` stream through the session's reader; `Ok(Err(verdict))` when the
    /// job was judged already (its stored verdict answers). A full-mode job's inputs are
    /// read from the store while `C` streams in, not after it.
    async fn read_response(
        &self,
        stream: &mut Streaming<pb::RespondChunk>,
    ) -> Result<Result<ReadResponse, pb::SignedVerdict>, Status> {
        let first = stream.next().await.ok_or_else(|| invalid("job_id", "empty stream"))??;
        let job_id = session::chunk_job_id(&first).map_err(session_status)?;
        record_job_id(&job_id);
        let row = self.load(&job_id).await?;
        if row.receipt.is_some() {
            return Ok(Err(self.stored_verdict(&row).await?));
        }
        let Some(r_c) = row.r_c() else {
            return Err(Status::failed_precondition("the job has no commitment yet"));
        };
        let mut reader = ResponseReader::new(ResponseExpectation::for_job(&row.spec, r_c));
        let inputs = PendingInputs::start(&self.store, &row);
        let mut c_tree = ArrivingCTree::for_job(&row.spec)?;
        let mut next = Some(first);
        while let Some(chunk) = next.take() {
            let rows = match &chunk.part {
                Some(pb::respond_chunk::Part::CRows(c)) => Some(c.values.clone()),
                _ => None,
            };
            let progress = reader.push(chunk).map_err(session_status)?;
            c_tree.push(rows).await;
            if progress == ReadProgress::Ended {
                break;
            }
            next = stream.next().await.transpose()?;
        }
        let response = reader.finish().map_err(session_status)?;
        let streamed_r_c = c_tree.finish().await?;
        Ok(Ok(ReadResponse { row, response, inputs, streamed_r_c }))
    }

    /// The checks of an authenticated response (the deadline, then `judge` on a blocking
    /// thread).
    async fn judge_response(
        &self,
        row: &JobRow,
        response: AuthenticatedResponse,
        inputs: PendingInputs,
        streamed_r_c: Option<MerkleRoot>,
        arrived: u64,
    ) -> Result<Judgement, Status> {
        let spec = &row.spec;
        if arrived > spec.policy.deadline_unix_ms {
            return Ok(Judgement {
                verdict: Verdict::Rejected,
                reason: format!("deadline: the response ended at {arrived}, after {}", spec.policy.deadline_unix_ms),
                fraud_proof: None,
            });
        }
        let key = match spec.needs_proofs() {
            true => Some(
                self.key_for(spec)
                    .cloned()
                    .ok_or_else(|| Status::failed_precondition("this verifier no longer holds the job's key"))?,
            ),
            false => None,
        };
        let inputs = inputs.wait().await?;
        let challenge = row.challenge.as_ref().ok_or_else(|| Status::internal("no stored challenge"))?;
        let judged = JudgedResponse {
            spec: spec.clone(),
            r_c: response.r_c,
            streamed_r_c,
            challenge: challenge.challenge,
            c_rows: response.c_rows,
            openings: response.openings,
            inputs,
        };
        let metrics = self.metrics.clone();
        let start = std::time::Instant::now();
        let judgement = tokio::task::spawn_blocking(move || judge::judge(judged, key.as_ref(), &metrics))
            .await
            .map_err(|_| Status::internal("the check panicked"))?;
        self.metrics.response_check_seconds.observe(start.elapsed());
        Ok(judgement)
    }

    /// Signs the verdict, stores it with the receipt (once), then settles. A job that
    /// expired while it was being checked is rejected for its deadline instead.
    async fn record(
        &self,
        row: &JobRow,
        provider_response: (Vec<matproof_protocol::opening::TileOpening>, SignedResponseEnd),
        mut judgement: Judgement,
    ) -> Result<pb::SignedVerdict, Status> {
        let job_id = row.job_id;
        let challenge = row.challenge.clone().ok_or_else(|| Status::internal("no stored challenge"))?;
        let r_c = challenge.challenge.r_c;
        let (openings, end) = provider_response;
        let mut allowed = match judgement.verdict {
            Verdict::Approved => vec![JobState::Challenged],
            Verdict::Rejected => vec![JobState::Challenged, JobState::Expired],
        };
        for _attempt in 0..2 {
            let signed_at = std::time::Instant::now();
            let verdict = SignedVerdict::sign(job_id, r_c, judgement.verdict, &judgement.reason, &self.identity);
            let receipt = self.receipt(row, &challenge, (&openings, &end), &verdict, &judgement)?;
            let state = match judgement.verdict {
                Verdict::Approved => JobState::Approved,
                Verdict::Rejected => JobState::Rejected,
            };
            let fraud = judgement.fraud_proof.is_some();
            let hash = verdict_hash(&verdict);
            if self
                .store
                .store_verdict(&job_id, state, &receipt, &end, &hash, fraud, &allowed)
                .await
                .map_err(store_status)?
            {
                self.metrics.verdict(judgement.verdict, fraud);
                tracing::info!(
                    job_id = %job_id,
                    verdict = judgement.verdict.as_str(),
                    fraud,
                    reason = %judgement.reason,
                    "verdict recorded"
                );
                self.settle_job(&job_id).await.map_err(settle_status)?;
                self.metrics.settlement_seconds.observe(signed_at.elapsed());
                return Ok((&verdict).into());
            }
            let now = self.load(&job_id).await?;
            if now.receipt.is_some() {
                // Another response for this job was judged first: its verdict stands.
                return self.stored_verdict(&now).await;
            }
            if now.state != JobState::Expired || judgement.verdict != Verdict::Approved {
                break;
            }
            // Checked in time, but the job expired meanwhile (checks outlasted the grace).
            judgement = Judgement {
                verdict: Verdict::Rejected,
                reason: "deadline: the job expired while its response was being checked".into(),
                fraud_proof: None,
            };
            allowed = vec![JobState::Expired];
        }
        Err(Status::failed_precondition("the job cannot take a verdict"))
    }

    /// The encoded receipt of a judged job, with the provider's commit signature and its
    /// response (`openings`, end).
    fn receipt(
        &self,
        row: &JobRow,
        challenge: &SignedChallenge,
        (openings, end): (&[matproof_protocol::opening::TileOpening], &SignedResponseEnd),
        verdict: &SignedVerdict,
        judgement: &Judgement,
    ) -> Result<Vec<u8>, Status> {
        let summary = crate::check_summary(&row.spec).map_err(|e| Status::internal(format!("summary: {e}")))?;
        // A job committed before the node stored commit signatures (migration 0004) cannot
        // get a receipt that binds its provider.
        let commit_signature = row.commit_signature.ok_or_else(|| {
            Status::failed_precondition("the job was committed before this node kept commit signatures: no receipt")
        })?;
        let receipt = Receipt {
            version: RECEIPT_VERSION,
            spec: row.spec.clone(),
            consumer_signature: row.consumer_signature,
            r_c: challenge.challenge.r_c,
            commit_signature,
            response_end: *end,
            challenge: challenge.clone(),
            openings: openings.to_vec(),
            summary,
            verdicts: vec![verdict.clone()],
            fraud_proof: judgement.fraud_proof.clone(),
        };
        Ok(wire::encode_receipt(&receipt))
    }

    /// A new commitment: draw the seed, sign the challenge, persist it (a conditional
    /// update: of two racing commits one wins, and the loser answers with the winner's).
    async fn challenge(&self, row: &JobRow, commit: &SignedCommit) -> Result<pb::Challenge, Status> {
        let transfer = self.ledger.transfer(&commit.job_id).await.map_err(ledger_status)?;
        if transfer.state != ledger::TransferState::Pending {
            return Err(Status::failed_precondition(format!("the job's escrow is {}", transfer.state)));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| {
            tracing::error!("OS random number generator: {e}");
            Status::unavailable("no randomness")
        })?;
        let values = Challenge { job_id: commit.job_id, r_c: commit.r_c, seed: matproof_protocol::ids::Seed(seed) };
        let challenge = SignedChallenge::sign(values, &self.identity);
        if self.store.set_challenge(&challenge, &commit.signature).await.map_err(store_status)? {
            self.metrics.challenges.inc();
            tracing::info!(job_id = %commit.job_id, r_c = %commit.r_c, "committed: challenge issued");
            return Ok((&challenge).into());
        }
        let row = self.load(&row.job_id).await?;
        match &row.challenge {
            Some(stored) => same_commitment(stored, commit),
            None => Err(Status::failed_precondition(format!("job is {}", row.state.as_str()))),
        }
    }
}

/// Reads the rows of `A` and `B` of an upload through the session's reader.
async fn read_inputs(
    head: &session::UploadHead,
    stream: &mut Streaming<pb::JobUpload>,
) -> Result<(matproof_protocol::matrix::MatrixI8, matproof_protocol::matrix::MatrixI8), Status> {
    let mut reader = session::InputsReader::new(head);
    while !reader.is_complete() {
        let Some(message) = stream.next().await.transpose()? else { break };
        reader.push(message).map_err(session_status)?;
    }
    if reader.is_complete() && stream.next().await.transpose()?.is_some() {
        return Err(invalid("rows", "more than A and B"));
    }
    reader.finish().map_err(session_status)
}

/// Input bytes an upload holds against the node's disk budget until it is stored (or fails).
pub(crate) struct Reservation<'a> {
    node: &'a Node,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut reserved = self.node.reserved_bytes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *reserved = reserved.saturating_sub(self.bytes);
    }
}

impl Node {
    /// Reserves `bytes` of the disk budget for an upload, or refuses it up front
    /// (`RESOURCE_EXHAUSTED`) when what is stored, what other uploads reserved and this one
    /// would exceed `max_stored_bytes`.
    async fn reserve_storage(&self, bytes: u64) -> Result<Reservation<'_>, Status> {
        let stored = self.store.stored_input_bytes().await.map_err(store_status)?;
        let budget = self.limits.max_stored_bytes;
        let mut reserved = self.reserved_bytes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = stored.saturating_add(*reserved).saturating_add(bytes);
        if total > budget {
            return Err(Status::resource_exhausted(format!(
                "the job's inputs need {bytes} bytes; this node stores {stored} and {} are being uploaded, \
                 of a budget of {budget} (--max-stored-bytes)",
                *reserved
            )));
        }
        *reserved += bytes;
        Ok(Reservation { node: self, bytes })
    }
}

/// One commitment per job: the same `R_C` gets the stored challenge back, another is refused.
fn same_commitment(stored: &SignedChallenge, commit: &SignedCommit) -> Result<pb::Challenge, Status> {
    if stored.challenge.r_c == commit.r_c {
        Ok(stored.into())
    } else {
        Err(Status::failed_precondition(format!(
            "job {} is committed to another R_C: one commitment per job",
            commit.job_id
        )))
    }
}

impl VerifierService {
    async fn open_job_inner(
        &self,
        request: Request<Streaming<pb::JobUpload>>,
    ) -> Result<Response<pb::OpenJobResponse>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let mut stream = request.into_inner();
        let first = stream.next().await.ok_or_else(|| invalid("spec", "empty upload"))??;
        let head = session::read_upload_head(first).map_err(session_status)?;
        record_job_id(&head.job_id());
        node.accepts(&head.spec)?;
        if !head.verifier_takes_inputs() {
            if stream.next().await.transpose()?.is_some() {
                return Err(invalid("rows", "succinct mode takes no A, B"));
            }
            node.admit(&head, None).await?;
            return Ok(Response::new(pb::OpenJobResponse { job_id: head.job_id().to_vec() }));
        }
        let reservation = node.reserve_storage(head.input_bytes()).await?;
        let start = std::time::Instant::now();
        let (a, b) = read_inputs(&head, &mut stream).await?;
        node.metrics.input_bytes.add(head.input_bytes());
        phase("verifier.upload", start, head.input_bytes());
        // The check is CPU-bound: on a blocking thread; the matrices come back as bytes.
        let (spec, start) = (head.spec.clone(), std::time::Instant::now());
        let (a, b) = tokio::task::spawn_blocking(move || {
            let checked = judge::check_inputs(&spec, &a, &b);
            phase("verifier.input_check", start, (a.as_slice().len() + b.as_slice().len()) as u64);
            checked.map(|()| (judge::matrix_bytes(a), judge::matrix_bytes(b)))
        })
        .await
        .map_err(|_| Status::internal("input check panicked"))?
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let start = std::time::Instant::now();
        node.admit(&head, Some((&a, &b))).await?;
        phase("verifier.store_inputs", start, head.input_bytes());
        drop(reservation);
        Ok(Response::new(pb::OpenJobResponse { job_id: head.job_id().to_vec() }))
    }

    async fn commit_inner(&self, request: Request<pb::CommitRequest>) -> Result<Response<pb::Challenge>, Status> {
        let node = &self.0;
        node.check_provider_certificate(&request)?;
        let _permit = node.permit().await?;
        let commit = SignedCommit::try_from(&request.into_inner()).map_err(session_status)?;
        record_job_id(&commit.job_id);
        let row = node.load(&commit.job_id).await?;
        commit.verify(&row.spec.provider).map_err(session_status)?;
        if let Some(challenge) = &row.challenge {
            return same_commitment(challenge, &commit).map(Response::new);
        }
        if row.state != JobState::Opened {
            return Err(Status::failed_precondition(format!("job is {}", row.state.as_str())));
        }
        if now_unix_ms() > row.spec.policy.deadline_unix_ms {
            return Err(Status::failed_precondition("the job's deadline has passed"));
        }
        node.challenge(&row, &commit).await.map(Response::new)
    }

    async fn respond_inner(
        &self,
        request: Request<Streaming<pb::RespondChunk>>,
    ) -> Result<Response<pb::SignedVerdict>, Status> {
        let node = &self.0;
        node.check_provider_certificate(&request)?;
        let _permit = node.permit().await?;
        let start = std::time::Instant::now();
        let ReadResponse { row, response, inputs, streamed_r_c } =
            match node.read_response(&mut request.into_inner()).await? {
                Ok(read) => read,
                Err(stored) => return Ok(Response::new(stored)),
            };
        let c_bytes = response.c_rows.as_ref().map_or(0, |c| 4 * c.len() as u64);
        node.metrics.c_bytes.add(c_bytes);
        phase("verifier.receive", start, c_bytes);
        let arrived = now_unix_ms();
        let provider_response = (response.openings.clone(), response.end);
        let start = std::time::Instant::now();
        let judgement = node.judge_response(&row, response, inputs, streamed_r_c, arrived).await?;
        phase("verifier.judge", start, 0);
        let start = std::time::Instant::now();
        let verdict = node.record(&row, provider_response, judgement).await.map(Response::new);
        phase("verifier.record", start, 0);
        verdict
    }

    async fn get_receipt_inner(
        &self,
        request: Request<pb::GetReceiptRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let job_id: JobId = digest_from_wire("job_id", &request.into_inner().job_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        record_job_id(&job_id);
        let row = node.load(&job_id).await?;
        let bytes = row.receipt.ok_or_else(|| Status::not_found("no verdict yet"))?;
        let receipt = pb::Receipt::decode(bytes.as_slice()).map_err(|_| Status::internal("stored receipt"))?;
        Ok(Response::new(receipt))
    }

    async fn get_job_status_inner(
        &self,
        request: Request<pb::JobStatusRequest>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let job_id: JobId = digest_from_wire("job_id", &request.into_inner().job_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        record_job_id(&job_id);
        let row = node.load(&job_id).await?;
        let escrow = match node.ledger.transfer(&job_id).await {
            Ok(t) => t.state.as_str().to_string(),
            Err(LedgerError::UnknownJob { .. }) => "none".to_string(),
            Err(e) => return Err(ledger_status(e)),
        };
        Ok(Response::new(pb::JobStatus {
            job_id: job_id.to_vec(),
            state: row.state.as_str().to_string(),
            escrow,
            deadline_unix_ms: row.spec.policy.deadline_unix_ms,
            r_c: row.r_c().map(|r| r.to_vec()).unwrap_or_default(),
        }))
    }
}

impl VerifierService {
    async fn get_provider_record_inner(
        &self,
        request: Request<pb::ProviderRecordRequest>,
    ) -> Result<Response<pb::ProviderRecord>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let key: [u8; 32] = digest_from_wire("provider", &request.into_inner().provider)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let provider = matproof_protocol::identity::PublicKey(key);
        match node.store.provider_record(&provider).await.map_err(store_status)? {
            Some(record) => Ok(Response::new((&record).into())),
            None => Err(Status::not_found(format!("no job on this network names provider {}", provider.to_hex()))),
        }
    }

    async fn list_providers_inner(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let request = request.into_inner();
        if request.page_size == 0 || request.page_size > records::MAX_PROVIDERS_PAGE {
            let limit = records::MAX_PROVIDERS_PAGE;
            return Err(invalid("page_size", format!("{} is not in 1..={limit}", request.page_size)));
        }
        let ranked = node.store.ranked_providers().await.map_err(store_status)?;
        let page = ranked.iter().skip(usize::try_from(request.offset).unwrap_or(usize::MAX));
        let mut providers = Vec::with_capacity(request.page_size as usize);
        for (key, _) in page.take(request.page_size as usize) {
            // A provider ranked a moment ago has a record: jobs are never deleted.
            let record = node.store.provider_record(key).await.map_err(store_status)?;
            let record = record.ok_or_else(|| Status::internal("a ranked provider has no record"))?;
            providers.push((&record).into());
        }
        Ok(Response::new(pb::ListProvidersResponse { providers, total: ranked.len() as u64 }))
    }
}

/// Names the job in the current RPC's span, once the request has said which it is.
fn record_job_id(job_id: &JobId) {
    tracing::Span::current().record("job_id", tracing::field::display(job_id));
}

/// The span of one RPC: its method, and the job once known (`record_job_id`). Every log
/// line of the call carries both; no field ever holds a secret or matrix bytes.
fn rpc_span(method: &'static str) -> tracing::Span {
    tracing::info_span!("rpc", method, job_id = tracing::field::Empty)
}

impl VerifierService {
    /// Counts a refusal by method and code and logs it in the call's span.
    fn answered<T>(&self, method: &'static str, span: &tracing::Span, answer: Result<T, Status>) -> Result<T, Status> {
        self.0.metrics.refusals.count(method, span, answer)
    }
}

#[tonic::async_trait]
impl pb::verifier_server::Verifier for VerifierService {
    async fn open_job(
        &self,
        request: Request<Streaming<pb::JobUpload>>,
    ) -> Result<Response<pb::OpenJobResponse>, Status> {
        let span = rpc_span("OpenJob");
        let answer = self.open_job_inner(request).instrument(span.clone()).await;
        self.answered("OpenJob", &span, answer)
    }

    async fn commit(&self, request: Request<pb::CommitRequest>) -> Result<Response<pb::Challenge>, Status> {
        let span = rpc_span("Commit");
        let answer = self.commit_inner(request).instrument(span.clone()).await;
        self.answered("Commit", &span, answer)
    }

    async fn respond(
        &self,
        request: Request<Streaming<pb::RespondChunk>>,
    ) -> Result<Response<pb::SignedVerdict>, Status> {
        let span = rpc_span("Respond");
        let answer = self.respond_inner(request).instrument(span.clone()).await;
        self.answered("Respond", &span, answer)
    }

    async fn get_receipt(&self, request: Request<pb::GetReceiptRequest>) -> Result<Response<pb::Receipt>, Status> {
        let span = rpc_span("GetReceipt");
        let answer = self.get_receipt_inner(request).instrument(span.clone()).await;
        self.answered("GetReceipt", &span, answer)
    }

    async fn get_job_status(&self, request: Request<pb::JobStatusRequest>) -> Result<Response<pb::JobStatus>, Status> {
        let span = rpc_span("GetJobStatus");
        let answer = self.get_job_status_inner(request).instrument(span.clone()).await;
        self.answered("GetJobStatus", &span, answer)
    }

    async fn get_provider_record(
        &self,
        request: Request<pb::ProviderRecordRequest>,
    ) -> Result<Response<pb::ProviderRecord>, Status> {
        let span = rpc_span("GetProviderRecord");
        let answer = self.get_provider_record_inner(request).instrument(span.clone()).await;
        self.answered("GetProviderRecord", &span, answer)
    }

    async fn list_providers(
        &self,
        request: Request<pb::ListProvidersRequest>,
    ) -> Result<Response<pb::ListProvidersResponse>, Status> {
        let span = rpc_span("ListProviders");
        let answer = self.list_providers_inner(request).instrument(span.clone()).await;
        self.answered("ListProviders", &span, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_hashes_bind_the_body() {
        let id = matproof_protocol::identity::Identity::from_seed([1; 32]);
        let a = SignedVerdict::sign(
            JobId([1; 32]),
            matproof_protocol::ids::MerkleRoot([2; 32]),
            Verdict::Approved,
            "ok",
            &id,
        );
        let b = SignedVerdict::sign(
            JobId([1; 32]),
            matproof_protocol::ids::MerkleRoot([2; 32]),
            Verdict::Rejected,
            "ok",
            &id,
        );
        assert_ne!(verdict_hash(&a), verdict_hash(&b));
    }
}
