"""The engine as a WSGI application, for servers that run it in several processes:
``gunicorn -c python:workflow_engine.gunicorn_conf -w 4`` (see ``gunicorn_conf.py``).

``app`` builds the real application from the environment, as ``run_server.py`` does
(``./definitions`` loaded when it exists and ``DEFINITIONS_DIR`` is not set, logging
configured, the same refusals), once in each process that serves it and never at import:
the runner's threads and the database's connections do not survive a fork, so a server
that imports this module before it forks its workers (gunicorn's ``--preload``) still
gets one application per worker, built after the fork. ``gunicorn_conf`` builds it as
each worker starts, before its first request; under another server the first request
builds it.

Each process names itself ``host:pid:tag`` in the block runs it holds (the runner's
default): the processes of one server share its port, so the port cannot tell them
apart as it does for ``run_server.py``, and two live processes never share a name. So
``WORKER_NAME``, one name, is refused here; and so is ``PUBLIC_URL`` without
``WEBHOOK_SECRET``, since each process would make up its own secret and refuse the
webhooks that reach another.

What the application cannot see is where it is served: ``gunicorn_conf`` refuses an
address beyond loopback when no API tokens are configured, as ``run_server.py`` does;
with any other configuration or server, that is the operator's to ensure.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from flask import Flask

from . import logs, startup
from .api import RUNNER
from .app import create_app
from .settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ProcessApp", "app", "build", "check_settings"]

log = logging.getLogger("workflow_engine")


def check_settings() -> Settings:
    """The environment's settings, refused (:class:`startup.StartRefused`) where the
    processes of one server could not share them."""
    settings = startup.load_settings()
    if settings.worker_name is not None:
        raise startup.StartRefused(
            f"WORKER_NAME={settings.worker_name!r} would name every process of this server "
            "alike; unset it (each process names itself host:pid:tag).")
    if settings.public_url is not None and settings.webhook_secret is None:
        raise startup.StartRefused(
            "PUBLIC_URL is set without WEBHOOK_SECRET: each process of this server would "
            "make up its own secret and refuse the webhooks that reach another; set "
            "WEBHOOK_SECRET (the same on every server of the database).")
    return settings


def build() -> Flask:
    """This process's application, from the environment."""
    settings = check_settings()
    startup.read_tokens(settings)  # refused here rather than half-way through the build
    logs.configure(settings.log_level)
    built = create_app(settings)
    log.info("process %d serving as %s", os.getpid(), built.extensions[RUNNER].worker)
    return built


class ProcessApp:
    """A WSGI application built once in each process that serves it, the first time it
    is asked for there (a child of a fork builds its own)."""

    def __init__(self, factory: Callable[[], Flask]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._built: Flask | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # What the parent built is the parent's: its threads did not come along, and its
        # lock may have been held by one of them.
        self._lock = threading.Lock()
        self._built = None

    def load(self) -> Flask:
        """This process's application, built now if it is not yet."""
        built = self._built
        if built is None:
            with self._lock:
                built = self._built
                if built is None:
                    built = self._built = self._factory()
        return built

    def close(self) -> None:
        """Stop this process's runner, if it was built: running blocks stop where they
        are, released for whichever process on the database looks for them next."""
        built = self._built
        if built is not None:
            built.extensions[RUNNER].close(wait=False)
            log.info("process %d stopped", os.getpid())

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        return self.load()(environ, start_response)


app = ProcessApp(build)
