"""The SQLite store: its settings, and what it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError

from tests.conftest import approval
from workflow_engine.errors import ActionNotAvailable, ServiceUnavailable
from workflow_engine.service import WorkflowService
from workflow_engine.store import Store, make_engine
from workflow_engine.testing import PostgresServer


def pragma(store: Store, name: str) -> object:
    with store.engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


@pytest.mark.parametrize(("setting", "value"), [("FULL", 2), ("NORMAL", 1)])
def test_wal_mode_and_configured_synchronous(tmp_path: Path, setting: str, value: int) -> None:
    """Files are in WAL mode; synchronous is what the settings say."""
    store = Store(make_engine(f"sqlite:///{tmp_path / 'wf.db'}", synchronous=setting))
    store.create_schema()
    assert pragma(store, "journal_mode") == "wal"
    assert pragma(store, "synchronous") == value
    assert pragma(store, "foreign_keys") == 1
    store.dispose()


def test_creates_the_directory_of_the_file(tmp_path: Path) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'wf.db'}"))
    store.create_schema()
    assert (tmp_path / "nested" / "dir" / "wf.db").exists()
    store.dispose()


def test_a_new_store_on_the_same_file_sees_everything(tmp_path: Path) -> None:
    """What one process stored, the next one reads, unchanged."""
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    first = Store(make_engine(url))
    first.create_schema()
    service = WorkflowService(first)
    service.create_definition(approval())
    instance, _, _ = service.start_instance("approval", instance_id="i", context={"k": [1]})
    service.fire("i", "submit", actor="ann", idempotency_key="key")
    history = service.history("i")
    first.dispose()

    second = Store(make_engine(url))
    second.create_schema()
    again = WorkflowService(second)
    stored, workflow = again.get_instance("i")
    assert (stored.current_state, stored.version, stored.context) == ("review", 2, {"k": [1]})
    assert stored.created_at == instance.created_at
    assert again.history("i") == history
    assert workflow.version == 1
    assert again.fire("i", "submit", idempotency_key="key").replayed
    second.dispose()


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    """State and history change in one transaction: a refused fire writes neither."""
    store = Store(make_engine(f"sqlite:///{tmp_path / 'wf.db'}"))
    store.create_schema()
    service = WorkflowService(store)
    service.create_definition(approval())
    service.start_instance("approval", instance_id="i")
    with pytest.raises(ActionNotAvailable, match="fire 'approve' when in 'draft'"):
        service.fire("i", "approve", idempotency_key="k")
    with store.read() as tx:
        assert tx.idempotency_key("i", "k") is None
        assert len(tx.history("i")) == 1
    store.dispose()


def test_a_write_after_dispose_leaves_no_connection_open(tmp_path: Path) -> None:
    """A late write (a block finishing as the server stops) still lands, but the store
    holds no connection past it: a disposed store leaks nothing."""
    store = Store(make_engine(f"sqlite:///{tmp_path / 'wf.db'}"))
    store.create_schema()
    service = WorkflowService(store)
    service.create_definition(approval())
    service.start_instance("approval", instance_id="i")
    store.dispose()
    service.fire("i", "submit")
    assert store.engine.pool.checkedout() == 0
    store.engine.dispose()
    assert service.get_instance("i")[0].current_state == "review"
    assert store.engine.pool.checkedout() == 0
    store.dispose()


def test_a_connection_lost_mid_fire_is_invalidated_not_reused(postgres: PostgresServer) -> None:
    """The server ends a connection while a fire runs its prepared statements: the fire
    fails as unavailable with the statement's own error (not a later one from rolling
    back on a dead connection), the lost connection is invalidated (never handed out
    again, with or without pre-ping), and the next fire succeeds."""
    url = postgres.create_database()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"),
                           pool_size=1, max_overflow=0)
    store = Store(engine)
    store.create_schema()
    service = WorkflowService(store)
    service.create_definition(approval())
    service.start_instance("approval", instance_id="i")
    with store.engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    admin.dispose()
    with pytest.raises(ServiceUnavailable) as lost:
        service.fire("i", "submit")
    assert isinstance(lost.value.__cause__, DBAPIError)
    assert "FROM instances" in (lost.value.__cause__.statement or "")
    assert lost.value.__cause__.connection_invalidated
    assert service.fire("i", "submit").instance.current_state == "review"
    store.dispose()
