"""The service layer: one place that opens transactions, calls the core and stores results.

Routes call these methods and serialise what they return; nothing here knows about
HTTP beyond the errors it raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import core
from .core import DefinitionSpec, Event, Instance, Workflow
from .errors import (
    ConcurrentModification,
    DefinitionExists,
    DefinitionInvalid,
    DefinitionNotFound,
    DefinitionVersionNotFound,
    IdempotencyKeyReused,
    InstanceExists,
    InstanceNotFound,
    PreconditionFailed,
    Problem,
    ValidationFailed,
)
from .store import Store, StoredDefinition, Transaction

__all__ = ["FireResult", "Saved", "WorkflowService", "now_ms"]

log = logging.getLogger(__name__)


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch, UTC."""
    return time.time_ns() // 1_000_000


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _matches(if_match: str, etag: str) -> bool:
    """RFC 9110 If-Match: ``*`` or a list of entity tags; weak ones compare by their value."""
    candidates = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    return "*" in candidates or etag in candidates


@dataclass(frozen=True)
class Saved:
    """The outcome of saving a definition: the version now stored, and whether it is new."""

    workflow: Workflow
    created: bool


@dataclass(frozen=True)
class FireResult:
    """The outcome of firing an action."""

    instance: Instance
    workflow: Workflow
    event: Event
    replayed: bool = False


class WorkflowService:
    """Definitions, instances and their histories, over a :class:`~.store.Store`."""

    def __init__(self, store: Store, *, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.clock = clock
        self.started_at = clock()
        self._workflows: dict[tuple[str, int], Workflow] = {}
        self._workflows_lock = threading.Lock()

    # -- definitions --------------------------------------------------------------------

    def _workflow(self, stored: StoredDefinition) -> Workflow:
        # Stored versions never change, so each is parsed once per process.
        key = (stored.id, stored.version)
        workflow = self._workflows.get(key)
        if workflow is None:
            spec = DefinitionSpec.model_validate(stored.content)
            warnings = tuple(Problem(**item) for item in stored.warnings)
            workflow = Workflow(spec, stored.version, stored.created_at, warnings)
            with self._workflows_lock:
                self._workflows.setdefault(key, workflow)
        return workflow

    def _load(self, tx: Transaction, definition_id: str, version: int | None = None) -> Workflow:
        if version is not None:
            cached = self._workflows.get((definition_id, version))
            if cached is not None:
                return cached
        stored = tx.definition(definition_id, version)
        if stored is not None:
            return self._workflow(stored)
        if version is not None and tx.definition(definition_id) is not None:
            raise DefinitionVersionNotFound(
                f"Definition '{definition_id}' has no version {version}.",
                definition_id=definition_id, versions=tx.definition_versions(definition_id),
            )
        raise DefinitionNotFound(
            f"No definition has id '{definition_id}'.", definition_id=definition_id
        )

    def create_definition(self, document: Any, *, strict: bool = False) -> Saved:
        """Store version 1 of a new definition; a re-POST of the same content is a no-op."""
        validated = core.validate_definition(document, strict=strict)
        spec = validated.spec
        with self.store.write() as tx:
            latest = tx.definition(spec.id)
            if latest is not None:
                if latest.content_hash == spec.content_hash():
                    return Saved(self._workflow(latest), created=False)
                raise DefinitionExists(
                    f"Definition '{spec.id}' already exists (version {latest.version}) with "
                    f"different content. Definitions are immutable: PUT "
                    f"/api/definitions/{spec.id} to create version {latest.version + 1}.",
                    definition_id=spec.id, latest_version=latest.version,
                )
            return Saved(self._insert(tx, validated, version=1), created=True)

    def put_definition(self, definition_id: str, document: Any, *, strict: bool = False) -> Saved:
        """Store the next version of a definition (version 1 if it is new).

        Identical content to the latest version stores nothing and answers that version.
        """
        if isinstance(document, dict) and "id" not in document:
            document = {"id": definition_id, **document}
        validated = core.validate_definition(document, strict=strict)
        if validated.spec.id != definition_id:
            raise DefinitionInvalid(
                "The body's id differs from the id in the path.",
                errors=[Problem("id", "id_mismatch",
                                f"Expected '{definition_id}', got '{validated.spec.id}'.")],
            )
        with self.store.write() as tx:
            latest = tx.definition(definition_id)
            if latest is not None and latest.content_hash == validated.spec.content_hash():
                return Saved(self._workflow(latest), created=False)
            version = latest.version + 1 if latest else 1
            return Saved(self._insert(tx, validated, version=version), created=True)

    def _insert(
        self, tx: Transaction, validated: core.ValidatedDefinition, *, version: int
    ) -> Workflow:
        spec = validated.spec
        stored = StoredDefinition(
            id=spec.id, version=version, content=spec.model_dump(mode="json"),
            content_hash=spec.content_hash(),
            warnings=[problem.as_dict() for problem in validated.warnings],
            created_at=self.clock(),
        )
        if not tx.insert_definition(stored, spec.name):
            raise ConcurrentModification(
                f"Version {version} of definition '{spec.id}' was created by another request.",
                definition_id=spec.id,
            )
        return self._workflow(stored)

    def get_definition(self, definition_id: str, version: int | None = None) -> Workflow:
        """A definition at ``version``, the latest by default."""
        with self.store.read() as tx:
            return self._load(tx, definition_id, version)

    def definition_versions(self, definition_id: str) -> list[int]:
        """Every version of a definition, oldest first."""
        with self.store.read() as tx:
            versions = tx.definition_versions(definition_id)
        if not versions:
            raise DefinitionNotFound(
                f"No definition has id '{definition_id}'.", definition_id=definition_id
            )
        return versions

    def list_definitions(self, *, after: str | None, limit: int) -> list[Workflow]:
        """The latest version of each definition, by id."""
        with self.store.read() as tx:
            return [self._workflow(d) for d in tx.latest_definitions(after=after, limit=limit)]

    def load_directory(self, directory: Path) -> list[Saved]:
        """Load every ``*.json`` definition in ``directory``, idempotently.

        A file whose content changed since it was last loaded becomes a new version. A file
        that does not validate stops the load with an error naming it: a server should not
        start half-configured.
        """
        saved = []
        for path in sorted(directory.glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValidationFailed(f"Cannot read definition file {path}: {exc}") from exc
            definition_id = document.get("id") if isinstance(document, dict) else None
            if not isinstance(definition_id, str):
                raise DefinitionInvalid(
                    f"{path}: a shipped definition needs a string 'id'.",
                    errors=[Problem("id", "missing_field", "A string id is required.")],
                )
            try:
                outcome = self.put_definition(definition_id, document)
            except DefinitionInvalid as exc:
                problems = "; ".join(f"{p.path}: {p.message}" for p in exc.errors)
                raise DefinitionInvalid(f"{path}: {problems}", errors=exc.errors) from exc
            if outcome.created:
                log.info("loaded definition %s v%d from %s",
                         outcome.workflow.id, outcome.workflow.version, path)
            saved.append(outcome)
        return saved

    # -- instances ----------------------------------------------------------------------

    def start_instance(
        self,
        definition_id: str,
        *,
        version: int | None = None,
        instance_id: str | None = None,
        context: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> tuple[Instance, Workflow, bool]:
        """Start an instance; ``(instance, workflow, created)``.

        With a client-chosen ``instance_id`` the start is idempotent: the same request
        again answers the existing instance, a different one is a conflict. A retry that
        names the version the instance runs, or no version, is the same request.
        """
        request_hash = _digest({"definition_id": definition_id, "context": context or {}})
        with self.store.write() as tx:
            if instance_id is not None:
                existing = tx.instance(instance_id)
                if existing is not None:
                    same_version = version in (None, existing.definition_version)
                    if tx.start_request_hash(instance_id) != request_hash or not same_version:
                        raise InstanceExists(
                            f"Instance '{instance_id}' already exists and was started by a "
                            "different request.", instance_id=instance_id,
                        )
                    workflow = self._load(
                        tx, existing.definition_id, existing.definition_version
                    )
                    return existing, workflow, False
            workflow = self._load(tx, definition_id, version)
            instance, started = core.start(
                workflow, instance_id or uuid.uuid4().hex, now=self.clock(),
                context=context, actor=actor,
            )
            tx.insert_instance(instance, request_hash)
            tx.append_event(started)
        return instance, workflow, True

    def _instance(self, tx: Transaction, instance_id: str) -> Instance:
        instance = tx.instance(instance_id)
        if instance is None:
            raise InstanceNotFound(f"No instance has id '{instance_id}'.", instance_id=instance_id)
        return instance

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
            instance = self._instance(tx, instance_id)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
            if idempotency_key is not None:
                earlier = tx.idempotency_key(instance_id, idempotency_key)
                if earlier is not None:
                    return self._replay_keyed(tx, instance, workflow, action_id, earlier)
            if if_match is not None and not _matches(if_match, instance.etag):
                raise PreconditionFailed(
                    f"Instance '{instance_id}' is at version {instance.version} "
                    f"(ETag {instance.etag}); If-Match was {if_match}.",
                    current_etag=instance.etag,
                )
            # Every change to an instance appends exactly one event, so the next event's
            # seq is the next version: no extra query on the hot path.
            changed, fired = core.fire(
                workflow, instance, action_id, now=self.clock(),
                next_seq=instance.version + 1, actor=actor,
            )
            if not tx.update_instance(changed, expected_version=instance.version):
                raise ConcurrentModification(
                    f"Instance '{instance_id}' changed while '{action_id}' was being fired; "
                    "read it again and retry.", instance_id=instance_id,
                )
            tx.append_event(fired)
            if idempotency_key is not None:
                tx.save_idempotency_key(
                    instance_id, idempotency_key, action_id=action_id, event_seq=fired.seq,
                    instance_version=changed.version, now=fired.at,
                )
        return FireResult(changed, workflow, fired)

    def _replay_keyed(
        self,
        tx: Transaction,
        instance: Instance,
        workflow: Workflow,
        action_id: str,
        earlier: tuple[str, int, int],
    ) -> FireResult:
        first_action, seq, version = earlier
        if first_action != action_id:
            raise IdempotencyKeyReused(
                f"This Idempotency-Key was first used to fire '{first_action}', "
                f"not '{action_id}'.",
                errors=[Problem("Idempotency-Key", "idempotency_key_reused",
                                f"Key already used for action '{first_action}'.")],
            )
        fired = tx.event(instance.id, seq)
        assert fired is not None, "a stored idempotency key always points at its event"
        then = replace(
            instance, current_state=fired.to_state, version=version, updated_at=fired.at,
            status=core.machine.status_in(workflow, fired.to_state),
        )
        return FireResult(then, workflow, fired, replayed=True)

    def history(
        self, instance_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """An instance's events in order."""
        with self.store.read() as tx:
            self._instance(tx, instance_id)
            return tx.history(instance_id, after_seq=after_seq, limit=limit)

    # -- health -------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """Stored definitions and instances by status, reading the database."""
        with self.store.read() as tx:
            return {
                "definitions": tx.count_definitions(),
                "instances": tx.count_instances_by_status(),
            }
