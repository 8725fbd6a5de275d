"""Start a cluster on this machine from locally installed binaries (``make cluster``).

PostgreSQL (Debian's ``postgresql`` package; its data kept in ``var/cluster/postgres``),
the Sixtyfour sandbox when ``SIXTYFOUR_API_KEY`` is not set (one for the whole cluster,
so every process shares its answers and the key's budget), N server processes on
consecutive ports and M block workers, all on one database with
``TASK_ENGINE=procrastinate``. Files live in ``var/cluster`` (every process is on this
machine), or with ``--object-store`` in an S3-compatible store: moto's server (a dev
dependency; it keeps objects in memory, so they go when the cluster stops), the layout of
machines that share no disk. It prints where each one is, then waits; Ctrl-C (or
SIGTERM) stops them all, workers first. The same layout for people with Docker:
``docker-compose.yml``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from workflow_engine.testing import (
    PostgresServer,
    SandboxProcess,
    free_port,
    running_server,
    running_worker,
)

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=5000, help="the first server's port")
    parser.add_argument("--postgres-port", type=int, default=5433)
    parser.add_argument("--root", type=Path, default=ROOT / "var" / "cluster",
                        help="where the database, files, outputs and snapshots live")
    parser.add_argument("--object-store", action="store_true",
                        help="keep uploads, outputs and snapshots in an S3-compatible store")
    return parser.parse_args(argv)


def start_object_store(stack: ExitStack) -> dict[str, str]:
    """moto's S3 server on a free port, with a bucket; the settings that reach it."""
    import fsspec

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "cluster",
               "secret": "cluster", "client_kwargs": {"region_name": "eu-west-1"}}
    store = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    deadline = time.monotonic() + 30
    while True:
        try:
            store.mkdir("workflow", region_name="eu-west-1")
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.1)
    print(f"objects   s3://workflow/cluster at {options['endpoint_url']}")
    return {"STORAGE_URL": "s3://workflow/cluster", "STORAGE_OPTIONS": json.dumps(options)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    env: dict[str, str] = {"TASK_ENGINE": "procrastinate"}
    with ExitStack() as stack:
        postgres = PostgresServer(root=args.root / "postgres", port=args.postgres_port)
        stack.callback(postgres.stop)
        database_url = postgres.create_database("workflow", exist_ok=True)
        if not os.environ.get("SIXTYFOUR_API_KEY"):
            rate = os.environ.get("SIXTYFOUR_RATE_PER_MINUTE", "500")
            sandbox = SandboxProcess(rate=int(rate), latency=2.0)
            stack.callback(sandbox.stop)
            env |= {"SIXTYFOUR_API_KEY": "sandbox-key", "SIXTYFOUR_BASE_URL": sandbox.url}
            print(f"sandbox   {sandbox.url} (SIXTYFOUR_API_KEY is not set: SIMULATED data)")
        print(f"database  {database_url}")
        if args.object_store:
            env |= start_object_store(stack)
        # Started in this order and stopped in the reverse one: workers go first, so no
        # block is left to a worker whose database has gone.
        for n in range(args.servers):
            server = stack.enter_context(running_server(
                database_url, data_dir=args.root, port=args.port + n,
                definitions=ROOT / "definitions", env=env, timeout=60))
            print(f"server    {server.url} (log: {server.log.name})")
        for n in range(args.workers):
            worker = stack.enter_context(running_worker(
                database_url, name=f"worker-{n + 1}", data_dir=args.root, env=env))
            print(f"worker    worker-{n + 1} (log: {worker.log.name})")
        print("cluster ready; Ctrl-C stops it", flush=True)
        stopped.wait()
        print("stopping the cluster", file=sys.stderr)


if __name__ == "__main__":
    main()
