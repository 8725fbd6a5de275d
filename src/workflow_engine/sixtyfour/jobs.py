"""The enricher: the one process-wide scheduler of enrichment jobs.

Blocks hand it a batch of requests and wait for an outcome per request. It submits them
as fast as the shared budget allows (bounded by jobs in flight), polls each job when it
is likely done (at about the latency jobs of its kind have shown, then more often),
stores every task id as soon as it has one and every result as soon as it arrives, and
reuses both: a request already answered is never paid for again, and a task still
running when the server stopped is polled, not submitted, after a restart.

Before a submission leaves, it is claimed in the database (``sending``, by this process,
under a lease that outlasts one attempt): no other process or machine sends the same
request while the claim holds; it watches the record instead and takes the owner's
outcome (the task id to poll, or the result). A process that dies with a request sent
and its answer not yet stored leaves its claim behind; once the lease lapses, the next
process to look treats it as a lost answer (outcome unknown) rather than paying again
silently. What then happens is the batch's choice, ``on_unknown_outcome``: ``error`` (the
row gets ``upstream_outcome_unknown``, and so does every later request for it) or
``resubmit`` (it is sent again, once, accepting that it may be paid for twice).

A kind that has a bulk endpoint (finding emails) can be asked in batches (``bulk_size``):
up to that many requests go out as one bulk submission, which counts as one request
against the budget, is claimed together with each of its subjects' own requests, and
whose answer is split back into each subject's own result (:mod:`.bulk`). Every rule
above then holds per subject: one already answered is not sent, one whose outcome is
unknown is not sent again unless ``resubmit``, one missing from the answer is an error.

A few worker threads do the HTTP; the budget, not the thread count, sets the pace.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamJobFailed,
    UpstreamLeadMissing,
    UpstreamMalformed,
    UpstreamOutcomeUnknown,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ..metrics import Metrics
from ..store.upstream import UpstreamJob, UpstreamJobs
from .bulk import BULK_TASK_PREFIX, Lead, split_answer
from .client import SixtyfourClient
from .config import BULK_KINDS, BULK_MAX_LEADS, Polling

__all__ = ["Enricher", "OnUnknownOutcome", "Outcome", "request_key"]

OnUnknownOutcome = Literal["error", "resubmit"]

log = logging.getLogger(__name__)

# How long a graceful stop waits for submissions already sent to be answered.
CLOSE_GRACE_SECONDS = 15.0
# A claim to send a request is renewed while its attempt is out (a third of the lease
# at a time): a claim that lapsed belongs to a process that died, not to a slow request.
CLAIM_LEASE_MS = 10_000
# How often records that another process is working on are read again.
WATCH_INTERVAL_SECONDS = 1.0


def request_key(kind: str, body: dict[str, Any], namespace: str = "") -> str:
    """The identity of a request: who answers it (``namespace``: the API's address and
    key, so a sandbox's made-up answers are never reused as real ones), its kind and its
    canonical body."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{namespace}|{kind}:{text}".encode()).hexdigest()


_LOST_AT_RESTART = (
    "A submission of this request was sent, but the process that sent it stopped before "
    "its answer was stored: it may have started a paid job, so it is not sent again "
    "(on_unknown_outcome: resubmit sends it again, accepting that it may be paid for "
    "twice).")


class _ClaimTaken(Exception):
    """Another process claimed the request first: wait for its outcome instead."""


@dataclass(frozen=True)
class Outcome:
    """What became of one request: a result, or an error (code and message)."""

    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    reused: bool = False


@dataclass
class _Batch:
    kind: str
    on_outcome: Callable[[int, Outcome], None]
    remaining: int
    on_unknown: OnUnknownOutcome = "error"
    on_sent: Callable[[int], None] | None = None
    fatal: UpstreamError | None = None
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class _Job:
    key: str
    kind: str
    body: dict[str, Any]
    waiters: list[tuple[_Batch, int]]
    task_id: str | None = None
    submitted_at: float = 0.0
    polls: int = 0
    resumed: bool = False
    poll_errors: int = 0
    resent: bool = False  # sent again after an unknown outcome: never a third time
    flying: bool = False  # counted in the jobs in flight (submitting or polled)
    # A bulk job: its subjects, in the order sent (its waiters are theirs), and whether
    # they are the whole batch in that order (not after a restart: only those asked for).
    leads: list[Lead] | None = None
    positional: bool = True

    def record_keys(self) -> list[str]:
        """The records the job writes: its own, and a bulk job's subjects'."""
        return [self.key, *(lead.key for lead in self.leads or ())]

    def all_waiters(self) -> list[tuple[_Batch, int]]:
        """Who waits on the job (on each subject of a bulk job)."""
        if self.leads is None:
            return self.waiters
        return [waiter for lead in self.leads for waiter in lead.waiters]


class Enricher:
    """Schedules every enrichment job of the process."""

    def __init__(
        self,
        client: SixtyfourClient,
        records: UpstreamJobs,
        *,
        polling: Polling = Polling(),  # noqa: B008 - a frozen value object
        workers: int = 16,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        metrics: Metrics | None = None,
        webhook_url: str | None = None,
        namespace: str = "",
        owner: str | None = None,
        claim_lease_ms: int = CLAIM_LEASE_MS,
    ) -> None:
        self.namespace = namespace
        # Names this process's claims: one per enricher, so a restarted process never
        # mistakes the claims it left behind for live ones.
        self.owner = owner or uuid.uuid4().hex
        self.claim_lease_ms = claim_lease_ms
        # Requests whose outcome another process is working on (its claim holds), or, with
        # a webhook, may store (a webhook can reach any server): read again periodically.
        self._watched: dict[str, _Job] = {}
        # Claims of this process whose attempt is out right now: renewed until answered.
        self._sending: set[str] = set()
        self._renewed_at = 0.0
        self.metrics = metrics
        # With a webhook the API tells us when a job is done; polls are only the fallback.
        self.webhook_url = webhook_url
        self._by_task: dict[str, _Job] = {}
        self._recently_finished: deque[str] = deque(maxlen=100_000)
        self.client = client
        self.records = records
        self.polling = polling
        self._clock = clock
        self._wall_ms = wall_ms
        self._expected = dict(polling.expected_seconds)
        # Until a kind's first job completes, its latency is a guess: one job per kind
        # probes (polled early, then less and less often) while the others wait for it.
        self._learned: set[str] = set()
        self._probe: dict[str, str] = {}
        self._submit_queue: deque[_Job] = deque()
        self._polls: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()
        self._active: dict[str, _Job] = {}
        self._in_flight = 0
        self._changed = threading.Condition()
        self._closed = False
        self._poll_turn = False
        self._workers = [threading.Thread(target=self._work, name=f"enricher-{i}", daemon=True)
                         for i in range(workers)]
        self._workers.append(threading.Thread(target=self._watch, name="enricher-watch",
                                              daemon=True))
        for worker in self._workers:
            worker.start()

    # -- what blocks call -----------------------------------------------------------------

    def enrich(
        self,
        kind: str,
        bodies: list[dict[str, Any]],
        on_outcome: Callable[[int, Outcome], None],
        *,
        cancel: threading.Event | None = None,
        on_unknown_outcome: OnUnknownOutcome = "error",
        on_sent: Callable[[int], None] | None = None,
        bulk_size: int | None = None,
    ) -> None:
        """Get an outcome for each request, calling ``on_outcome(index, outcome)`` as they
        arrive; return when all have one. With ``bulk_size`` (a kind that has a bulk
        endpoint), the requests to send go out in bulk submissions of up to that many.
        Raises the first auth error (nothing more is submitted for this batch), or returns
        early if ``cancel`` is set.

        A request whose submission left without its answer arriving (now, or before a
        restart) is an ``upstream_outcome_unknown`` error with ``on_unknown_outcome=
        "error"``, and is sent again (once) with ``"resubmit"``.

        ``on_sent(index)`` is called when a request has left for the API (sent by this
        process or another, or paid for before a restart): the others still wait for the
        rate budget or a free slot."""
        batch = _Batch(kind, on_outcome, len(bodies), on_unknown=on_unknown_outcome,
                       on_sent=on_sent)
        if not bodies:
            return
        if bulk_size is not None and (kind not in BULK_KINDS
                                      or not 1 <= bulk_size <= BULK_MAX_LEADS):
            raise ValueError(f"{kind} cannot be sent in bulk submissions of {bulk_size}")
        filling: _Job | None = None  # the bulk job being filled
        keys = [request_key(kind, body, self.namespace) for body in bodies]
        told: list[tuple[int, Outcome]] = []
        lost: dict[str, str] = {}  # key -> why, for records still saying "sending"
        pending = list(range(len(bodies)))
        for last_look in (False, True):
            stored = self.records.get_many(sorted({keys[index] for index in pending}))
            again: list[int] = []
            with self._changed:
                if self._closed:
                    raise UpstreamUnavailable("The enrichment scheduler is shutting down.")
                for index in pending:
                    key, record = keys[index], stored.get(keys[index])
                    if record is not None and record.status == "completed":
                        told.append((index, Outcome(record.result, reused=True)))
                        continue
                    job = self._active.get(key)
                    if job is not None:
                        _waiters_of(job, key).append((batch, index))
                        if job.task_id is not None or key in self._watched:
                            _sent(batch, index)
                        continue
                    status = record.status if record is not None else None
                    if record is not None and record.claimed_by_other(
                            self.owner, self._wall_ms()):
                        self._active[key] = self._watched[key] = _Job(
                            key, kind, bodies[index], [(batch, index)])
                        _sent(batch, index)
                        continue
                    if status == "sending" and not last_look:
                        # Perhaps this process's own submission, ended since the read (its
                        # outcome is stored by now): look again before calling it lost.
                        again.append(index)
                        continue
                    unknown = status in ("sending", "unknown")
                    if unknown and on_unknown_outcome == "error":
                        assert record is not None
                        why = (record.error if status == "unknown" and record.error
                               else _LOST_AT_RESTART)
                        told.append((index, Outcome(error={
                            "code": UpstreamOutcomeUnknown.code, "message": why})))
                        if status == "sending":
                            lost[key] = why
                        continue
                    if bulk_size is not None and not _resumable(record):
                        filling = self._fill(filling, bulk_size, batch, index, key, kind,
                                             bodies[index], resent=unknown)
                        continue
                    self._take(batch, index, key, kind, bodies[index], record,
                               resent=unknown)
                self._changed.notify_all()
            pending = again
            if not pending:
                break
        if lost:
            log.warning("%d %s request(s) were sent but never answered (outcome unknown); "
                        "not sending them again", len(lost), kind)
        for key, why in lost.items():
            self.records.unknown(key, owner=self.owner, error=why, now=self._wall_ms())
        # Outside the scheduler's lock: writing rows must not stall every worker.
        for index, outcome in told:
            self._deliver(batch, index, outcome)
        while not batch.done.wait(0.1):
            if cancel is not None and cancel.is_set():
                # Stop waiting; the batch's queued jobs will not be submitted (_wanted).
                batch.done.set()
                return
            if self._closed:
                raise UpstreamUnavailable("The enrichment scheduler shut down mid-batch; "
                                          "its jobs resume at the next start.")
        if batch.fatal is not None:
            raise batch.fatal

    def stored_results(self, kind: str, bodies: list[dict[str, Any]]
                       ) -> dict[int, dict[str, Any]]:
        """The results already stored for these requests, by index; nothing is sent."""
        keys = [request_key(kind, body, self.namespace) for body in bodies]
        stored = self.records.get_many(sorted(set(keys)))
        return {index: record.result for index, key in enumerate(keys)
                if (record := stored.get(key)) is not None and record.status == "completed"
                and record.result is not None}

    def _fill(self, filling: _Job | None, size: int, batch: _Batch, index: int, key: str,
              kind: str, body: dict[str, Any], *, resent: bool) -> _Job:
        """Put a request nobody in this process works on into the bulk job being filled,
        or into a new one when that is full (lock held); the bulk job it went in."""
        bulk_kind, field_name = BULK_KINDS[kind]
        if filling is None or filling.leads is None or len(filling.leads) >= size:
            # A batch's own record is made for it alone: nobody else ever claims it.
            filling = _Job(uuid.uuid4().hex, bulk_kind, {"leads": []}, [], leads=[])
            self._active[filling.key] = filling
            self._submit_queue.append(filling)
        assert filling.leads is not None
        lead = Lead(key, kind, body, field_name, [(batch, index)], resent=resent)
        filling.leads.append(lead)
        filling.body["leads"].append(lead.subject)
        self._active[key] = filling
        if resent:
            log.warning("sending a %s request again whose outcome is unknown "
                        "(on_unknown_outcome: resubmit)", kind)
        return filling

    def _resume_bulk(self, waiters: list[tuple[_Batch, int]], key: str, kind: str,
                     body: dict[str, Any], task_id: str) -> None:
        """A request sent in a bulk job (before a restart, or by another process): poll
        that job (one poll for all of its subjects asked for), never pay again (lock
        held)."""
        bulk_kind, field_name = BULK_KINDS.get(kind, (kind, "lead"))
        job = self._by_task.get(task_id)
        if job is None or job.leads is None or self._active.get(job.key) is not job:
            job = _Job(hashlib.sha256(f"resumed|{task_id}".encode()).hexdigest(), bulk_kind,
                       {"leads": []}, [], task_id=task_id, submitted_at=self._clock(),
                       resumed=True, leads=[], positional=False)
            self._active[job.key] = job
            self._by_task[task_id] = job
            self._fly(job)
            self._schedule_poll(job, self._clock())
        assert job.leads is not None
        lead = next((lead for lead in job.leads if lead.key == key), None)
        if lead is None:
            lead = Lead(key, kind, body, field_name)
            job.leads.append(lead)
        lead.waiters.extend(waiters)
        self._active[key] = job
        for batch, index in waiters:
            _sent(batch, index)

    def _take(self, batch: _Batch, index: int, key: str, kind: str, body: dict[str, Any],
              record: UpstreamJob | None, *, resent: bool) -> None:
        """Start a job for a request nobody in this process works on (lock held)."""
        if record is not None and _resumable(record) and record.task_id is not None \
                and record.task_id.startswith(BULK_TASK_PREFIX):
            self._resume_bulk([(batch, index)], key, kind, body,
                              record.task_id[len(BULK_TASK_PREFIX):])
            return
        job = _Job(key, kind, body, [(batch, index)], resent=resent)
        self._active[key] = job
        if resent:
            log.warning("sending a %s request again whose outcome is unknown "
                        "(on_unknown_outcome: resubmit)", kind)
        if record is not None and record.status == "submitted" and record.task_id:
            # Paid for before a restart: ask how it went instead of paying again.
            job.task_id = record.task_id
            job.submitted_at = self._clock()
            job.resumed = True  # its real age is unknown: nothing to learn from it
            self._by_task[record.task_id] = job
            _sent(batch, index)
            self._fly(job)
            self._schedule_poll(job, self._clock())
        else:
            self._submit_queue.append(job)

    def close(self, grace: float = CLOSE_GRACE_SECONDS) -> None:
        """Stop the workers (jobs in flight stay recorded and resume at the next start).

        A worker in the middle of a submission is given ``grace`` seconds to store the
        answer: stopped before that, the submission would be an unknown outcome at the
        next start, although the server was stopped gracefully.
        """
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        deadline = time.monotonic() + grace
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))

    # -- scheduling -----------------------------------------------------------------------

    def _fly(self, job: _Job) -> None:
        """Count the job in flight (lock held)."""
        if not job.flying:
            job.flying = True
            self._in_flight += 1

    def _land(self, job: _Job) -> None:
        """The job is no longer in flight (lock held)."""
        if job.flying:
            job.flying = False
            self._in_flight -= 1

    def _schedule_poll(self, job: _Job, now: float) -> None:
        heapq.heappush(self._polls, (self._due(job, now), next(self._order), job))

    def _due(self, job: _Job, now: float) -> float:
        """When to poll ``job`` next (called with the lock held)."""
        polling = self.polling
        expected = self._expected.get(job.kind, 30.0)
        if job.resumed and job.polls == 0:
            # Submitted before a restart, so probably done by now: ask at once.
            return now + polling.min_interval
        if self.webhook_url is not None:
            # The webhook should come first; poll only if it is well overdue.
            if job.polls == 0:
                return now + max(polling.min_interval, job.submitted_at + 2 * expected + 10 - now)
            delay = expected
        elif job.kind not in self._learned and self._probe.setdefault(job.kind, job.key) == job.key:
            delay = polling.min_interval * 2.0**job.polls
        elif job.polls == 0:
            # When it is probably done: not capped, a five-minute job is polled at ~5 min.
            return now + max(polling.min_interval, job.submitted_at + 0.95 * expected - now)
        else:
            delay = expected * polling.repoll_fraction
        return now + min(polling.max_interval, max(polling.min_interval, delay))

    def _learn(self, job: _Job, first_poll: bool) -> None:
        """Fold a completed job's age into its kind's expected latency (not a resumed job's:
        its age is unknown)."""
        if job.resumed:
            return
        kind, age = job.kind, self._clock() - job.submitted_at
        with self._changed:
            if kind not in self._learned:
                self._learned.add(kind)
                self._probe.pop(kind, None)
                self._expected[kind] = age
                # Jobs waiting for their first poll were timed on the guess: re-time them.
                now = self._clock()
                self._polls = [(self._due(job, now) if job.polls == 0 else due, n, job)
                               for due, n, job in self._polls]
                heapq.heapify(self._polls)
                self._changed.notify_all()
                return
            if first_poll:
                # Done at the first poll: it may have finished well before; only shorten.
                age = min(age, self._expected[kind])
            self._expected[kind] = 0.8 * self._expected[kind] + 0.2 * age

    def _next_action(self) -> tuple[str, _Job] | None:
        """What a worker should do now (called with the lock held); None to wait.

        Due polls and submissions take turns, so a long queue of submissions never keeps
        finished jobs (and small batches behind it) waiting for their results."""
        if self._poll_turn or not self._submit_queue:
            action = self._due_poll()
            if action is not None:
                self._poll_turn = False
                return action
        self._poll_turn = True
        while self._submit_queue and self._in_flight < self.polling.max_in_flight:
            job = self._submit_queue.popleft()
            if self._wanted(job):
                self._fly(job)
                return "submit", job
            self._drop(job)
        return self._due_poll()

    def _due_poll(self) -> tuple[str, _Job] | None:
        while self._polls and self._polls[0][0] <= self._clock():
            _, _, job = heapq.heappop(self._polls)
            if self._active.get(job.key) is job:  # not finished by a webhook meanwhile
                return "poll", job
        return None

    def _wanted(self, job: _Job) -> bool:
        def live(waiters: list[tuple[_Batch, int]]) -> list[tuple[_Batch, int]]:
            return [(batch, i) for batch, i in waiters
                    if batch.fatal is None and not batch.done.is_set()]

        if job.leads is None:
            job.waiters = live(job.waiters)
            return bool(job.waiters)
        for lead in job.leads:
            lead.waiters = live(lead.waiters)
            if not lead.waiters and self._active.get(lead.key) is job:
                self._active.pop(lead.key)
        job.leads = [lead for lead in job.leads if lead.waiters]
        job.body["leads"] = [lead.subject for lead in job.leads]
        return bool(job.leads)

    def _drop(self, job: _Job) -> None:
        """Forget a job and (a bulk job) its subjects (lock held)."""
        for key in job.record_keys():
            if self._active.get(key) is job:
                self._active.pop(key)

    def _work(self) -> None:
        while True:
            with self._changed:
                action = None
                while not self._closed:
                    action = self._next_action()
                    if action is not None:
                        break
                    timeout = (self._polls[0][0] - self._clock()) if self._polls else 1.0
                    self._changed.wait(max(0.01, min(timeout, 1.0)))
                if self._closed:
                    return
            assert action is not None
            kind, job = action
            try:
                if kind == "submit":
                    self._submit(job)
                else:
                    self._poll(job)
            except _ClaimTaken:
                self._wait_for_owner(job)
            except UpstreamAuthError as exc:
                self._fail_batches(job, exc)
            except UpstreamOutcomeUnknown as exc:
                self._unknown(job, exc)
            except UpstreamError as exc:
                self._finish(job, error={"code": exc.code, "message": exc.detail})
            except Exception as exc:  # a bug must not kill a worker silently
                log.exception("enrichment job %s failed unexpectedly", job.key)
                self._finish(job, error={"code": "upstream_error", "message": repr(exc)})

    def _submit(self, job: _Job) -> None:
        body = job.body if self.webhook_url is None else {**job.body,
                                                          "webhook_url": self.webhook_url}
        submitted_at = self._clock()
        bulk = job.leads is not None
        try:
            task_id = self.client.submit(
                job.kind, body,
                # The claim is committed before each attempt leaves, withdrawn when the
                # API provably started nothing; a request another process holds is given
                # up before it waits for (and spends) a rate slot. (A bulk job's own key
                # is its alone; its subjects are claimed with it.)
                may_send=None if bulk else lambda: self._check_claimable(job),
                sending=(lambda: self._claim_bulk(job)) if bulk else lambda: self._claim(job),
                not_taken=lambda: self.records.not_taken(job.record_keys(), self.owner))
        except UpstreamMalformed as exc:
            # It answered, but with no task id we can poll: it may have started a job.
            self.records.unknown_many(job.record_keys(), owner=self.owner, error=exc.detail,
                                      now=self._wall_ms())
            raise
        finally:
            with self._changed:
                self._sending.difference_update(job.record_keys())
                self._changed.notify_all()
        job.task_id = task_id
        job.submitted_at = submitted_at
        self.records.submitted(job.key, job.kind, task_id, self._wall_ms())
        if job.leads is not None:
            self.records.submitted_many([lead.key for lead in job.leads],
                                        BULK_TASK_PREFIX + task_id, self._wall_ms())
        with self._changed:
            self._by_task[task_id] = job
            for batch, index in job.all_waiters():
                _sent(batch, index)
            self._schedule_poll(job, self._clock())
            if self.webhook_url is not None:
                self._watched[job.key] = job
            self._changed.notify_all()

    def _check_claimable(self, job: _Job) -> None:
        """:class:`_ClaimTaken` if another process holds or has answered the request."""
        standing = self.records.standing(job.key, owner=self.owner, now=self._wall_ms(),
                                         resend=job.resent)
        if standing is not None:
            raise _ClaimTaken(standing.status)

    def _claim(self, job: _Job) -> None:
        """Claim the request before an attempt leaves; :class:`_ClaimTaken` if another
        process holds it."""
        standing = self.records.claim(job.key, job.kind, owner=self.owner,
                                      now=self._wall_ms(), lease_ms=self.claim_lease_ms,
                                      resend=job.resent)
        if standing is not None:
            raise _ClaimTaken(standing.status)
        with self._changed:
            self._sending.add(job.key)
            self._changed.notify_all()

    def _claim_bulk(self, job: _Job) -> None:
        """Claim a bulk job and its subjects before an attempt leaves. Subjects another
        process holds or has answered meanwhile are left out of the batch (the body sent
        is the job's own, changed in place: it is encoded only after this) and watched;
        :class:`_ClaimTaken` when none is left."""
        assert job.leads is not None
        standing = self.records.claim_many(
            job.key, job.kind, {lead.key: lead.resent for lead in job.leads},
            job.leads[0].kind, owner=self.owner, now=self._wall_ms(),
            lease_ms=self.claim_lease_ms)
        with self._changed:
            if standing:
                for lead in [lead for lead in job.leads if lead.key in standing]:
                    watcher = _Job(lead.key, lead.kind, lead.body, lead.waiters,
                                   resent=lead.resent)
                    self._active[lead.key] = self._watched[lead.key] = watcher
                    for batch, index in lead.waiters:
                        _sent(batch, index)
                job.leads = [lead for lead in job.leads if lead.key not in standing]
                job.body["leads"][:] = [lead.subject for lead in job.leads]
            if job.leads:
                self._sending.update(job.record_keys())
            self._changed.notify_all()
        if not job.leads:
            self.records.not_taken(job.key, self.owner)
            raise _ClaimTaken("every subject of the batch is taken")

    def _wait_for_owner(self, job: _Job) -> None:
        """Another process claimed the request first: take its outcome when it comes."""
        if job.leads is not None:  # a bulk job whose subjects are all watched now
            with self._changed:
                self._drop(job)
                self._land(job)
                self._changed.notify_all()
            return
        with self._changed:
            if self._active.get(job.key) is job:
                self._land(job)
                self._watched[job.key] = job
                self._changed.notify_all()

    def _watch(self) -> None:
        """Renew this process's claims in flight; read the records of watched requests
        again, and act on what changed."""
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._closed or bool(self._watched) or bool(self._sending))
                # A stop lets submissions already out be answered (close's grace): their
                # claims are renewed until then, or others would call them lost.
                if self._closed and not self._sending:
                    return
                watched, sending = dict(self._watched), sorted(self._sending)
            if sending and self._clock() - self._renewed_at >= self.claim_lease_ms / 3000:
                try:
                    self.records.renew(sending, owner=self.owner,
                                       until=self._wall_ms() + self.claim_lease_ms)
                    self._renewed_at = self._clock()
                except Exception:  # the database is away for a moment: at the next turn
                    log.exception("renewing enrichment claims failed")
            if watched and not self._closed:
                self._look_again(watched)
            with self._changed:
                self._changed.wait_for(lambda: self._closed and not self._sending,
                                       WATCH_INTERVAL_SECONDS)

    def _look_again(self, watched: dict[str, _Job]) -> None:
        try:
            stored = self.records.get_many(sorted(watched))
        except Exception:  # the database is away for a moment: look again at the next turn
            log.exception("reading watched enrichment records failed")
            return
        for key, job in watched.items():
            try:
                self._watched_changed(job, stored.get(key))
            except Exception:  # a bug must not stop the watch
                log.exception("handling watched enrichment record %s failed", key)

    def _watched_changed(self, job: _Job, record: UpstreamJob | None) -> None:
        """Act on the record of a request another process is (or was) working on."""
        if record is not None and record.status in ("completed", "failed"):
            with self._changed:
                self._watched.pop(job.key, None)
            if record.status == "completed" and record.result is not None:
                self._finish(job, result=record.result)
            else:
                self._finish(job, error={"code": UpstreamJobFailed.code,
                                         "message": record.error or "The job failed."})
            return
        if job.task_id is not None:
            return  # ours, polled; only a result stored elsewhere concerns the watch
        now = self._wall_ms()
        if record is not None and record.claimed_by_other(self.owner, now):
            return  # still in flight elsewhere
        unknown = record is not None and record.status in ("sending", "unknown")
        why = (record.error if record is not None and record.status == "unknown"
               and record.error else _LOST_AT_RESTART)
        if unknown and not self.records.unknown(job.key, owner=self.owner, error=why,
                                                now=now):
            return  # claimed again meanwhile (a resend): watched on, read at the next turn
        with self._changed:
            if self._active.get(job.key) is not job:
                self._watched.pop(job.key, None)
                return
            self._watched.pop(job.key)
            if record is not None and _resumable(record) and record.task_id is not None \
                    and record.task_id.startswith(BULK_TASK_PREFIX):
                # The owner sent it in a bulk job, answered: poll that job.
                self._active.pop(job.key)
                self._resume_bulk(job.waiters, job.key, job.kind, job.body,
                                  record.task_id[len(BULK_TASK_PREFIX):])
                self._changed.notify_all()
                return
            if record is not None and record.status == "submitted" and record.task_id:
                # The owner's submission was answered: poll its task, never pay again.
                job.task_id, job.submitted_at, job.resumed = (
                    record.task_id, self._clock(), True)
                self._by_task[record.task_id] = job
                self._fly(job)
                self._schedule_poll(job, self._clock())
                self._changed.notify_all()
                return
            if not unknown:
                # The owner's attempt provably started nothing: it is ours to send.
                self._submit_queue.append(job)
                self._changed.notify_all()
                return
            resend = [(b, i) for b, i in job.waiters if b.on_unknown == "resubmit"]
            tell = [(b, i) for b, i in job.waiters if b.on_unknown != "resubmit"]
            if resend and not job.resent:
                job.resent, job.waiters = True, resend
                self._submit_queue.append(job)
                self._changed.notify_all()
            else:
                tell, job.waiters = job.waiters, []
                self._active.pop(job.key)
        for batch, index in tell:
            self._deliver(batch, index, Outcome(error={
                "code": UpstreamOutcomeUnknown.code, "message": why}))

    def _unknown(self, job: _Job, exc: UpstreamOutcomeUnknown) -> None:
        """A submission left and its answer was lost: send it again (once) for the batches
        that accept paying twice, tell the others."""
        if job.leads is not None:
            self._unknown_bulk(job, exc)
            return
        requeued = False
        with self._changed:
            if self._active.get(job.key) is not job:
                return
            resend = [(b, i) for b, i in job.waiters if b.on_unknown == "resubmit"]
            tell = [(b, i) for b, i in job.waiters if b.on_unknown != "resubmit"]
            if resend and not job.resent:
                job.resent, job.waiters, requeued = True, resend, True
                self._land(job)
                self._submit_queue.appendleft(job)
                self._changed.notify_all()
        error = {"code": exc.code, "message": exc.detail}
        if not requeued:
            self.records.unknown(job.key, owner=self.owner, error=exc.detail,
                                 now=self._wall_ms())
            self._finish(job, error=error)
            return
        log.warning("sending a %s request again whose answer was lost "
                    "(on_unknown_outcome: resubmit)", job.kind)
        for batch, index in tell:
            self._deliver(batch, index, Outcome(error=error))

    def _unknown_bulk(self, job: _Job, exc: UpstreamOutcomeUnknown) -> None:
        """:meth:`_unknown`, per subject of a bulk job: the subjects some batch accepts
        paying twice for go again (once) in the same bulk job, the others are told."""
        assert job.leads is not None
        error = {"code": exc.code, "message": exc.detail}
        tell: list[tuple[_Batch, int]] = []
        with self._changed:
            if self._active.get(job.key) is not job:
                return
            again: list[Lead] = []
            for lead in job.leads:
                resend = [(b, i) for b, i in lead.waiters if b.on_unknown == "resubmit"]
                if resend and not job.resent:
                    tell += [(b, i) for b, i in lead.waiters if b.on_unknown != "resubmit"]
                    lead.waiters, lead.resent = resend, True
                    again.append(lead)
            if again:
                told = [lead for lead in job.leads if lead not in again]
                for lead in told:
                    tell += lead.waiters
                    if self._active.get(lead.key) is job:
                        self._active.pop(lead.key)
                job.resent, job.leads = True, again
                job.body = {**job.body, "leads": [lead.subject for lead in again]}
                self._land(job)
                self._submit_queue.appendleft(job)
                self._changed.notify_all()
        if not again:
            self.records.unknown_many(job.record_keys(), owner=self.owner, error=exc.detail,
                                      now=self._wall_ms())
            self._finish(job, error=error)
            return
        self.records.unknown_many([lead.key for lead in told], owner=self.owner,
                                  error=exc.detail, now=self._wall_ms())
        log.warning("sending %d %s requests again whose answer was lost "
                    "(on_unknown_outcome: resubmit)", len(again), job.kind)
        for batch, index in tell:
            self._deliver(batch, index, Outcome(error=error))

    def deliver_webhook(self, payload: dict[str, Any]) -> bool | None:
        """A finished job, as the API's webhook reports it: True if taken; None for a task
        that finished already (a poll got there first, here or in another process:
        nothing to do, but no reason for the API to call again); False for a task no
        process on this database submitted or waits on."""
        task_id = payload.get("task_id")
        status = str(payload.get("status", "")).lower()
        result = payload.get("result")
        if isinstance(result, list):  # a bulk job's answer may be the bare list
            result = {"results": result}
        with self._changed:
            job = self._by_task.get(task_id) if isinstance(task_id, str) else None
            waiting_here = job is not None and self._active.get(job.key) is job
            finished_here = task_id in self._recently_finished
        if not waiting_here:
            if finished_here:
                return None
            # Perhaps another process waits on it: store the outcome for it to find.
            return self._store_for_others(task_id, status, result, payload)
        assert job is not None
        if status in ("completed", "failed", "cancelled"):
            self._learn(job, first_poll=False)
        if status == "completed" and isinstance(result, dict):
            self.records.finished(job.key, result=result, error=None, now=self._wall_ms())
            self._finish(job, result=result)
        elif status in ("failed", "cancelled"):
            failure = UpstreamJobFailed(
                f"The enrichment job {status}: {payload.get('error') or 'no reason given'}.")
            self.records.finished(job.key, result=None, error=failure.detail,
                                  now=self._wall_ms())
            self._finish(job, error={"code": failure.code, "message": failure.detail})
        else:
            return False
        return True

    def _store_for_others(self, task_id: Any, status: str, result: Any,
                          payload: dict[str, Any]) -> bool | None:
        if not isinstance(task_id, str) or status not in ("completed", "failed", "cancelled"):
            return False
        if status == "completed":
            if not isinstance(result, dict):
                return False
            return self.records.finished_task(task_id, result=result, error=None,
                                              now=self._wall_ms())
        failure = UpstreamJobFailed(
            f"The enrichment job {status}: {payload.get('error') or 'no reason given'}.")
        return self.records.finished_task(task_id, result=None, error=failure.detail,
                                          now=self._wall_ms())

    def _poll(self, job: _Job) -> None:
        assert job.task_id is not None
        job.polls += 1
        try:
            status = self.client.status(job.task_id)
        except UpstreamRejected as exc:
            if exc.context.get("upstream_status") != 404:
                raise
            # The API no longer knows the task (results expired, another key or sandbox):
            # the job is lost; record it so later runs submit afresh instead of polling it.
            lost = f"The enrichment API no longer knows task {job.task_id}."
            self.records.finished(job.key, result=None, error=lost, now=self._wall_ms())
            self._finish(job, error={"code": "upstream_task_lost", "message": lost})
            return
        except (UpstreamUnavailable, UpstreamMalformed) as exc:
            # The job is running and paid for: a bad patch in polling must not fail it.
            job.poll_errors += 1
            if job.poll_errors >= 20:
                raise
            log.info("poll of %s failed (%s); trying again later", job.task_id, exc.code)
            with self._changed:
                self._schedule_poll(job, self._clock())
            return
        if not status.finished:
            with self._changed:
                self._schedule_poll(job, self._clock())
            return
        # A job that failed still tells when jobs of its kind come to an end, which is
        # what polls are timed on.
        self._learn(job, first_poll=job.polls == 1)
        if status.status == "completed" and status.result is not None:
            self.records.finished(job.key, result=status.result, error=None,
                                  now=self._wall_ms())
            self._finish(job, result=status.result)
        else:
            failure = UpstreamJobFailed(
                f"The enrichment job {status.status}: {status.error or 'no reason given'}.")
            self.records.finished(job.key, result=None, error=failure.detail,
                                  now=self._wall_ms())
            self._finish(job, error={"code": failure.code, "message": failure.detail})

    def _finish(self, job: _Job, *, result: dict[str, Any] | None = None,
                error: dict[str, str] | None = None) -> None:
        if job.leads is not None:
            self._finish_bulk(job, result, error)
            return
        with self._changed:
            if self._active.get(job.key) is not job:
                return  # finished already (a webhook and a poll both said so)
            self._active.pop(job.key, None)
            self._watched.pop(job.key, None)
            self._by_task.pop(job.task_id or "", None)
            if job.task_id:
                self._recently_finished.append(job.task_id)
            self._land(job)
            if self._probe.get(job.kind) == job.key:
                self._probe.pop(job.kind)
            waiters, job.waiters = job.waiters, []
            self._changed.notify_all()
        for batch, index in waiters:
            self._deliver(batch, index, Outcome(result, error))

    def _finish_bulk(self, job: _Job, result: dict[str, Any] | None,
                     error: dict[str, str] | None) -> None:
        """A bulk job ended: each subject's part of the answer is stored as its own
        request's result, and delivered; a subject the answer lacks is an error (stored
        ``failed``: a later run sends it again, this one does not)."""
        assert job.leads is not None
        leads = list(job.leads)
        outcomes: dict[str, Outcome] = {}
        if result is not None:
            parts = split_answer([lead.subject for lead in leads], result,
                                 positional=job.positional)
            missing = UpstreamLeadMissing(
                "The bulk job's answer has nothing for this lead; a later run or retry "
                "sends it again.")
            for lead, part in zip(leads, parts, strict=True):
                outcomes[lead.key] = Outcome(part) if part is not None else Outcome(
                    error={"code": missing.code, "message": missing.detail})
        else:
            failure = error or {"code": "upstream_error", "message": "The bulk job failed."}
            outcomes = {lead.key: Outcome(error=failure) for lead in leads}
        if result is not None or job.task_id is not None:
            # A bulk job that ran (or failed, or was lost) settles each subject's record;
            # one that never started left them as its claims say (not taken, unknown).
            self.records.finished_many(
                {key: (outcome.result, None if outcome.error is None
                       else outcome.error["message"]) for key, outcome in outcomes.items()},
                now=self._wall_ms())
        with self._changed:
            if self._active.get(job.key) is not job:
                return  # finished already (a webhook and a poll both said so)
            self._drop(job)
            self._watched.pop(job.key, None)
            self._by_task.pop(job.task_id or "", None)
            if job.task_id:
                self._recently_finished.append(job.task_id)
            self._land(job)
            if self._probe.get(job.kind) == job.key:
                self._probe.pop(job.kind)
            deliveries = [(batch, index, outcomes[lead.key])
                          for lead in leads for batch, index in lead.waiters]
            job.leads = []
            self._changed.notify_all()
        for batch, index, outcome in deliveries:
            self._deliver(batch, index, outcome)

    def _deliver(self, batch: _Batch, index: int, outcome: Outcome) -> None:
        if outcome.result is not None and self.metrics is not None:
            self.metrics.rows_enriched.labels(batch.kind).inc()
        with batch.lock:
            if batch.done.is_set():
                return
            try:
                batch.on_outcome(index, outcome)
            except Exception:  # a block that cannot take a result must not hang the run
                log.exception("writing the result of a %s request failed", batch.kind)
                if outcome.error is None:
                    batch.on_outcome(index, Outcome(error={
                        "code": "result_unusable",
                        "message": "The answer could not be written into the row."}))
            finally:
                batch.remaining -= 1
                if batch.remaining <= 0:
                    batch.done.set()

    def _fail_batches(self, job: _Job, error: UpstreamAuthError) -> None:
        with self._changed:
            if self._active.get(job.key) is job:
                self._drop(job)
                self._watched.pop(job.key, None)
                self._by_task.pop(job.task_id or "", None)
                self._land(job)
            if self._probe.get(job.kind) == job.key:
                self._probe.pop(job.kind)
            batches = {id(batch): batch for batch, _ in job.all_waiters()}
        for batch in batches.values():
            batch.fatal = error
            batch.done.set()

    def expected_seconds(self) -> dict[str, float]:
        """What the enricher has learnt of each kind's latency."""
        return dict(self._expected)


def _resumable(record: UpstreamJob | None) -> bool:
    """Whether a record is a submission answered before (poll it, never pay again)."""
    return record is not None and record.status == "submitted" and bool(record.task_id)


def _waiters_of(job: _Job, key: str) -> list[tuple[_Batch, int]]:
    """Who waits on the request ``key`` in ``job`` (its subject's, in a bulk job)."""
    if job.leads is None:
        return job.waiters
    return next(lead.waiters for lead in job.leads if lead.key == key)


def _sent(batch: _Batch, index: int) -> None:
    """Tell a batch that one of its requests has left (the scheduler's lock is held)."""
    if batch.on_sent is not None:
        try:
            batch.on_sent(index)
        except Exception:  # progress is informative: it must never stop the scheduler
            log.exception("reporting a sent %s request failed", batch.kind)
