"""What every way of serving the engine does before it serves: the settings from the
environment, the refusal to serve an open API beyond loopback, and the start-up log.

``run_server.py`` (``server.py``) and gunicorn (``gunicorn_conf.py``, ``wsgi.py``) both
start through here, so a rule about starting is written once. A refusal is a
:class:`StartRefused`; each front turns it into its own way of stopping.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from . import logs
from .auth import TokenRegistry
from .settings import Settings

__all__ = ["StartRefused", "announce", "is_loopback", "load_settings", "read_tokens",
           "refuse_open_api"]

log = logging.getLogger("workflow_engine")

# Loaded at start when DEFINITIONS_DIR is not set and the working directory has it.
DEFAULT_DEFINITIONS = Path("definitions")


class StartRefused(RuntimeError):
    """The configuration cannot be served; the message says why and what to change."""


def load_settings(updates: dict[str, Any] | None = None) -> Settings:
    """The settings of the environment, with ``updates`` (a command line's values) winning
    over it, validated as a whole; ``./definitions`` as the definitions directory when
    none is configured and it exists."""
    try:
        # The updates as init arguments: they win over the environment, and the
        # combination is validated as a whole.
        settings = Settings(**(updates or {}))
    except ValueError as exc:
        raise StartRefused(f"Cannot start the server: {exc}") from exc
    if settings.definitions_dir is None and DEFAULT_DEFINITIONS.is_dir():
        settings = settings.model_copy(update={"definitions_dir": DEFAULT_DEFINITIONS})
    return settings


def read_tokens(settings: Settings) -> TokenRegistry:
    """The API tokens the settings configure (none: the API is open)."""
    try:
        return TokenRegistry.load(settings.api_tokens, settings.tokens_file)
    except (OSError, ValueError) as exc:
        raise StartRefused(f"Cannot read API tokens: {exc}") from exc


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_open_api(tokens: TokenRegistry, host: str) -> None:
    """Refuse to serve an API without tokens anywhere but on loopback."""
    if not tokens.enabled and not is_loopback(host):
        raise StartRefused(
            f"No API tokens are configured, so the API is open: refusing to serve on "
            f"{host}. Bind 127.0.0.1, or configure TOKENS_FILE or API_TOKENS "
            "(python -m workflow_engine.auth --help)."
        )


def announce(settings: Settings, tokens: TokenRegistry) -> None:
    """Set up logging and say what the server serves, with the start-up warnings."""
    logs.configure(settings.log_level)
    # A URL's password never reaches the logs.
    log.info("database: %s", make_url(settings.database_url).render_as_string(
        hide_password=True))
    log.info("definitions: %s", settings.definitions_dir or "(none)")
    log.info("storage: %s", settings.storage_url or (
        f"local directories {settings.files_dir}, {settings.outputs_dir}, "
        f"{settings.snapshots_dir}"))
    if settings.task_engine == "procrastinate" and settings.storage_url is None:
        log.warning("TASK_ENGINE=procrastinate with local storage: workers on other "
                    "machines cannot read this machine's files; set STORAGE_URL")
    if not settings.sixtyfour_api_key:
        log.warning("SIXTYFOUR_API_KEY is not set: enrichment blocks use the built-in "
                    "Sixtyfour SANDBOX, which returns SIMULATED data")
    if not tokens.enabled:
        log.warning("no API tokens configured: the API is OPEN to anyone on this machine; "
                    "serving on loopback only")
