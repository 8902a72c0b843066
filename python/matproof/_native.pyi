"""Type stubs of the extension module (Rust, PyO3). Use the wrappers in ``matproof``: they
check dtypes and copy non-C-ordered arrays once; these functions take only C-contiguous
2-D ``int8`` (``int32`` for ``c``) arrays."""

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt

class MatproofError(Exception): ...
class InputError(MatproofError): ...
class RpcError(MatproofError): ...
class CheckError(MatproofError): ...

class RejectedError(MatproofError):
    receipt: bytes
    job_id: str

class AuditError(MatproofError): ...

def commit(
    a: npt.NDArray[np.int8],
    b: npt.NDArray[np.int8],
    tile: Tuple[int, int],
    kc: Optional[int],
    scheme: str,
) -> Tuple[bytes, bytes]: ...
def audit(
    receipt: bytes,
    vk: Optional[str],
    trusted_verifiers: List[str],
    a: Optional[npt.NDArray[np.int8]],
    b: Optional[npt.NDArray[np.int8]],
    c: Optional[npt.NDArray[np.int32]],
) -> Dict[str, Any]: ...

class Terms:
    def __new__(
        cls,
        provider: str,
        tile: Tuple[int, int],
        kc: Optional[int],
        mode: str,
        samples: int,
        scheme: Optional[str],
        vk: Optional[str],
        rounds: Tuple[int, int, int],
        deadline_secs: int,
        price: int,
        slash_amount: int,
    ) -> "Terms": ...

class Job:
    @property
    def job_id(self) -> str: ...
    @property
    def roots(self) -> Tuple[bytes, bytes]: ...
    @property
    def dims(self) -> Tuple[int, int, int]: ...

class Consumer:
    def __new__(cls, verifier_url: str, identity_path: str) -> "Consumer": ...
    @property
    def public_key(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def verifier_url(self) -> str: ...
    def open_job(self, a: npt.NDArray[np.int8], b: npt.NDArray[np.int8], terms: Terms) -> Job: ...
    def submit(
        self, sidecar_url: str, job: Job, a: npt.NDArray[np.int8], b: npt.NDArray[np.int8]
    ) -> Tuple[str, npt.NDArray[np.int32], bytes]: ...
    def status(self, job_id_hex: str) -> Dict[str, Any]: ...
    def receipt(self, job_id_hex: str) -> bytes: ...
