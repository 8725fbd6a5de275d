"""A block worker: ``python -m workflow_engine.worker`` (``make worker``).

It runs the blocks that server processes defer to the task queue
(``TASK_ENGINE=procrastinate``, a PostgreSQL ``DATABASE_URL``): any number of workers, on
any machines, share the queue, the rate budget and the files (``STORAGE_URL``) through the
database and the storage every server uses. Each worker runs up to ``BLOCK_WORKERS``
blocks at once. SIGINT or SIGTERM stops it: running blocks stop where they are, and their
runs are taken over (from their stored input) by another worker once their lease lapses.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Any

from sqlalchemy.engine import make_url

from . import logs
from .engine import build_engine
from .runner import worker_name
from .settings import Settings

__all__ = ["main"]

log = logging.getLogger("workflow_engine.worker")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Run the workflow engine's blocks.")
    parser.add_argument("--db", help="SQLAlchemy URL of the PostgreSQL store "
                        "(default $DATABASE_URL)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="blocks run at once (default $BLOCK_WORKERS, 2)")
    parser.add_argument("--name", default=None, help="the worker's name in block runs and "
                        "logs (default $WORKER_NAME, or host:pid:tag)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING...")
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> Settings:
    """The settings the command line and the environment give, checked."""
    updates: dict[str, Any] = {"task_engine": "procrastinate"}
    if args.db:
        updates["database_url"] = args.db
    if args.concurrency:
        updates["block_workers"] = args.concurrency
    if args.log_level:
        updates["log_level"] = args.log_level.upper()
    try:
        # The command line's values as init arguments: they win over the environment, and
        # the combination is validated as a whole.
        settings = Settings(**updates)
    except ValueError as exc:
        sys.exit(f"Cannot start a worker: {exc}")
    logs.configure(settings.log_level)
    return settings


def main(argv: list[str] | None = None) -> None:
    """Run blocks until stopped."""
    args = parse_args(argv)
    settings = configure(args)
    name = args.name or settings.worker_name or worker_name()
    engine = build_engine(settings, worker=name)
    queue = engine.runner.queue
    assert queue is not None, "a worker's runner takes its runs from the task queue"
    log.info("worker %s: running up to %d blocks at once from %s", name,
             settings.block_workers,
             make_url(settings.database_url).render_as_string(hide_password=True))

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s stopping (%s): running blocks stop and are left for other "
                 "workers", name, signal.Signals(signum).name)
        queue.stop()
        engine.runner.close(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        queue.work(engine.runner, concurrency=settings.block_workers, name=name,
                   heartbeat_seconds=settings.block_heartbeat_seconds,
                   stalled_seconds=settings.block_lease_seconds)
    finally:
        engine.close(wait=False)
        log.info("worker %s stopped", name)


if __name__ == "__main__":
    main()
