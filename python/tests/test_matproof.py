"""The Python package against a real verifier node and prover sidecar (see conftest.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import matproof

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"


def random_i8(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (rows, cols), dtype=np.int8)


def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


def readme_example() -> str:
    text = README.read_text()
    found = re.search(r"<!-- python-example -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, "README.md has no ```python block after <!-- python-example -->"
    return found.group(1)


def test_the_readme_example_runs_verbatim(network, tmp_path, monkeypatch):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 10, code
    # The example's identity file, in the directory it runs in, funded as the README says.
    monkeypatch.chdir(tmp_path)
    network.fund(matproof.Client(network.verifier_url, "consumer.key").account)
    env = dict(os.environ, MATPROOF_VERIFIER=network.verifier_url, MATPROOF_SIDECAR=network.sidecar_url,
               MATPROOF_PROVIDER=network.provider_key)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "approved" in done.stdout, done.stdout


def test_a_1024_cubed_job_returns_numpys_exact_product(client, network):
    a, b = random_i8(1024, 1024, 1), random_i8(1024, 1024, 2)
    result = client.submit(network.sidecar_url, a, b, provider=network.provider_key, price=10)
    assert result.c.dtype == np.int32 and result.c.shape == (1024, 1024)
    assert np.array_equal(result.c.astype(np.int64), exact(a, b))
    report = matproof.audit(result.receipt, a=a, b=b, c=result.c)
    assert report.verdict == "approved"
    assert report.check("data-freivalds").passed, report.text
    status = client.status(result.job_id)
    assert status.job_id == result.job_id and status.state == "approved", status


def test_a_tampered_receipt_or_result_raises(client, network):
    a, b = random_i8(40, 24, 3), random_i8(24, 16, 4)
    result = client.submit(network.sidecar_url, a, b, provider=network.provider_key, price=1)
    assert matproof.audit(result.receipt).verdict == "approved"
    assert matproof.audit(client.receipt(result.job_id), a=a, b=b, c=result.c).verdict == "approved"
    # Every single-byte change of the receipt's last 64 bytes (a verdict signature) is caught.
    receipt = bytearray(result.receipt)
    for offset in range(len(receipt) - 64, len(receipt)):
        tampered = bytearray(receipt)
        tampered[offset] ^= 0x01
        with pytest.raises(matproof.AuditError):
            matproof.audit(bytes(tampered))
    wrong_c = result.c.copy()
    wrong_c[5, 7] += 1
    with pytest.raises(matproof.AuditError, match="R_C|C"):
        matproof.audit(result.receipt, a=a, b=b, c=wrong_c)
    other_a = a.copy()
    other_a[0, 0] ^= 1
    with pytest.raises(matproof.AuditError, match="R_A"):
        matproof.audit(result.receipt, a=other_a, b=b)


def test_an_int16_input_raises_a_clear_error():
    a16 = np.zeros((8, 8), dtype=np.int16)
    with pytest.raises(matproof.InputError, match=r"a must have dtype int8, got int16"):
        matproof.commit(a16, np.zeros((8, 8), dtype=np.int8))
    with pytest.raises(matproof.InputError, match=r"must be 2-D, got shape \(8,\)"):
        matproof.commit(np.zeros(8, dtype=np.int8), np.zeros((8, 8), dtype=np.int8))
    with pytest.raises(matproof.InputError, match="A is 8×8 but B is 4×8"):
        matproof.commit(np.zeros((8, 8), dtype=np.int8), np.zeros((4, 8), dtype=np.int8))
    with pytest.raises(matproof.InputError, match="blake3"):
        matproof.commit(np.zeros((8, 8), dtype=np.int8), np.zeros((8, 8), dtype=np.int8), scheme="blake3")
    assert issubclass(matproof.InputError, matproof.MatproofError)


def test_a_fortran_ordered_input_is_accepted(client, network):
    a, b = random_i8(36, 20, 5), random_i8(20, 12, 6)
    a_fortran = np.asfortranarray(a)
    assert not a_fortran.flags.c_contiguous
    for scheme in ("poseidon", "sha256"):
        assert matproof.commit(a_fortran, b, scheme=scheme) == matproof.commit(a, b, scheme=scheme)
    result = client.submit(network.sidecar_url, a_fortran, b[:, ::-1], provider=network.provider_key, price=1)
    assert np.array_equal(result.c.astype(np.int64), exact(a, b[:, ::-1]))


def test_roots_are_the_clis(network, tmp_path):
    a, b = random_i8(30, 17, 8), random_i8(17, 9, 9)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    c = exact(a, b).astype(np.int32)
    np.save(tmp_path / "c.npy", c)
    from conftest import run

    cli = json.loads(run("commit", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "b.npy"),
                         "--c", str(tmp_path / "c.npy"), "--tile", "4x8", "--json"))
    roots = matproof.commit(a, b, tile=(4, 8))
    assert (roots.r_a.hex(), roots.r_b.hex()) == (cli["r_a"], cli["r_b"]), cli


def test_calls_that_fail_raise_typed_errors(client, network, tmp_path):
    a, b = random_i8(8, 8, 10), random_i8(8, 8, 11)
    with pytest.raises(matproof.InputError, match="provider"):
        client.open_job(a, b, provider="not hex", price=1)
    with pytest.raises(matproof.InputError, match="samples = 2 needs vk"):
        client.open_job(a, b, provider=network.provider_key, price=1, samples=2)
    with pytest.raises(matproof.RpcError, match="cannot reach"):
        matproof.Client("http://127.0.0.1:9", tmp_path / "c.key").open_job(a, b, provider=network.provider_key,
                                                                           price=1)
    # An account without funds: the node refuses OpenJob and the message says which call.
    poor = matproof.Client(network.verifier_url, tmp_path / "poor.key")
    with pytest.raises(matproof.RpcError, match="OpenJob"):
        poor.open_job(a, b, provider=network.provider_key, price=1)


def probe(network, measure: str, n: int = 8192) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / "rss_probe.py"), measure, "--n", str(n), "--verifier", network.verifier_url,
         "--identity", str(network.identity), "--provider", network.provider_key],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout)
    print(figures)
    return figures


def test_64_mib_inputs_are_not_copied(network):
    # The control: the measure sees a copy of one 64 MiB input.
    copy = probe(network, "copy")
    assert copy["input_mib"] == 64 and copy["growth_mib"] >= 60, copy
    # Hashing reads the buffers in place: a few MiB of working memory.
    assert probe(network, "commit")["growth_mib"] < 16
    # The upload holds a few 4 MiB messages and the transport's buffers, whatever the size of
    # the inputs: below one input's size, and no larger for 64 MiB inputs than for 16 MiB.
    upload_64, upload_16 = probe(network, "open_job")["growth_mib"], probe(network, "open_job", 4096)["growth_mib"]
    assert upload_64 < 48, upload_64
    assert upload_64 < upload_16 + 12, (upload_64, upload_16)
