//! The client's error type.

use matproof_protocol::freivalds::FreivaldsError;
use matproof_protocol::ids::JobId;
use matproof_protocol::session::SessionError;
use matproof_protocol::spec::SpecError;
use matproof_protocol::tiling::TilingError;
use matproof_protocol::tls::TlsError;
use matproof_protocol::wire::WireError;

/// Why a consumer-side step failed. Refusals by a node or sidecar keep their gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `A` and `B` cannot be multiplied.
    #[error("A is {a_rows}×{a_cols} but B is {b_rows}×{b_cols}")]
    Shapes {
        /// Rows of `A`.
        a_rows: usize,
        /// Columns of `A`.
        a_cols: usize,
        /// Rows of `B`.
        b_rows: usize,
        /// Columns of `B`.
        b_cols: usize,
    },
    /// The job's shape does not fit the circuit shape or the limits.
    #[error("job shape: {0}")]
    Tiling(#[from] TilingError),
    /// The spec is out of range.
    #[error("job spec: {0}")]
    Spec(#[from] SpecError),
    /// The OS random number generator failed.
    #[error("OS random number generator: {source}")]
    Rng {
        /// Why.
        #[source]
        source: getrandom::Error,
    },
    /// A node or sidecar cannot be reached (the cause's chain is in the message: tonic's
    /// own says only "transport error").
    #[error("cannot reach {url}: {reason}{hint}")]
    Connect {
        /// Its URL.
        url: String,
        /// The cause and its sources.
        reason: String,
        /// What to check (`use https://` after a plaintext attempt), or empty.
        hint: &'static str,
    },
    /// The TLS options or the URL are refused (plaintext off loopback, a malformed PEM).
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// A node or sidecar refused a call.
    #[error("the {peer} refused {call}: {}: {}", code_name(status.code()), status.message())]
    Refused {
        /// `verifier` or `prover sidecar`.
        peer: &'static str,
        /// The call.
        call: &'static str,
        /// Its answer.
        status: tonic::Status,
    },
    /// An answer does not decode.
    #[error("the {what} is malformed: {source}")]
    Malformed {
        /// Which answer.
        what: &'static str,
        /// Why.
        #[source]
        source: WireError,
    },
    /// An answer is for another job.
    #[error("the {what} is for job {got}, not {expected}")]
    OtherJob {
        /// Which answer.
        what: &'static str,
        /// The job asked about.
        expected: JobId,
        /// The job answered about.
        got: JobId,
    },
    /// The result of a job was refused: a cut stream, rows out of order, a receipt for
    /// another job, or a `C` whose `R_C` is not the approved receipt's (naming both roots).
    #[error("the result of job {job_id} is refused: {source}")]
    Result {
        /// The job.
        job_id: JobId,
        /// Why (boxed: the error stays small on the happy path).
        #[source]
        source: Box<SessionError>,
    },
    /// The result stream broke after the receipt: `C` did not arrive whole.
    #[error("the result of job {job_id} was cut: {}: {}", code_name(status.code()), status.message())]
    ResultCut {
        /// The job.
        job_id: JobId,
        /// The transport's status (boxed: the error stays small on the happy path).
        status: Box<tonic::Status>,
    },
    /// The consumer's own Freivalds check of the received `C` failed.
    #[error("job {job_id}: the received C fails the consumer's Freivalds check: {source}")]
    Freivalds {
        /// The job.
        job_id: JobId,
        /// Why.
        #[source]
        source: FreivaldsError,
    },
    /// The Freivalds vectors could not be drawn (rounds or length beyond the limits).
    #[error("Freivalds vectors: {source}")]
    FreivaldsVectors {
        /// Why.
        #[source]
        source: matproof_protocol::transcript::TranscriptError,
    },
    /// A worker thread failed.
    #[error("a worker thread failed: {reason}")]
    Worker {
        /// Why.
        reason: String,
    },
    /// A verification mode other than `full` or `succinct`.
    #[error("mode {given:?}: expected \"full\" or \"succinct\"")]
    Mode {
        /// What was given.
        given: String,
    },
    /// The clock is before 1970 or the deadline beyond `u64` milliseconds.
    #[error("the system clock or the deadline is out of range")]
    Clock,
    /// An answer is missing a part.
    #[error("the {what} is missing")]
    Missing {
        /// Which part.
        what: &'static str,
    },
    /// A provider record that does not decode, or whose counts or score are not consistent.
    #[error("the provider record is refused: {source}")]
    Record {
        /// Why.
        #[source]
        source: matproof_protocol::records::RecordError,
    },
    /// A record for another provider than asked about.
    #[error("the record is for provider {got}, not {expected}")]
    OtherProvider {
        /// The provider asked about (hex).
        expected: String,
        /// The provider answered about (hex).
        got: String,
    },
}

/// The gRPC code's conventional upper-case name (`FAILED_PRECONDITION`).
pub fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter().chain(std::iter::once(c.to_ascii_uppercase()))
        })
        .collect()
}
