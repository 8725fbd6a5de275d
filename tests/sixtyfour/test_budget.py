"""The rate budget kept in the database: every process spends one budget together."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.sixtyfour.conftest import Sandbox
from workflow_engine.sixtyfour import (
    Enricher,
    Polling,
    RateBudget,
    RateLimit,
    Retries,
    SharedRateBudget,
    SixtyfourClient,
    make_http,
)
from workflow_engine.sixtyfour.budget import Budget
from workflow_engine.store import Store, make_engine
from workflow_engine.store.budgets import RateBudgets
from workflow_engine.store.upstream import UpstreamJobs

NOW = 1_700_000_000_000


@pytest.fixture
def stores(database_url: str) -> Iterator[list[Store]]:
    """Two stores on one database, each with its own connections: two processes' worth."""
    found = [Store(make_engine(database_url)) for _ in range(2)]
    found[0].create_schema()
    yield found
    for store in found:
        store.dispose()


class TestSlots:
    """Reservations, with the clock held still so that only the budget decides."""

    def test_concurrent_reservations_of_two_processes_take_distinct_evenly_spaced_slots(
        self, stores: list[Store]
    ) -> None:
        """8 threads over two stores, 200 requests at one instant: the slots are exactly
        one interval apart, none shared, so together they never exceed the rate."""
        slept: list[float] = []
        lock = threading.Lock()

        def sleep(seconds: float) -> None:
            with lock:
                slept.append(seconds)

        budgets = [SharedRateBudget(RateBudgets(store), "key", RateLimit(600, headroom=0),
                                    wall_ms=lambda: NOW, sleep=sleep) for store in stores]
        barrier = threading.Barrier(8)

        def spend(budget: SharedRateBudget) -> None:
            barrier.wait()
            for _ in range(25):
                budget.acquire()

        threads = [threading.Thread(target=spend, args=(budgets[i % 2],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # 600 a minute: one slot every 100 ms, the first at once.
        assert sorted(round(s * 1000) for s in slept) == [100 * i for i in range(1, 200)]

    def test_a_pause_moves_every_process_s_next_slot(self, stores: list[Store]) -> None:
        first = SharedRateBudget(RateBudgets(stores[0]), "key", RateLimit(600, headroom=0),
                                 wall_ms=lambda: NOW, sleep=lambda _s: None)
        second = SharedRateBudget(RateBudgets(stores[1]), "key", RateLimit(600, headroom=0),
                                  wall_ms=lambda: NOW, sleep=lambda _s: None)
        assert first.acquire() == 0
        first.pause(5)
        assert second.acquire() == 5.0
        assert first.acquire() == 5.1

    def test_budgets_of_different_keys_are_independent(self, stores: list[Store]) -> None:
        budgets = RateBudgets(stores[0])
        assert budgets.reserve("a", interval_ms=100, now_ms=NOW) == NOW
        assert budgets.reserve("b", interval_ms=100, now_ms=NOW) == NOW
        assert budgets.reserve("a", interval_ms=100, now_ms=NOW) == NOW + 100

    def test_a_slot_is_never_in_the_past(self, stores: list[Store]) -> None:
        budgets = RateBudgets(stores[0])
        budgets.reserve("a", interval_ms=100, now_ms=NOW)
        assert budgets.reserve("a", interval_ms=100, now_ms=NOW + 10_000) == NOW + 10_000


def enricher(sandbox: Sandbox, store: Store, budget: Budget) -> Enricher:
    client = SixtyfourClient(make_http("sandbox-key", sandbox.url), budget,
                             retries=Retries(attempts=6, base_seconds=0.05, cap_seconds=0.5))
    polling = Polling(expected_seconds={"enrich_lead": 0.3}, min_interval=0.05)
    return Enricher(client, UpstreamJobs(store), polling=polling, workers=8)


def run_two(sandbox: Sandbox, stores: list[Store], budgets: list[Budget], leads: int,
            tag: str) -> None:
    """Two enrichers (as two processes would have) enrich different new leads at once."""
    enrichers = [enricher(sandbox, store, budget) for store, budget in zip(
        stores, budgets, strict=True)]
    try:
        threads = [threading.Thread(target=e.enrich, args=(
            "enrich_lead",
            [{"lead_info": {"name": f"{tag}{n}-{i}"}, "struct": {"x": "y"}} for i in range(leads)],
            lambda _i, _o: None)) for n, e in enumerate(enrichers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for found in enrichers:
            found.close()


@pytest.mark.slow
def test_two_processes_sharing_the_stored_budget_stay_within_the_key_s_rate(
    sandbox: Sandbox, stores: list[Store]
) -> None:
    """Two enrichers on one database, each configured with the key's full rate: with the
    stored budget the API sees no 429; with a budget per process it does (the contrast
    shows the check would catch it). The API counts over 6 s windows here (72 requests),
    with 20% headroom over the budget (60) for the scheduling jitter of a loaded machine:
    a request sent late bunches with the ones after it, up to 1.2 s of lateness."""
    sandbox.config.rate_per_minute = 720
    sandbox.config.rate_window_seconds = 6.0
    key = "shared"
    run_two(sandbox, stores, [SharedRateBudget(RateBudgets(store), key, RateLimit(600))
                              for store in stores], leads=30, tag="shared")
    shared = sandbox.stats()["requests"]
    assert shared.get("429", 0) == 0, shared
    run_two(sandbox, stores, [RateBudget(RateLimit(600)) for _ in stores], leads=30,
            tag="alone")
    alone = sandbox.stats()["requests"]
    assert alone.get("429", 0) > 0, alone


def test_requests_are_paced_a_little_under_the_limit(stores: list[Store]) -> None:
    """2% under: at 600 a minute, a slot every 102 ms, so a request that leaves a little
    late never takes the API's window over its limit."""
    budget = SharedRateBudget(RateBudgets(stores[0]), "key", RateLimit(600),
                              wall_ms=lambda: NOW, sleep=lambda _s: None)
    assert [budget.acquire() for _ in range(3)] == [0, 0.102, 0.204]
