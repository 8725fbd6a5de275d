"""The record of enrichment jobs: who may send a request."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow_engine.store import Store, schema
from workflow_engine.store.upstream import UpstreamJobs

NOW = 1_000_000


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from(["sending", "not_taken", "submitted", "completed", "failed",
                               "unknown"]),
       owner=st.sampled_from(["me", "other", None]),
       claimed_until=st.sampled_from([None, NOW - 1, NOW, NOW + 1]),
       resend=st.booleans())
def test_the_read_ahead_of_a_claim_agrees_with_the_claim(
    store: Store, status: str, owner: str | None, claimed_until: int | None, resend: bool,
) -> None:
    """``standing`` (read before a request waits for its rate slot) stands in the way
    exactly when ``claim`` (written right before it leaves) would refuse it."""
    records = UpstreamJobs(store)
    key = uuid.uuid4().hex
    with store.write() as tx:
        tx.connection.execute(schema.upstream_jobs.insert().values(
            key=key, kind="enrich_lead", status=status, owner=owner,
            claimed_until=claimed_until))
    ahead = records.standing(key, owner="me", now=NOW, resend=resend)
    claimed = records.claim(key, "enrich_lead", owner="me", now=NOW, lease_ms=1000,
                            resend=resend)
    assert (ahead is None) == (claimed is None)
    if ahead is not None:
        assert ahead.status == status


def test_nothing_stands_in_the_way_of_a_request_never_sent(store: Store) -> None:
    assert UpstreamJobs(store).standing("new", owner="me", now=NOW) is None
