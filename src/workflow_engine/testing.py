"""Helpers for tests and benchmarks: a real server process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["SandboxProcess", "ServerProcess", "free_port", "running_server", "wait_until_up"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A server started by :func:`running_server`."""

    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> None:
        """Send ``sig`` to the whole process group (the server and anything it started) and wait."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        # A worker outlives a SIGKILLed master for a moment; wait until the group is gone.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.killpg(self.process.pid, signal.SIGKILL)

    def output(self) -> str:
        """What the server printed so far."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")


def wait_until_up(server: ServerProcess, timeout: float) -> None:
    """Return once the server answers ``/health``; raise with its output if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{server.output()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not answer within {timeout}s:\n{server.output()}")


@contextmanager
def running_server(
    db: Path | str,
    *,
    definitions: Path | None = None,
    threads: int = 8,
    env: dict[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30,
) -> Iterator[ServerProcess]:
    """Run ``python -m workflow_engine.server`` (what run_server.py runs) for the block.

    Its files, outputs and snapshots live beside ``db`` unless ``env`` says otherwise.
    """
    port = port or free_port()
    command = [
        sys.executable, "-m", "workflow_engine.server", "--host", "127.0.0.1",
        "--port", str(port), "--db", str(db), "--threads", str(threads),
    ]
    if definitions is not None:
        command += ["--definitions", str(definitions)]
    with tempfile.NamedTemporaryFile(prefix="workflow-server-", suffix=".log") as log:
        beside = Path(db).parent
        directories = {
            "FILES_DIR": str(beside / "files"), "OUTPUTS_DIR": str(beside / "outputs"),
            "SNAPSHOTS_DIR": str(beside / "snapshots"),
        }
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **directories, **(env or {})},
        )
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
        try:
            wait_until_up(server, timeout)
            yield server
        finally:
            server.stop()


class SandboxProcess:
    """The Sixtyfour sandbox in a process of its own (it outlives a killed server)."""

    def __init__(self, *, rate: int, latency: float, timeout: float = 20) -> None:
        import httpx

        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workflow_engine.sandbox",
             "--port", self.url.rsplit(":", 1)[1], "--rate", str(rate),
             "--latency", str(latency)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_sandbox/stats", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the sandbox did not answer within {timeout}s")

    def configure(self, **changes: object) -> None:
        """Change how the sandbox behaves (latency, failure rates...)."""
        import httpx

        httpx.post(f"{self.url}/_sandbox/config", json=changes).raise_for_status()

    def stats(self) -> dict[str, object]:
        """Its counters: requests, billable submissions, duplicates."""
        import httpx

        found: dict[str, object] = httpx.get(f"{self.url}/_sandbox/stats").json()
        return found

    def settled(self, *, held: int = 0, answered: int = 0, wait: float = 60) -> dict[str, object]:
        """Block until ``held`` submissions are held, ``answered`` were answered and every
        answered task was polled (so its task id is stored); what the sandbox holds. The
        answer comes the moment that is true; ``wait`` only bounds a run gone wrong."""
        import httpx

        found: dict[str, object] = httpx.get(
            f"{self.url}/_sandbox/settled", timeout=wait + 10,
            params={"held": held, "answered": answered, "wait": wait}).json()
        return found

    def release(self, *, answer: bool = True) -> None:
        """Let the held submissions go: answered, or their connections dropped."""
        import httpx

        httpx.post(f"{self.url}/_sandbox/release",
                   json={"answer": answer}).raise_for_status()

    def stop(self) -> None:
        """End the process."""
        self.process.terminate()
        self.process.wait(10)
