"""The Sixtyfour client at its edges, with httpx.MockTransport."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from workflow_engine.errors import (
    UpstreamAuthError,
    UpstreamMalformed,
    UpstreamOutcomeUnknown,
    UpstreamRejected,
    UpstreamUnavailable,
)
from workflow_engine.sixtyfour import RateBudget, RateLimit, Retries, SixtyfourClient, make_http
from workflow_engine.sixtyfour.budget import Kind


def client_for(handler: Callable[[httpx.Request], httpx.Response], *, attempts: int = 4
               ) -> tuple[SixtyfourClient, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = make_http("key", "https://api.test", transport=httpx.MockTransport(record))
    client = SixtyfourClient(http, RateBudget(RateLimit(60_000)),
                             retries=Retries(attempts=attempts, base_seconds=0.01),
                             sleep=sleeps.append, jitter=lambda: 1.0)
    return client, seen, sleeps


def answers(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


BODY: dict[str, Any] = {"lead_info": {"name": "Ann"}, "struct": {"x": "y"}}


class TestSubmit:
    def test_sends_the_key_and_the_body_to_the_async_endpoint(self) -> None:
        client, seen, _ = client_for(answers(httpx.Response(
            200, json={"task_id": "t-1", "status": "RUNNING"})))
        assert client.submit("enrich_lead", BODY) == "t-1"
        assert seen[0].url == "https://api.test/enrich-lead-async"
        assert seen[0].headers["x-api-key"] == "key"

    @pytest.mark.parametrize("status", [401, 402, 403])
    def test_a_refused_key_stops_at_once(self, status: int) -> None:
        client, seen, _ = client_for(answers(httpx.Response(status, json={"error": "no"})))
        with pytest.raises(UpstreamAuthError) as caught:
            client.submit("enrich_lead", BODY)
        assert len(seen) == 1
        assert caught.value.context["upstream_status"] == status

    @pytest.mark.parametrize("status", [400, 404, 422])
    def test_a_rejected_request_is_not_retried(self, status: int) -> None:
        client, seen, _ = client_for(answers(httpx.Response(status, json={"detail": []})))
        with pytest.raises(UpstreamRejected):
            client.submit("enrich_lead", BODY)
        assert len(seen) == 1

    def test_5xx_and_failed_connections_are_retried_with_backoff(self) -> None:
        client, seen, sleeps = client_for(answers(
            httpx.Response(503), httpx.ConnectError("down"), httpx.Response(502),
            httpx.Response(200, json={"task_id": "t-2"})))
        assert client.submit("enrich_lead", BODY) == "t-2"
        assert len(seen) == 4
        assert sleeps == [0.01, 0.02, 0.04]

    @pytest.mark.parametrize("lost", [httpx.ReadTimeout("slow"),
                                      httpx.RemoteProtocolError("dropped")])
    def test_a_submission_whose_answer_was_lost_is_not_resent(self, lost: Exception) -> None:
        """It may have started a paid job: report it rather than risk paying twice."""
        client, seen, _ = client_for(answers(lost, httpx.Response(200, json={"task_id": "x"})))
        with pytest.raises(UpstreamOutcomeUnknown, match="outcome is unknown") as caught:
            client.submit("enrich_lead", BODY)
        assert len(seen) == 1
        assert caught.value.code == "upstream_outcome_unknown"
        assert caught.value.context["outcome"] == "unknown"

    def test_says_before_each_attempt_leaves_and_after_each_one_not_taken(self) -> None:
        """The caller records its intent right before a request leaves and withdraws it
        when the API provably started nothing (a status answer, a connection never made)."""
        client, seen, _ = client_for(answers(
            httpx.Response(503), httpx.ConnectError("down"), httpx.Response(429),
            httpx.Response(200, json={"task_id": "t-9"})))
        calls: list[tuple[str, int]] = []
        assert client.submit(
            "enrich_lead", BODY, sending=lambda: calls.append(("sending", len(seen))),
            not_taken=lambda: calls.append(("not_taken", len(seen)))) == "t-9"
        assert calls == [("sending", 0), ("not_taken", 1), ("sending", 1), ("not_taken", 2),
                         ("sending", 2), ("not_taken", 3), ("sending", 3)]

    def test_asks_whether_it_may_send_before_each_attempt_waits_for_the_budget(
        self,
    ) -> None:
        """A request another process holds is given up before it takes a rate slot."""
        calls: list[str] = []

        class NotingBudget(RateBudget):
            def acquire(self, kind: Kind = "submit") -> float:
                calls.append("budget")
                return super().acquire(kind)

        http = make_http("key", "https://api.test", transport=httpx.MockTransport(answers(
            httpx.Response(503), httpx.Response(200, json={"task_id": "t-1"}))))
        client = SixtyfourClient(http, NotingBudget(RateLimit(60_000)),
                                 retries=Retries(attempts=4, base_seconds=0.01),
                                 sleep=lambda _: None, jitter=lambda: 1.0)
        assert client.submit("enrich_lead", BODY, may_send=lambda: calls.append("may_send"),
                             sending=lambda: calls.append("sending")) == "t-1"
        assert calls == ["may_send", "budget", "sending"] * 2

        class HeldElsewhere(Exception):
            pass

        def held() -> None:
            raise HeldElsewhere

        calls.clear()
        with pytest.raises(HeldElsewhere):
            client.submit("enrich_lead", BODY, may_send=held,
                          sending=lambda: calls.append("sending"))
        assert calls == []

    @pytest.mark.parametrize(("answer", "error"), [
        (httpx.Response(422, json={"detail": []}), UpstreamRejected),
        (httpx.Response(402), UpstreamAuthError),
        (httpx.ReadTimeout("slow"), UpstreamOutcomeUnknown),
    ])
    def test_only_an_answer_that_never_came_leaves_the_intent_standing(
        self, answer: httpx.Response | Exception, error: type[Exception]
    ) -> None:
        client, _, _ = client_for(answers(answer))
        calls: list[str] = []
        with pytest.raises(error):
            client.submit("enrich_lead", BODY, sending=lambda: calls.append("sending"),
                          not_taken=lambda: calls.append("not_taken"))
        expected = ["sending"] if error is UpstreamOutcomeUnknown else ["sending", "not_taken"]
        assert calls == expected

    def test_polls_are_retried_after_timeouts(self) -> None:
        client, seen, _ = client_for(answers(
            httpx.ReadTimeout("slow"), httpx.Response(200, json={"status": "running"})))
        assert client.status("t").status == "running"
        assert len(seen) == 2

    def test_gives_up_after_the_last_attempt(self) -> None:
        client, seen, _ = client_for(answers(httpx.Response(500)), attempts=3)
        with pytest.raises(UpstreamUnavailable, match="after 3 attempts"):
            client.submit("enrich_lead", BODY)
        assert len(seen) == 3

    def test_429_with_retry_after_pauses_the_whole_budget(self) -> None:
        client, seen, _ = client_for(answers(
            httpx.Response(429, headers={"Retry-After": "0.3"}),
            httpx.Response(200, json={"task_id": "t-3"})))
        began = time.monotonic()
        assert client.submit("enrich_lead", BODY) == "t-3"
        assert time.monotonic() - began >= 0.29
        assert len(seen) == 2

    def test_429s_do_not_use_up_attempts(self) -> None:
        """Five 429s with a budget of two attempts still end in success."""
        responses = [httpx.Response(429, headers={"Retry-After": "0"})] * 5
        client, seen, _ = client_for(answers(
            *responses, httpx.Response(200, json={"task_id": "t"})), attempts=2)
        assert client.submit("enrich_lead", BODY) == "t"
        assert len(seen) == 6

    def test_a_submission_that_answered_a_task_id_is_never_sent_again(self) -> None:
        client, seen, _ = client_for(answers(httpx.Response(200, json={"task_id": "once"})))
        client.submit("enrich_lead", BODY)
        assert len(seen) == 1

    @pytest.mark.parametrize("response", [
        httpx.Response(200, text="<html>oops</html>"),
        httpx.Response(200, json={"status": "RUNNING"}),
        httpx.Response(200, json=["task"]),
    ])
    def test_unreadable_answers(self, response: httpx.Response) -> None:
        client, _, _ = client_for(answers(response))
        with pytest.raises(UpstreamMalformed):
            client.submit("enrich_lead", BODY)


class TestStatus:
    @pytest.mark.parametrize(("raw", "status", "finished"), [
        ("RUNNING", "running", False), ("queued", "queued", False),
        ("Completed", "completed", True), ("failed", "failed", True),
    ])
    def test_statuses_are_lower_cased(self, raw: str, status: str, finished: bool) -> None:
        client, seen, _ = client_for(answers(httpx.Response(200, json={"status": raw})))
        found = client.status("t-1")
        assert (found.status, found.finished) == (status, finished)
        assert seen[0].url == "https://api.test/job-status/t-1"

    @pytest.mark.parametrize("result", [
        [{"name": "A", "email": []}], {"results": [{"name": "A", "email": []}]}])
    def test_a_bulk_result_is_a_list_bare_or_under_results(self, result: Any) -> None:
        client, _, _ = client_for(answers(httpx.Response(
            200, json={"status": "completed", "result": result})))
        assert client.status("t-1").result == {"results": [{"name": "A", "email": []}]}

    def test_a_bulk_submission_goes_to_the_bulk_endpoint(self) -> None:
        client, seen, _ = client_for(answers(httpx.Response(200, json={"task_id": "t"})))
        assert client.submit("find_email_bulk", {"leads": [{"name": "A"}]}) == "t"
        assert seen[0].url == "https://api.test/find-email-bulk-async"

    def test_a_failed_job_carries_its_error(self) -> None:
        client, _, _ = client_for(answers(httpx.Response(
            200, json={"status": "failed", "error": "no data"})))
        assert client.status("t").error == "no data"

    def test_an_unknown_status_counts_as_still_running(self) -> None:
        """The job exists and is paid for: keep asking rather than give it up."""
        client, _, _ = client_for(answers(httpx.Response(200, json={"status": "IN_PROGRESS"})))
        found = client.status("t")
        assert (found.status, found.finished) == ("in_progress", False)


class TestBudget:
    def test_spreads_requests_at_the_rate(self) -> None:
        budget = RateBudget(RateLimit(per_minute=6000))  # 100 a second
        began = time.monotonic()
        for _ in range(51):
            budget.acquire("submit")
        # At least the rate's spacing; the upper bound only says the budget does not
        # stall (a loaded machine oversleeps each wait a little).
        assert 0.45 <= time.monotonic() - began < 5

    def test_no_burst_beyond_one_request(self) -> None:
        """A strict sliding minute upstream never sees more than the limit."""
        budget = RateBudget(RateLimit(per_minute=600))  # 10 a second
        time.sleep(0.5)  # idle time does not pile up tokens
        began = time.monotonic()
        for _ in range(4):
            budget.acquire("submit")
        assert time.monotonic() - began >= 0.28
