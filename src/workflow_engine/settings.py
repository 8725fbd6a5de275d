"""The server's configuration: one object, read from the environment when the app is built."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .limits import DEFAULT_MAX_CSV_COLUMNS, Limits

__all__ = ["Settings"]

ONE_MIB = 1024 * 1024
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


class Settings(BaseSettings):
    """Everything the server can be told. Environment variables use the upper-case names.

    Nothing reads the environment at import time: ``create_app`` builds this object,
    and tests pass their own.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = Field(
        "sqlite:///var/workflow.db",
        description="SQLAlchemy URL of the store. SQLite by default; PostgreSQL works too.",
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        "FULL",
        description="SQLite's PRAGMA synchronous. FULL makes every acknowledged change "
        "survive a power loss; NORMAL only a crash of the process.",
    )
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)
    definitions_dir: Path | None = Field(
        None, description="Directory of JSON definitions loaded (idempotently) at start."
    )
    files_dir: Path = Field(
        Path("var/files"), description="Uploaded CSVs: where POST /api/files writes, and "
        "the first place read_csv looks.")
    samples_dir: Path | None = Field(
        Path("data"), description="Sample CSVs, read-only: read_csv, the listing and "
        "previews find them after the uploads; nothing is written there.")
    outputs_dir: Path = Field(Path("var/outputs"), description="Files written by save_csv.")
    snapshots_dir: Path = Field(Path("var/snapshots"), description="Instances' tables.")
    storage_url: str | None = Field(
        None, description="Where uploads, outputs and snapshots live when several machines "
        "must read them: an S3-compatible object store, s3://bucket/prefix (files/, "
        "outputs/ and snapshots/ under the prefix). Unset, they are the local directories "
        "FILES_DIR, OUTPUTS_DIR and SNAPSHOTS_DIR. Samples are always read from SAMPLES_DIR.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, repr=False, description="JSON object of the object store's "
        "options (s3fs): endpoint_url, key, secret, client_kwargs...")
    block_workers: int = Field(
        2, ge=1, le=64, description="Blocks running at once in each process that runs them "
        "(the server with threads; each worker with procrastinate).")
    task_engine: Literal["threads", "procrastinate"] = Field(
        "threads", description="Who runs blocks: 'threads' of the server process itself "
        "(the embedded default), or 'procrastinate': jobs in PostgreSQL run by any number "
        "of workers (python -m workflow_engine.worker), on any machine.")
    worker_name: str | None = Field(
        None, max_length=200, description="This process's name in the block runs it "
        "holds. run_server.py names itself host:port, so a server restarted on its port "
        "after a crash takes its runs back at once (two live processes cannot hold one "
        "port); other processes default to host:pid:tag, and take over a dead one's runs "
        "when their lease lapses. gunicorn's workers share a port, so each is always "
        "host:pid:tag and WORKER_NAME is refused there.")
    block_lease_seconds: float = Field(
        30.0, gt=0, description="How long a block run stays its worker's without a "
        "heartbeat; after that another worker may take it over.")
    block_heartbeat_seconds: float = Field(
        2.0, gt=0, description="How often a worker stores its blocks' progress and renews "
        "their leases (also how soon it sees a cancel made by another process).")
    max_upload_bytes: int = Field(100 * ONE_MIB, gt=0, description="Largest CSV upload.")
    max_csv_columns: int = Field(
        DEFAULT_MAX_CSV_COLUMNS, ge=1, le=100_000,
        description="Widest CSV read (uploads, previews, read_csv); checked on the header "
        "before the file is parsed.")
    sixtyfour_api_key: str | None = Field(
        None, repr=False,
        description="Sixtyfour API key; without one, enrichment uses the built-in sandbox.")
    sixtyfour_base_url: str = "https://api.sixtyfour.ai"
    sixtyfour_rate_per_minute: int = Field(500, ge=1, description="The key's request budget.")
    public_url: str | None = Field(
        None, description="This server's URL as the enrichment API can reach it; set, "
        "submissions carry a webhook_url and results arrive at /api/webhooks/sixtyfour.")
    webhook_secret: str | None = Field(
        None, repr=False, description="The secret path segment of the webhook URL "
        "(random at each start if unset; with PUBLIC_URL, give every server the same one, "
        "since a webhook may reach any of them).")
    http_secrets: dict[str, str] = Field(
        default_factory=dict, repr=False, description="JSON object of secret name -> value "
        "for the http_request block's headers ({secret.NAME}); definitions name them, never "
        "hold them, and their values reach no history, error or log.")
    http_allow_private: bool = Field(
        False, description="Let http_request reach loopback, private, link-local and other "
        "non-public addresses (refused by default: a guard against server-side request "
        "forgery).")
    http_allowed_networks: str = Field(
        "", description="Comma-separated networks (CIDR, e.g. 10.1.0.0/16 or 127.0.0.1/32) "
        "that http_request may reach although they are not public.")
    http_max_answer_bytes: int = Field(
        ONE_MIB, gt=0, description="Largest answer http_request reads; a longer one is a "
        "row error.")
    api_tokens: str | None = Field(
        None, description="JSON list of tokens ({name, scopes, sha256, may_set_actor})."
    )
    tokens_file: Path | None = Field(None, description="A JSON file of tokens.")
    cors_origins: str = Field("*", description="Comma-separated allowed origins, or '*'.")
    max_body_bytes: int = Field(ONE_MIB, gt=0)
    http_max_connections: int = Field(
        1000, ge=1, description="Open connections served at once; more wait in the backlog.")
    http_request_timeout: int = Field(
        60, ge=1, description="Seconds a request may take to arrive whole, headers and "
        "body, from its first byte, however busily it trickles in.")
    http_idle_timeout: int = Field(
        20, ge=1, description="Seconds a connection may send nothing (mid-request or idle "
        "between requests) before it is closed.")
    max_event_streams: int = Field(
        4, ge=1, le=10_000, description="Event streams (GET /api/instances/{id}/events) "
        "open at once in this process; each holds a request thread for as long as it "
        "lasts, so keep it well under the server's --threads. Past it: 503 "
        "too_many_streams.")
    event_stream_poll_seconds: float = Field(
        0.25, gt=0, le=10, description="How often a stream reads the database for "
        "changes another process made (changes made by this process wake it at once).")
    event_stream_heartbeat_seconds: float = Field(
        15.0, gt=0, description="A stream with nothing to say sends a comment this often, "
        "so that proxies keep the connection open.")
    event_stream_max_seconds: float = Field(
        300.0, gt=0, description="How long one stream lasts at most; then it ends and "
        "the client reconnects with Last-Event-ID, freeing the thread meanwhile.")
    schedules: bool = Field(
        True, description="Whether this server process fires schedule triggers. Every "
        "process may: each tick is claimed in the database, so one of them starts it.")
    schedule_poll_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often the schedule loop looks for definitions "
        "saved since (it also wakes at each schedule's next tick).")
    log_level: str = "INFO"

    @field_validator("samples_dir", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        """``SAMPLES_DIR=`` (empty) means no samples, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("storage_url", mode="before")
    @classmethod
    def _object_store_url(cls, value: object) -> object:
        """``STORAGE_URL=`` (empty) means the local directories; otherwise an s3:// URL
        with a bucket."""
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str):
            parts = urlsplit(value)
            if parts.scheme not in ("s3", "s3a") or not parts.netloc:
                raise ValueError("STORAGE_URL must be s3://bucket or s3://bucket/prefix (an "
                                 "S3-compatible object store); leave it unset for the local "
                                 "directories.")
        return value

    @field_validator("http_secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, str]) -> dict[str, str]:
        """Secret names are what definitions write after ``secret.``: plain identifiers."""
        bad = [name for name in value if not SECRET_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"HTTP_SECRETS: names must match {SECRET_NAME.pattern}; "
                             f"refused: {bad}")
        return value

    @field_validator("http_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        """Every entry is a network (or an address)."""
        for entry in _entries(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"HTTP_ALLOWED_NETWORKS: {entry!r} is no network "
                                 "(CIDR such as 10.0.0.0/8)") from None
        return value

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> Settings:
        if self.block_lease_seconds < 2 * self.block_heartbeat_seconds:
            raise ValueError("BLOCK_LEASE_SECONDS must be at least twice "
                             "BLOCK_HEARTBEAT_SECONDS, or live runs would be taken over.")
        if self.task_engine == "procrastinate" and not self.database_url.startswith(
                "postgresql"):
            raise ValueError("TASK_ENGINE=procrastinate needs a PostgreSQL DATABASE_URL.")
        return self

    @property
    def limits(self) -> Limits:
        """The limits on what blocks and the files endpoints read."""
        return Limits(max_csv_columns=self.max_csv_columns)

    @property
    def http_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The non-public networks http_request may reach."""
        return [ipaddress.ip_network(entry, strict=False)
                for entry in _entries(self.http_allowed_networks)]

    @property
    def cors_origin_list(self) -> list[str] | str:
        """Origins in the form flask-cors takes."""
        if self.cors_origins.strip() == "*":
            return "*"
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]
