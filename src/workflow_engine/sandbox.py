"""A Sixtyfour-compatible server of our own, for tests, benchmarks and dry runs.

``python -m workflow_engine.sandbox --port 5055`` (or started in-process by the main
server when no ``SIXTYFOUR_API_KEY`` is set). It speaks the API as documented: the same
paths, bodies and answers, with its quirks (``RUNNING`` on submit, ``running`` on poll,
``""`` for missing values), the ``x-api-key`` check (401), FastAPI-shaped validation
errors (422 for null fields in ``lead``), and a per-key rate limit answering 429 with
``X-RateLimit-*`` and ``Retry-After`` headers.

A submission carrying ``webhook_url`` is also POSTed there when it finishes, as Sixtyfour
does. Jobs take a configurable time (log-normal around a median per endpoint) and can be made
to fail (5xx, 429, or a job that ends ``failed``) at configurable rates. The data it
returns is made up, deterministic (derived from the request), and says so
(``notes`` starts with "SIMULATED"). ``GET /_sandbox/stats`` counts billable submissions
per canonical request, so a test can prove nothing was paid for twice.

A test can also stop the clock at an exact point: ``hold_submission: n`` makes the n-th
submission taken (billed, its job started) but not answered until ``POST
/_sandbox/release`` (which answers it, or drops the connection: an answer lost on the
way). ``GET /_sandbox/settled`` blocks until that submission is held and the client has
acted on every answer it got (each task id answered was polled at least once), and says
what the sandbox holds. ``hold_results: true`` keeps every job running when polled,
until it is set back to false.

``POST /find-email-bulk-async`` takes ``{"leads": [...]}`` (1 to 100 leads, PROFESSIONAL
mode): one request, one job, billed per lead answered (each counts as the billable
request a ``/find-email-async`` for it would be, so a lead paid both ways shows as a
duplicate). Its result is the list of per-lead find-email answers, each exactly what
that lead's own request would answer; ``bulk_drop_rate`` leaves some leads out of the
answer (chosen per lead, deterministically, when the job is submitted; not billed), as
a short batch would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import socket
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

__all__ = ["SandboxConfig", "create_sandbox", "simulate_people", "simulate_phone"]

SYNC_PATHS = {"/enrich-lead": "enrich_lead", "/enrich-company": "enrich_company",
              "/find-email": "find_email", "/find-phone": "find_phone"}
# What each kind calls its subject in the body.
SUBJECTS = {"enrich_lead": "lead_info", "enrich_company": "target_company",
            "find_email": "lead", "find_phone": "lead"}
# Regions a simulated number is given.
_REGIONS = ("US", "GB", "DE", "CA", "KE", "PT")
ASYNC_PATHS = {path + "-async": kind for path, kind in SYNC_PATHS.items()}
BULK_PATH = "/find-email-bulk-async"
BULK_MAX_LEADS = 100


@dataclass
class SandboxConfig:
    """How the sandbox behaves; changeable at run time with ``POST /_sandbox/config``."""

    api_key: str = "sandbox-key"
    rate_per_minute: int = 500
    # The sliding window the rate is counted over (a minute, like the API); shorter in
    # tests, so that a rate exceeded shows within seconds (the limit scales with it).
    rate_window_seconds: float = 60.0
    latency_median: dict[str, float] = field(default_factory=lambda: {
        "enrich_lead": 2.0, "enrich_company": 3.0, "find_email": 0.5, "find_phone": 0.5,
        "find_email_bulk": 1.0})
    latency_spread: float = 0.25  # sigma of the log-normal
    error_5xx_rate: float = 0.0
    error_429_rate: float = 0.0
    job_failure_rate: float = 0.0
    seed: int = 64
    # The n-th submission (counting from 1, over the sandbox's life) is taken but not
    # answered until POST /_sandbox/release.
    hold_submission: int | None = None
    # While true, every job is still running when polled, however long it has run.
    hold_results: bool = False
    # The share of leads a bulk answer leaves out (which ones: a digest of each lead).
    bulk_drop_rate: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial change."""
        for key, value in changes.items():
            if not hasattr(self, key):
                raise KeyError(key)
            setattr(self, key, value)


def canonical(kind: str, body: Any) -> str:
    """The identity of a billable request: its kind and its body, canonically (where to
    send the result is not part of what is asked)."""
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if key != "webhook_url"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{kind}:{text}".encode()).hexdigest()


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _value(declared: Any, field_name: str, subject: str, salt: str) -> Any:
    kind = declared.get("type", "str") if isinstance(declared, dict) else "str"
    roll = _unit(salt, field_name)
    if kind == "bool":
        return roll < 0.5
    if kind == "int":
        return int(roll * 1000)
    if kind == "float":
        return round(roll * 100, 2)
    if kind.startswith("list"):
        return [f"Simulated {field_name} {i + 1} for {subject}" for i in range(1 + int(roll * 3))]
    if kind == "dict":
        return {"simulated": True, "field": field_name}
    return f"Simulated {field_name} for {subject}"


def simulate_phone(name: str) -> str | list[dict[str, str]]:
    """The ``phone`` of a find-phone answer, in one of its three documented shapes, chosen
    by the name alone (so a test knows what each lead gets): ``""`` (nothing found), one
    number as text, or a list of ``{number, region}``. Numbers are in 555-01xx, reserved
    for fiction."""
    roll = _unit("phone", name)
    if roll < 0.2:
        return ""

    def number(i: int) -> str:
        return f"+1 555 01{int(_unit('phone', name, i) * 100):02d}"

    if roll < 0.5:
        return number(0)
    return [{"number": number(i), "region": _REGIONS[int(_unit("region", name, i) * 6)]}
            for i in range(1 + int(_unit("phones", name) * 2))]


_FIRST_NAMES = ("Ada", "Bilal", "Chiara", "Dev", "Esther", "Farid", "Greta", "Hugo", "Ines")
_LAST_NAMES = ("Abara", "Brooks", "Castillo", "Dunmore", "Eriksen", "Farah", "Gallo", "Hale")
_TITLES = ("Head of Sales", "VP Marketing", "Chief Revenue Officer", "Sales Director",
           "Growth Lead")


def simulate_people(company: str, lead_struct: dict[str, Any] | None = None
                    ) -> list[dict[str, Any]]:
    """The ``leads`` of an enrich-company answer with ``find_people``: 0 to 3 people,
    their number and who they are chosen by the company's name alone (so a test knows
    what each company gets), each with the documented fields (``score`` as text, an empty
    ``email`` or ``phone`` for some) and the ``lead_struct`` fields made up as the
    struct's are."""
    domain = "".join(ch for ch in company.lower() if ch.isalnum()) or "example"
    first = int(_unit("first", company) * len(_FIRST_NAMES))
    last = int(_unit("last", company) * len(_LAST_NAMES))
    people = []
    for i in range(int(_unit("people", company) * 4)):
        # Distinct first names: no two people of a company share a name.
        name = (f"{_FIRST_NAMES[(first + i) % len(_FIRST_NAMES)]} "
                f"{_LAST_NAMES[(last + 3 * i) % len(_LAST_NAMES)]}")
        local = name.lower().replace(" ", ".")
        person: dict[str, Any] = {
            "name": name,
            "email": f"{local}@{domain}.example" if _unit("email", company, i) < 0.4 else "",
            "company": company,
            "title": _TITLES[int(_unit("title", company, i) * len(_TITLES))],
            "phone": f"+1 555 01{int(_unit('phone', company, i) * 100):02d}"
            if _unit("has phone", company, i) < 0.5 else "",
            "score": str(round(_unit("score", company, i) * 10, 1)),
            "linkedin": f"https://www.linkedin.com/in/{local.replace('.', '-')}-example",
        }
        for field_name, declared in (lead_struct or {}).items():
            person.setdefault(field_name, _value(declared, field_name, name, f"{company}{i}"))
        people.append(person)
    return people


def simulate(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The made-up but deterministic result of a job."""
    salt = canonical(kind, body)
    if kind == "find_phone":
        lead = body.get("lead") or {}
        name = str(lead.get("name") or "")
        return {"name": name, "company": str(lead.get("company") or ""),
                "phone": simulate_phone(name)}
    if kind == "find_email":
        lead = dict(body.get("lead") or {})
        if lead.get("email"):
            return lead
        name = str(lead.get("name") or "someone")
        local = ".".join(name.lower().split()) or "someone"
        domain = str(lead.get("domain") or lead.get("company") or "example").lower()
        domain = "".join(ch for ch in domain if ch.isalnum()) or "example"
        roll = _unit(salt, "email")
        if roll < 0.15:
            return {**lead, "email": []}
        status = "OK" if roll < 0.75 else ("UNKNOWN" if roll < 0.9 else "RISKY")
        kind_of = "PERSONAL" if body.get("mode") == "PERSONAL" else "COMPANY"
        found = [[f"{local}@{domain}.example", status, kind_of]]
        if roll > 0.5:
            found.append([f"{local[0]}.{local.split('.')[-1]}@{domain}.example",
                          "UNKNOWN", kind_of])
        return {**lead, "email": found}
    subject_source = body.get("lead_info") or body.get("target_company") or {}
    subject = str(subject_source.get("name") or subject_source.get("company") or "unknown")
    struct = body.get("struct") or {}
    structured = {name: _value(declared, name, subject, salt)
                  for name, declared in struct.items()}
    if kind == "enrich_company" and body.get("find_people"):
        lead_struct = body.get("lead_struct")
        structured["leads"] = simulate_people(
            subject, lead_struct if isinstance(lead_struct, dict) else None)
    return {
        "notes": f"SIMULATED by the workflow-engine sandbox for {subject}; not real data.",
        "structured_data": structured,
        "findings": [],
        "references": {f"https://sandbox.invalid/{salt[:12]}": "simulated source"},
        "confidence_score": round(_unit(salt, "confidence") * 10, 1),
    }


def bulk_lead_body(lead: Any) -> dict[str, Any]:
    """The ``/find-email-async`` body a lead of a bulk request stands for."""
    return {"lead": lead, "mode": "PROFESSIONAL"}


def bulk_dropped(lead: Any, rate: float) -> bool:
    """Whether a bulk answer leaves this lead out, at ``bulk_drop_rate`` ``rate``."""
    return rate > 0 and _unit("drop", canonical("find_email", bulk_lead_body(lead))) < rate


def _result(job: dict[str, Any]) -> Any:
    """A finished job's result: one answer, or a bulk job's list of per-lead answers
    (without the leads it drops)."""
    if job["kind"] == "find_email_bulk":
        return [simulate("find_email", bulk_lead_body(lead)) for lead in job["answered"]]
    return simulate(job["kind"], job["body"])


@dataclass
class _Held:
    """A submission taken but not answered yet."""

    submission: int
    kind: str
    body: dict[str, Any]
    task_id: str
    released: threading.Event = field(default_factory=threading.Event)
    answer: bool = True

    def describe(self) -> dict[str, Any]:
        return {"submission": self.submission, "kind": self.kind, "body": self.body,
                "task_id": self.task_id, "canonical": canonical(self.kind, self.body)}


class _State:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.random = random.Random(config.seed)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.window: dict[str, deque[float]] = {}
        self.billable: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        # Wakes GET /_sandbox/settled on every submission, answer, poll and hold.
        self.changed = threading.Condition(self.lock)
        self.answered: set[str] = set()
        self.unpolled: set[str] = set()
        self.held: list[_Held] = []

    def settled(self, held: int, answered: int) -> bool:
        """Whether ``held`` submissions are held, ``answered`` were answered, and each
        answered task was polled (lock held)."""
        return (len(self.held) >= held and len(self.answered) >= answered
                and not self.unpolled)

    def report(self) -> dict[str, Any]:
        """What is held and answered (lock held)."""
        return {"held": [item.describe() for item in self.held],
                "answered": len(self.answered), "unpolled": len(self.unpolled)}

    def latency(self, kind: str) -> float:
        median = self.config.latency_median.get(kind, 1.0)
        return median * math.exp(self.random.gauss(0, self.config.latency_spread))

    def admit(self, key: str) -> tuple[bool, int]:
        """Count a request against the key's minute; (allowed, remaining)."""
        now = time.monotonic()
        span = self.config.rate_window_seconds
        limit = max(1, round(self.config.rate_per_minute * span / 60))
        window = self.window.setdefault(key, deque())
        while window and window[0] <= now - span:
            window.popleft()
        if len(window) >= limit:
            return False, 0
        window.append(now)
        return True, limit - len(window)


def _call_webhook(state: _State, url: str, task_id: str) -> None:
    """POST a finished job to its webhook, as Sixtyfour does: retried unless answered 2xx
    within 10 s (three tries here)."""
    import httpx

    job = state.jobs[task_id]
    payload: dict[str, Any] = {"task_id": task_id, "task_type": job["kind"]}
    if job["fails"]:
        payload.update(status="failed", error="Simulated job failure")
    else:
        payload.update(status="completed", result=_result(job))
    for attempt in range(3):
        try:
            if httpx.post(url, json=payload, timeout=10).is_success:
                state.requests["webhooks"] += 1
                return
        except httpx.HTTPError:
            pass
        time.sleep(1 + attempt)
    state.requests["webhooks_failed"] += 1


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=headers or {})


def _null_fields(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key)
    if not isinstance(value, dict):
        return [{"loc": ["body", key], "msg": "Field required", "type": "missing"}]
    return [{"loc": ["body", key, name], "msg": "Input should be a valid string",
             "type": "string_type"} for name, item in value.items() if item is None]


def create_sandbox(config: SandboxConfig | None = None) -> Flask:
    """The sandbox as a WSGI application."""
    state = _State(config or SandboxConfig())
    app = Flask("workflow_engine.sandbox")
    app.extensions["sandbox"] = state

    @app.before_request
    def _gate() -> Response | None:
        if request.path.startswith("/_sandbox"):
            return None
        state.requests["total"] += 1
        key = request.headers.get("x-api-key")
        if key != state.config.api_key:
            return _json({"error": "Unauthorized", "message": "Invalid API key"}, 401)
        with state.lock:
            allowed, remaining = state.admit(key)
            roll = state.random.random()
        limit = str(state.config.rate_per_minute)
        if not allowed or roll < state.config.error_429_rate:
            state.requests["429"] += 1
            return _json({"detail": "Rate limit exceeded"}, 429, {
                "X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0",
                "Retry-After": "1" if allowed else "2"})
        if state.random.random() < state.config.error_5xx_rate:
            state.requests["5xx"] += 1
            return _json({"detail": "Internal server error (simulated)"}, 503)
        request.environ["sandbox.remaining"] = remaining
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        if "sandbox.remaining" in request.environ:
            response.headers["X-RateLimit-Limit"] = str(state.config.rate_per_minute)
            response.headers["X-RateLimit-Remaining"] = str(request.environ["sandbox.remaining"])
        return response

    def _accept(kind: str) -> tuple[dict[str, Any] | None, Response | None]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return None, _json({"detail": [{"loc": ["body"], "msg": "Invalid JSON",
                                            "type": "json_invalid"}]}, 422)
        problems = _null_fields(body, SUBJECTS[kind])
        if SUBJECTS[kind] != "lead" and not isinstance(body.get("struct"), dict):
            problems.append({"loc": ["body", "struct"], "msg": "Field required",
                             "type": "missing"})
        if problems:
            return None, _json({"detail": problems}, 422)
        return body, None

    def _accept_bulk() -> tuple[dict[str, Any] | None, Response | None]:
        body = request.get_json(silent=True)
        leads = body.get("leads") if isinstance(body, dict) else None
        if not isinstance(leads, list) or not 1 <= len(leads) <= BULK_MAX_LEADS:
            return None, _json({"detail": [{
                "loc": ["body", "leads"], "type": "too_long" if isinstance(leads, list)
                and leads else "missing",
                "msg": f"leads: a list of 1 to {BULK_MAX_LEADS} leads"}]}, 422)
        problems = []
        for index, lead in enumerate(leads):
            if not isinstance(lead, dict):
                problems.append({"loc": ["body", "leads", index], "msg": "Input should be "
                                 "a valid dictionary", "type": "dict_type"})
                continue
            problems += [{"loc": ["body", "leads", index, name], "msg": "Input should be a "
                          "valid string", "type": "string_type"}
                         for name, item in lead.items() if item is None]
        if problems:
            return None, _json({"detail": problems}, 422)
        assert isinstance(body, dict)
        return body, None

    def submit(kind: str) -> Response:
        body, refusal = _accept_bulk() if kind == "find_email_bulk" else _accept(kind)
        if refusal is not None:
            return refusal
        assert body is not None
        task_id = str(uuid.uuid4())
        held = None
        with state.lock:
            job: dict[str, Any] = {"kind": kind, "body": body}
            if kind == "find_email_bulk":
                # Billed per lead answered, as its own request would be.
                job["answered"] = [lead for lead in body["leads"]
                                   if not bulk_dropped(lead, state.config.bulk_drop_rate)]
                for lead in job["answered"]:
                    state.billable[canonical("find_email", bulk_lead_body(lead))] += 1
                state.requests["bulk_submissions"] += 1
            else:
                state.billable[canonical(kind, body)] += 1
            state.requests["submissions"] += 1
            fails = state.random.random() < state.config.job_failure_rate
            delay = state.latency(kind)
            job.update(fails=fails, due=time.monotonic() + delay)
            state.jobs[task_id] = job
            if state.requests["submissions"] == state.config.hold_submission:
                held = _Held(state.requests["submissions"], kind, body, task_id)
                state.held.append(held)
                state.changed.notify_all()
        webhook = body.get("webhook_url")
        if isinstance(webhook, str) and webhook.startswith(("http://", "https://")):
            timer = threading.Timer(delay, _call_webhook, (state, webhook, task_id))
            timer.daemon = True
            timer.start()
        if held is not None:
            held.released.wait()
            if not held.answer:
                # The answer is lost on the way: the job runs, the client never hears.
                connection = request.environ.get("werkzeug.socket")
                if connection is not None:
                    connection.shutdown(socket.SHUT_RDWR)
                return _json({"detail": "dropped"}, 500)  # never arrives
        with state.lock:
            state.answered.add(task_id)
            state.unpolled.add(task_id)
            state.changed.notify_all()
        return _json({"task_id": task_id, "status": "RUNNING"})

    def run_sync(kind: str) -> Response:
        body, refusal = _accept(kind)
        if refusal is not None:
            return refusal
        assert body is not None
        with state.lock:
            state.billable[canonical(kind, body)] += 1
            state.requests["submissions"] += 1
            delay = state.latency(kind)
        time.sleep(delay)
        return _json(simulate(kind, body))

    for path, kind in ASYNC_PATHS.items():
        app.add_url_rule(path, f"submit_{kind}", lambda kind=kind: submit(kind),
                         methods=["POST"])
    app.add_url_rule(BULK_PATH, "submit_find_email_bulk",
                     lambda: submit("find_email_bulk"), methods=["POST"])
    for path, kind in SYNC_PATHS.items():
        app.add_url_rule(path, f"sync_{kind}", lambda kind=kind: run_sync(kind),
                         methods=["POST"])

    @app.get("/job-status/<task_id>")
    def job_status(task_id: str) -> Response:
        with state.lock:
            state.requests["polls"] += 1
            if task_id in state.unpolled:
                state.unpolled.discard(task_id)
                state.changed.notify_all()
        job = state.jobs.get(task_id)
        if job is None:
            return _json({"detail": "Task not found"}, 404)
        if state.config.hold_results or time.monotonic() < job["due"]:
            return _json({"status": "running"})
        if job["fails"]:
            return _json({"status": "failed", "error": "Simulated job failure"})
        return _json({"status": "completed", "result": _result(job)})

    @app.get("/_sandbox/stats")
    def stats() -> Response:
        with state.lock:
            billable = dict(state.billable)
        return _json({
            "requests": dict(state.requests),
            "billable_submissions": sum(billable.values()),
            "distinct_requests": len(billable),
            "duplicates": {key: n for key, n in billable.items() if n > 1},
            "held": len(state.held),
        })

    @app.get("/_sandbox/settled")
    def settled() -> Response:
        """Wait (up to ``wait`` seconds) until ``held`` submissions are held, ``answered``
        were answered and every answered task was polled; what the sandbox holds."""
        try:
            held = int(request.args.get("held", "0"))
            answered = int(request.args.get("answered", "0"))
            wait = min(float(request.args.get("wait", "0")), 300.0)
        except ValueError:
            return _json({"detail": "held, answered and wait are numbers"}, 422)
        with state.changed:
            done = state.changed.wait_for(lambda: state.settled(held, answered), wait)
            return _json({"settled": done, **state.report()})

    @app.post("/_sandbox/release")
    def release() -> Response:
        """Let every held submission go: answered, or with ``{"answer": false}`` its
        connection dropped (the job still runs; its answer is lost)."""
        answer = bool((request.get_json(silent=True) or {}).get("answer", True))
        with state.lock:
            released, state.held = state.held, []
        for item in released:
            item.answer = answer
            item.released.set()
        return _json({"released": len(released)})

    @app.post("/_sandbox/config")
    def configure() -> Response:
        try:
            state.config.update(request.get_json(force=True) or {})
        except KeyError as exc:
            return _json({"detail": f"unknown setting {exc}"}, 422)
        return _json({"ok": True})

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the sandbox (threaded werkzeug: it is a test double, not a product)."""
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description="A Sixtyfour-compatible sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--rate", type=int, default=500, help="requests per minute per key")
    parser.add_argument("--latency", type=float, default=2.0,
                        help="median seconds of an enrichment job")
    args = parser.parse_args(argv)
    config = SandboxConfig(api_key=args.api_key, rate_per_minute=args.rate)
    config.latency_median = {"enrich_lead": args.latency, "enrich_company": args.latency,
                             "find_email": min(args.latency, 0.5),
                             "find_phone": min(args.latency, 0.5),
                             "find_email_bulk": min(args.latency, 1.0)}
    print(f"Sixtyfour SANDBOX (simulated data) on http://{args.host}:{args.port}, "
          f"key {args.api_key!r}", flush=True)
    run_simple(args.host, args.port, create_sandbox(config), threaded=True)


if __name__ == "__main__":
    main()
