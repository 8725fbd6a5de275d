"""Triggers: webhook calls and schedule ticks that start instances, their tokens, and the
listing of every trigger with its next and last fire.

A webhook's rows are stored as a CSV in the files area (``hook-<instance id>.csv``, as an
upload would be) and read by the initial state's read_csv in place of the file it names.
A schedule's tick is claimed in the transaction that starts its instance
(:class:`~workflow_engine.store.triggers.TriggerRows`), so of the processes that find it
due exactly one starts it. A schedule fires only its latest due tick: ticks missed while
no server ran are not made up, but the latest one is fired when a server comes back.
Ticks from before the definition's latest version was saved are not fired.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import strict_json
from ..auth import digest
from ..blocks.tables import read_csv_table, write_csv_table
from ..core import Instance, Workflow
from ..core.triggers import TriggerSpec, next_tick, ticks_around
from ..errors import (
    FileNotFound,
    HookRowsInvalid,
    HookUnauthorized,
    Problem,
    TriggerNotFound,
    UnsupportedMediaType,
)
from ..store import Transaction
from ..store.triggers import TriggerRows
from .instances import Instances

__all__ = ["ScheduleRound", "TriggerInfo", "Triggers", "hook_file_name"]

log = logging.getLogger(__name__)

PAGE = 200
CSV_TYPES = frozenset({"text/csv", "application/csv"})
JSON_TYPES = frozenset({"application/json"})
_SCALARS = (str, int, float, bool, type(None))


def hook_file_name(instance_id: str, body_digest: str) -> str:
    """The input file a webhook call stores its rows in: named by its body too, so that
    two calls with one idempotency key but different rows never write the same file."""
    return f"hook-{instance_id}-{body_digest[:16]}.csv"


@dataclass(frozen=True)
class TriggerInfo:
    """One trigger of a definition's latest version, with what the store knows of it."""

    definition_id: str
    definition_version: int
    trigger: TriggerSpec
    next_fire_at: int | None
    last_fired_at: int | None
    last_instance_id: str | None
    token_issued_at: int | None


@dataclass(frozen=True)
class ScheduleRound:
    """What one round of the schedule loop did: the instances it started, and when the
    next tick of any schedule falls (None: no schedule)."""

    started: list[Instance]
    next_at: int | None


class Triggers(Instances):
    """Webhook and schedule triggers."""

    # -- tokens and listing -------------------------------------------------------------

    def _trigger(self, workflow: Workflow, trigger_id: str, kind: str | None = None
                 ) -> TriggerSpec:
        trigger = workflow.triggers.get(trigger_id)
        if trigger is None or (kind is not None and trigger.type != kind):
            raise TriggerNotFound(
                f"Definition '{workflow.id}' version {workflow.version} has no "
                f"{kind or ''}{' ' if kind else ''}trigger '{trigger_id}'.",
                definition_id=workflow.id, trigger_id=trigger_id)
        return trigger

    def rotate_hook_token(self, definition_id: str, trigger_id: str) -> tuple[str, Workflow]:
        """A new token for a webhook trigger; the old one stops working at once."""
        token = secrets.token_urlsafe(32)
        with self.store.write() as tx:
            workflow = self._load(tx, definition_id)
            self._trigger(workflow, trigger_id, "webhook")
            now = self.clock()
            if TriggerRows.get(tx, definition_id, trigger_id) is None:
                TriggerRows.add(tx, definition_id, trigger_id, now=now,
                                token_sha256=digest(token))
            else:
                TriggerRows.set_token(tx, definition_id, trigger_id, digest(token), now=now)
        return token, workflow

    def list_triggers(self, definition_id: str | None = None) -> list[TriggerInfo]:
        """The triggers of every definition's latest version (or of one definition), by
        definition then in declaration order."""
        now = self.clock()
        with self.store.read() as tx:
            if definition_id is not None:
                workflows = [self._load(tx, definition_id)]
            else:
                workflows = self._latest_workflows(tx)
            rows = TriggerRows.of(tx, definition_id)
        found = []
        for workflow in workflows:
            for trigger in workflow.spec.triggers:
                row = rows.get((workflow.id, trigger.id))
                upcoming = (next_tick(trigger.cron, trigger.timezone, now)
                            if trigger.type == "schedule" and trigger.cron and trigger.enabled
                            else None)
                found.append(TriggerInfo(
                    workflow.id, workflow.version, trigger, upcoming,
                    row.last_fired_at if row else None, row.last_instance_id if row else None,
                    row.token_issued_at if row else None))
        return found

    def _latest_workflows(self, tx: Transaction) -> list[Workflow]:
        workflows: list[Workflow] = []
        after: str | None = None
        while True:
            page = tx.latest_definitions(after=after, limit=PAGE)
            workflows += [self._workflow(stored) for stored in page]
            if len(page) < PAGE:
                return workflows
            after = page[-1].id

    # -- webhooks -----------------------------------------------------------------------

    def _hook(self, definition_id: str, trigger_id: str, token: str | None
              ) -> tuple[Workflow, TriggerSpec]:
        """The workflow and trigger a webhook call with ``token`` may start."""
        refused = HookUnauthorized(
            "Send the trigger's token: Authorization: Bearer <token> or X-Hook-Token."
            if token is None else "No enabled webhook trigger at this address takes this "
            "token.")
        with self.store.read() as tx:
            stored = tx.definition(definition_id)
            row = TriggerRows.get(tx, definition_id, trigger_id) if stored else None
        if stored is None or row is None or row.token_sha256 is None or token is None:
            raise refused
        # Compared before anything else is told: the answer is the same for an unknown
        # address, a disabled trigger and a wrong token.
        if not hmac.compare_digest(row.token_sha256, digest(token)):
            raise refused
        workflow = self._workflow(stored)
        trigger = workflow.triggers.get(trigger_id)
        if trigger is None or trigger.type != "webhook" or not trigger.enabled:
            raise refused
        return workflow, trigger

    def start_from_hook(
        self, definition_id: str, trigger_id: str, *, token: str | None, body: bytes,
        media_type: str | None, idempotency_key: str | None = None,
    ) -> tuple[Instance, Workflow, bool]:
        """Start an instance of the definition's latest version on the rows of a webhook
        call: a CSV (``text/csv``) or JSON (``{"rows": [...]}`` or a list of objects).
        ``(instance, workflow, created)``; nothing is stored unless the token is the
        trigger's and the rows can be read. With ``idempotency_key``, the same call again
        answers the instance the first one started."""
        workflow, trigger = self._hook(definition_id, trigger_id, token)
        body_digest = hashlib.sha256(body).hexdigest()
        if idempotency_key is not None:
            instance_id = hashlib.sha256(
                f"{definition_id}\0{trigger_id}\0{idempotency_key}".encode()).hexdigest()[:32]
            with self.store.read() as tx:
                existing = tx.instance(instance_id)
            if existing is not None:
                # A retry: the instance it started answers, whatever version it runs.
                again = {**self._hook_start(workflow, trigger, instance_id, body_digest),
                         "version": None}
                with self.store.write() as tx:
                    return self._start(tx, definition_id, instance_id=instance_id, **again)
        else:
            instance_id = uuid.uuid4().hex
        name = hook_file_name(instance_id, body_digest)
        self._store_rows(name, body, media_type)
        try:
            with self.store.write() as tx:
                started = self._start(tx, definition_id, instance_id=instance_id,
                                      **self._hook_start(workflow, trigger, instance_id,
                                                         body_digest))
                if started[2]:
                    TriggerRows.fired(tx, definition_id, trigger_id, instance_id,
                                      now=started[0].created_at)
        except BaseException:
            try:
                self._drop_unused_rows(name, instance_id)
            except Exception:
                # The call's own error is its answer; a file left over harms nothing.
                log.exception("the rows of a webhook call that started nothing (%s) could "
                              "not be removed", name)
            raise
        return started

    def _hook_start(self, workflow: Workflow, trigger: TriggerSpec, instance_id: str,
                    body_digest: str) -> dict[str, Any]:
        return {
            "version": workflow.version,
            "context": {"trigger": {"id": trigger.id, "type": "webhook",
                                    "body_sha256": body_digest}},
            "inputs": {workflow.initial_state.id: {
                "file": hook_file_name(instance_id, body_digest)}},
            "actor": f"webhook:{trigger.id}",
        }

    def _drop_unused_rows(self, name: str, instance_id: str) -> None:
        """Remove the rows of a call that started nothing (the same call's twin, which
        did start the instance, reads the same file: it stays)."""
        assert self.files is not None, "the engine gives the service its files area"
        with self.store.read() as tx:
            existing = tx.instance(instance_id)
        if existing is None or all(params.get("file") != name
                                   for params in existing.inputs.values()):
            with contextlib.suppress(FileNotFound):  # a twin of this call removed it
                self.files.file(name).delete()

    def _store_rows(self, name: str, body: bytes, media_type: str | None) -> None:
        """Store a webhook's rows as the CSV ``name`` in the files area, checked as an
        upload is: nothing is stored unless read_csv can read it."""
        assert self.files is not None, "the engine gives the service its files area"
        kind = (media_type or "").lower()
        if kind in JSON_TYPES:
            frame = _json_rows(body)
        elif kind not in CSV_TYPES:
            raise UnsupportedMediaType(
                "Send the rows as text/csv or application/json (got "
                f"{media_type or 'no Content-Type'}).")
        with self.files.file(name).staged() as staged:
            if kind in JSON_TYPES:
                with staged.writer() as out:
                    # The rows as sent: no formula prefixes in an input file.
                    write_csv_table(frame, out, neutralise=False)
            else:
                staged.write(body)
            read_csv_table(staged, name="The posted CSV", limits=self.limits)
            staged.publish()

    # -- schedules ----------------------------------------------------------------------

    def fire_schedules(self) -> ScheduleRound:
        """Start an instance for every schedule whose latest due tick has not started
        one; claimed in the database, so each tick starts once across processes."""
        now = self.clock()
        with self.store.read() as tx:
            workflows = self._latest_workflows(tx)
            claimed = TriggerRows.last_ticks(tx)
        started: list[Instance] = []
        upcoming: list[int] = []
        for workflow in workflows:
            for trigger in workflow.spec.triggers:
                if trigger.type != "schedule" or not trigger.enabled or trigger.cron is None:
                    continue
                tick, following = ticks_around(trigger.cron, trigger.timezone, now)
                upcoming.append(following)
                if tick < workflow.created_at or claimed.get((workflow.id, trigger.id),
                                                             -1) >= tick:
                    continue
                try:
                    instance = self._fire_tick(workflow, trigger, tick)
                except Exception:
                    # One schedule's failure (the database lost for a moment) must not
                    # stop the others; its tick is tried again at the next round.
                    log.exception("schedule %s of %s could not start its tick",
                                  trigger.id, workflow.id)
                    continue
                if instance is not None:
                    started.append(instance)
        return ScheduleRound(started, min(upcoming) if upcoming else None)

    def _fire_tick(self, workflow: Workflow, trigger: TriggerSpec, tick: int
                   ) -> Instance | None:
        """Claim a tick and start its instance in one transaction; None if another
        process claimed it first."""
        instance_id = uuid.uuid4().hex
        inputs = ({workflow.initial_state.id: {"file": trigger.input_file}}
                  if trigger.input_file is not None else None)
        with self.store.write() as tx:
            now = self.clock()
            if not TriggerRows.claim_tick(tx, workflow.id, trigger.id, tick, instance_id,
                                          now=now):
                return None
            instance, _, _ = self._start(
                tx, workflow.id, version=workflow.version, instance_id=instance_id,
                context={"trigger": {"id": trigger.id, "type": "schedule", "tick_at": tick}},
                inputs=inputs, actor=f"schedule:{trigger.id}")
            TriggerRows.fired(tx, workflow.id, trigger.id, instance_id, now=now)
        log.info("schedule %s of %s started %s for its tick at %d",
                 trigger.id, workflow.id, instance_id, tick)
        return instance

    def schedule_ticks(self, definition_id: str, trigger_id: str) -> list[tuple[int, str]]:
        """A schedule's claimed ticks, oldest first, each with the instance it started."""
        with self.store.read() as tx:
            return TriggerRows.ticks(tx, definition_id, trigger_id)


def _json_rows(body: bytes) -> pd.DataFrame:
    """The rows of a JSON body: ``{"rows": [...]}`` or a list of objects of scalars."""
    document = strict_json.loads(body)
    prefix = "rows"
    if isinstance(document, dict) and set(document) == {"rows"}:
        rows = document["rows"]
    elif isinstance(document, list):
        rows, prefix = document, ""
    else:
        raise HookRowsInvalid("Send the rows as a list of objects, or {\"rows\": [...]}.",
                              errors=[Problem("$", "wrong_type", "Expected a list of rows.")])
    if not isinstance(rows, list) or not rows:
        raise HookRowsInvalid("There are no rows: send at least one.",
                              errors=[Problem(prefix or "$", "no_rows", "An empty list.")])
    problems = []
    for index, row in enumerate(rows):
        path = f"{prefix}[{index}]"
        if not isinstance(row, dict) or not row:
            problems.append(Problem(path, "wrong_type", "A row is an object of values."))
            continue
        problems += [Problem(f"{path}.{key}", "wrong_type",
                             "A value is text, a number, a boolean or null.")
                     for key, value in row.items() if not isinstance(value, _SCALARS)]
    if problems:
        raise HookRowsInvalid(f"{problems[0].path}: {problems[0].message}", errors=problems)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    # As text, as read_csv reads every column: a CSV has no other type. With one column a
    # missing value would be an empty line, which a CSV reader skips: it is written as an
    # empty text instead, so that the row stays.
    missing = "" if len(columns) == 1 else None
    return pd.DataFrame([[_text(row.get(column), missing) for column in columns]
                         for row in rows], columns=columns, dtype=object)


def _text(value: object, missing: str | None) -> str | None:
    if value is None:
        return missing
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
