//! The consumer's gRPC calls, each with the protocol's message limits.

use std::time::Duration;

use matproof_protocol::identity::Signature;
use matproof_protocol::ids::JobId;
use matproof_protocol::limits::MAX_MESSAGE_BYTES;
use matproof_protocol::matrix::MatrixI8;
use matproof_protocol::session::signed_open_job;
use matproof_protocol::spec::{JobSpec, VerificationMode};
use matproof_protocol::wire::{digest_from_wire, pb};
use tonic::transport::{Channel, Endpoint};

use crate::{ClientError, npy_bytes};

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one call may take (a `SubmitJob` runs the whole job).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// A channel to `url` (`http://HOST:PORT`).
pub async fn connect(url: &str) -> Result<Channel, ClientError> {
    let connect_error = |source| ClientError::Connect { url: url.to_string(), source };
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(connect_error)?;
    endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(connect_error)
}

fn verifier(channel: Channel) -> pb::verifier_client::VerifierClient<Channel> {
    pb::verifier_client::VerifierClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

fn refused(peer: &'static str, call: &'static str) -> impl FnOnce(tonic::Status) -> ClientError {
    move |status| ClientError::Refused { peer, call, status }
}

fn answered_job(what: &'static str, bytes: &[u8], expected: JobId) -> Result<JobId, ClientError> {
    let got: JobId = digest_from_wire("job_id", bytes).map_err(|source| ClientError::Malformed { what, source })?;
    if got != expected {
        return Err(ClientError::OtherJob { what, expected, got });
    }
    Ok(got)
}

/// `OpenJob` on the verifier at `verifier_url`, as the consumer (full mode sends `A`, `B`).
pub async fn open_job(
    verifier_url: &str,
    spec: &JobSpec,
    signature: &Signature,
    a: &MatrixI8,
    b: &MatrixI8,
) -> Result<JobId, ClientError> {
    let inputs = (spec.policy.mode == VerificationMode::Full).then(|| (npy_bytes(a), npy_bytes(b)));
    let request = signed_open_job(spec, signature, inputs);
    let mut client = verifier(connect(verifier_url).await?);
    let response = client.open_job(request).await.map_err(refused("verifier", "OpenJob"))?.into_inner();
    answered_job("OpenJob answer", &response.job_id, spec.job_id())
}

/// What a sidecar returns for a job it ran.
#[derive(Debug, Clone)]
pub struct SubmittedJob {
    /// The job.
    pub job_id: JobId,
    /// The verifier's receipt, as the sidecar relayed it.
    pub receipt: pb::Receipt,
}

/// `SubmitJob` to the prover sidecar at `sidecar_url`: the provider runs the job against its
/// verifier and returns the receipt.
pub async fn submit_job(
    sidecar_url: &str,
    spec: &JobSpec,
    signature: &Signature,
    a: &MatrixI8,
    b: &MatrixI8,
) -> Result<SubmittedJob, ClientError> {
    let mut client = pb::prover_sidecar_client::ProverSidecarClient::new(connect(sidecar_url).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let request = pb::SubmitJobRequest {
        spec: Some(spec.into()),
        consumer_signature: signature.0.to_vec(),
        a_npy: npy_bytes(a),
        b_npy: npy_bytes(b),
    };
    let response = client.submit_job(request).await.map_err(refused("prover sidecar", "SubmitJob"))?.into_inner();
    let job_id = answered_job("SubmitJob answer", &response.job_id, spec.job_id())?;
    let receipt = response.receipt.ok_or(ClientError::Missing { what: "receipt in the SubmitJob answer" })?;
    Ok(SubmittedJob { job_id, receipt })
}

/// `GetReceipt` from the verifier at `verifier_url`.
pub async fn fetch_receipt(verifier_url: &str, job_id: &JobId) -> Result<pb::Receipt, ClientError> {
    let mut client = verifier(connect(verifier_url).await?);
    let request = pb::GetReceiptRequest { job_id: job_id.to_vec() };
    Ok(client.get_receipt(request).await.map_err(refused("verifier", "GetReceipt"))?.into_inner())
}

/// `GetJobStatus` from the verifier at `verifier_url`.
pub async fn job_status(verifier_url: &str, job_id: &JobId) -> Result<pb::JobStatus, ClientError> {
    let mut client = verifier(connect(verifier_url).await?);
    let request = pb::JobStatusRequest { job_id: job_id.to_vec() };
    let status = client.get_job_status(request).await.map_err(refused("verifier", "GetJobStatus"))?.into_inner();
    answered_job("GetJobStatus answer", &status.job_id, *job_id)?;
    Ok(status)
}
