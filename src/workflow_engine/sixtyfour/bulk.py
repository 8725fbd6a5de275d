"""Bulk requests: many subjects in one submission, and the answer split back per subject.

A bulk job carries up to :data:`~.config.BULK_MAX_LEADS` subjects, each still known by
the identity of its own request (what it would cost sent alone), so its result is stored
and reused as that request's, and a subject already answered is never sent again. The
answer's shape is not documented upstream: a list of per-subject answers, bare or under
``results``, each echoing its subject's fields. Answers are matched to subjects by
position where the answer at that position echoes its subject, else by the echoed
fields; a subject no answer matches is missing (a row error, never sent again silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BULK_TASK_PREFIX", "Lead", "split_answer"]

# What a subject's record holds as its task while the bulk job it went in runs: the
# batch's task, marked so that it is polled as a bulk job, never as a job of its own.
BULK_TASK_PREFIX = "bulk:"


@dataclass(eq=False)
class Lead:
    """One subject of a bulk job, by the identity and body of its own request."""

    key: str
    kind: str  # of its own request (``find_email``)
    body: dict[str, Any]
    subject_field: str
    waiters: list[tuple[Any, int]] = field(default_factory=list)
    resent: bool = False  # sent again after an unknown outcome: never a third time

    @property
    def subject(self) -> dict[str, Any]:
        """What the API is told of it in the bulk body."""
        found: dict[str, Any] = self.body[self.subject_field]
        return found


def _items(result: Any) -> list[dict[str, Any]]:
    items = result.get("results", result.get("leads")) if isinstance(result, dict) else result
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _same(left: Any, right: Any) -> bool:
    return str(left).strip().casefold() == str(right).strip().casefold()


def _echoes(item: dict[str, Any], subject: dict[str, Any]) -> bool | None:
    """Whether ``item`` answers ``subject``: every field of the subject it echoes agrees;
    None when it echoes none of them (nothing to tell by)."""
    shared = [name for name in subject if name in item and item[name] not in (None, "")]
    if not shared:
        return None
    return all(_same(item[name], subject[name]) for name in shared)


def split_answer(subjects: Sequence[dict[str, Any]], result: Any, *, positional: bool = True
                 ) -> list[dict[str, Any] | None]:
    """Each subject's answer in a bulk result, in the subjects' order (None: missing).

    ``positional``: the subjects are the batch as sent, in its order (False when only
    some of a batch's subjects are known, after a restart)."""
    items = _items(result)
    parts: list[dict[str, Any] | None] = [None] * len(subjects)
    used: set[int] = set()
    if positional:
        for index, subject in enumerate(subjects):
            if index < len(items) and _echoes(items[index], subject):
                parts[index] = items[index]
                used.add(index)
    for index, subject in enumerate(subjects):
        if parts[index] is not None:
            continue
        match = next((j for j, item in enumerate(items)
                      if j not in used and _echoes(item, subject)), None)
        if match is not None:
            parts[index] = items[match]
            used.add(match)
    if positional and len(items) == len(subjects):
        # Answers that echo nothing can only be told apart by position, and only when
        # none is missing.
        for index, item in enumerate(items):
            if parts[index] is None and index not in used and _echoes(item, subjects[index]) \
                    is None:
                parts[index] = item
                used.add(index)
    return parts
