"""Properties of the service over a real store (SQLite and PostgreSQL): random definitions,
random fires."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.test_properties import definitions
from workflow_engine import core, errors
from workflow_engine.service import WorkflowService
from workflow_engine.store import Store, make_engine

_ids = itertools.count()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, database: str, request: pytest.FixtureRequest
) -> Iterator[WorkflowService]:
    if database == "postgresql":
        url = request.getfixturevalue("postgres").create_database()
    else:
        path: Path = tmp_path_factory.mktemp("props") / "wf.db"
        url = f"sqlite:///{path}"
    store = Store(make_engine(url, synchronous="OFF"))
    store.create_schema()
    yield WorkflowService(store)
    store.dispose()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=definitions(), data=st.data())
def test_stored_instances_follow_the_rules(
    service: WorkflowService, document: dict[str, Any], data: st.DataObject
) -> None:
    """Through the store: a refused action changes nothing, the stored state is always a
    state of the definition, and replaying the stored history gives the stored state."""
    document = {**document, "id": f"random-{next(_ids)}"}
    service.create_definition(document)
    instance, workflow, _ = service.start_instance(document["id"])
    action_ids = [a["id"] for a in document["actions"]] + ["missing"]
    for _ in range(data.draw(st.integers(min_value=0, max_value=15))):
        action_id = data.draw(st.sampled_from(action_ids))
        before = service.history(instance.id)
        try:
            service.fire(instance.id, action_id)
        except (errors.TransitionNotAllowed, errors.ActionNotFound):
            assert service.get_instance(instance.id)[0] == instance
            assert service.history(instance.id) == before
            continue
        instance, _ = service.get_instance(instance.id)
        assert len(service.history(instance.id)) == len(before) + 1

    assert instance.current_state in workflow.states
    assert core.replay(workflow, service.history(instance.id)) == instance.current_state
