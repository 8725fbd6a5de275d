"""Instances: start, read, list, fire actions, and read history."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from .. import core
from ..core import Event, Instance, Workflow
from ..core.definitions import BlockSpec
from ..errors import (
    IdempotencyKeyReused,
    InputsInvalid,
    InstanceExists,
    PreconditionFailed,
    Problem,
)
from ..store import Transaction
from .base import ServiceBase

__all__ = ["FireResult", "Instances"]


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _matches(if_match: str, etag: str) -> bool:
    """RFC 9110 If-Match: ``*`` or a list of entity tags, compared strongly (a weak tag
    ``W/"2"`` never matches)."""
    candidates = {tag.strip() for tag in if_match.split(",")}
    return "*" in candidates or etag in candidates


@dataclass(frozen=True)
class FireResult:
    """The outcome of firing an action: the instance as the fire left it."""

    instance: Instance
    workflow: Workflow
    replayed: bool = False


class Instances(ServiceBase):
    """Instances of workflows and their histories."""

    def start_instance(
        self,
        definition_id: str,
        *,
        version: int | None = None,
        instance_id: str | None = None,
        context: dict[str, Any] | None = None,
        inputs: dict[str, dict[str, Any]] | None = None,
        actor: str | None = None,
    ) -> tuple[Instance, Workflow, bool]:
        """Start an instance; ``(instance, workflow, created)``.

        With a client-chosen ``instance_id`` the start is idempotent: the same request
        again answers the existing instance, a different one is a conflict. A retry that
        names the version the instance runs, or no version, is the same request.
        """
        with self.store.write() as tx:
            return self._start(tx, definition_id, version=version, instance_id=instance_id,
                               context=context, inputs=inputs, actor=actor)

    def _start(
        self,
        tx: Transaction,
        definition_id: str,
        *,
        version: int | None = None,
        instance_id: str | None = None,
        context: dict[str, Any] | None = None,
        inputs: dict[str, dict[str, Any]] | None = None,
        actor: str | None = None,
    ) -> tuple[Instance, Workflow, bool]:
        """:meth:`start_instance` inside ``tx`` (a trigger claims its fire in the same
        transaction)."""
        request_hash = _digest({"definition_id": definition_id, "context": context or {},
                                **({"inputs": inputs} if inputs else {})})
        if instance_id is not None:
            existing = tx.instance(instance_id)
            if existing is not None:
                return self._started_already(tx, existing, request_hash, version)
        workflow = self._load(tx, definition_id, version)
        self._check_inputs(workflow, inputs or {})
        change = core.start(
            workflow, instance_id or uuid.uuid4().hex, now=self.clock(),
            context=context, inputs=inputs, actor=actor,
        )
        if not tx.insert_instance(change.instance, request_hash):
            # A concurrent start with the same id committed first: answer as a retry.
            winner = tx.instance(change.instance.id)
            assert winner is not None, "an id is taken only by a stored instance"
            return self._started_already(tx, winner, request_hash, version)
        self._record(tx, change)
        return change.instance, workflow, True

    def planned_run(self, definition_id: str, version: int | None,
                    inputs: dict[str, dict[str, Any]]) -> Workflow:
        """The workflow a start with these inputs would run; raises as the start would."""
        with self.store.read() as tx:
            workflow = self._load(tx, definition_id, version)
        self._check_inputs(workflow, inputs)
        return workflow

    def _check_inputs(self, workflow: Workflow, inputs: dict[str, dict[str, Any]]) -> None:
        """Raise :class:`InputsInvalid` unless every input names a state with a block and
        the block takes its parameters over the definition's."""
        problems: list[Problem] = []
        for state_id, params in inputs.items():
            state = workflow.states.get(state_id)
            if state is None or state.block is None:
                problems.append(Problem(
                    f"inputs.{state_id}", "not_a_block_state",
                    f"'{state_id}' is not a state of '{workflow.id}' version "
                    f"{workflow.version}" if state is None else
                    f"State '{state_id}' runs no block: it takes no inputs."))
                continue
            if self.catalog is None:
                continue
            spec = BlockSpec(type=state.block.type, params={**state.block.params, **params})
            problems += [replace(p, path=p.path.replace(f"inputs.{state_id}.params",
                                                        f"inputs.{state_id}", 1))
                         for p in self.catalog.check(spec, f"inputs.{state_id}")]
        if problems:
            raise InputsInvalid(
                f"The inputs do not fit the blocks: {problems[0].path}: {problems[0].message}",
                problems)

    def _started_already(
        self, tx: Transaction, existing: Instance, request_hash: str, version: int | None
    ) -> tuple[Instance, Workflow, bool]:
        """A start naming an existing instance: the same request again answers it, a
        different one is a conflict."""
        same_version = version in (None, existing.definition_version)
        if tx.start_request_hash(existing.id) != request_hash or not same_version:
            raise InstanceExists(
                f"Instance '{existing.id}' already exists and was started by a "
                "different request.", instance_id=existing.id,
            )
        workflow = self._load(tx, existing.definition_id, existing.definition_version)
        return existing, workflow, False

    def get_instance(self, instance_id: str) -> tuple[Instance, Workflow]:
        """An instance's current snapshot and the workflow version it runs."""
        with self.store.read() as tx:
            instance = self._instance(tx, instance_id)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
        return instance, workflow

    def list_instances(
        self,
        *,
        definition_id: str | None = None,
        state: str | None = None,
        status: str | None = None,
        after_pk: int | None = None,
        limit: int,
    ) -> list[tuple[int, Instance, Workflow]]:
        """Instances in start order, filtered; each with its pagination key and workflow."""
        with self.store.read() as tx:
            rows = tx.list_instances(
                definition_id=definition_id, state=state, status=status,
                after_pk=after_pk, limit=limit,
            )
            return [
                (pk, inst, self._load(tx, inst.definition_id, inst.definition_version))
                for pk, inst in rows
            ]

    def fire(
        self,
        instance_id: str,
        action_id: str,
        *,
        actor: str | None = None,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> FireResult:
        """Fire an action on an instance: state and history change together or not at all."""
        with self.store.write() as tx:
            # A keyed fire holds the instance's row while it looks up the key, so the
            # concurrent copies of one request queue behind the first and replay its
            # answer instead of losing the race to it (409).
            instance = self._instance(tx, instance_id, lock=idempotency_key is not None)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
            if idempotency_key is not None:
                earlier = tx.idempotency_key(instance_id, idempotency_key)
                if earlier is not None:
                    first_action, then = earlier
                    if first_action != action_id:
                        raise IdempotencyKeyReused(
                            f"This Idempotency-Key was first used to fire '{first_action}', "
                            f"not '{action_id}'.",
                            errors=[Problem("Idempotency-Key", "idempotency_key_reused",
                                            f"Key already used for action '{first_action}'.")],
                        )
                    return FireResult(then, workflow, replayed=True)
            if if_match is not None and not _matches(if_match, instance.etag):
                raise PreconditionFailed(
                    f"Instance '{instance_id}' is at version {instance.version} "
                    f"(ETag {instance.etag}); If-Match was {if_match}.",
                    current_etag=instance.etag,
                )
            change = core.fire(workflow, instance, action_id, now=self.clock(), actor=actor)
            self._commit(tx, instance, change)
            if idempotency_key is not None:
                tx.save_idempotency_key(
                    idempotency_key, action_id=action_id, result=change.instance,
                    now=change.instance.updated_at,
                )
        return FireResult(change.instance, workflow)

    def history(
        self, instance_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """An instance's events in order."""
        with self.store.read() as tx:
            self._instance(tx, instance_id)
            return tx.history(instance_id, after_seq=after_seq, limit=limit)

    def counts(self) -> dict[str, Any]:
        """Stored definitions and instances by status, reading the database."""
        with self.store.read() as tx:
            return {
                "definitions": tx.count_definitions(),
                "instances": tx.count_instances_by_status(),
            }
