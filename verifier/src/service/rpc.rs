//! The `matproof.v1.Verifier` handlers, settlement and expiry.

use std::sync::Arc;

use matproof_protocol::identity::{Signature, verify};
use matproof_protocol::limits::MAX_MERKLE_PATH_LEN;
use matproof_protocol::merkle::Digest;
use matproof_protocol::opening::TileOpening;
use matproof_protocol::receipt::{
    PURPOSE_COMMIT, PURPOSE_JOB, PURPOSE_RESPOND, RECEIPT_VERSION, Receipt, ResponseHasher, SignedChallenge,
    SignedVerdict, Verdict, job_commitment_bytes, respond_signing_bytes,
};
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::transcript::Challenge;
use matproof_protocol::wire::{self, WireError, digest_from_wire, pb};
use prost::Message;
use sha2::{Digest as _, Sha256};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::accounts::{consumer_account, provider_account, stake_account};
use super::judge::{self, Judgement, Response as JudgedResponse};
use super::store::{Admission, JobRow, JobState, StoreError};
use super::{Node, now_unix_ms};
use crate::ledger::{self, LedgerError};

/// The tonic service: a handle on the node's shared state.
#[derive(Clone)]
pub(crate) struct VerifierService(pub(crate) Arc<Node>);

fn field_error(parent: &str, e: WireError) -> Status {
    let field = if parent.is_empty() { e.field } else { format!("{parent}.{}", e.field) };
    Status::invalid_argument(format!("invalid field {field}: {}", e.reason))
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid field {field}: {reason}"))
}

fn signature(field: &str, bytes: &[u8]) -> Result<Signature, Status> {
    let array: [u8; 64] =
        bytes.try_into().map_err(|_| invalid(field, format!("{} bytes, expected 64", bytes.len())))?;
    Ok(Signature(array))
}

fn digest(field: &str, bytes: &[u8]) -> Result<Digest, Status> {
    digest_from_wire(field, bytes).map_err(|e| field_error("", e))
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

fn job_not_found(job_id: &Digest) -> Status {
    Status::not_found(format!("no job {}", hex::encode(job_id)))
}

/// The hash of a signed verdict's body, as the ledger records it.
fn verdict_hash(v: &SignedVerdict) -> [u8; 32] {
    Sha256::digest(SignedVerdict::signing_bytes(&v.job_id, &v.r_c, v.verdict, &v.reason)).into()
}

/// An upper bound on the encoded size of a job's whole `Respond` stream.
fn respond_budget(spec: &JobSpec) -> u64 {
    let (m, n) = (spec.m, spec.n);
    let tile_entries = (spec.shape.tm as u64).saturating_mul(spec.shape.tn as u64);
    // A sint32 takes at most 5 bytes; each chunk carries at least one row.
    let rows = match spec.policy.mode {
        VerificationMode::Full => m.saturating_mul(n).saturating_mul(5).saturating_add(m.saturating_mul(96)),
        VerificationMode::Succinct => 0,
    };
    let path = (MAX_MERKLE_PATH_LEN as u64) * 34 + 32;
    let opening = tile_entries.saturating_mul(5).saturating_add(3 * path).saturating_add(512);
    rows.saturating_add(u64::from(spec.policy.samples).saturating_mul(opening)).saturating_add(64 * 1024)
}

impl Node {
    fn key_for(&self, spec: &JobSpec) -> Option<&matproof_circuits::PinnedVerifyingKey> {
        self.keys.get(&spec.vk_hash)
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.permits.clone().acquire_owned().await.map_err(|_| Status::unavailable("node shutting down"))
    }

    async fn load(&self, job_id: &Digest) -> Result<JobRow, Status> {
        self.store.load(job_id).await.map_err(store_status)?.ok_or_else(|| job_not_found(job_id))
    }

    /// Drives the ledger according to the stored verdict: record it, then post, void or
    /// slash. Every step is idempotent, so running it again (a repeat response, a restart)
    /// moves nothing twice.
    pub(crate) async fn settle_job(&self, job_id: &Digest) -> Result<(), Status> {
        let row = self.load(job_id).await?;
        let (verdict, hash) = match (row.state, row.verdict_hash) {
            (JobState::Approved, Some(h)) => (Verdict::Approved, h),
            (JobState::Rejected, Some(h)) => (Verdict::Rejected, h),
            _ => return Err(Status::failed_precondition("no verdict to settle")),
        };
        self.ledger.record_verdict(job_id, verdict, &hash).await.map_err(ledger_status)?;
        #[cfg(feature = "fault-injection")]
        if let Some(ms) = std::env::var("MATPROOF_TEST_PAUSE_AFTER_VERDICT_MS").ok().and_then(|v| v.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let spec = &row.spec;
        match verdict {
            Verdict::Approved => {
                self.ledger.post(job_id).await.map_err(ledger_status)?;
            }
            Verdict::Rejected => {
                if row.fraud && spec.slash_amount > 0 {
                    let stake = stake_account(&spec.provider);
                    let beneficiary = consumer_account(&spec.consumer);
                    match self.ledger.slash(job_id, &stake, &beneficiary, spec.slash_amount).await {
                        Ok(_) => {}
                        Err(LedgerError::InsufficientFunds { available, .. }) => {
                            tracing::warn!(
                                job = %hex::encode(job_id),
                                "fraud proven but the provider's stake holds {available}: not slashed"
                            );
                        }
                        Err(e) => return Err(ledger_status(e)),
                    }
                }
                // Replays if the slash (or an expiry) voided already.
                self.ledger.void(job_id).await.map_err(ledger_status)?;
            }
        }
        self.store.mark_settled(job_id).await.map_err(store_status)
    }

    /// Voids every job still awaiting a response `expiry_grace` after its deadline.
    pub(crate) async fn expire_jobs(&self) -> Result<(), String> {
        let grace = self.limits.expiry_grace.as_millis() as u64;
        let before = now_unix_ms().saturating_sub(grace);
        for job_id in self.store.expiry_candidates(before).await.map_err(|e| e.to_string())? {
            if !self.store.expire(&job_id).await.map_err(|e| e.to_string())? {
                continue;
            }
            match self.ledger.void(&job_id).await {
                Ok(_) => {}
                // Never escrowed (OpenJob failed after persisting), or already released.
                Err(LedgerError::UnknownJob { .. } | LedgerError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// The stored verdict of a judged job (settling it if that did not complete).
    async fn stored_verdict(&self, row: &JobRow) -> Result<pb::SignedVerdict, Status> {
        let bytes = row.receipt.as_deref().ok_or_else(|| Status::internal("no stored receipt"))?;
        let receipt = pb::Receipt::decode(bytes).map_err(|_| Status::internal("stored receipt does not decode"))?;
        if !row.settled {
            self.settle_job(&row.job_id).await?;
        }
        receipt.verdicts.into_iter().next().ok_or_else(|| Status::internal("stored receipt has no verdict"))
    }
}

#[tonic::async_trait]
impl pb::verifier_server::Verifier for VerifierService {
    async fn open_job(&self, request: Request<pb::OpenJobRequest>) -> Result<Response<pb::OpenJobResponse>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let req = request.into_inner();
        let wire_spec = req.spec.as_ref().ok_or_else(|| invalid("spec", "missing"))?;
        let spec = JobSpec::try_from(wire_spec).map_err(|e| field_error("spec", e))?;
        let consumer_signature = signature("consumer_signature", &req.consumer_signature)?;
        verify(&spec.consumer, PURPOSE_JOB, &spec.canonical_bytes(), &consumer_signature)
            .map_err(|e| Status::unauthenticated(format!("consumer_signature: {e}")))?;
        if node.key_for(&spec).is_none() {
            return Err(Status::failed_precondition(format!(
                "spec.vk_hash {} is not a key this verifier holds",
                hex::encode(spec.vk_hash)
            )));
        }
        let now = now_unix_ms();
        if spec.policy.deadline_unix_ms <= now {
            return Err(invalid("spec.deadline_unix_ms", "in the past"));
        }
        if spec.price > ledger::MAX_AMOUNT || spec.slash_amount > ledger::MAX_AMOUNT {
            return Err(invalid("spec.price", "amounts must be at most i64::MAX"));
        }
        let job_id = spec.job_id();
        let inputs = match spec.policy.mode {
            VerificationMode::Full => {
                if req.a_npy.is_empty() || req.b_npy.is_empty() {
                    return Err(invalid("a_npy", "full mode needs A and B"));
                }
                let (spec2, a, b) = (spec.clone(), req.a_npy.clone(), req.b_npy.clone());
                tokio::task::spawn_blocking(move || judge::check_inputs(&spec2, &a, &b))
                    .await
                    .map_err(|_| Status::internal("input check panicked"))?
                    .map_err(|(field, reason)| invalid(field, reason))?;
                Some((req.a_npy.as_slice(), req.b_npy.as_slice()))
            }
            VerificationMode::Succinct => {
                if !req.a_npy.is_empty() || !req.b_npy.is_empty() {
                    return Err(invalid("a_npy", "succinct mode takes no A, B"));
                }
                None
            }
        };
        let consumer = consumer_account(&spec.consumer);
        let provider = provider_account(&spec.provider);
        let escrow =
            || node.ledger.open_pending(&job_id, &consumer, &provider, spec.price, spec.policy.deadline_unix_ms);
        let existing = node.store.load(&job_id).await.map_err(store_status)?;
        if existing.is_some() {
            // The same spec again: escrow is idempotent per job id.
            escrow().await.map_err(ledger_status)?;
        } else {
            // One admission at a time in this process (FIFO, holding one pool connection);
            // the hard bound itself is the database's, which also holds across nodes.
            let _admission = node.admission.lock().await;
            // A job whose escrow the ledger will refuse must not take a slot, or a consumer
            // with no funds could hold every slot until the deadlines pass. The balance check,
            // the admission and the escrow all run under the admission lock, so within a node
            // the next admission sees this one's escrow: N slots cost N·price. (Nodes sharing a
            // database can each pass the check once for the same money; such a row holds its
            // slot only until deadline + grace.)
            let available = node.ledger.balance(&consumer).await.map_err(ledger_status)?;
            if available < spec.price {
                let e = LedgerError::InsufficientFunds { account: consumer.clone(), needed: spec.price, available };
                return Err(ledger_status(e));
            }
            let max_open = node.limits.max_open_jobs;
            match node.store.admit_job(&spec, &consumer_signature, inputs, now, max_open).await {
                Ok(Admission::Inserted | Admission::Exists) => {}
                Ok(Admission::Full) => {
                    return Err(Status::resource_exhausted("too many jobs awaiting a response"));
                }
                Err(e) => return Err(store_status(e)),
            }
            escrow().await.map_err(ledger_status)?;
        }
        Ok(Response::new(pb::OpenJobResponse { job_id: job_id.to_vec() }))
    }

    async fn commit(&self, request: Request<pb::CommitRequest>) -> Result<Response<pb::Challenge>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let req = request.into_inner();
        let job_id = digest("job_id", &req.job_id)?;
        let r_c = digest("r_c", &req.r_c)?;
        let provider_signature = signature("provider_signature", &req.provider_signature)?;
        let row = node.load(&job_id).await?;
        verify(&row.spec.provider, PURPOSE_COMMIT, &job_commitment_bytes(&job_id, &r_c), &provider_signature)
            .map_err(|e| Status::unauthenticated(format!("provider_signature: {e}")))?;
        let answer = |challenge: &SignedChallenge| -> Result<Response<pb::Challenge>, Status> {
            if challenge.challenge.r_c == r_c {
                Ok(Response::new(challenge.into()))
            } else {
                Err(Status::failed_precondition(format!(
                    "job {} is committed to another R_C: one commitment per job",
                    hex::encode(job_id)
                )))
            }
        };
        if let Some(challenge) = &row.challenge {
            return answer(challenge);
        }
        if row.state != JobState::Opened {
            return Err(Status::failed_precondition(format!("job is {}", row.state.as_str())));
        }
        if now_unix_ms() > row.spec.policy.deadline_unix_ms {
            return Err(Status::failed_precondition("the job's deadline has passed"));
        }
        let transfer = node.ledger.transfer(&job_id).await.map_err(ledger_status)?;
        if transfer.state != ledger::TransferState::Pending {
            return Err(Status::failed_precondition(format!("the job's escrow is {}", transfer.state)));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| {
            tracing::error!("OS random number generator: {e}");
            Status::unavailable("no randomness")
        })?;
        let challenge = SignedChallenge::sign(Challenge { job_id, r_c, seed }, &node.identity);
        if node.store.set_challenge(&challenge).await.map_err(store_status)? {
            return Ok(Response::new((&challenge).into()));
        }
        // Lost a race: answer with whatever won.
        let row = node.load(&job_id).await?;
        match &row.challenge {
            Some(stored) => answer(stored),
            None => Err(Status::failed_precondition(format!("job is {}", row.state.as_str()))),
        }
    }

    async fn respond(
        &self,
        request: Request<Streaming<pb::RespondChunk>>,
    ) -> Result<Response<pb::SignedVerdict>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let mut stream = request.into_inner();
        let first = stream.next().await.ok_or_else(|| invalid("job_id", "empty stream"))??;
        let job_id = digest("job_id", &first.job_id)?;
        let row = node.load(&job_id).await?;
        if row.receipt.is_some() {
            return Ok(Response::new(node.stored_verdict(&row).await?));
        }
        let (Some(challenge), Some(r_c)) = (row.challenge.clone(), row.r_c()) else {
            return Err(Status::failed_precondition("the job has no commitment yet"));
        };
        let spec = row.spec.clone();
        let tiling = spec.tiling().map_err(|e| Status::internal(format!("stored spec: {e}")))?;
        let (m, n, samples) = (tiling.m, tiling.n, spec.policy.samples as usize);
        let budget = respond_budget(&spec);
        let mut used = 0u64;
        let mut rows: Vec<i32> = Vec::new();
        let mut rows_received = 0usize;
        let mut openings: Vec<TileOpening> = Vec::new();
        let mut end: Option<Signature> = None;
        let c_values = if spec.policy.mode == VerificationMode::Full { (m as u64) * (n as u64) } else { 0 };
        let mut response_hasher = ResponseHasher::new(&job_id, &r_c, c_values, samples as u64);
        let mut next = Some(first);
        while let Some(chunk) = next.take() {
            used = used.saturating_add(chunk.encoded_len() as u64);
            if used > budget {
                return Err(Status::resource_exhausted(format!("response exceeds {budget} bytes for this job")));
            }
            if chunk.job_id != job_id {
                return Err(invalid("job_id", "differs between chunks"));
            }
            match chunk.part {
                None => return Err(invalid("part", "missing")),
                Some(pb::respond_chunk::Part::CRows(c)) => {
                    if spec.policy.mode != VerificationMode::Full {
                        return Err(invalid("c_rows", "succinct mode takes no C"));
                    }
                    if !openings.is_empty() {
                        return Err(invalid("c_rows", "after an opening"));
                    }
                    if c.first_row != rows_received as u64 {
                        return Err(invalid("c_rows.first_row", format!("{}, expected {rows_received}", c.first_row)));
                    }
                    if c.values.is_empty() || c.values.len() % n != 0 {
                        return Err(invalid(
                            "c_rows.values",
                            format!("{} values: not whole rows of {n}", c.values.len()),
                        ));
                    }
                    let count = c.values.len() / n;
                    if rows_received + count > m {
                        return Err(invalid("c_rows.values", format!("more than m = {m} rows")));
                    }
                    response_hasher.rows(&c.values);
                    rows.extend_from_slice(&c.values);
                    rows_received += count;
                }
                Some(pb::respond_chunk::Part::Opening(o)) => {
                    if spec.policy.mode == VerificationMode::Full && rows_received != m {
                        return Err(invalid("opening", format!("before all of C ({rows_received} of {m} rows)")));
                    }
                    if openings.len() == samples {
                        return Err(invalid("opening", format!("more than {samples} openings")));
                    }
                    let position = openings.len();
                    let opening =
                        TileOpening::try_from(&o).map_err(|e| field_error(&format!("opening[{position}]"), e))?;
                    response_hasher.opening(&opening);
                    openings.push(opening);
                }
                Some(pb::respond_chunk::Part::End(e)) => {
                    end = Some(signature("end.provider_signature", &e.provider_signature)?);
                    break;
                }
            }
            next = match stream.next().await {
                Some(chunk) => Some(chunk?),
                None => None,
            };
        }
        let arrived = now_unix_ms();
        let end = end.ok_or_else(|| invalid("end", "the stream ended without ResponseEnd"))?;
        // The end signature covers the whole response, so a signature seen once cannot be
        // replayed under other contents to get an honest provider rejected.
        let signed = respond_signing_bytes(&job_id, &r_c, &response_hasher.finish());
        verify(&spec.provider, PURPOSE_RESPOND, &signed, &end)
            .map_err(|e| Status::unauthenticated(format!("end.provider_signature: {e}")))?;
        if openings.len() != samples {
            return Err(invalid("opening", format!("{} openings, expected {samples}", openings.len())));
        }

        let judgement = if arrived > spec.policy.deadline_unix_ms {
            Judgement {
                verdict: Verdict::Rejected,
                reason: format!("deadline: the response ended at {arrived}, after {}", spec.policy.deadline_unix_ms),
                fraud_proof: None,
            }
        } else {
            let key = node
                .key_for(&spec)
                .cloned()
                .ok_or_else(|| Status::failed_precondition("this verifier no longer holds the job's key"))?;
            let inputs = match spec.policy.mode {
                VerificationMode::Full => node.store.load_inputs(&job_id).await.map_err(store_status)?,
                VerificationMode::Succinct => None,
            };
            let response = JudgedResponse {
                spec: spec.clone(),
                r_c,
                challenge: challenge.challenge,
                c_rows: (spec.policy.mode == VerificationMode::Full).then_some(rows),
                openings: openings.clone(),
                inputs,
            };
            tokio::task::spawn_blocking(move || judge::judge(&response, &key))
                .await
                .map_err(|_| Status::internal("the check panicked"))?
        };

        let (mut judgement, mut allowed) = match judgement.verdict {
            Verdict::Approved => (judgement, vec![JobState::Challenged]),
            Verdict::Rejected => (judgement, vec![JobState::Challenged, JobState::Expired]),
        };
        for _attempt in 0..2 {
            let verdict = SignedVerdict::sign(job_id, r_c, judgement.verdict, &judgement.reason, &node.identity);
            let summary = crate::check_summary(&spec).map_err(|e| Status::internal(format!("summary: {e}")))?;
            let receipt = Receipt {
                version: RECEIPT_VERSION,
                spec: spec.clone(),
                consumer_signature: row.consumer_signature,
                r_c,
                challenge: challenge.clone(),
                openings: openings.clone(),
                summary,
                verdicts: vec![verdict.clone()],
                fraud_proof: judgement.fraud_proof.clone(),
            };
            let bytes = wire::encode_receipt(&receipt);
            let state = match judgement.verdict {
                Verdict::Approved => JobState::Approved,
                Verdict::Rejected => JobState::Rejected,
            };
            let fraud = judgement.fraud_proof.is_some();
            if node
                .store
                .store_verdict(&job_id, state, &bytes, &verdict_hash(&verdict), fraud, &allowed)
                .await
                .map_err(store_status)?
            {
                node.settle_job(&job_id).await?;
                return Ok(Response::new((&verdict).into()));
            }
            let now = node.load(&job_id).await?;
            if now.receipt.is_some() {
                // Another response for this job was judged first: its verdict stands.
                return Ok(Response::new(node.stored_verdict(&now).await?));
            }
            if now.state == JobState::Expired && judgement.verdict == Verdict::Approved {
                // Checked in time, but the job expired meanwhile (checks outlasted the grace).
                judgement = Judgement {
                    verdict: Verdict::Rejected,
                    reason: "deadline: the job expired while its response was being checked".into(),
                    fraud_proof: None,
                };
                allowed = vec![JobState::Expired];
                continue;
            }
            break;
        }
        Err(Status::failed_precondition("the job cannot take a verdict"))
    }

    async fn get_receipt(&self, request: Request<pb::GetReceiptRequest>) -> Result<Response<pb::Receipt>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let job_id = digest("job_id", &request.into_inner().job_id)?;
        let row = node.load(&job_id).await?;
        let bytes = row.receipt.ok_or_else(|| Status::not_found("no verdict yet"))?;
        let receipt = pb::Receipt::decode(bytes.as_slice()).map_err(|_| Status::internal("stored receipt"))?;
        Ok(Response::new(receipt))
    }

    async fn get_job_status(&self, request: Request<pb::JobStatusRequest>) -> Result<Response<pb::JobStatus>, Status> {
        let node = &self.0;
        let _permit = node.permit().await?;
        let job_id = digest("job_id", &request.into_inner().job_id)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_hashes_bind_the_body() {
        let id = matproof_protocol::identity::Identity::from_seed([1; 32]);
        let a = SignedVerdict::sign([1; 32], [2; 32], Verdict::Approved, "ok", &id);
        let b = SignedVerdict::sign([1; 32], [2; 32], Verdict::Rejected, "ok", &id);
        assert_ne!(verdict_hash(&a), verdict_hash(&b));
    }
}
