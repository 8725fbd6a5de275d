"""The sandbox's answers, and its test controls: hold a submission's answer, then release
or lose it."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.sixtyfour.conftest import Sandbox
from workflow_engine.sandbox import bulk_dropped, simulate, simulate_people, simulate_phone

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


KEY = {"x-api-key": "sandbox-key"}


def find_phone(sandbox: Sandbox, lead: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{sandbox.url}/find-phone-async", json={"lead": lead}, headers=KEY)


class TestFindPhone:
    """``/find-phone-async`` answers each documented shape of ``phone``, chosen by the
    lead's name."""

    @pytest.mark.parametrize(("name", "shape"), [
        ("Maya Okafor", str), ("Jonas Brandt", str), ("Aiko Tanaka", list)])
    def test_a_job_completes_with_the_leads_phone(
        self, sandbox: Sandbox, name: str, shape: type
    ) -> None:
        sandbox.config.update({"latency_median": {"find_phone": 0.0}})
        submitted = find_phone(sandbox, {"name": name, "company": "Ariglad Inc"})
        assert submitted.json()["status"] == "RUNNING"
        polled = httpx.get(f"{sandbox.url}/job-status/{submitted.json()['task_id']}",
                           headers=KEY).json()
        assert polled["status"] == "completed"
        assert polled["result"] == {"name": name, "company": "Ariglad Inc",
                                    "phone": simulate_phone(name)}
        assert isinstance(polled["result"]["phone"], shape)

    def test_the_three_shapes(self) -> None:
        assert simulate_phone("Maya Okafor") == ""
        assert simulate_phone("Jonas Brandt") == "+1 555 0177"
        assert simulate_phone("Aiko Tanaka") == [{"number": "+1 555 0144", "region": "GB"},
                                                 {"number": "+1 555 0117", "region": "CA"}]

    def test_the_sync_endpoint_answers_the_same(self, sandbox: Sandbox) -> None:
        sandbox.config.update({"latency_median": {"find_phone": 0.0}})
        answer = httpx.post(f"{sandbox.url}/find-phone", headers=KEY,
                            json={"lead": {"name": "Aiko Tanaka"}}).json()
        assert answer == {"name": "Aiko Tanaka", "company": "",
                          "phone": simulate_phone("Aiko Tanaka")}

    def test_a_null_field_is_refused_as_fastapi_does(self, sandbox: Sandbox) -> None:
        refused = find_phone(sandbox, {"name": "Ann", "company": None})
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "lead", "company"]
        assert sandbox.stats()["billable_submissions"] == 0

    def test_a_failing_job_ends_failed(self, sandbox: Sandbox) -> None:
        sandbox.config.update({"latency_median": {"find_phone": 0.0}, "job_failure_rate": 1.0})
        task_id = find_phone(sandbox, {"name": "Ann"}).json()["task_id"]
        polled = httpx.get(f"{sandbox.url}/job-status/{task_id}", headers=KEY).json()
        assert (polled["status"], polled["error"]) == ("failed", "Simulated job failure")

    def test_a_submission_is_held_like_any_other(self, sandbox: Sandbox) -> None:
        sandbox.config.update({"hold_submission": 1})
        answers: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: answers.append(find_phone(sandbox, {"name": "Ann"})))
        thread.start()
        held = sandbox.settled(held=1)["held"]
        assert [(h["kind"], h["body"]) for h in held] == [("find_phone", {"lead": {"name": "Ann"}})]
        sandbox.release()
        thread.join()
        assert answers[0].json()["task_id"] == held[0]["task_id"]
        assert sandbox.stats()["billable_submissions"] == 1


class TestFindPeople:
    """An enrich-company answer with find_people: the company's people, chosen by its
    name alone, in the documented shape."""

    def test_the_people_come_in_structured_data_leads(self, sandbox: Sandbox) -> None:
        lead_struct = {"seniority": "How senior",
                       "years": {"description": "Years in the role", "type": "int"}}
        answer = httpx.post(f"{sandbox.url}/enrich-company", headers=KEY, json={
            "target_company": {"name": "Kestrel Works"}, "struct": {"industry": "What"},
            "find_people": True, "people_focus_prompt": "Founders",
            "lead_struct": lead_struct}).json()
        leads = answer["structured_data"]["leads"]
        assert leads == simulate_people("Kestrel Works", lead_struct)
        assert len(leads) == 3
        for person in leads:
            assert set(person) == {"name", "email", "company", "title", "phone", "score",
                                   "linkedin", "seniority", "years"}
            assert isinstance(person["score"], str)
            assert 0 <= float(person["score"]) <= 10
            assert isinstance(person["years"], int)
        assert len({person["name"] for person in leads}) == 3

    def test_without_find_people_there_are_none(self, sandbox: Sandbox) -> None:
        answer = httpx.post(f"{sandbox.url}/enrich-company", headers=KEY, json={
            "target_company": {"name": "Kestrel Works"}, "struct": {"industry": "What"}}).json()
        assert "leads" not in answer["structured_data"]

    def test_some_companies_have_nobody(self) -> None:
        assert simulate_people("Northwind Analytics") == []
        assert [p["name"] for p in simulate_people("Quillstone")] == [
            "Esther Brooks", "Farid Eriksen"]


class TestBulkEmail:
    def post(self, sandbox: Sandbox, body: object) -> httpx.Response:
        return httpx.post(f"{sandbox.url}/find-email-bulk-async", json=body,
                          headers={"x-api-key": "sandbox-key"})

    def result(self, sandbox: Sandbox, task_id: str) -> list[dict[str, object]]:
        """The job's result, polled until it is done (its latency is 0.2 s here)."""
        while True:
            found = httpx.get(f"{sandbox.url}/job-status/{task_id}",
                              headers={"x-api-key": "sandbox-key"}).json()
            if found["status"] == "completed":
                result: list[dict[str, object]] = found["result"]
                return result

    def test_one_job_answers_each_lead_as_its_own_request_would(
        self, sandbox: Sandbox
    ) -> None:
        leads = [{"name": f"Person {i}", "company": "Ariglad Inc"} for i in range(3)]
        submitted = self.post(sandbox, {"leads": leads}).json()
        assert submitted["status"] == "RUNNING"
        assert self.result(sandbox, submitted["task_id"]) == [
            simulate("find_email", {"lead": lead, "mode": "PROFESSIONAL"}) for lead in leads]
        stats = sandbox.stats()
        assert (stats["requests"]["bulk_submissions"], stats["billable_submissions"]) == (1, 3)

    def test_dropped_leads_are_left_out_and_not_billed(self, sandbox: Sandbox) -> None:
        sandbox.config.update({"bulk_drop_rate": 0.5})
        leads = [{"name": f"Person {i}"} for i in range(20)]
        kept = [lead for lead in leads if not bulk_dropped(lead, 0.5)]
        assert 0 < len(kept) < 20
        task_id = self.post(sandbox, {"leads": leads}).json()["task_id"]
        assert [item["name"] for item in self.result(sandbox, task_id)] == [
            lead["name"] for lead in kept]
        assert sandbox.stats()["billable_submissions"] == len(kept)

    @pytest.mark.parametrize(("body", "where"), [
        ({}, ["body", "leads"]),
        ({"leads": []}, ["body", "leads"]),
        ({"leads": [{"name": "A"}] * 101}, ["body", "leads"]),
        ({"leads": [{"name": None}]}, ["body", "leads", 0, "name"]),
        ({"leads": ["A"]}, ["body", "leads", 0]),
    ])
    def test_a_bad_batch_is_refused_as_fastapi_does(
        self, sandbox: Sandbox, body: object, where: list[object]
    ) -> None:
        refused = self.post(sandbox, body)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == where
        assert sandbox.stats()["billable_submissions"] == 0
