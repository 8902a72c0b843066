"""A real verifier node and prover sidecar, started from the built `matproof` binary on
loopback for the whole session, and a funded consumer identity.

The binary: $MATPROOF_BIN, else target/release/matproof of this checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNDS = 10**12


def matproof_bin() -> Path:
    path = Path(os.environ.get("MATPROOF_BIN", REPO / "target" / "release" / "matproof"))
    if not path.is_file():
        pytest.fail(f"no matproof binary at {path}: build it (cargo build --release) or set MATPROOF_BIN")
    return path


def run(*args: str) -> str:
    done = subprocess.run([str(matproof_bin()), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"matproof {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


class Server:
    """A `matproof ... serve` in the background, its stdout in a file read for its lines."""

    def __init__(self, name: str, args: List[str], workdir: Path) -> None:
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen([str(matproof_bin()), *args], stdout=out, stderr=err)

    def line(self, prefix: str, timeout: float = 60.0) -> str:
        """The rest of the first stdout line starting with `prefix`."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(rf"^{re.escape(prefix)}\s*(\S+)", re.MULTILINE)
        while time.monotonic() < deadline:
            found = pattern.search(self.out.read_text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"no {prefix!r} line from the server: {self.out.read_text()}{self.err.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Network:
    verifier_url: str
    verifier_key: str
    sidecar_url: str
    provider_key: str
    db: str
    workdir: Path
    identity: Path
    """A consumer identity file whose account is funded."""

    def fund(self, account: str, amount: int = FUNDS) -> None:
        run("verifier", "fund", "--db", self.db, "--account", account, "--amount", str(amount))


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    import matproof

    workdir = tmp_path_factory.mktemp("network")
    db = f"sqlite://{workdir / 'ledger.db'}?mode=rwc"
    verifier = Server(
        "verifier",
        ["verifier", "serve", "--db", db, "--listen", "127.0.0.1:0", "--identity", str(workdir / "verifier.key")],
        workdir,
    )
    servers = [verifier]
    try:
        verifier_url = verifier.line("verifier node listening on")
        verifier_key = verifier.line("verifier public key:")
        sidecar = Server(
            "sidecar",
            ["prover", "serve", "--verifier", verifier_url, "--verifier-key", verifier_key,
             "--listen", "127.0.0.1:0", "--identity", str(workdir / "provider.key")],
            workdir,
        )
        servers.append(sidecar)
        sidecar_url = sidecar.line("prover sidecar listening on")
        provider_key = sidecar.line("provider public key:")
        identity = workdir / "consumer.key"
        net = Network(verifier_url, verifier_key, sidecar_url, provider_key, db, workdir, identity)
        net.fund(matproof.Client(verifier_url, identity).account)
        yield net
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture(scope="session")
def client(network: Network):
    import matproof

    return matproof.Client(network.verifier_url, network.identity)
