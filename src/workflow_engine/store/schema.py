"""The tables. Portable SQLAlchemy Core: SQLite by default, PostgreSQL with the same code.

Times are integers (milliseconds since the epoch, UTC): exact, sortable and the same
on every database.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "block_runs", "definitions", "events", "idempotency_keys", "instances", "metadata",
    "rate_budgets", "trigger_ticks", "triggers", "upstream_jobs",
]

ID = 64

metadata = MetaData()

definitions = Table(
    "definitions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("content", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("warnings", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

instances = Table(
    "instances",
    metadata,
    # A surrogate key in insertion order: it makes keyset pagination stable and cheap.
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(ID), nullable=False, unique=True),
    Column("definition_id", String(ID), nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("current_state", String(ID), nullable=False),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("context", JSON, nullable=False),
    # Block parameters the start gave, by state id (None: none given).
    Column("inputs", JSON),
    # The current table: the seq of the block run that produced it, its size and columns.
    Column("table_seq", Integer),
    Column("table_rows", BigInteger),
    Column("table_columns", JSON),
    Column("error", JSON),
    Column("start_request_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_instances_definition", "definition_id", "pk"),
    Index("ix_instances_status", "status", "pk"),
)

events = Table(
    "events",
    metadata,
    Column("instance_id", String(ID), ForeignKey("instances.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(32), nullable=False),
    Column("action_id", String(ID)),
    Column("from_state", String(ID)),
    Column("to_state", String(ID), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(200)),
    Column("data", JSON),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("instance_id", String(ID), ForeignKey("instances.id"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("action_id", String(ID), nullable=False),
    # The instance as the first request left it: a retry answers exactly that.
    Column("snapshot", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Every enrichment job ever submitted, by the identity of its request: a completed result
# is reused instead of paid for again, and a task still running when the server stopped
# is polled again after a restart instead of being submitted again. A submission is
# claimed here before it leaves (``owner``, until ``claimed_until``), so no two processes
# send the same request, and a claim whose process died is known by its lapsed lease.
# http_request's POSTs and PATCHes are recorded here too (kind "http_request", no task id):
# claimed before they leave, their answer stored, so no run sends one twice.
upstream_jobs = Table(
    "upstream_jobs",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("task_id", String(128)),
    Column("status", String(16), nullable=False),
    Column("result", JSON),
    Column("error", Text),
    Column("submitted_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("owner", String(64)),
    Column("claimed_until", BigInteger),
    Index("ix_upstream_jobs_task_id", "task_id"),
)

# One row per enrichment API key (by a digest, never the key): when its next request may
# leave. Every process reserves its requests' slots here, so all share one budget.
rate_budgets = Table(
    "rate_budgets",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("next_at", BigInteger, nullable=False),
)

# One row per block run (the BLOCK_STARTED event at ``seq``), written in the transaction
# that starts it. The worker that runs it claims it and renews its lease with each
# heartbeat, which also records progress: every process reads progress here, and a run
# whose lease has lapsed (its worker died) may be claimed by another.
block_runs = Table(
    "block_runs",
    metadata,
    Column("instance_id", String(ID), ForeignKey("instances.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # pending, running, ended
    Column("block", String(64)),
    Column("worker", String(200)),
    Column("lease_until", BigInteger),
    Column("rows_done", BigInteger, nullable=False, default=0),
    Column("rows_total", BigInteger),
    # Rows whose request has left for the upstream API (None: the block sends none).
    Column("rows_sent", BigInteger),
    # A fork's branches: each one's progress, and those cancelled on their own (by id,
    # with who cancelled them) for the worker to stop at its next heartbeat.
    Column("branches", JSON),
    Column("cancelled_branches", JSON),
    Column("attempts", Integer, nullable=False, default=0),
    Column("started_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Index("ix_block_runs_status", "status", "lease_until"),
)

# One row per trigger a definition declares (any version), kept across versions: a
# webhook's token (its SHA-256 only; the token is shown once) and when it last started an
# instance. Written when a version declaring the trigger is saved.
triggers = Table(
    "triggers",
    metadata,
    Column("definition_id", String(ID), primary_key=True),
    Column("trigger_id", String(ID), primary_key=True),
    Column("token_sha256", String(64)),
    Column("token_issued_at", BigInteger),
    Column("last_fired_at", BigInteger),
    Column("last_instance_id", String(ID)),
    Column("created_at", BigInteger, nullable=False),
)

# One row per schedule tick that started an instance. The key is the claim: of the server
# processes that find a tick due, the one whose insert commits starts the instance (in the
# same transaction); the others' inserts fail on the key, and they start nothing.
trigger_ticks = Table(
    "trigger_ticks",
    metadata,
    Column("definition_id", String(ID), primary_key=True),
    Column("trigger_id", String(ID), primary_key=True),
    Column("tick_at", BigInteger, primary_key=True),
    Column("instance_id", String(ID), nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
)
