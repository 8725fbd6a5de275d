"""Bulk email finding against the sandbox over real HTTP: one submission per hundred
leads, each lead stored, reused and never paid twice as its own request."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.sixtyfour.conftest import Sandbox, make_enricher
from workflow_engine.sandbox import bulk_dropped, simulate
from workflow_engine.sixtyfour import Enricher, Outcome
from workflow_engine.sixtyfour.bulk import BULK_TASK_PREFIX, split_answer
from workflow_engine.sixtyfour.jobs import request_key
from workflow_engine.store import Store
from workflow_engine.store.upstream import UpstreamJobs


def leads(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [{"lead": {"name": f"Person {i}", "company": "Ariglad Inc"}, "mode": "PROFESSIONAL"}
            for i in range(offset, offset + n)]


def collect(enricher: Enricher, bodies: list[dict[str, Any]], bulk_size: int | None = 100,
            **options: Any) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    if bulk_size is not None:
        options["bulk_size"] = bulk_size
    enricher.enrich("find_email", bodies, outcomes.__setitem__, **options)
    return outcomes


def keys(enricher: Enricher, bodies: list[dict[str, Any]]) -> list[str]:
    return [request_key("find_email", body, enricher.namespace) for body in bodies]


def in_background(enricher: Enricher, bodies: list[dict[str, Any]], **options: Any
                  ) -> tuple[threading.Thread, dict[int, Outcome]]:
    outcomes: dict[int, Outcome] = {}
    thread = threading.Thread(target=enricher.enrich, args=(
        "find_email", bodies, outcomes.__setitem__), kwargs={"bulk_size": 100, **options})
    thread.start()
    return thread, outcomes


def recorded(store: Store, wanted: list[str], status: str) -> dict[str, Any]:
    """The records once each of ``wanted`` has ``status`` (read until then; the bound
    only ends a broken run)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = UpstreamJobs(store).get_many(wanted)
        if all(k in found and found[k].status == status for k in wanted):
            return found
        time.sleep(0.01)
    raise AssertionError(f"not all {status}")


class TestBatches:
    @pytest.mark.parametrize(("n", "size"), [(1, 100), (250, 100), (301, 100), (90, 30)])
    def test_one_submission_per_batch_and_each_lead_its_own_answer(
        self, enricher: Enricher, sandbox: Sandbox, n: int, size: int
    ) -> None:
        bodies = leads(n)
        outcomes = collect(enricher, bodies, size)
        assert sorted(outcomes) == list(range(n))
        assert all(outcomes[i].result == simulate("find_email", body)
                   for i, body in enumerate(bodies))
        stats = sandbox.stats()
        assert stats["requests"]["bulk_submissions"] == math.ceil(n / size)
        assert stats["requests"]["submissions"] == math.ceil(n / size)
        assert (stats["billable_submissions"], stats["duplicates"]) == (n, {})

    def test_results_are_stored_per_lead_and_reused_per_row(
        self, enricher: Enricher, sandbox: Sandbox
    ) -> None:
        """What a bulk job found is each lead's own request's result: the per-row mode
        pays for none of them again, and neither does bulk."""
        collect(enricher, leads(120))
        per_row = collect(enricher, leads(120), bulk_size=None)
        again = collect(enricher, leads(120))
        assert all(o.reused for o in [*per_row.values(), *again.values()])
        assert sandbox.stats()["requests"]["submissions"] == 2

    def test_leads_already_found_are_not_sent_again(
        self, enricher: Enricher, sandbox: Sandbox
    ) -> None:
        collect(enricher, leads(50), bulk_size=None)
        outcomes = collect(enricher, leads(150))
        assert all(o.result is not None for o in outcomes.values())
        stats = sandbox.stats()
        assert stats["requests"]["bulk_submissions"] == 1
        assert (stats["billable_submissions"], stats["duplicates"]) == (150, {})

    def test_a_lead_twice_in_the_rows_is_sent_once(
        self, enricher: Enricher, sandbox: Sandbox
    ) -> None:
        outcomes = collect(enricher, leads(3) + leads(3))
        assert outcomes[0].result == outcomes[3].result
        assert sandbox.stats()["billable_submissions"] == 3

    def test_personal_mode_has_no_bulk_endpoint(self, enricher: Enricher) -> None:
        with pytest.raises(ValueError, match="bulk"):
            enricher.enrich("find_phone", leads(1), lambda i, o: None, bulk_size=100)


class TestShortBatches:
    def test_leads_missing_from_the_answer_are_errors_and_only_they_are_sent_again(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        sandbox.config.update({"bulk_drop_rate": 0.2})
        bodies = leads(200)
        dropped = {i for i, body in enumerate(bodies) if bulk_dropped(body["lead"], 0.2)}
        assert 0 < len(dropped) < 200
        outcomes = collect(enricher, bodies)
        missing = {i for i, o in outcomes.items() if o.error is not None}
        assert missing == dropped
        assert {outcomes[i].error["code"] for i in missing} == {  # type: ignore[index]
            "upstream_lead_missing"}
        assert all(outcomes[i].result == simulate("find_email", bodies[i])
                   for i in set(range(200)) - missing)
        records = UpstreamJobs(store).get_many(keys(enricher, bodies))
        assert {records[k].status for i, k in enumerate(keys(enricher, bodies))
                if i in missing} == {"failed"}

        sandbox.config.update({"bulk_drop_rate": 0.0})
        retried = collect(enricher, bodies)
        assert all(o.result is not None for o in retried.values())
        stats = sandbox.stats()
        assert stats["requests"]["bulk_submissions"] == 2 + 1
        assert (stats["billable_submissions"], stats["duplicates"]) == (200, {})


class TestKillSafety:
    def test_the_batch_and_each_lead_are_claimed_before_the_batch_leaves(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        sandbox.config.update({"hold_submission": 1})
        thread, outcomes = in_background(enricher, leads(5))
        held = sandbox.settled(held=1)["held"]
        assert [lead["name"] for lead in held[0]["body"]["leads"]] == [
            f"Person {i}" for i in range(5)]
        records = UpstreamJobs(store).get_many(keys(enricher, leads(5)))
        assert {r.status for r in records.values()} == {"sending"}
        sandbox.release()
        thread.join()
        assert all(o.result is not None for o in outcomes.values())
        assert {r.status for r in UpstreamJobs(store).get_many(
            keys(enricher, leads(5))).values()} == {"completed"}

    def test_leads_of_a_batch_a_killed_server_sent_are_errors_not_payments(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        """The records a server killed mid-batch leaves behind: the batch's claim and each
        of its leads', ``sending``, no task id."""
        lost = keys(enricher, leads(3))
        UpstreamJobs(store).claim_many("killed-batch", "find_email_bulk",
                                       dict.fromkeys(lost, False), "find_email",
                                       owner="killed", now=0, lease_ms=1000)
        outcomes = collect(enricher, leads(10))
        assert {outcomes[i].error["code"] for i in range(3)} == {  # type: ignore[index]
            "upstream_outcome_unknown"}
        assert all(outcomes[i].result is not None for i in range(3, 10))
        assert collect(enricher, leads(3))[0].error == outcomes[0].error  # the same, for free
        assert sandbox.stats()["billable_submissions"] == 7

        resent = collect(enricher, leads(10), on_unknown_outcome="resubmit")
        assert all(o.result is not None for o in resent.values())
        stats = sandbox.stats()
        assert (stats["billable_submissions"], stats["requests"]["bulk_submissions"]) == (10, 2)

    def test_an_answer_lost_on_the_way_makes_each_lead_unknown(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        sandbox.config.update({"hold_submission": 1})
        thread, outcomes = in_background(enricher, leads(4))
        sandbox.settled(held=1)
        sandbox.release(answer=False)  # the job runs, its task id never arrives
        thread.join()
        assert {o.error["code"] for o in outcomes.values()  # type: ignore[index]
                } == {"upstream_outcome_unknown"}
        assert {r.status for r in UpstreamJobs(store).get_many(
            keys(enricher, leads(4))).values()} == {"unknown"}
        assert collect(enricher, leads(4))[0].error is not None
        assert sandbox.stats()["requests"]["bulk_submissions"] == 1

    def test_with_resubmit_a_lost_batch_is_sent_again_once(
        self, enricher: Enricher, sandbox: Sandbox
    ) -> None:
        sandbox.config.update({"hold_submission": 1})
        thread, outcomes = in_background(enricher, leads(4), on_unknown_outcome="resubmit")
        sandbox.settled(held=1)
        sandbox.release(answer=False)
        thread.join()
        assert all(o.result is not None for o in outcomes.values())
        stats = sandbox.stats()
        assert stats["requests"]["bulk_submissions"] == 2
        assert sorted(stats["duplicates"].values()) == [2, 2, 2, 2]

    @pytest.mark.parametrize("bulk_size", [100, None])
    def test_a_batch_in_flight_at_a_restart_is_polled_not_resubmitted(
        self, sandbox: Sandbox, store: Store, bulk_size: int | None
    ) -> None:
        """A server stopped with a bulk job running; the next one (in bulk or per row)
        polls that job for the leads, never pays for them again."""
        sandbox.config.update({"hold_results": True})
        first = make_enricher(sandbox, store)
        cancel = threading.Event()
        bodies = leads(150)
        thread = threading.Thread(target=first.enrich, args=(
            "find_email", bodies, lambda i, o: None),
            kwargs={"bulk_size": 100, "cancel": cancel})
        thread.start()
        found = recorded(store, keys(first, bodies), "submitted")
        assert all(r.task_id.startswith(BULK_TASK_PREFIX)  # type: ignore[union-attr]
                   for r in found.values())
        cancel.set()
        thread.join()
        first.close()

        sandbox.config.update({"hold_results": False})
        second = make_enricher(sandbox, store)
        try:
            outcomes = collect(second, bodies[:120], bulk_size)
        finally:
            second.close()
        assert all(outcomes[i].result == simulate("find_email", bodies[i]) for i in range(120))
        stats = sandbox.stats()
        assert stats["requests"]["submissions"] == 2
        assert (stats["billable_submissions"], stats["duplicates"]) == (150, {})


class TestSplitAnswer:
    @given(st.permutations(range(12)), st.sets(st.integers(0, 11)),
           st.sampled_from(["results", "leads", None]))
    def test_each_lead_gets_its_own_answer_whatever_the_order_and_the_gaps(
        self, order: list[int], dropped: set[int], wrapper: str | None
    ) -> None:
        subjects = [{"name": f"Person {i % 6}", "company": f"Co {i // 6}"} for i in range(12)]
        answers = [{**subjects[i], "email": [[f"p{i}@x.example", "OK", "COMPANY"]]}
                   for i in order if i not in dropped]
        result: Any = {wrapper: answers} if wrapper else answers
        parts = split_answer(subjects, result)
        for index, part in enumerate(parts):
            if index in dropped:
                assert part is None
            else:
                assert part is not None
                assert part["email"][0][0] == f"p{index}@x.example"

    def test_answers_that_echo_nothing_go_by_position_only_when_none_is_missing(self) -> None:
        subjects = [{"name": "A"}, {"name": "B"}]
        answers = [{"email": [["a@x", "OK"]]}, {"email": [["b@x", "OK"]]}]
        assert split_answer(subjects, {"results": answers}) == answers
        assert split_answer(subjects, {"results": answers[:1]}) == [None, None]
        assert split_answer(subjects, {"results": answers}, positional=False) == [None, None]

    def test_an_unreadable_answer_leaves_every_lead_missing(self) -> None:
        assert split_answer([{"name": "A"}], {"notes": "?"}) == [None]


class TestTwoProcesses:
    def test_a_batch_another_process_is_sending_is_waited_for_not_sent_again(
        self, sandbox: Sandbox, store: Store
    ) -> None:
        """The second process finds the leads claimed by the first's batch, watches them,
        and polls the first's bulk job once its task id is recorded."""
        first, second = make_enricher(sandbox, store), make_enricher(sandbox, store)
        try:
            sandbox.config.update({"hold_submission": 1})
            thread, outcomes = in_background(first, leads(20))
            sandbox.settled(held=1)
            waiting, waited = in_background(second, leads(20))
            sandbox.release()
            thread.join()
            waiting.join()
        finally:
            first.close()
            second.close()
        assert all(waited[i].result == outcomes[i].result is not None for i in range(20))
        stats = sandbox.stats()
        assert stats["requests"]["bulk_submissions"] == 1
        assert (stats["billable_submissions"], stats["duplicates"]) == (20, {})

    def test_two_processes_finding_the_same_rows_in_bulk_pay_for_each_once(
        self, sandbox: Sandbox, store: Store
    ) -> None:
        enrichers = [make_enricher(sandbox, store) for _ in range(2)]
        results: list[dict[int, Outcome]] = [{}, {}]
        start = threading.Barrier(2)

        def run(n: int) -> None:
            start.wait()
            enrichers[n].enrich("find_email", leads(250), results[n].__setitem__,
                                bulk_size=100)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for enricher in enrichers:
                enricher.close()
        for outcomes in results:
            assert sorted(outcomes) == list(range(250))
            assert all(o.result is not None for o in outcomes.values())
        stats = sandbox.stats()
        assert (stats["billable_submissions"], stats["duplicates"]) == (250, {})
