"""gunicorn's configuration for the engine:
``gunicorn -c python:workflow_engine.gunicorn_conf -w 4 -b 127.0.0.1:5000``.

It serves ``workflow_engine.wsgi:app`` in ``gthread`` workers of 8 threads (a fire with
``?wait=`` holds its thread while its blocks run, which would stall a ``sync`` worker
whole), on 127.0.0.1:5000 unless ``-b`` says otherwise; every option given on the
command line wins. Its hooks do what ``run_server.py`` does around its server:

- ``on_starting``, in the master before it binds: the settings are checked, an open API
  (no tokens) is refused on any address beyond loopback, and the start-up log is said
  once. A refusal stops gunicorn (``Error: ...``, exit status 1) before any worker runs.
- ``post_worker_init``, in each worker after the fork: the application is built there
  (migrations run under a lock, so workers may start at once on an empty database). A
  worker that cannot build it stops gunicorn (exit status 3) rather than being respawned.
  The master imports the application's modules (through this one) but builds nothing,
  so its workers start without importing them again.
- ``worker_exit``, in each worker as it exits (SIGTERM or SIGINT to the master, a
  restart, ``max_requests``): the runner closes, so running blocks stop where they are
  and are left for the next process to take them up. ``atexit`` would come too late:
  Python joins the runner's threads, whose blocks then run to their end, before it calls
  ``atexit``'s functions.
"""

from __future__ import annotations

from typing import Any

from gunicorn.util import parse_address

from . import startup, wsgi

wsgi_app = "workflow_engine.wsgi:app"
bind = ["127.0.0.1:5000"]
worker_class = "gthread"
threads = 8
# gunicorn 25+ opens a control socket at one path per user (for gunicornc): two servers
# on one machine would take it from each other, and the engine needs none.
control_socket_disable = True


def _hosts(addresses: list[str]) -> list[str]:
    """The hosts of gunicorn's TCP addresses (a Unix socket is reachable from this machine
    only; a socket handed over by file descriptor may be reachable from anywhere)."""
    hosts = []
    for address in addresses:
        parsed = parse_address(address)
        if isinstance(parsed, tuple):
            hosts.append(str(parsed[0]))
        elif isinstance(parsed, int):
            hosts.append(address)
    return hosts


def on_starting(server: Any) -> None:
    """In the master, before it binds: check the settings and where they are served."""
    settings = wsgi.check_settings()
    tokens = startup.read_tokens(settings)
    for host in _hosts(list(server.cfg.bind)):
        startup.refuse_open_api(tokens, host)
    startup.announce(settings, tokens)


def post_worker_init(worker: Any) -> None:
    """In each worker after the fork: build its application before its first request."""
    if isinstance(worker.wsgi, wsgi.ProcessApp):
        worker.wsgi.load()


def worker_exit(server: Any, worker: Any) -> None:
    """In each worker as it exits: stop its runner."""
    # A worker that failed to import its application has none.
    served = getattr(worker, "wsgi", None)
    if isinstance(served, wsgi.ProcessApp):
        served.close()
