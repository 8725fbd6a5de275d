"""Live events of an instance: what a client watching it is sent, and where it resumes.

A stream sends an instance's history events in order (each under its ``seq``), the
instance's snapshot each time its version moves, and the running block's progress each
time it moves. Every item carries a :class:`Position`, the SSE id a client reconnects
with (``Last-Event-ID``): ``12`` after history event 12, ``12.340`` once the client also
has the instance as of version 12 and its run's progress at 340 rows. History is
append-only and gapless, so the seq alone says exactly which events the client has;
progress is a level, not a series, so the rows part only says which level it has, and a
stream resuming there sends the current level only if it moved. No table is needed for
either.

The rules are pure (:func:`resume_from`, :func:`nothing_more`, :func:`advance`); the
loop around them (:class:`EventStreams`) reads the database at each turn, so a stream
served by one process sees what every other process commits, and is woken at once by the
changes its own process commits.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..core import Event, EventType, Instance, InstanceStatus, Workflow
from ..errors import InvalidEventId, Problem, ServiceUnavailable, TooManyStreams
from .runs import Runs

if TYPE_CHECKING:
    from . import WorkflowService

__all__ = [
    "EventStream", "EventStreams", "Item", "ItemKind", "Look", "Position", "StreamLimits",
    "Watch", "Watching", "advance", "nothing_more", "resume_from",
]

log = logging.getLogger(__name__)

MAX_SEQ = 2**31 - 1  # what every database's INTEGER holds
MAX_ROWS = 2**63 - 1
_POSITION = re.compile(r"^([0-9]{1,10})(?:\.([0-9]{1,19}))?$")


@dataclass(frozen=True)
class Position:
    """How far a client has got: history events up to ``seq``, and, when ``rows`` is
    set, the instance's snapshot at version ``seq`` and its run's progress at ``rows``
    rows done."""

    seq: int
    rows: int | None = None

    def __str__(self) -> str:
        return str(self.seq) if self.rows is None else f"{self.seq}.{self.rows}"

    @classmethod
    def parse(cls, text: str, *, source: str) -> Position:
        """An id as this stream sends them: ``<seq>`` or ``<seq>.<rows>``, in decimal.

        Raises :class:`InvalidEventId` naming ``source`` (the header or parameter)."""
        found = _POSITION.match(text)
        seq = int(found.group(1)) if found else -1
        rows = int(found.group(2)) if found and found.group(2) is not None else None
        if found is None or seq > MAX_SEQ or (rows is not None and rows > MAX_ROWS):
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise InvalidEventId(
                f"{source} {shown!r} is not an event id of this stream: it sends "
                "'<seq>' or '<seq>.<rows>' (e.g. 12 or 12.340).",
                errors=[Problem(source, "invalid_event_id",
                                "Expected <seq> or <seq>.<rows>, in decimal digits.")],
            )
        return cls(seq, rows)


class ItemKind(StrEnum):
    """What an item of a stream is."""

    HISTORY = "history"  # a history event, as GET .../history lists it
    INSTANCE = "instance"  # the instance, as GET /api/instances/{id} answers it
    PROGRESS = "progress"  # the running block's progress
    END = "end"  # the instance is completed and everything was sent: the stream ends
    KEEP_ALIVE = "keep-alive"  # nothing to say for a while (no position)
    EXPIRED = "expired"  # the stream's time is up: reconnect (no position)


@dataclass(frozen=True)
class Item:
    """One thing to send, and the position a client has once it has it."""

    kind: ItemKind
    position: Position | None = None
    event: Event | None = None
    instance: Instance | None = None
    workflow: Workflow | None = None
    progress: dict[str, Any] | None = None


@dataclass(frozen=True)
class Look:
    """One look at the store: the instance, the history events after the client's seq up
    to the instance's version (all of them, or the first ones), and its run's progress."""

    instance: Instance
    workflow: Workflow
    events: tuple[Event, ...] = ()
    progress: dict[str, Any] | None = None


@dataclass(frozen=True)
class Watch:
    """A stream between two looks: the client's position and, once this connection has
    sent the instance at that position (``sent``), the progress it last sent (None: none).
    A stream that resumes at ``<seq>.<rows>`` knows only the rows the client has."""

    position: Position
    progress: dict[str, Any] | None = None
    sent: bool = False


def resume_from(after: Position | None, version: int) -> Position:
    """Where a stream starts: right after the client's id, or from the start without
    one. An id past the end of the history cannot be this instance's (history is never
    shortened): the stream starts from the start rather than leave the client with a
    picture it can never complete."""
    if after is None or after.seq > version:
        return Position(0)
    return after


def nothing_more(after: Position | None, instance: Instance) -> bool:
    """Whether a client at ``after`` has everything it will ever be sent: the instance is
    completed and the client has its final snapshot (so a reconnect answers 204, which
    stops an EventSource from reconnecting again)."""
    return (after is not None and after.rows is not None and after.seq == instance.version
            and instance.status is InstanceStatus.COMPLETED)


def _level(progress: dict[str, Any]) -> tuple[int, int | None]:
    return int(progress["rows_done"]), progress["rows_total"]


def advance(watch: Watch, look: Look) -> tuple[list[Item], Watch, bool]:
    """What to send after ``look``: the items, the watch after them, and whether the
    stream is over (the instance is completed and the client has everything).

    ``look.events`` must follow ``watch.position.seq`` without a gap and not pass the
    instance's version.
    """
    items: list[Item] = []
    position, last, sent = watch.position, watch.progress, watch.sent
    for event in look.events:
        if (event.type is EventType.BLOCK_SUCCEEDED and last is not None
                and last["rows_total"] is not None
                and last["rows_done"] != last["rows_total"]):
            # A run that succeeded did all its rows: its progress ends at its total, just
            # before the event that settles it, though no look caught that last level.
            total = int(last["rows_total"])
            final = {**last, "rows_done": total, "percent": 100.0}
            items.append(Item(ItemKind.PROGRESS, Position(position.seq, total),
                              progress=final))
        position, last, sent = Position(event.seq), None, False
        items.append(Item(ItemKind.HISTORY, position, event=event))
    instance = look.instance
    if position.seq != instance.version:
        return items, Watch(position, last, sent), False  # more history to read first
    progress = look.progress if instance.status is InstanceStatus.RUNNING else None
    if position.rows is None:
        position = Position(instance.version, _level(progress)[0] if progress else 0)
        items.append(Item(ItemKind.INSTANCE, position, instance=instance,
                          workflow=look.workflow, progress=progress))
        last, sent = progress, True
    elif progress is not None:
        if sent:
            # rows_sent moves on its own while answers are awaited, and a fork's branch
            # may end (or be cancelled) while the rows stand still: both told too.
            moved = (last is None or _level(progress) != _level(last)
                     or progress.get("rows_sent") != last.get("rows_sent")
                     or progress.get("branches") != last.get("branches"))
        else:  # resumed: the client's id says which rows it has, nothing more
            moved = _level(progress)[0] != position.rows
        if moved:
            position = Position(instance.version, _level(progress)[0])
            last, sent = progress, True
            items.append(Item(ItemKind.PROGRESS, position, progress=progress))
    done = instance.status is InstanceStatus.COMPLETED
    if done:
        items.append(Item(ItemKind.END, position, instance=instance, workflow=look.workflow))
    return items, Watch(position, last, sent), done


class Watching(Runs):
    """The reads a stream makes."""

    def look(self, instance_id: str, *, after_seq: int, limit: int) -> Look:
        """The instance, up to ``limit`` history events after ``after_seq`` (never past
        the instance's version, whatever committed meanwhile), and its run's progress."""
        with self.store.read() as tx:
            instance = self._instance(tx, instance_id)
            workflow = self._load(tx, instance.definition_id, instance.definition_version)
            events: tuple[Event, ...] = ()
            if instance.version > after_seq:
                events = tuple(event for event in tx.history(
                    instance_id, after_seq=after_seq, limit=limit)
                    if event.seq <= instance.version)
        return Look(instance, workflow, events, self.progress(instance))


@dataclass(frozen=True)
class StreamLimits:
    """How many streams a process serves at once, how often they look, how long they
    last."""

    max_streams: int = 4
    poll_seconds: float = 0.25
    heartbeat_seconds: float = 15.0
    max_seconds: float = 300.0
    # History events read per look: a long history is sent in batches.
    batch: int = 200


class EventStreams:
    """The event streams of this process: at most ``limits.max_streams`` at once."""

    def __init__(self, service: WorkflowService, limits: StreamLimits | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.limits = limits or StreamLimits()
        self.clock = clock
        self._lock = threading.Lock()
        self._open = 0

    @property
    def open_count(self) -> int:
        """Streams open in this process now."""
        return self._open

    def open(self, instance_id: str, after: Position | None, *,
             disconnected: Callable[[], bool] = lambda: False) -> EventStream | None:
        """A stream of the instance's events after ``after``; None if the client already
        has everything there will ever be. Raises ``InstanceNotFound``, and
        ``TooManyStreams`` when every slot is taken."""
        instance, _ = self.service.get_instance(instance_id)
        if nothing_more(after, instance):
            return None
        with self._lock:
            if self._open >= self.limits.max_streams:
                raise TooManyStreams(
                    f"This server already serves {self._open} event streams, as many as "
                    "it may (MAX_EVENT_STREAMS); retry shortly, or poll "
                    f"/api/instances/{instance_id}.", max_streams=self.limits.max_streams)
            self._open += 1
        start = resume_from(after, instance.version)
        return EventStream(self, instance_id, Watch(start), disconnected)

    def _release(self, stream: EventStream) -> None:
        """Free the stream's slot, once however often it is closed."""
        with self._lock:
            if not stream._released:
                stream._released = True
                self._open -= 1


@dataclass
class EventStream:
    """One client's stream: iterate it for the items to send; closing it (or reaching
    its end) frees its slot, once."""

    streams: EventStreams
    instance_id: str
    watch: Watch
    disconnected: Callable[[], bool]
    # Why it ended: completed, expired, disconnected (or None while it runs).
    ended: str | None = None
    sent: int = 0
    _items: Generator[Item, None, None] | None = field(default=None, repr=False)
    _released: bool = field(default=False, repr=False)

    def __iter__(self) -> Iterator[Item]:
        if self._items is None:
            self._items = self._run()
        return self._items

    def close(self) -> None:
        """End the stream (the server calls it when the client has gone, or once the
        stream has ended): its slot is free again."""
        if self._items is not None:
            self._items.close()  # runs its ``finally``, if it had started
        self._finish()

    def _finish(self) -> None:
        if self.ended is None:
            self.ended = "disconnected"
        self.streams._release(self)

    def _run(self) -> Generator[Item, None, None]:
        streams, limits, clock = self.streams, self.streams.limits, self.streams.clock
        deadline = clock() + limits.max_seconds
        quiet_since = clock()
        try:
            with streams.service.changes.watching(self.instance_id) as woken:
                while True:
                    woken.clear()  # before the look: a change committed during it wakes us
                    look = self._look()
                    if look is not None:
                        items, self.watch, done = advance(self.watch, look)
                        for item in items:
                            self.sent += 1
                            yield item
                        if items:
                            quiet_since = clock()
                        if done:
                            self.ended = "completed"
                            return
                        if self.watch.position.seq < look.instance.version:
                            continue  # the next batch of history, at once
                    if self.disconnected():
                        self.ended = "disconnected"
                        return
                    now = clock()
                    if now >= deadline:
                        self.ended = "expired"
                        yield Item(ItemKind.EXPIRED)
                        return
                    if now - quiet_since >= limits.heartbeat_seconds:
                        yield Item(ItemKind.KEEP_ALIVE)
                        quiet_since = now
                    woken.wait(max(0.0, min(limits.poll_seconds, deadline - now,
                                            quiet_since + limits.heartbeat_seconds - now)))
        finally:
            self._finish()

    def _look(self) -> Look | None:
        try:
            return self.streams.service.look(
                self.instance_id, after_seq=self.watch.position.seq,
                limit=self.streams.limits.batch)
        except ServiceUnavailable as exc:
            # The database is away for a moment: keep the client, look again next turn.
            log.warning("event stream of %s cannot read the database: %s",
                        self.instance_id, exc.detail)
            return None
