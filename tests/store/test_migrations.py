"""Schema migrations: applied at start, under a lock, upgrading what is there."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, inspect, text

from tests.conftest import DEFINITIONS, approval
from workflow_engine.store import Store, make_engine, schema
from workflow_engine.store.migrations import current_revision, head_revision, upgrade
from workflow_engine.testing import ServerProcess, running_server

# The tables of every release before migrations existed (revision 0001).
BEFORE_MIGRATIONS = ("definitions", "instances", "events", "idempotency_keys", "upstream_jobs")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    found = make_engine(database_url)
    yield found
    found.dispose()


def test_an_empty_database_is_brought_to_the_latest_revision(engine: Engine) -> None:
    assert current_revision(engine) is None
    Store(engine).create_schema()
    assert current_revision(engine) == head_revision()
    assert set(schema.metadata.tables) <= set(inspect(engine).get_table_names())


def test_upgrading_again_changes_nothing(database_url: str) -> None:
    store = Store(make_engine(database_url))
    store.create_schema()
    with store.write() as tx:
        tx.connection.execute(schema.upstream_jobs.insert().values(
            key="k", kind="enrich_lead", status="completed"))
    store.create_schema()
    with store.read() as tx:
        assert tx.connection.execute(text("SELECT count(*) FROM upstream_jobs")).scalar() == 1
    store.dispose()


def test_a_database_from_before_migrations_is_upgraded_not_recreated(engine: Engine) -> None:
    """Tables made without migrations (as every earlier release did) keep their rows."""
    upgrade(engine, "0001")  # the tables as they were, then without the version record
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    assert set(inspect(engine).get_table_names()) == set(BEFORE_MIGRATIONS)
    with engine.begin() as connection:
        connection.execute(schema.upstream_jobs.insert().values(
            key="old", kind="enrich_lead", status="completed"))
    Store(engine).create_schema()
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT key FROM upstream_jobs")).scalars().all()
    assert keys == ["old"]
    assert set(schema.metadata.tables) <= set(inspect(engine).get_table_names())


def test_concurrent_upgrades_of_an_empty_database_all_succeed(database_url: str) -> None:
    """Eight processes' worth of starts at one moment: one migrates, the others wait."""
    engines = [make_engine(database_url) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    failures: list[BaseException] = []

    def start(engine: object) -> None:
        barrier.wait()
        try:
            upgrade(engine)  # type: ignore[arg-type]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert current_revision(engines[0]) == head_revision()
    for engine in engines:
        engine.dispose()


def test_two_servers_started_at_once_on_an_empty_database_both_come_up(
    tmp_path: Path, database_url: str
) -> None:
    """Both migrate the schema and load the shipped definitions at once; both serve, and
    what one stores the other reads."""
    with ExitStack() as stack:
        # running_server waits for each to answer; start both before waiting on either.
        starting = [threading.Thread(target=lambda i=i: servers.__setitem__(
            i, stack.enter_context(running_server(
                database_url, data_dir=tmp_path / str(i), definitions=DEFINITIONS))))
            for i in range(2)]
        servers: dict[int, ServerProcess] = {}
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        assert len(servers) == 2, "a server did not come up"
        first, second = servers[0].url, servers[1].url
        httpx.post(f"{first}/api/definitions", json=approval()).raise_for_status()
        assert httpx.get(f"{second}/api/definitions/approval").status_code == 200
