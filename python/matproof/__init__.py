"""matproof from Python: commit to int8 data, submit a checkable GEMM job, receive a checked
``C``, audit a receipt.

Arrays go in as numpy arrays (a CPU ``torch.Tensor`` works through ``tensor.numpy()``):
``int8`` for ``A`` and ``B``, ``int32`` for an auditor's ``C``, two-dimensional. A
C-ordered (row-major) array is borrowed for the length of the call, never copied; any other
layout (Fortran order, a strided slice) is copied once into C order first. Every long call
(hashing, gRPC) releases the GIL.

Layer chains (``Model``, ``quantize``) are not in this version: they wait for the layer
chain work in the Rust crates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import (
    AuditError,
    CheckError,
    InputError,
    MatproofError,
    RejectedError,
    RpcError,
)

__all__ = [
    "AuditError",
    "AuditReport",
    "Check",
    "CheckError",
    "Client",
    "InputError",
    "Job",
    "JobStatus",
    "MatproofError",
    "RejectedError",
    "Result",
    "Roots",
    "RpcError",
    "audit",
    "commit",
]

PathLike = Union[str, "os.PathLike[str]"]


def _matrix(name: str, array: Any, dtype: "type[np.generic]") -> np.ndarray:
    """``array`` as a 2-D C-ordered numpy array of ``dtype``: the same object when it is one
    already (no copy), else one copy into C order. Wrong dtypes and shapes raise
    :class:`InputError` naming the argument; nothing is ever cast."""
    if isinstance(array, np.ndarray):
        matrix = array
    else:
        try:
            matrix = np.asarray(array)
        except Exception as error:  # noqa: BLE001 - the message names what was given
            raise InputError(f"{name} must be a numpy array, got {type(array).__name__}: {error}") from error
    if matrix.dtype != np.dtype(dtype):
        raise InputError(
            f"{name} must have dtype {np.dtype(dtype).name}, got {matrix.dtype.name} "
            f"(convert it explicitly, e.g. {name}.astype(np.{np.dtype(dtype).name}), if its values fit)"
        )
    if matrix.ndim != 2:
        raise InputError(f"{name} must be 2-D, got shape {matrix.shape}")
    if not matrix.flags.c_contiguous:
        # Fortran order or a strided view: copied once into row-major order.
        matrix = np.ascontiguousarray(matrix)
    return matrix


class Roots(NamedTuple):
    """The input commitments ``R_A`` and ``R_B`` (32 bytes each; ``.hex()`` for text)."""

    r_a: bytes
    r_b: bytes


def commit(
    a: np.ndarray,
    b: np.ndarray,
    tile: Tuple[int, int] = (4, 4),
    kc: Optional[int] = None,
    scheme: str = "poseidon",
) -> Roots:
    """Commits to ``A`` (m×k) and ``B`` (k×n), both ``int8``: returns ``Roots(r_a, r_b)``,
    the Merkle roots a job spec pins, for the tile ``(tm, tn)``, the circuit depth ``kc``
    (default ``k``) and the input scheme ``"poseidon"`` or ``"sha256"``.

    C-ordered arrays are read in place; other layouts are copied once. The GIL is released
    while hashing. Raises :class:`InputError` for a wrong dtype, shape, tile or scheme."""
    a, b = _matrix("a", a, np.int8), _matrix("b", b, np.int8)
    r_a, r_b = _native.commit(a, b, (int(tile[0]), int(tile[1])), kc, scheme)
    return Roots(r_a, r_b)


@dataclass(frozen=True)
class Job:
    """A job opened on a verifier node."""

    job_id: str
    """The job id, 64 hex digits."""
    roots: Roots
    """``R_A``, ``R_B`` its spec pins."""
    dims: Tuple[int, int, int]
    """``(m, k, n)``."""
    _native: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class Result:
    """The result of an approved job: ``c`` arrived whole and its Merkle root equals the
    approved receipt's ``R_C`` (checked before this object exists)."""

    job_id: str
    """The job id, 64 hex digits."""
    c: np.ndarray
    """``C = A·B`` (m×n, ``int32``), owned by Python (moved, not copied, from Rust)."""
    receipt: bytes
    """The verifier's receipt (protobuf bytes): pass it to :func:`audit`."""


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands on a verifier node."""

    job_id: str
    state: str
    """``opened``, ``challenged``, ``approved``, ``rejected`` or ``expired``."""
    escrow: str
    """``pending``, ``posted`` or ``voided``."""
    deadline_unix_ms: int
    r_c: Optional[bytes]
    """``R_C`` once the provider committed."""


class Client:
    """A consumer of one verifier node, with its identity (a 32-byte Ed25519 seed file,
    created with mode 0600 if missing, as the CLI's ``consumer_identity``).

    Fund :attr:`account` on the node's ledger (``matproof verifier fund``) before opening
    a job: the price goes into escrow when the job opens."""

    def __init__(self, verifier_url: str, identity_path: PathLike) -> None:
        self._native = _native.Consumer(verifier_url, os.fspath(identity_path))

    @property
    def public_key(self) -> str:
        """The consumer's public key, 64 hex digits."""
        return self._native.public_key

    @property
    def account(self) -> str:
        """The consumer's ledger account, ``consumer-<public key>``."""
        return self._native.account

    @property
    def verifier_url(self) -> str:
        return self._native.verifier_url

    @staticmethod
    def _terms(provider: str, tile: Tuple[int, int], kc: Optional[int], mode: str, samples: int,
               scheme: Optional[str], vk: Optional[PathLike], freivalds_rounds: int, quorum: int,
               target_fraud_ppm: int, deadline_secs: int, price: int, slash_amount: int) -> Any:
        vk_path = None if vk is None else os.fspath(vk)
        rounds = (freivalds_rounds, quorum, target_fraud_ppm)
        return _native.Terms(provider, (int(tile[0]), int(tile[1])), kc, mode, samples, scheme, vk_path,
                             rounds, deadline_secs, price, slash_amount)

    def open_job(
        self,
        a: np.ndarray,
        b: np.ndarray,
        *,
        provider: str,
        price: int,
        tile: Tuple[int, int] = (4, 4),
        kc: Optional[int] = None,
        mode: str = "full",
        samples: int = 0,
        scheme: Optional[str] = None,
        vk: Optional[PathLike] = None,
        freivalds_rounds: int = 2,
        quorum: int = 1,
        target_fraud_ppm: int = 10_000,
        deadline_secs: int = 600,
        slash_amount: int = 0,
    ) -> Job:
        """Commits to ``a``, ``b`` (``int8``), signs the job spec and opens the job on the
        verifier (in full mode ``A`` and ``B`` are uploaded, streamed from the arrays'
        buffers). ``provider`` is the provider's public key (hex); ``samples > 0`` (tile
        proofs) needs ``vk``, the verifying key file. ``scheme`` defaults to the rule:
        ``sha256`` without tile proofs, ``poseidon`` with them."""
        a, b = _matrix("a", a, np.int8), _matrix("b", b, np.int8)
        terms = self._terms(provider, tile, kc, mode, samples, scheme, vk, freivalds_rounds, quorum,
                            target_fraud_ppm, deadline_secs, price, slash_amount)
        native = self._native.open_job(a, b, terms)
        r_a, r_b = native.roots
        return Job(native.job_id, Roots(r_a, r_b), native.dims, native)

    def submit(
        self,
        sidecar_url: str,
        a: np.ndarray,
        b: np.ndarray,
        *,
        provider: str,
        price: int,
        job: Optional[Job] = None,
        **terms: Any,
    ) -> Result:
        """Opens the job (unless ``job`` is one :meth:`open_job` opened with these ``a``,
        ``b``), submits it to the provider's sidecar at ``sidecar_url`` and receives the
        result: a :class:`Result` whose ``c`` already matched the approved receipt's
        ``R_C``. Keywords as for :meth:`open_job`.

        Raises :class:`RejectedError` (with ``.receipt``) if the job was rejected,
        :class:`CheckError` if the result fails its check, :class:`RpcError` if a node or
        sidecar refuses."""
        a, b = _matrix("a", a, np.int8), _matrix("b", b, np.int8)
        if job is None:
            job = self.open_job(a, b, provider=provider, price=price, **terms)
        job_id, c, receipt = self._native.submit(sidecar_url, job._native, a, b)
        return Result(job_id, c, receipt)

    def status(self, job_id: str) -> JobStatus:
        """Where the job ``job_id`` (64 hex digits) stands on the verifier."""
        s = self._native.status(job_id)
        return JobStatus(s["job_id"], s["state"], s["escrow"], s["deadline_unix_ms"], s["r_c"])

    def receipt(self, job_id: str) -> bytes:
        """The job's receipt from the verifier (protobuf bytes)."""
        return self._native.receipt(job_id)


class Check(NamedTuple):
    """One check of an audit."""

    name: str
    """Stable short name: ``spec``, ``challenge``, ``verdicts``, ``data-freivalds``, ..."""
    outcome: str
    """``ok``, ``FAIL`` (only as a rejection's justification) or ``skip``."""
    passed: bool
    detail: str


@dataclass(frozen=True)
class AuditReport:
    """What an audit checked and the bounds it found (returned only when the receipt
    passes; a failure raises :class:`AuditError`)."""

    job_id: str
    r_c: bytes
    mode: str
    verdict: str
    checks: List[Check]
    bounds: Dict[str, Any]
    """``tiles``, ``samples``, ``escape_one_wrong_tile``, ``escape_policy_fraction``,
    ``verifier_freivalds_error_log2``, ``audit_freivalds_error_log2``, ..."""
    challenge_signer: str
    verdict_signers: List[str]
    verifiers_pinned: bool
    rejection: Optional[str]
    rejection_unverifiable: bool
    approval_unverifiable: bool
    """An approval without tile proofs audited without ``a``, ``b``, ``c``: the check of
    ``C`` is the verifier's word until the data is given."""
    text: str
    """The report as ``matproof audit`` prints it."""

    def check(self, name: str) -> Optional[Check]:
        """The named check, if it ran."""
        return next((c for c in self.checks if c.name == name), None)


def audit(
    receipt: bytes,
    vk: Optional[PathLike] = None,
    a: Optional[np.ndarray] = None,
    b: Optional[np.ndarray] = None,
    c: Optional[np.ndarray] = None,
    trusted_verifiers: Sequence[str] = (),
) -> AuditReport:
    """Re-checks a receipt offline, as ``matproof audit`` does: signatures, the quorum,
    the sampled openings and proofs (with ``vk``, the verifying key file, for a job with tile
    proofs) and the bounds; with ``a``, ``b`` (``int8``) it recomputes ``R_A``, ``R_B``, and
    with ``c`` (``int32``) also ``R_C`` and runs fresh Freivalds rounds. ``a``, ``b``, ``c``
    are copied once into the audit. ``trusted_verifiers``: verifier public keys (hex) to
    pin; without them any signer is accepted (the report says so).

    Raises :class:`AuditError` naming the failed check."""
    if (a is None) != (b is None) or (c is not None and a is None):
        raise InputError("a and b go together (and c needs both)")
    a_m = None if a is None else _matrix("a", a, np.int8)
    b_m = None if b is None else _matrix("b", b, np.int8)
    c_m = None if c is None else _matrix("c", c, np.int32)
    vk_path = None if vk is None else os.fspath(vk)
    r = _native.audit(bytes(receipt), vk_path, list(trusted_verifiers), a_m, b_m, c_m)
    checks = [Check(*entry) for entry in r.pop("checks")]
    return AuditReport(checks=checks, **r)
