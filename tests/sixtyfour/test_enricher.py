"""The enricher against the sandbox over real HTTP: every row once, never paid twice."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from tests.sixtyfour.conftest import Sandbox, make_enricher
from workflow_engine.errors import UpstreamAuthError, UpstreamUnavailable
from workflow_engine.sixtyfour import Enricher, Outcome
from workflow_engine.sixtyfour.jobs import request_key
from workflow_engine.store import Store, schema
from workflow_engine.store.upstream import UpstreamJobs


def leads(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [{"lead_info": {"name": f"Person {i}", "company": "Ariglad Inc"},
             "struct": {"education": "Where they studied"}} for i in range(offset, offset + n)]


def submitted_task(store: Store, key: str) -> str:
    """The task id, once the record says the submission was answered (read until then;
    the bound only ends a broken run)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record = UpstreamJobs(store).get_many([key]).get(key)
        if record is not None and record.status == "submitted" and record.task_id:
            return record.task_id
        time.sleep(0.01)
    raise AssertionError(f"{key} was never recorded submitted")


def collect(enricher: Enricher, bodies: list[dict[str, Any]], kind: str = "enrich_lead"
            ) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    enricher.enrich(kind, bodies, outcomes.__setitem__)
    return outcomes


def test_every_request_gets_its_result_once(enricher: Enricher, sandbox: Sandbox) -> None:
    outcomes = collect(enricher, leads(40))
    assert sorted(outcomes) == list(range(40))
    assert all(o.result is not None and o.error is None for o in outcomes.values())
    assert outcomes[3].result["structured_data"]["education"] == (  # type: ignore[index]
        "Simulated education for Person 3")
    stats = sandbox.stats()
    assert (stats["billable_submissions"], stats["duplicates"]) == (40, {})


def test_each_request_is_reported_sent_before_its_answer(
    enricher: Enricher, sandbox: Sandbox
) -> None:
    """The rows a block shows as waiting for the rate budget are those not yet sent: a
    held submission is not sent, an answered one was, and so is one answered before."""
    sandbox.config.update({"hold_submission": 1})
    sent: list[int] = []
    outcomes: dict[int, Outcome] = {}
    early: list[int] = []  # answered before reported sent
    lock = threading.Lock()

    def on_outcome(index: int, outcome: Outcome) -> None:
        with lock:
            if index not in sent:
                early.append(index)
            outcomes[index] = outcome

    def on_sent(index: int) -> None:
        with lock:
            sent.append(index)

    thread = threading.Thread(target=enricher.enrich, args=("enrich_lead", leads(4), on_outcome),
                              kwargs={"on_sent": on_sent})
    thread.start()
    sandbox.settled(held=1)
    with lock:
        assert len(set(sent)) <= 3  # the held one has not left
    sandbox.release()
    thread.join()
    assert sorted(sent) == [0, 1, 2, 3]
    assert sorted(outcomes) == [0, 1, 2, 3]
    assert early == []
    again: list[int] = []
    enricher.enrich("enrich_lead", leads(4), lambda i, o: None, on_sent=again.append)
    # Answered before: nothing is sent, and nothing waits.
    assert again == []
    assert sandbox.stats()["billable_submissions"] == 4


def test_the_latency_is_learnt_and_polls_are_few(enricher: Enricher, sandbox: Sandbox) -> None:
    """Jobs take ~0.3 s, the guess was 30 s: one probe learns it, the rest poll about once."""
    began = time.monotonic()
    collect(enricher, leads(30))
    # Polling at the first guess would take 30 s; a loaded machine still ends far sooner.
    assert time.monotonic() - began < 20
    assert enricher.expected_seconds()["enrich_lead"] < 2
    assert sandbox.stats()["requests"]["polls"] <= 30 * 2


def test_a_request_already_answered_is_not_paid_again(
    enricher: Enricher, sandbox: Sandbox
) -> None:
    collect(enricher, leads(10))
    again = collect(enricher, leads(10) + leads(10))
    assert all(o.reused for o in again.values())
    assert sandbox.stats()["billable_submissions"] == 10


def test_duplicates_in_flight_share_one_job(enricher: Enricher, sandbox: Sandbox) -> None:
    outcomes = collect(enricher, leads(5) * 3)
    assert len(outcomes) == 15
    assert sandbox.stats()["billable_submissions"] == 5


def test_injected_failures_lose_no_row_and_pay_nothing_twice(
    enricher: Enricher, sandbox: Sandbox
) -> None:
    """5xx and 429 are retried; a failed job is an error for its row, not resubmitted."""
    sandbox.config.update({"error_5xx_rate": 0.1, "error_429_rate": 0.1,
                           "job_failure_rate": 0.1})
    outcomes = collect(enricher, leads(60))
    assert sorted(outcomes) == list(range(60))
    failed = [o for o in outcomes.values() if o.error is not None]
    assert all(o.error["code"] == "upstream_job_failed" for o in failed)  # type: ignore[index]
    assert len(failed) < 20
    assert sandbox.stats()["duplicates"] == {}


def test_a_refused_key_stops_the_batch_at_once(sandbox: Sandbox, store: Store) -> None:
    enricher = make_enricher(sandbox, store, key="wrong")
    try:
        with pytest.raises(UpstreamAuthError):
            collect(enricher, leads(50))
        time.sleep(0.2)
        assert sandbox.stats()["requests"].get("total", 0) <= 9  # one per worker at most
    finally:
        enricher.close()


def test_tasks_in_flight_are_polled_after_a_restart_not_resubmitted(
    sandbox: Sandbox, store: Store
) -> None:
    """An enricher stopped with jobs in flight; a new one (same database) finishes them by
    polling their recorded task ids."""
    sandbox.config.update({"latency_median": {"enrich_lead": 1.0}})
    first = make_enricher(sandbox, store)
    cancel = threading.Event()
    threading.Timer(0.4, cancel.set).start()
    first.enrich("enrich_lead", leads(20), lambda i, o: None, cancel=cancel)
    first.close()
    submitted = sandbox.stats()["billable_submissions"]
    assert submitted > 0

    second = make_enricher(sandbox, store)
    try:
        outcomes = collect(second, leads(20))
    finally:
        second.close()
    assert all(o.result is not None for o in outcomes.values())
    stats = sandbox.stats()
    assert (stats["billable_submissions"], stats["duplicates"]) == (20, {})


def test_answers_are_reused_only_from_the_same_api_and_key(
    sandbox: Sandbox, store: Store
) -> None:
    """The sandbox's made-up answers are never taken for another API's."""
    first = make_enricher(sandbox, store)
    first.namespace = "http://sandbox|key-a"
    collect(first, leads(3))
    first.close()
    second = make_enricher(sandbox, store)
    second.namespace = "https://api.example|key-b"
    try:
        outcomes = collect(second, leads(3))
    finally:
        second.close()
    assert not any(o.reused for o in outcomes.values())
    assert sandbox.stats()["billable_submissions"] == 6


def test_a_block_that_cannot_take_an_answer_does_not_hang_the_run(
    enricher: Enricher
) -> None:
    seen: dict[int, Outcome] = {}

    def picky(index: int, outcome: Outcome) -> None:
        if outcome.result is not None and index == 1:
            raise ValueError("cannot write this")
        seen[index] = outcome

    enricher.enrich("enrich_lead", leads(3), picky)
    assert sorted(seen) == [0, 1, 2]
    assert seen[1].error == {"code": "result_unusable",
                             "message": "The answer could not be written into the row."}


def test_a_task_the_api_no_longer_knows_is_recorded_lost_then_resubmitted(
    sandbox: Sandbox, store: Store
) -> None:
    from workflow_engine.store.upstream import UpstreamJobs

    enricher = make_enricher(sandbox, store)
    try:
        key = __import__("workflow_engine.sixtyfour.jobs", fromlist=["request_key"]
                         ).request_key("enrich_lead", leads(1)[0], enricher.namespace)
        UpstreamJobs(store).submitted(key, "enrich_lead", "vanished-task", 0)
        lost = collect(enricher, leads(1))
        assert lost[0].error["code"] == "upstream_task_lost"  # type: ignore[index]
        again = collect(enricher, leads(1))
    finally:
        enricher.close()
    assert again[0].result is not None
    assert sandbox.stats()["billable_submissions"] == 1


class TestUnknownOutcome:
    """A submission that left without its answer arriving is never sent again silently."""

    def key(self, enricher: Enricher, body: dict[str, Any]) -> str:
        return request_key("enrich_lead", body, enricher.namespace)

    def in_background(self, enricher: Enricher, bodies: list[dict[str, Any]],
                      **options: Any) -> tuple[threading.Thread, dict[int, Outcome]]:
        outcomes: dict[int, Outcome] = {}
        thread = threading.Thread(target=enricher.enrich, args=(
            "enrich_lead", bodies, outcomes.__setitem__), kwargs=options)
        thread.start()
        return thread, outcomes

    def test_the_intent_is_committed_before_the_request_leaves(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        sandbox.config.update({"hold_submission": 1})
        thread, outcomes = self.in_background(enricher, leads(1))
        sandbox.settled(held=1)
        key = self.key(enricher, leads(1)[0])
        assert UpstreamJobs(store).get_many([key])[key].status == "sending"
        sandbox.release()
        thread.join()
        assert outcomes[0].result is not None
        assert UpstreamJobs(store).get_many([key])[key].status == "completed"

    def test_sent_before_a_restart_and_never_answered_is_a_row_error_not_a_payment(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        """The record a killed server leaves behind: ``sending``, no task id."""
        key = self.key(enricher, leads(1)[0])
        UpstreamJobs(store).claim(key, "enrich_lead", owner="killed", now=0, lease_ms=1000)
        outcomes = collect(enricher, leads(3))
        assert outcomes[0].error is not None
        assert outcomes[0].error["code"] == "upstream_outcome_unknown"
        assert "may have started a paid job" in outcomes[0].error["message"]
        assert all(outcomes[i].result is not None for i in (1, 2))
        assert UpstreamJobs(store).get_many([key])[key].status == "unknown"
        assert sandbox.stats()["billable_submissions"] == 2

    def test_the_error_stays_until_a_block_asks_to_resubmit(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        """A retry with ``error`` answers the same error for free; ``resubmit`` sends it
        again, once, and from then on the result is reused."""
        key = self.key(enricher, leads(1)[0])
        UpstreamJobs(store).claim(key, "enrich_lead", owner="killed", now=0, lease_ms=1000)
        collect(enricher, leads(1))
        again = collect(enricher, leads(1))
        assert again[0].error is not None
        assert again[0].error["code"] == "upstream_outcome_unknown"
        assert sandbox.stats()["billable_submissions"] == 0

        resent: dict[int, Outcome] = {}
        enricher.enrich("enrich_lead", leads(1), resent.__setitem__,
                        on_unknown_outcome="resubmit")
        assert resent[0].result is not None
        assert collect(enricher, leads(1))[0].reused
        assert sandbox.stats()["billable_submissions"] == 1

    def test_an_answer_lost_on_the_way_is_a_row_error(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        sandbox.config.update({"hold_submission": 2})
        thread, outcomes = self.in_background(enricher, leads(2))
        sandbox.settled(held=1, answered=1)
        sandbox.release(answer=False)  # the connection drops: the job runs, unheard of
        thread.join()
        (lost,) = [i for i, outcome in outcomes.items() if outcome.error is not None]
        error = outcomes[lost].error
        assert error is not None
        assert error["code"] == "upstream_outcome_unknown"
        assert outcomes[1 - lost].result is not None
        assert collect(enricher, leads(2))[lost].error == error  # the same, not resent
        assert sandbox.stats()["billable_submissions"] == 2

    def test_with_resubmit_an_answer_lost_on_the_way_is_sent_again_once(
        self, enricher: Enricher, sandbox: Sandbox
    ) -> None:
        sandbox.config.update({"hold_submission": 1})
        thread, outcomes = self.in_background(enricher, leads(1),
                                              on_unknown_outcome="resubmit")
        sandbox.settled(held=1)
        sandbox.release(answer=False)
        thread.join()
        assert outcomes[0].result is not None
        stats = sandbox.stats()
        assert (stats["billable_submissions"], list(stats["duplicates"].values())) == (2, [2])

    def test_a_submission_the_api_refused_withdraws_its_intent(
        self, enricher: Enricher, sandbox: Sandbox, store: Store
    ) -> None:
        """A 5xx after every retry started nothing: the next run simply submits it."""
        sandbox.config.update({"error_5xx_rate": 1.0})
        refused = collect(enricher, leads(1))
        assert refused[0].error is not None
        assert refused[0].error["code"] == "upstream_unavailable"
        key = self.key(enricher, leads(1)[0])
        assert UpstreamJobs(store).get_many([key])[key].status == "not_taken"
        sandbox.config.update({"error_5xx_rate": 0.0})
        assert collect(enricher, leads(1))[0].result is not None
        assert sandbox.stats()["billable_submissions"] == 1


    def test_a_stop_keeps_renewing_the_claims_of_submissions_still_out(
        self, sandbox: Sandbox, store: Store
    ) -> None:
        """Stopping waits (its grace) for a submission whose answer has not come; its
        claim is renewed all the while, so no other process takes it for lost, and the
        answer is stored when it comes."""
        enricher = make_enricher(sandbox, store, claim_lease_ms=600)
        sandbox.config.update({"hold_submission": 1})
        stopped: list[Exception] = []

        def enrich() -> None:
            try:
                enricher.enrich("enrich_lead", leads(1), lambda *_: None)
            except UpstreamUnavailable as exc:  # the batch itself resumes at the next start
                stopped.append(exc)

        thread = threading.Thread(target=enrich)
        thread.start()
        sandbox.settled(held=1)
        key = self.key(enricher, leads(1)[0])
        records = UpstreamJobs(store)
        first = records.get_many([key])[key].claimed_until
        assert first is not None
        closing = threading.Thread(target=enricher.close, kwargs={"grace": 30})
        closing.start()
        deadline = time.monotonic() + 30  # a deadline for a loaded machine, not a pause
        renewed = first
        while renewed <= first + 600 and time.monotonic() < deadline:
            time.sleep(0.05)
            renewed = records.get_many([key])[key].claimed_until or 0
        assert renewed > first + 600  # renewed past the lease it started with
        assert closing.is_alive()  # still in its grace
        sandbox.release()
        closing.join()
        thread.join()
        record = records.get_many([key])[key]
        assert record.status == "submitted"
        assert record.task_id is not None
        assert len(stopped) == 1


class TestClaimsAcrossProcesses:
    """Two enrichers on one database stand for two processes (each its own owner): a
    request is sent by whichever claims it first, and the other takes that outcome."""

    def test_a_request_another_process_is_sending_is_not_sent_again(
        self, sandbox: Sandbox, store: Store
    ) -> None:
        first, second = make_enricher(sandbox, store), make_enricher(sandbox, store)
        try:
            sandbox.config.update({"hold_submission": 1})
            outcomes: dict[int, Outcome] = {}
            sending = threading.Thread(target=first.enrich, args=(
                "enrich_lead", leads(1), outcomes.__setitem__))
            sending.start()
            sandbox.settled(held=1)  # the first has claimed it and its request is out
            key = request_key("enrich_lead", leads(1)[0], first.namespace)
            record = UpstreamJobs(store).get_many([key])[key]
            assert (record.status, record.owner) == ("sending", first.owner)

            waiting: dict[int, Outcome] = {}
            watcher = threading.Thread(target=second.enrich, args=(
                "enrich_lead", leads(1), waiting.__setitem__))
            watcher.start()
            sandbox.release()
            sending.join()
            watcher.join()
        finally:
            first.close()
            second.close()
        assert outcomes[0].result is not None
        assert waiting[0].result == outcomes[0].result
        stats = sandbox.stats()
        assert (stats["billable_submissions"], stats["duplicates"]) == (1, {})

    def test_two_processes_enriching_the_same_rows_pay_for_each_once(
        self, sandbox: Sandbox, store: Store
    ) -> None:
        enrichers = [make_enricher(sandbox, store) for _ in range(2)]
        results: list[dict[int, Outcome]] = [{}, {}]
        start = threading.Barrier(2)

        def run(n: int) -> None:
            start.wait()
            enrichers[n].enrich("enrich_lead", leads(30), results[n].__setitem__)

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
            assert sorted(outcomes) == list(range(30))
            assert all(o.result is not None for o in outcomes.values())
        assert results[0][7].result == results[1][7].result
        stats = sandbox.stats()
        assert (stats["billable_submissions"], stats["duplicates"]) == (30, {})

    def test_a_claim_whose_lease_lapsed_is_an_unknown_outcome(
        self, sandbox: Sandbox, store: Store
    ) -> None:
        """A live claim is waited for; once its lease lapses (its process died with the
        request sent), the request is reported, not sent."""
        enricher = make_enricher(sandbox, store)
        key = request_key("enrich_lead", leads(1)[0], enricher.namespace)
        now = time.time_ns() // 1_000_000
        UpstreamJobs(store).claim(key, "enrich_lead", owner="dying", now=now, lease_ms=1500)
        try:
            outcomes = collect(enricher, leads(1))
        finally:
            enricher.close()
        assert outcomes[0].error is not None
        assert outcomes[0].error["code"] == "upstream_outcome_unknown"
        assert "the process that sent it stopped" in outcomes[0].error["message"]
        assert time.time_ns() // 1_000_000 >= now + 1500  # it waited for the lease
        assert UpstreamJobs(store).get_many([key])[key].status == "unknown"
        assert sandbox.stats()["billable_submissions"] == 0

    def test_a_webhook_reaching_another_process_finishes_the_job(
        self, sandbox: Sandbox, store: Store
    ) -> None:
        """The process waiting on a job learns of the webhook another one received from
        the database, and polls nothing."""
        sandbox.config.update({"hold_results": True})
        waiting = make_enricher(sandbox, store, webhook_url="http://127.0.0.1:9/none")
        receiving = make_enricher(sandbox, store)
        try:
            outcomes: dict[int, Outcome] = {}
            thread = threading.Thread(target=waiting.enrich, args=(
                "enrich_lead", leads(1), outcomes.__setitem__))
            thread.start()
            key = request_key("enrich_lead", leads(1)[0], waiting.namespace)
            task_id = submitted_task(store, key)
            result = {"structured_data": {"education": "From the webhook"}}
            assert receiving.deliver_webhook(
                {"task_id": task_id, "status": "completed", "result": result}) is True
            thread.join()
            # Called again (the API retries a webhook it thinks was lost): finished
            # already, so nothing is taken, but the task is known; a made-up one is not.
            assert receiving.deliver_webhook(
                {"task_id": task_id, "status": "completed", "result": result}) is None
            assert receiving.deliver_webhook(
                {"task_id": "made-up", "status": "completed", "result": result}) is False
        finally:
            waiting.close()
            receiving.close()
        assert outcomes[0].result == result
        assert sandbox.stats()["requests"].get("polls", 0) == 0

    def test_the_watch_outlives_a_database_that_fails_for_a_while(
        self, sandbox: Sandbox, store: Store, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Reads of the watched records fail (the table is gone for a while); the watch
        logs them, changes nothing, and takes the other process's result once the
        database answers again."""
        waiting = make_enricher(sandbox, store)
        key = request_key("enrich_lead", leads(1)[0], waiting.namespace)
        records = UpstreamJobs(store)
        records.claim(key, "enrich_lead", owner="other", now=time.time_ns() // 1_000_000,
                      lease_ms=600_000)
        outcomes: dict[int, Outcome] = {}
        thread = threading.Thread(target=waiting.enrich, args=(
            "enrich_lead", leads(1), outcomes.__setitem__))
        try:
            with caplog.at_level(logging.ERROR, logger="workflow_engine.sixtyfour.jobs"):
                thread.start()
                deadline = time.monotonic() + 30  # bounds a broken run only
                while key not in waiting._watched and time.monotonic() < deadline:
                    time.sleep(0.01)
                with store.write() as tx:
                    tx.connection.exec_driver_sql(
                        "ALTER TABLE upstream_jobs RENAME TO upstream_jobs_away")
                while ("reading watched enrichment records failed" not in caplog.text
                       and time.monotonic() < deadline):
                    time.sleep(0.01)
                assert "reading watched enrichment records failed" in caplog.text
                with store.write() as tx:
                    tx.connection.exec_driver_sql(
                        "ALTER TABLE upstream_jobs_away RENAME TO upstream_jobs")
            assert not outcomes  # a failed read decided nothing
            result = {"structured_data": {"education": "From the other process"}}
            records.submitted(key, "enrich_lead", "t-other", now=0)
            records.finished(key, result=result, error=None, now=0)
            thread.join(30)
        finally:
            waiting.close()
        assert outcomes[0].result == result
        assert sandbox.stats()["billable_submissions"] == 0

    def test_reporting_an_outcome_unknown_leaves_a_live_claim_of_another_alone(
        self, store: Store
    ) -> None:
        """A process that read a lapsed claim may find it claimed again (a resend) by the
        time it reports it: the fresh claim stays, so nobody sends it a third time."""
        records = UpstreamJobs(store)
        records.claim("k", "enrich_lead", owner="dead", now=0, lease_ms=1000)
        assert records.claim("k", "enrich_lead", owner="resender", now=5000,
                             lease_ms=10_000, resend=True) is None
        assert not records.unknown("k", owner="reader", error="lost", now=5000)
        record = records.get_many(["k"])["k"]
        assert (record.status, record.owner) == ("sending", "resender")
        assert records.unknown("k", owner="reader", error="lost", now=20_000)  # lapsed
        assert records.get_many(["k"])["k"].status == "unknown"

    def test_a_claim_from_before_leases_can_be_resent(self, store: Store) -> None:
        records = UpstreamJobs(store)
        records.claim("k", "enrich_lead", owner="old", now=0, lease_ms=1000)
        with store.write() as tx:
            tx.connection.execute(schema.upstream_jobs.update().values(claimed_until=None))
        assert records.claim("k", "enrich_lead", owner="new", now=1, lease_ms=1000) is not None
        assert records.claim("k", "enrich_lead", owner="new", now=1, lease_ms=1000,
                             resend=True) is None
