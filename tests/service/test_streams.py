"""The rules of an instance's event stream: ids, where a stream resumes, what it sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_engine.core import Event, EventType, Instance, InstanceStatus
from workflow_engine.errors import InvalidEventId
from workflow_engine.service.streams import (
    MAX_ROWS,
    MAX_SEQ,
    ItemKind,
    Look,
    Position,
    Watch,
    advance,
    nothing_more,
    resume_from,
)

WORKFLOW: Any = None  # the rules pass the workflow on without reading it


def instance(version: int, status: InstanceStatus = InstanceStatus.ACTIVE) -> Instance:
    return Instance("i", "d", 1, "s", status, version, created_at=0, updated_at=version)


def event(seq: int, kind: EventType = EventType.ACTION_FIRED) -> Event:
    return Event("i", seq, kind, "s", "s", at=seq)


def progress(done: int, total: int | None = 10) -> dict[str, Any]:
    return {"block": "b", "rows_done": done, "rows_total": total,
            "percent": None, "started_at": 0}


def kinds(items: list[Any]) -> list[tuple[str, str]]:
    return [(item.kind.value, str(item.position)) for item in items]


class TestPosition:
    @pytest.mark.parametrize(("text", "position"), [
        ("0", Position(0)), ("12", Position(12)), ("12.340", Position(12, 340)),
        ("3.0", Position(3, 0)), (str(MAX_SEQ), Position(MAX_SEQ)),
        (f"1.{MAX_ROWS}", Position(1, MAX_ROWS)),
    ])
    def test_reads_the_ids_the_stream_sends(self, text: str, position: Position) -> None:
        assert Position.parse(text, source="Last-Event-ID") == position
        assert str(position) == text

    @pytest.mark.parametrize("text", [
        "", "x", "-1", "1.", ".1", "1.2.3", "1,2", " 1", "1e3", "0x10", "١٢",
        str(MAX_SEQ + 1), f"1.{MAX_ROWS + 1}", "1" * 11, "12.abc",
    ])
    def test_refuses_anything_else_naming_where_it_came_from(self, text: str) -> None:
        with pytest.raises(InvalidEventId) as raised:
            Position.parse(text, source="after")
        assert raised.value.code == "invalid_event_id"
        assert raised.value.errors[0].path == "after"

    @given(seq=st.integers(0, MAX_SEQ), rows=st.none() | st.integers(0, MAX_ROWS))
    def test_every_position_reads_back_as_itself(self, seq: int, rows: int | None) -> None:
        position = Position(seq, rows)
        assert Position.parse(str(position), source="after") == position

    @given(text=st.text(max_size=30))
    def test_any_text_is_a_position_written_the_same_way_or_refused(self, text: str) -> None:
        try:
            position = Position.parse(text, source="after")
        except InvalidEventId:
            return
        assert Position.parse(str(position), source="after") == position


class TestWhereAStreamStarts:
    def test_without_an_id_from_the_start(self) -> None:
        assert resume_from(None, 5) == Position(0)

    @pytest.mark.parametrize("after", [Position(3), Position(3, 7), Position(5, 0)])
    def test_right_after_an_id_of_the_history(self, after: Position) -> None:
        assert resume_from(after, 5) == after

    @pytest.mark.parametrize("after", [Position(6), Position(99, 1)])
    def test_from_the_start_after_an_id_past_the_end(self, after: Position) -> None:
        """Such an id was never this instance's: replaying beats a picture with holes."""
        assert resume_from(after, 5) == Position(0)

    def test_nothing_more_once_completed_and_its_last_snapshot_was_sent(self) -> None:
        done = instance(5, InstanceStatus.COMPLETED)
        assert nothing_more(Position(5, 0), done)
        assert not nothing_more(Position(5), done)  # had event 5, not the snapshot after it
        assert not nothing_more(Position(4, 0), done)
        assert not nothing_more(None, done)
        assert not nothing_more(Position(5, 0), instance(5))


class TestAdvance:
    def test_history_then_the_instance_as_of_its_version(self) -> None:
        look = Look(instance(2), WORKFLOW, (event(1), event(2)))
        items, watch, done = advance(Watch(Position(0)), look)
        assert kinds(items) == [("history", "1"), ("history", "2"), ("instance", "2.0")]
        assert (watch.position, done) == (Position(2, 0), False)

    def test_nothing_again_until_something_moves(self) -> None:
        watch = Watch(Position(2, 0), sent=True)
        assert advance(watch, Look(instance(2), WORKFLOW)) == ([], watch, False)

    def test_a_batch_short_of_the_version_waits_for_the_rest(self) -> None:
        items, watch, _ = advance(Watch(Position(0)), Look(instance(3), WORKFLOW, (event(1),)))
        assert kinds(items) == [("history", "1")]
        assert watch.position == Position(1)

    def test_progress_whenever_it_moves_its_id_naming_the_rows(self) -> None:
        running = instance(3, InstanceStatus.RUNNING)
        items, watch, _ = advance(Watch(Position(2, 0), sent=True),
                                  Look(running, WORKFLOW, (event(3, EventType.BLOCK_STARTED),)))
        assert kinds(items) == [("history", "3"), ("instance", "3.0")]
        steps = [progress(0), progress(0), progress(4), progress(4, 12), progress(9, 12)]
        sent = []
        for level in steps:
            items, watch, _ = advance(watch, Look(running, WORKFLOW, progress=level))
            sent += kinds(items)
        assert sent == [("progress", "3.0"), ("progress", "3.4"), ("progress", "3.4"),
                        ("progress", "3.9")]

    def test_a_branch_that_ends_while_the_rows_stand_still_is_told(self) -> None:
        running = instance(3, InstanceStatus.RUNNING)
        watch = Watch(Position(3, 4), progress(4), sent=True)

        def fork(status: str) -> dict[str, Any]:
            return {**progress(4), "branches": [{"id": "phones", "rows_done": 2,
                                                 "status": status}]}
        sent = []
        for level in (fork("running"), fork("running"), fork("cancelled")):
            items, watch, _ = advance(watch, Look(running, WORKFLOW, progress=level))
            sent += [(kind, item.progress["branches"][0]["status"])
                     for kind, item in zip(kinds(items), items, strict=True)]
        assert sent == [(("progress", "3.4"), "running"), (("progress", "3.4"), "cancelled")]

    def test_resumed_progress_is_sent_only_if_its_rows_moved(self) -> None:
        running = instance(3, InstanceStatus.RUNNING)
        same, _, _ = advance(Watch(Position(3, 4)), Look(running, WORKFLOW, progress=progress(4)))
        moved, _, _ = advance(Watch(Position(3, 4)), Look(running, WORKFLOW, progress=progress(5)))
        assert (kinds(same), kinds(moved)) == ([], [("progress", "3.5")])

    def test_a_succeeded_run_ends_its_progress_at_its_total(self) -> None:
        watch = Watch(Position(3, 7), progress(7), sent=True)
        look = Look(instance(4), WORKFLOW, (event(4, EventType.BLOCK_SUCCEEDED),))
        items, _, _ = advance(watch, look)
        assert kinds(items) == [("progress", "3.10"), ("history", "4"), ("instance", "4.0")]
        assert items[0].progress == {**progress(10), "percent": 100.0}

    def test_a_failed_run_keeps_its_last_level(self) -> None:
        watch = Watch(Position(3, 7), progress(7), sent=True)
        look = Look(instance(4, InstanceStatus.FAILED), WORKFLOW,
                    (event(4, EventType.BLOCK_FAILED),))
        assert kinds(advance(watch, look)[0]) == [("history", "4"), ("instance", "4.0")]

    def test_a_completed_instance_ends_the_stream(self) -> None:
        done = instance(2, InstanceStatus.COMPLETED)
        items, _, finished = advance(Watch(Position(1, 0), sent=True),
                                     Look(done, WORKFLOW, (event(2),)))
        assert kinds(items) == [("history", "2"), ("instance", "2.0"), ("end", "2.0")]
        assert finished


# -- the property: a client that drops and resumes anywhere has every event once --------


@dataclass(frozen=True)
class Moment:
    """The instance as the store has it at one moment."""

    instance: Instance
    events: tuple[Event, ...]
    progress: dict[str, Any] | None

    def look(self, after_seq: int, limit: int) -> Look:
        return Look(self.instance, WORKFLOW, self.events[after_seq:after_seq + limit],
                    self.progress)


@st.composite
def lives(draw: st.DrawFn) -> list[Moment]:
    """An instance's life: commits of one to three events (a block starting in some),
    levels of progress while a block runs (going back too: a run taken over restarts),
    and at last a commit that completes it."""
    events = [event(1, EventType.INSTANCE_STARTED)]
    moments = [Moment(instance(1), tuple(events), None)]
    commits = draw(st.integers(0, 8))
    for number in range(commits + 1):
        last = number == commits
        types = draw(st.lists(st.sampled_from(list(EventType)), min_size=1, max_size=3))
        if last and types[-1] is EventType.BLOCK_STARTED:
            types.append(EventType.BLOCK_SUCCEEDED)
        events += [event(len(events) + 1 + index, kind) for index, kind in enumerate(types)]
        status = (InstanceStatus.COMPLETED if last
                  else InstanceStatus.RUNNING if types[-1] is EventType.BLOCK_STARTED
                  else draw(st.sampled_from([InstanceStatus.ACTIVE, InstanceStatus.FAILED])))
        now = instance(len(events), status)
        moments.append(Moment(now, tuple(events), None))
        if status is InstanceStatus.RUNNING:
            total = draw(st.none() | st.integers(0, 20))
            for done in draw(st.lists(st.integers(0, 20), max_size=4)):
                moments.append(Moment(now, tuple(events), progress(done, total)))
    return moments


@settings(max_examples=200, deadline=None)
@given(moments=lives(), data=st.data())
def test_a_client_that_drops_and_resumes_anywhere_gets_every_event_once(
    moments: list[Moment], data: st.DataObject
) -> None:
    """However the world moves between looks, however long the batches, wherever the
    client drops (mid-batch too) and resumes with the id it last got: every history event
    arrives once and in order, the last snapshot it gets is the final one, no connection
    repeats a level, and each run the client watched succeed ended at its total."""
    final = moments[-1]
    last_id: Position | None = None
    seqs: list[int] = []
    snapshots: list[int] = []
    drops = data.draw(st.integers(0, 6))
    now = 0
    while True:
        moment = moments[now]
        if nothing_more(last_id, moment.instance):
            break  # 204: an EventSource stops here
        watch, levels, finished = Watch(resume_from(last_id, moment.instance.version)), [], False
        connected = True
        while connected:
            moment = moments[now]
            limit = data.draw(st.integers(1, 4))
            items, watch, finished = advance(watch, moment.look(watch.position.seq, limit))
            drop_after = (data.draw(st.none() | st.integers(0, max(0, len(items) - 1)))
                          if drops and items else None)
            for index, item in enumerate(items):
                assert item.position is not None
                assert Position.parse(str(item.position), source="id") == item.position
                last_id = item.position
                if item.kind is ItemKind.HISTORY:
                    assert item.event is not None
                    seqs.append(item.event.seq)
                    if item.event.type is EventType.BLOCK_SUCCEEDED and levels:
                        level = levels[-1]
                        if level[2] == item.event.seq - 1 and level[1] is not None:
                            assert level[0] == level[1], "a succeeded run ends at its total"
                    levels = []
                elif item.kind is ItemKind.INSTANCE:
                    assert item.instance is not None
                    snapshots.append(item.instance.version)
                    if item.progress is not None:
                        levels.append((item.progress["rows_done"], item.progress["rows_total"],
                                       item.instance.version))
                elif item.kind is ItemKind.PROGRESS:
                    assert item.progress is not None
                    level = (item.progress["rows_done"], item.progress["rows_total"],
                             item.position.seq)
                    assert not levels or levels[-1] != level, "a level sent twice in a row"
                    levels.append(level)
                if index == drop_after:
                    drops -= 1
                    connected = False
                    break
            if finished and connected:
                break
            caught_up = watch.position.seq == moment.instance.version
            if now < len(moments) - 1 and (caught_up or data.draw(st.booleans())):
                now += 1  # the world moves on between two looks (or while disconnected)
        if finished and connected:
            break
    assert seqs == list(range(1, final.instance.version + 1))
    assert snapshots
    assert snapshots[-1] == final.instance.version
