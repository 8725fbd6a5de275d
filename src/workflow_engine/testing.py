"""Helpers for tests and benchmarks: a real server process on a free loopback port."""

from __future__ import annotations

import glob
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import Runner

__all__ = [
    "PostgresServer", "QueueWorker", "SandboxProcess", "ServerProcess", "free_consecutive_ports",
    "free_port",
    "running_gunicorn", "running_server", "running_worker", "serving_processes",
    "wait_until_up",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_consecutive_ports(count: int) -> int:
    """The first of ``count`` consecutive TCP ports on 127.0.0.1 that nothing listens on,
    below Linux's ephemeral range (32768 up), where no outgoing connection takes one of
    them between this check and their use."""
    for first in random.sample(range(20_000, 32_000 - count), 200):
        probes = [socket.socket() for _ in range(count)]
        try:
            for offset, probe in enumerate(probes):
                probe.bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports between 20000 and 32000")


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


def _beside(db: Path | str) -> Path:
    """The directory of a SQLite database, given as a path or a URL."""
    if "://" not in str(db):
        return Path(db).parent
    from sqlalchemy.engine import make_url

    url = make_url(str(db))
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ValueError(f"{db!r} is no SQLite file: say where the server's files go "
                         "(data_dir)")
    return Path(url.database).parent


@contextmanager
def _serving(command: list[str], *, port: int, db: Path | str, data_dir: Path | None,
             env: dict[str, str] | None, ready: Callable[[ServerProcess], None]
             ) -> Iterator[ServerProcess]:
    """Run ``command`` (a server on ``port``) with its files beside ``db`` or in
    ``data_dir``; yield it once ``ready`` returns; stop it after the block."""
    with tempfile.NamedTemporaryFile(prefix="workflow-server-", suffix=".log") as log:
        beside = data_dir or _beside(db)
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
            ready(server)
            yield server
        finally:
            server.stop()


@contextmanager
def running_server(
    db: Path | str,
    *,
    definitions: Path | None = None,
    threads: int = 8,
    env: dict[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30,
    data_dir: Path | None = None,
) -> Iterator[ServerProcess]:
    """Run ``python -m workflow_engine.server`` (what run_server.py runs) for the block.

    ``db`` is a SQLite file or a database URL. Its files, outputs and snapshots live in
    ``data_dir`` (by default beside a SQLite file) unless ``env`` says otherwise.
    """
    port = port or free_port()
    command = [
        sys.executable, "-m", "workflow_engine.server", "--host", "127.0.0.1",
        "--port", str(port), "--db", str(db), "--threads", str(threads),
    ]
    if definitions is not None:
        command += ["--definitions", str(definitions)]
    with _serving(command, port=port, db=db, data_dir=data_dir, env=env,
                  ready=lambda server: wait_until_up(server, timeout)) as server:
        yield server


# What each process of a WSGI server logs once its application is built (wsgi.py).
_SERVING = re.compile(r"process (\d+) serving as (\S+?)\"")


def serving_processes(server: ServerProcess) -> dict[int, str]:
    """The processes of a WSGI server that have built their application so far, by pid,
    with the name each holds block runs by."""
    return {int(pid): name for pid, name in _SERVING.findall(server.output())}


@contextmanager
def running_gunicorn(
    db: Path | str,
    *,
    workers: int = 2,
    definitions: Path | None = None,
    options: Sequence[str] = (),
    env: dict[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30,
    data_dir: Path | None = None,
) -> Iterator[ServerProcess]:
    """Run ``gunicorn -c python:workflow_engine.gunicorn_conf -w WORKERS`` on a free
    loopback port for the block, as :func:`running_server` runs its server (``options``
    are more of gunicorn's). It is yielded once every worker has built its application;
    ``process`` is gunicorn's master."""
    port = port or free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", "python:workflow_engine.gunicorn_conf",
               "-w", str(workers), "-b", f"127.0.0.1:{port}", *options]
    database_url = str(db) if "://" in str(db) else f"sqlite:///{Path(db).resolve()}"
    settings = {"DATABASE_URL": database_url}
    if definitions is not None:
        settings["DEFINITIONS_DIR"] = str(definitions)

    def ready(server: ServerProcess) -> None:
        deadline = time.monotonic() + timeout
        wait_until_up(server, timeout)
        while len(serving_processes(server)) < workers:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{workers} workers did not start within {timeout}s:\n"
                                   f"{server.output()}")
            time.sleep(0.05)

    with _serving(command, port=port, db=db, data_dir=data_dir,
                  env={**settings, **(env or {})}, ready=ready) as server:
        yield server


@contextmanager
def running_worker(
    database_url: str, *, name: str, data_dir: Path, env: dict[str, str] | None = None,
    concurrency: int = 2,
) -> Iterator[ServerProcess]:
    """Run ``python -m workflow_engine.worker`` (what ``make worker`` runs) for the block.

    It shares ``data_dir``'s files, outputs and snapshots with the servers given the same
    directory. The worker has no HTTP port: its ``url`` is empty."""
    command = [sys.executable, "-m", "workflow_engine.worker", "--db", database_url,
               "--name", name, "--concurrency", str(concurrency)]
    with tempfile.NamedTemporaryFile(prefix=f"workflow-{name}-", suffix=".log") as log:
        directories = {
            "FILES_DIR": str(data_dir / "files"), "OUTPUTS_DIR": str(data_dir / "outputs"),
            "SNAPSHOTS_DIR": str(data_dir / "snapshots"),
        }
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **directories, **(env or {})},
        )
        worker = ServerProcess("", process, log)
        try:
            yield worker
        finally:
            worker.stop()


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


def _postgres_bin() -> Path:
    """The directory of PostgreSQL's server binaries (Debian keeps them off the PATH)."""
    configured = os.environ.get("POSTGRES_BIN")
    if configured:
        return Path(configured)
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if found.returncode == 0 and (Path(found.stdout.strip()) / "initdb").exists():
            return Path(found.stdout.strip())
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda path: int(Path(path).parent.parent.name))
    if versions:
        return Path(versions[-1]).parent
    if shutil.which("initdb"):
        return Path(shutil.which("initdb") or "").parent
    raise RuntimeError("PostgreSQL's server is not installed (Debian: apt-get install "
                       "postgresql); set POSTGRES_BIN to the directory of initdb.")


class PostgresServer:
    """A PostgreSQL server on a loopback port, from the locally installed binaries.

    By default it is a throwaway one for tests and benchmarks: its data lives in a
    temporary directory, removed at :meth:`stop`, and is tuned for speed, not durability
    (``fsync=off``). Given a ``root`` it keeps its data there across starts, with
    PostgreSQL's durable defaults (``make cluster``). PostgreSQL refuses to run as root, so
    as root it runs as the ``postgres`` user that Debian's package creates.
    """

    def __init__(self, *, timeout: float = 60, root: Path | None = None,
                 port: int | None = None) -> None:
        self.bin = _postgres_bin()
        self.port = port or free_port()
        self.keep = root is not None
        self.root = root.resolve() if root is not None else Path(
            tempfile.mkdtemp(prefix="workflow-postgres-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            os.chmod(self.root, 0o777)
            self._as = ["runuser", "-u", "postgres", "--"]
        if not (self.data / "PG_VERSION").exists():
            self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                       "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
        fast = [] if self.keep else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                     "-c", "full_page_writes=off"]
        self.log = self.root / "server.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*self._as, str(self.bin / "postgres"), "-D", str(self.data),
                 "-p", str(self.port), "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
                 *fast, "-c", "max_connections=400", "-c", "shared_buffers=64MB"],
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                 "-U", "postgres"], capture_output=True)
            if ready.returncode == 0:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run([*self._as, *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed:\n{done.stdout}{done.stderr}")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, *, exist_ok: bool = False) -> str:
        """A new empty database (or, with ``exist_ok``, the one of that name); its URL."""
        import psycopg

        name = name or f"test_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None or not exist_ok:
                connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; what it printed."""
        done = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", statement],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def stop(self) -> None:
        """Stop the server; remove its data unless it was given a ``root`` to keep."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


class QueueWorker:
    """A worker of the task queue in a thread of this process, running with ``runner``
    (the runner of an app built with ``TASK_ENGINE=procrastinate``): tests see the blocks
    they install in its catalog."""

    def __init__(self, runner: Runner, *, name: str = "test-worker",
                 stalled_seconds: float = 2.0) -> None:
        queue = runner.queue
        assert queue is not None, "the runner takes its runs from a task queue"
        self.runner, self._queue = runner, queue
        self._thread = threading.Thread(
            target=queue.work, args=(runner,), name=name, daemon=True,
            kwargs={"concurrency": runner.workers, "name": name, "heartbeat_seconds": 0.5,
                    "stalled_seconds": stalled_seconds})
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop fetching jobs, stop the running blocks, and wait for the thread."""
        self._queue.stop()
        self.runner.close(wait=False)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker stopped"
