"""The sandbox's test controls: hold a submission's answer, then release or lose it."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.sixtyfour.conftest import Sandbox

LEAD = {"lead_info": {"name": "Ann"}, "struct": {"education": "Where they studied"}}


def submit_in_background(sandbox: Sandbox) -> tuple[threading.Thread, list[object]]:
    answers: list[object] = []

    def submit() -> None:
        try:
            answers.append(httpx.post(f"{sandbox.url}/enrich-lead-async", json=LEAD,
                                      headers={"x-api-key": "sandbox-key"}, timeout=60))
        except httpx.TransportError as exc:
            answers.append(exc)

    thread = threading.Thread(target=submit)
    thread.start()
    return thread, answers


class TestHoldSubmission:
    def test_the_held_submission_is_billed_and_answered_on_release(
        self, sandbox: Sandbox
    ) -> None:
        sandbox.config.update({"hold_submission": 1})
        thread, answers = submit_in_background(sandbox)
        found = sandbox.settled(held=1)
        assert [item["body"] for item in found["held"]] == [LEAD]
        assert sandbox.stats()["billable_submissions"] == 1
        assert answers == []
        sandbox.release()
        thread.join()
        response = answers[0]
        assert isinstance(response, httpx.Response)
        assert response.json()["task_id"] == found["held"][0]["task_id"]

    def test_a_release_without_answer_drops_the_connection(self, sandbox: Sandbox) -> None:
        sandbox.config.update({"hold_submission": 1})
        thread, answers = submit_in_background(sandbox)
        sandbox.settled(held=1)
        sandbox.release(answer=False)
        thread.join()
        assert isinstance(answers[0], httpx.RemoteProtocolError)
        assert sandbox.stats()["billable_submissions"] == 1

    def test_settled_waits_until_every_answered_task_is_polled(
        self, sandbox: Sandbox
    ) -> None:
        task_id = httpx.post(f"{sandbox.url}/enrich-lead-async", json=LEAD,
                             headers={"x-api-key": "sandbox-key"}).json()["task_id"]
        early = httpx.get(f"{sandbox.url}/_sandbox/settled",
                          params={"answered": 1, "wait": 0}).json()
        assert (early["settled"], early["unpolled"]) == (False, 1)
        httpx.get(f"{sandbox.url}/job-status/{task_id}", headers={"x-api-key": "sandbox-key"})
        assert sandbox.settled(answered=1)["unpolled"] == 0

    @pytest.mark.parametrize("query", [{"held": "x"}, {"wait": "soon"}])
    def test_settled_refuses_what_is_not_a_number(
        self, sandbox: Sandbox, query: dict[str, str]
    ) -> None:
        assert httpx.get(f"{sandbox.url}/_sandbox/settled", params=query).status_code == 422
