//! The consumer's gRPC calls, each with the protocol's message limits.

use std::time::Duration;

use matproof_protocol::identity::{PublicKey, Signature};
use matproof_protocol::ids::JobId;
use matproof_protocol::limits::{CONNECTION_WINDOW_BYTES, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, STREAM_WINDOW_BYTES};
use matproof_protocol::matrix::MatrixI32;
use matproof_protocol::matrix::MatrixView;
use matproof_protocol::phase::{phase, phase_took};
use matproof_protocol::records::ProviderRecord;
use matproof_protocol::session::{BorrowedUploadWriter, ReadProgress, ResultReader, SharedInputs, UploadWriter};
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::tls::{Peer, is_transport_failure};
use matproof_protocol::wire::{digest_from_wire, pb};
use tonic::transport::Channel;

use crate::ClientError;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one call may take (a `SubmitJob` runs the whole job).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// A channel to `peer` (`https://HOST:PORT` with its TLS options, or `http://` to loopback
/// or with `insecure`). The connection, TLS handshake included, takes at most
/// [`CONNECT_TIMEOUT`]: a plaintext client at a TLS server fails, it does not hang.
pub async fn connect(peer: impl Into<Peer>) -> Result<Channel, ClientError> {
    let peer = peer.into();
    let (endpoint, transport) = peer.endpoint()?;
    let connect_error = |source: tonic::transport::Error| ClientError::Connect {
        url: peer.url.clone(),
        reason: error_chain(&source),
        hint: hint(transport.is_tls()),
    };
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES);
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(channel) => channel.map_err(connect_error),
        Err(_) => Err(ClientError::Connect {
            url: peer.url.clone(),
            reason: format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
            hint: "",
        }),
    }
}

/// `error` and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

fn verifier_client(channel: Channel) -> pb::verifier_client::VerifierClient<Channel> {
    pb::verifier_client::VerifierClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A failed call: a refusal by the peer, or (the connection or its TLS handshake failed
/// at the first call) a [`ClientError::Connect`] saying what to check.
fn refused<'a>(
    peer: &'static str,
    call: &'static str,
    target: &'a Peer,
) -> impl FnOnce(tonic::Status) -> ClientError + 'a {
    move |status| {
        if is_transport_failure(&status) {
            let tls = target.url.starts_with("https://");
            return ClientError::Connect { url: target.url.clone(), reason: error_chain(&status), hint: hint(tls) };
        }
        ClientError::Refused { peer, call, status }
    }
}

fn hint(tls: bool) -> &'static str {
    if tls {
        " (is the server's certificate signed by --tls-ca, for this host name?)"
    } else {
        " (if the server speaks TLS, use https:// and --tls-ca)"
    }
}

fn answered_job(what: &'static str, bytes: &[u8], expected: JobId) -> Result<JobId, ClientError> {
    let got: JobId = digest_from_wire("job_id", bytes).map_err(|source| ClientError::Malformed { what, source })?;
    if got != expected {
        return Err(ClientError::OtherJob { what, expected, got });
    }
    Ok(got)
}

/// `OpenJob` on the `verifier`, as the consumer: the signed spec, and in
/// full mode `A` and `B` streamed in whole rows (never one message per matrix).
pub async fn open_job(
    verifier: impl Into<Peer>,
    spec: &JobSpec,
    signature: &Signature,
    inputs: &SharedInputs,
) -> Result<JobId, ClientError> {
    let inputs = (spec.policy.mode == VerificationMode::Full).then(|| inputs.clone());
    open_job_upload(verifier, spec, tokio_stream::iter(UploadWriter::new(spec, signature, inputs))).await
}

/// `OpenJob` with the upload's messages from `upload` (an [`UploadWriter`] or a
/// [`BorrowedUploadWriter`] fed through a channel): what [`open_job`] sends.
pub async fn open_job_upload(
    verifier: impl Into<Peer>,
    spec: &JobSpec,
    upload: impl tokio_stream::Stream<Item = pb::JobUpload> + Send + 'static,
) -> Result<JobId, ClientError> {
    let verifier = verifier.into();
    let mut client = verifier_client(connect(&verifier).await?);
    let response = client.open_job(upload).await.map_err(refused("verifier", "OpenJob", &verifier))?.into_inner();
    answered_job("OpenJob answer", &response.job_id, spec.job_id())
}

/// Messages of a [`BorrowedUploadWriter`] in flight at once: two upload chunks beyond the
/// one being sent, so borrowed inputs cost at most a few chunks of memory.
const BORROWED_UPLOAD_QUEUE: usize = 2;

/// Runs `call` on this thread with a `'static` stream of the upload of `spec` and the
/// borrowed `inputs`, made on a scoped thread as `call` consumes it: gRPC wants an owned
/// stream, the inputs stay where the caller keeps them. A stream dropped early (a refused
/// call) stops the writer.
pub fn with_borrowed_upload<T>(
    spec: &JobSpec,
    signature: &Signature,
    inputs: Option<(MatrixView<'_, i8>, MatrixView<'_, i8>)>,
    call: impl FnOnce(tokio_stream::wrappers::ReceiverStream<pb::JobUpload>) -> T,
) -> T {
    let (sender, receiver) = tokio::sync::mpsc::channel(BORROWED_UPLOAD_QUEUE);
    let writer = BorrowedUploadWriter::new(spec, signature, inputs);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for message in writer {
                if sender.blocking_send(message).is_err() {
                    break;
                }
            }
        });
        call(tokio_stream::wrappers::ReceiverStream::new(receiver))
    })
}

/// [`open_job`] for borrowed inputs, blocking on `runtime` (call it off the runtime's
/// threads).
pub fn open_job_borrowed(
    runtime: &tokio::runtime::Runtime,
    verifier_url: &str,
    (spec, signature): (&JobSpec, &Signature),
    inputs: (MatrixView<'_, i8>, MatrixView<'_, i8>),
) -> Result<JobId, ClientError> {
    let inputs = (spec.policy.mode == VerificationMode::Full).then_some(inputs);
    with_borrowed_upload(spec, signature, inputs, |upload| {
        runtime.block_on(open_job_upload(verifier_url, spec, upload))
    })
}

/// [`submit_job`] for borrowed inputs, blocking on `runtime` (call it off the runtime's
/// threads).
pub fn submit_job_borrowed(
    runtime: &tokio::runtime::Runtime,
    sidecar_url: &str,
    (spec, signature): (&JobSpec, &Signature),
    inputs: (MatrixView<'_, i8>, MatrixView<'_, i8>),
) -> Result<SubmittedJob, ClientError> {
    with_borrowed_upload(spec, signature, Some(inputs), |upload| {
        runtime.block_on(submit_job_upload(sidecar_url, spec, upload))
    })
}

/// What a sidecar returns for a job it ran.
#[derive(Debug, Clone)]
pub struct SubmittedJob {
    /// The job.
    pub job_id: JobId,
    /// The verifier's receipt, as the sidecar relayed it (its verdict signatures verified).
    pub receipt: pb::Receipt,
    /// Whether the job was approved.
    pub approved: bool,
    /// `C` of an approved job: it arrived whole and its `R_C` equals the approved receipt's.
    pub c: Option<MatrixI32>,
}

/// `SubmitJob` to the prover `sidecar`: uploads the signed spec and `A`, `B`;
/// the provider runs the job against its verifier and streams back the receipt and, if
/// approved, `C`, which is accepted only if its recomputed `R_C` is the receipt's. A cut
/// stream or a `C` that does not match is an error: no result.
pub async fn submit_job(
    sidecar: impl Into<Peer>,
    spec: &JobSpec,
    signature: &Signature,
    inputs: &SharedInputs,
) -> Result<SubmittedJob, ClientError> {
    let upload = tokio_stream::iter(UploadWriter::new(spec, signature, Some(inputs.clone())));
    submit_job_upload(sidecar, spec, upload).await
}

/// `SubmitJob` with the upload's messages from `upload`: what [`submit_job`] does.
pub async fn submit_job_upload(
    sidecar: impl Into<Peer>,
    spec: &JobSpec,
    upload: impl tokio_stream::Stream<Item = pb::JobUpload> + Send + 'static,
) -> Result<SubmittedJob, ClientError> {
    let sidecar = sidecar.into();
    let mut client = pb::prover_sidecar_client::ProverSidecarClient::new(connect(&sidecar).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut replies =
        client.submit_job(upload).await.map_err(refused("prover sidecar", "SubmitJob", &sidecar))?.into_inner();
    let mut reader = ResultReader::new(spec);
    let job_id = spec.job_id();
    let result_error = |source| ClientError::Result { job_id, source: Box::new(source) };
    let mut start = None;
    loop {
        let reply = match replies.message().await {
            Ok(Some(reply)) => reply,
            Ok(None) => break,
            // Before the receipt the job failed; after it, the result stream was cut.
            Err(status) if start.is_none() => return Err(refused("prover sidecar", "SubmitJob", &sidecar)(status)),
            Err(status) => return Err(ClientError::ResultCut { job_id, status: Box::new(status) }),
        };
        // The first reply (the receipt) comes once the verdict is in: C streams from then on.
        let start = *start.get_or_insert_with(std::time::Instant::now);
        let progress = reader.push(reply).map_err(result_error)?;
        if progress == ReadProgress::Ended {
            phase("consumer.result_receive", start, 4 * spec.m.saturating_mul(spec.n));
            break;
        }
    }
    // The result check: R_C's leaves were hashed as rows arrived; the rest of the tree and
    // the comparison are CPU-bound, on a blocking thread.
    let start = std::time::Instant::now();
    let bytes = 4 * spec.m.saturating_mul(spec.n);
    let hashed = reader.hashing_time();
    let checked = tokio::task::spawn_blocking(move || {
        reader.finish().inspect(|_| phase_took("consumer.result_check", hashed + start.elapsed(), bytes))
    })
    .await
    .map_err(|e| ClientError::Worker { reason: e.to_string() })?
    .map_err(result_error)?;
    Ok(SubmittedJob { job_id, approved: checked.c.is_some(), receipt: checked.receipt_wire, c: checked.c })
}

/// `GetReceipt` from the `verifier`.
pub async fn fetch_receipt(verifier: impl Into<Peer>, job_id: &JobId) -> Result<pb::Receipt, ClientError> {
    let verifier = verifier.into();
    let mut client = verifier_client(connect(&verifier).await?);
    let request = pb::GetReceiptRequest { job_id: job_id.to_vec() };
    Ok(client.get_receipt(request).await.map_err(refused("verifier", "GetReceipt", &verifier))?.into_inner())
}

/// `GetJobStatus` from the `verifier`.
pub async fn job_status(verifier: impl Into<Peer>, job_id: &JobId) -> Result<pb::JobStatus, ClientError> {
    let verifier = verifier.into();
    let mut client = verifier_client(connect(&verifier).await?);
    let request = pb::JobStatusRequest { job_id: job_id.to_vec() };
    let status =
        client.get_job_status(request).await.map_err(refused("verifier", "GetJobStatus", &verifier))?.into_inner();
    answered_job("GetJobStatus answer", &status.job_id, *job_id)?;
    Ok(status)
}

/// `GetProviderRecord` from the `verifier`: the record, checked (its counts add up, its score
/// is the formula's, it is `provider`'s).
pub async fn provider_record(verifier: impl Into<Peer>, provider: &PublicKey) -> Result<ProviderRecord, ClientError> {
    let verifier = verifier.into();
    let mut client = verifier_client(connect(&verifier).await?);
    let request = pb::ProviderRecordRequest { provider: provider.0.to_vec() };
    let answer = client.get_provider_record(request).await;
    let wire = answer.map_err(refused("verifier", "GetProviderRecord", &verifier))?.into_inner();
    let record = ProviderRecord::try_from(&wire).map_err(|source| ClientError::Record { source })?;
    if record.provider != *provider {
        return Err(ClientError::OtherProvider { expected: provider.to_hex(), got: record.provider.to_hex() });
    }
    Ok(record)
}

/// `ListProviders` from the `verifier`: up to `page_size` records after the `offset` best,
/// each checked, and how many providers the network knows.
pub async fn list_providers(
    verifier: impl Into<Peer>,
    offset: u64,
    page_size: u32,
) -> Result<(Vec<ProviderRecord>, u64), ClientError> {
    let verifier = verifier.into();
    let mut client = verifier_client(connect(&verifier).await?);
    let answer = client.list_providers(pb::ListProvidersRequest { page_size, offset }).await;
    let page = answer.map_err(refused("verifier", "ListProviders", &verifier))?.into_inner();
    let records: Result<Vec<_>, _> = page.providers.iter().map(ProviderRecord::try_from).collect();
    Ok((records.map_err(|source| ClientError::Record { source })?, page.total))
}
