"""Definitions: create, version, check without saving, read, list, and load a directory of
them."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import core, strict_json
from ..auth import digest
from ..core import Workflow
from ..errors import (
    ConcurrentModification,
    DefinitionExists,
    DefinitionInvalid,
    DefinitionNotFound,
    MalformedJSON,
    Problem,
    ValidationFailed,
)
from ..store import StoredDefinition, Transaction
from ..store.triggers import TriggerRows
from .base import ServiceBase

__all__ = ["Definitions", "Saved"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Saved:
    """The outcome of saving a definition: the version now stored, whether it is new, and
    the tokens issued to webhook triggers it declares for the first time (by trigger id;
    shown once, only their digests are kept)."""

    workflow: Workflow
    created: bool
    tokens: dict[str, str] = field(default_factory=dict)


class Definitions(ServiceBase):
    """Definitions, immutable and versioned."""

    # -- definitions --------------------------------------------------------------------

    def create_definition(self, document: Any, *, strict: bool = False) -> Saved:
        """Store version 1 of a new definition; a re-POST of the same content is a no-op."""
        validated = core.validate_definition(document, strict=strict, catalog=self.catalog)
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
            return self._insert(tx, validated, version=1)

    def put_definition(
        self, definition_id: str, document: Any, *, strict: bool = False,
        unless_stored: bool = False,
    ) -> Saved:
        """Store the next version of a definition (version 1 if it is new).

        Identical content to the latest version stores nothing and answers that version.
        With ``unless_stored``, content identical to any stored version stores nothing
        either (so loading a file again does not undo versions made through the API).
        """
        document = _with_id(definition_id, document)
        validated = core.validate_definition(document, strict=strict, catalog=self.catalog)
        if validated.spec.id != definition_id:
            raise DefinitionInvalid(
                "The body's id differs from the id in the path.",
                errors=[_id_mismatch(definition_id, validated.spec.id)],
            )
        with self.store.write() as tx:
            latest = tx.definition(definition_id)
            digest = validated.spec.content_hash()
            if latest is not None and (latest.content_hash == digest or (
                    unless_stored and digest in tx.definition_hashes(definition_id))):
                return Saved(self._workflow(latest), created=False)
            version = latest.version + 1 if latest else 1
            return self._insert(tx, validated, version=version)

    def check_definition(
        self, document: Any, *, strict: bool = False, definition_id: str | None = None
    ) -> core.DefinitionCheck:
        """What saving a document would find, valid or not, storing and reading nothing
        stored: its errors, its warnings and the table's flow through its states.

        As :meth:`create_definition` judges it, or with ``definition_id`` as
        :meth:`put_definition` does (the id may be left out; another id is an error).
        """
        if definition_id is not None:
            document = _with_id(definition_id, document)
        checked = core.check_definition(document, strict=strict, catalog=self.catalog)
        if definition_id is not None and checked.spec is not None and not checked.errors \
                and checked.spec.id != definition_id:
            # As PUT answers: the mismatch alone, once the document is otherwise valid.
            checked = replace(checked, errors=(_id_mismatch(definition_id, checked.spec.id),))
        return checked

    def _insert(
        self, tx: Transaction, validated: core.ValidatedDefinition, *, version: int
    ) -> Saved:
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
        return Saved(self._workflow(stored), created=True,
                     tokens=self._record_triggers(tx, spec, now=stored.created_at))

    def _record_triggers(self, tx: Transaction, spec: core.DefinitionSpec, *, now: int
                         ) -> dict[str, str]:
        """Rows for the triggers the definition declares for the first time, and a token
        for each webhook among them (or a webhook that was a schedule before, or was
        removed); the new tokens, by trigger id. A webhook the version no longer declares
        has its token retired: declared again, it gets a new one, so a token an admin
        dropped with its trigger never opens it again."""
        hooks = {t.id for t in spec.triggers if t.type == "webhook"}
        for (_, trigger_id), held in TriggerRows.of(tx, spec.id).items():
            if trigger_id not in hooks and held.token_sha256 is not None:
                TriggerRows.set_token(tx, spec.id, trigger_id, None, now=now)
        issued: dict[str, str] = {}
        new = set(TriggerRows.missing(tx, spec.id, [t.id for t in spec.triggers]))
        for trigger in spec.triggers:
            token = secrets.token_urlsafe(32) if trigger.type == "webhook" else None
            if trigger.id in new:
                TriggerRows.add(tx, spec.id, trigger.id, now=now,
                                token_sha256=digest(token) if token else None)
            elif token is not None:
                row = TriggerRows.get(tx, spec.id, trigger.id)
                if row is None or row.token_sha256 is not None:
                    continue
                TriggerRows.set_token(tx, spec.id, trigger.id, digest(token), now=now)
            if token is not None:
                issued[trigger.id] = token
        return issued

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

    def _load_file(self, definition_id: str, document: Any) -> Saved:
        """Store a shipped file's content unless it is stored. Servers starting at once
        load the same files at once: the one whose insert loses the race reads again and
        finds the winner's version (the same content), so it stores nothing."""
        attempts = 3
        for attempt in range(attempts):
            try:
                return self.put_definition(definition_id, document, unless_stored=True)
            except ConcurrentModification:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def load_directory(self, directory: Path) -> list[Saved]:
        """Load every ``*.json`` definition in ``directory``, idempotently.

        A file whose content is not yet stored becomes a new version; a file already stored
        (even if the API has made newer versions since) stores nothing. A missing directory
        or a file that does not validate stops the load with an error naming it: a server
        should not start half-configured.
        """
        if not directory.is_dir():
            raise ValidationFailed(f"The definitions directory {directory} does not exist.")
        saved = []
        for path in sorted(directory.glob("*.json")):
            try:
                document = strict_json.loads(path.read_bytes(), what=str(path))
            except OSError as exc:
                raise ValidationFailed(f"Cannot read definition file {path}: {exc}") from exc
            except MalformedJSON as exc:
                raise ValidationFailed(f"Cannot read definition file: {exc.detail}") from exc
            definition_id = document.get("id") if isinstance(document, dict) else None
            if not isinstance(definition_id, str):
                raise DefinitionInvalid(
                    f"{path}: a shipped definition needs a string 'id'.",
                    errors=[Problem("id", "missing_field", "A string id is required.")],
                )
            try:
                outcome = self._load_file(definition_id, document)
            except DefinitionInvalid as exc:
                problems = "; ".join(f"{p.path}: {p.message}" for p in exc.errors)
                raise DefinitionInvalid(f"{path}: {problems}", errors=exc.errors) from exc
            if outcome.created:
                log.info("loaded definition %s v%d from %s",
                         outcome.workflow.id, outcome.workflow.version, path)
            saved.append(outcome)
        return saved


def _with_id(definition_id: str, document: Any) -> Any:
    """A document for ``definition_id``: its id is the path's unless it gives one."""
    if isinstance(document, dict) and "id" not in document:
        return {"id": definition_id, **document}
    return document


def _id_mismatch(definition_id: str, found: str) -> Problem:
    return Problem("id", "id_mismatch", f"Expected '{definition_id}', got '{found}'.")
