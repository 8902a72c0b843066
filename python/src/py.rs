//! The PyO3 bindings: numpy buffers borrowed for the length of a call (C-contiguous `int8`
//! and `int32` only: `matproof/__init__.py` checks dtypes and copies other layouts once),
//! the GIL released around hashing and gRPC, [`ApiError`]s raised as the package's
//! exception classes.

use std::path::PathBuf;

use matproof_client::ClientError;
use matproof_protocol::ids::JobId;
use matproof_protocol::matrix::MatrixView;
use matproof_verifier::AuditReport;
use matproof_verifier::accounts::consumer_account;
use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::api::{self, ApiError, JobRequest, OpenedJob};

create_exception!(matproof, MatproofError, PyException, "Base class of every error matproof raises.");
create_exception!(matproof, InputError, MatproofError, "An argument is wrong: dtype, shape, layout, a key or a name.");
create_exception!(
    matproof,
    RpcError,
    MatproofError,
    "A verifier node or prover sidecar refused a call or cannot be reached."
);
create_exception!(
    matproof,
    CheckError,
    MatproofError,
    "The result failed its check (a C whose R_C is not the approved receipt's, a cut stream): no result."
);
create_exception!(
    matproof,
    RejectedError,
    MatproofError,
    "The job ran and was rejected; `.receipt` holds the receipt bytes, `.job_id` the job."
);
create_exception!(matproof, AuditError, MatproofError, "The receipt fails the audit (the message names the check).");

/// The exception class of a consumer-side failure.
fn client_error(error: &ClientError) -> fn(String) -> PyErr {
    match error {
        ClientError::Shapes { .. } | ClientError::Tiling(_) | ClientError::Spec(_) | ClientError::Mode { .. } => {
            InputError::new_err
        }
        ClientError::Result { .. } | ClientError::ResultCut { .. } | ClientError::Freivalds { .. } => {
            CheckError::new_err
        }
        ClientError::Connect { .. }
        | ClientError::Refused { .. }
        | ClientError::Malformed { .. }
        | ClientError::OtherJob { .. }
        | ClientError::Missing { .. } => RpcError::new_err,
        _ => MatproofError::new_err,
    }
}

impl From<ApiError> for PyErr {
    fn from(error: ApiError) -> PyErr {
        let message = error.to_string();
        match error {
            ApiError::Client(ref client) => client_error(client)(message),
            ApiError::Audit(_) => AuditError::new_err(message),
            ApiError::Rejected { job_id, receipt, .. } => Python::attach(|py| {
                let err = RejectedError::new_err(message);
                let value = err.value(py);
                // Attributes on the instance: the receipt is the consumer's evidence.
                let attached = value
                    .setattr("receipt", PyBytes::new(py, &receipt))
                    .and_then(|()| value.setattr("job_id", job_id.to_hex()));
                attached.err().unwrap_or(err)
            }),
            ApiError::Runtime(_) => MatproofError::new_err(message),
            _ => InputError::new_err(message),
        }
    }
}

/// `array` as a matrix view named `what`, without a copy; it must be C-contiguous.
fn borrow<'a, T: numpy::Element + Copy>(
    what: &'static str,
    array: &'a PyReadonlyArray2<'_, T>,
) -> PyResult<MatrixView<'a, T>> {
    if !array.is_c_contiguous() {
        return Err(InputError::new_err(format!("{what} must be C-contiguous (row-major)")));
    }
    let shape = array.shape();
    let data = array.as_slice().map_err(|e| InputError::new_err(format!("{what}: {e}")))?;
    Ok(api::view(what, shape[0], shape[1], data)?)
}

fn job_id(text: &str) -> PyResult<JobId> {
    JobId::from_hex(text).map_err(|e| InputError::new_err(format!("job_id {text:?}: {e}")))
}

/// `R_A`, `R_B` (32 bytes each) of `a`, `b`.
#[pyfunction]
#[pyo3(signature = (a, b, tile, kc, scheme))]
fn commit<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, i8>,
    b: PyReadonlyArray2<'py, i8>,
    tile: (usize, usize),
    kc: Option<usize>,
    scheme: &str,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let scheme = api::input_scheme(scheme)?;
    let views = (borrow("a", &a)?, borrow("b", &b)?);
    let (r_a, r_b) = py.detach(|| api::commit(views, tile, kc, scheme))?;
    Ok((PyBytes::new(py, &r_a.0), PyBytes::new(py, &r_b.0)))
}

/// A job's terms, as `Client.open_job` / `Client.submit` take them.
#[pyclass(frozen, module = "matproof._native")]
struct Terms {
    request: JobRequest,
}

#[pymethods]
impl Terms {
    #[new]
    #[pyo3(signature = (provider, tile, kc, mode, samples, scheme, vk, rounds, deadline_secs, price, slash_amount))]
    #[allow(clippy::too_many_arguments)] // one per keyword argument of the Python API
    fn new(
        provider: &str,
        tile: (usize, usize),
        kc: Option<usize>,
        mode: &str,
        samples: u32,
        scheme: Option<&str>,
        vk: Option<PathBuf>,
        rounds: (u32, u32, u32),
        deadline_secs: u64,
        price: u64,
        slash_amount: u64,
    ) -> PyResult<Self> {
        let options = api::job_options(mode, samples, scheme, rounds, deadline_secs)?;
        let provider = api::public_key("provider", provider)?;
        Ok(Self { request: JobRequest { provider, tile, kc, options, vk, price, slash_amount } })
    }
}

/// A job opened on a verifier (its signed spec).
#[pyclass(frozen, module = "matproof._native")]
struct Job {
    job: OpenedJob,
}

#[pymethods]
impl Job {
    /// The job id, 64 hex digits.
    #[getter]
    fn job_id(&self) -> String {
        self.job.spec.job_id().to_hex()
    }

    /// `(R_A, R_B)`, 32 bytes each.
    #[getter]
    fn roots<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        (PyBytes::new(py, &self.job.spec.r_a.0), PyBytes::new(py, &self.job.spec.r_b.0))
    }

    /// `(m, k, n)`.
    #[getter]
    fn dims(&self) -> (u64, u64, u64) {
        (self.job.spec.m, self.job.spec.k, self.job.spec.n)
    }
}

/// A consumer of one verifier node.
#[pyclass(frozen, module = "matproof._native")]
struct Consumer {
    inner: api::Consumer,
}

#[pymethods]
impl Consumer {
    #[new]
    fn new(verifier_url: &str, identity_path: PathBuf) -> PyResult<Self> {
        Ok(Self { inner: api::Consumer::new(verifier_url, &identity_path)? })
    }

    /// The consumer's public key, 64 hex digits.
    #[getter]
    fn public_key(&self) -> String {
        self.inner.public_key().to_hex()
    }

    /// The consumer's ledger account (`consumer-<hex key>`), to fund.
    #[getter]
    fn account(&self) -> String {
        consumer_account(&self.inner.public_key())
    }

    /// The verifier node's URL.
    #[getter]
    fn verifier_url(&self) -> &str {
        self.inner.verifier_url()
    }

    fn open_job<'py>(
        &self,
        py: Python<'py>,
        a: PyReadonlyArray2<'py, i8>,
        b: PyReadonlyArray2<'py, i8>,
        terms: &Terms,
    ) -> PyResult<Job> {
        let views = (borrow("a", &a)?, borrow("b", &b)?);
        let (inner, request) = (&self.inner, &terms.request);
        let job = py.detach(|| inner.open_job(views, request))?;
        Ok(Job { job })
    }

    /// `(job_id, c, receipt)` of the approved job.
    fn submit<'py>(
        &self,
        py: Python<'py>,
        sidecar_url: &str,
        job: &Job,
        a: PyReadonlyArray2<'py, i8>,
        b: PyReadonlyArray2<'py, i8>,
    ) -> PyResult<(String, Bound<'py, PyAny>, Bound<'py, PyBytes>)> {
        let views = (borrow("a", &a)?, borrow("b", &b)?);
        let (inner, opened) = (&self.inner, &job.job);
        let checked = py.detach(|| inner.submit(sidecar_url, opened, views))?;
        let (rows, cols) = (checked.c.rows(), checked.c.cols());
        // The Vec moves into numpy: C is not copied on its way to Python.
        let c = checked.c.into_vec().into_pyarray(py).reshape([rows, cols])?.into_any();
        Ok((checked.job_id.to_hex(), c, PyBytes::new(py, &checked.receipt)))
    }

    fn status<'py>(&self, py: Python<'py>, job_id_hex: &str) -> PyResult<Bound<'py, PyDict>> {
        let id = job_id(job_id_hex)?;
        let inner = &self.inner;
        let status = py.detach(|| inner.status(&id))?;
        let dict = PyDict::new(py);
        dict.set_item("job_id", job_id_hex.to_ascii_lowercase())?;
        dict.set_item("state", status.state)?;
        dict.set_item("escrow", status.escrow)?;
        dict.set_item("deadline_unix_ms", status.deadline_unix_ms)?;
        let r_c = (!status.r_c.is_empty()).then(|| PyBytes::new(py, &status.r_c));
        dict.set_item("r_c", r_c)?;
        Ok(dict)
    }

    fn receipt<'py>(&self, py: Python<'py>, job_id_hex: &str) -> PyResult<Bound<'py, PyBytes>> {
        let id = job_id(job_id_hex)?;
        let inner = &self.inner;
        let bytes = py.detach(|| inner.receipt(&id))?;
        Ok(PyBytes::new(py, &bytes))
    }
}

/// The audit report as a dict (`matproof.AuditReport` wraps it).
fn report_dict<'py>(py: Python<'py>, report: &AuditReport) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("job_id", report.job_id.to_hex())?;
    dict.set_item("r_c", PyBytes::new(py, &report.r_c.0))?;
    dict.set_item("mode", api::mode_name(report.mode))?;
    dict.set_item("verdict", report.verdict.as_str())?;
    let checks = PyList::empty(py);
    for check in &report.checks {
        checks.append((check.name, check.outcome.as_str(), check.passed(), check.detail.as_str()))?;
    }
    dict.set_item("checks", checks)?;
    let b = &report.bounds;
    let bounds = PyDict::new(py);
    bounds.set_item("tiles", b.tiles)?;
    bounds.set_item("samples", b.samples)?;
    bounds.set_item("escape_one_wrong_tile", b.escape_one_wrong_tile)?;
    bounds.set_item("policy_fraction", b.policy_fraction)?;
    bounds.set_item("escape_policy_fraction", b.escape_policy_fraction)?;
    bounds.set_item("tile_identity_error_log2", b.tile_identity_error_log2)?;
    bounds.set_item("verifier_freivalds_rounds", b.verifier_freivalds_rounds)?;
    let verifier_log2 = (b.verifier_freivalds_exponent > 0).then(|| -i64::from(b.verifier_freivalds_exponent));
    bounds.set_item("verifier_freivalds_error_log2", verifier_log2)?;
    bounds.set_item("audit_freivalds_rounds", b.audit_freivalds_rounds)?;
    bounds.set_item("audit_freivalds_error_log2", b.audit_freivalds_exponent.map(|e| -i64::from(e)))?;
    dict.set_item("bounds", bounds)?;
    dict.set_item("challenge_signer", report.challenge_signer.to_hex())?;
    let signers: Vec<String> = report.verdict_signers.iter().map(|k| k.to_hex()).collect();
    dict.set_item("verdict_signers", signers)?;
    dict.set_item("verifiers_pinned", report.verifiers_pinned)?;
    dict.set_item("rejection", report.rejection.as_ref().map(ToString::to_string))?;
    dict.set_item("rejection_unverifiable", report.rejection_unverifiable)?;
    dict.set_item("approval_unverifiable", report.approval_unverifiable)?;
    dict.set_item("text", report.to_string())?;
    Ok(dict)
}

/// Audits `receipt` offline; `a`, `b` (and `c`) are copied once into the audit's matrices.
#[pyfunction]
#[pyo3(signature = (receipt, vk, trusted_verifiers, a, b, c))]
fn audit<'py>(
    py: Python<'py>,
    receipt: &[u8],
    vk: Option<PathBuf>,
    trusted_verifiers: Vec<String>,
    a: Option<PyReadonlyArray2<'py, i8>>,
    b: Option<PyReadonlyArray2<'py, i8>>,
    c: Option<PyReadonlyArray2<'py, i32>>,
) -> PyResult<Bound<'py, PyDict>> {
    let trusted =
        trusted_verifiers.iter().map(|t| api::public_key("trusted verifier", t)).collect::<Result<Vec<_>, _>>()?;
    let data = match (&a, &b) {
        (Some(a), Some(b)) => {
            let c = c.as_ref().map(|c| borrow("c", c)).transpose()?;
            let (a, b) = (borrow("a", a)?, borrow("b", b)?);
            Some(py.detach(|| api::audit_data(a, b, c))?)
        }
        (None, None) if c.is_none() => None,
        _ => return Err(InputError::new_err("a and b go together (and c needs both)")),
    };
    let report = py.detach(|| api::audit(receipt, vk.as_deref(), &trusted, data.as_ref()))?;
    report_dict(py, &report)
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(commit, m)?)?;
    m.add_function(wrap_pyfunction!(audit, m)?)?;
    m.add_class::<Terms>()?;
    m.add_class::<Job>()?;
    m.add_class::<Consumer>()?;
    m.add("MatproofError", py.get_type::<MatproofError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("RpcError", py.get_type::<RpcError>())?;
    m.add("CheckError", py.get_type::<CheckError>())?;
    m.add("RejectedError", py.get_type::<RejectedError>())?;
    m.add("AuditError", py.get_type::<AuditError>())?;
    Ok(())
}
