"""Triggers: what starts an instance without a client calling ``POST /api/instances``.

Two kinds, declared in a definition's ``triggers``:

- ``webhook``: a URL of its own (``POST /api/hooks/{definition_id}/{trigger_id}``) with a
  secret token the server issues; the posted CSV or JSON rows become the input table.
- ``schedule``: a cron expression (parsed by croniter) in a time zone; each tick starts
  one instance, whatever the number of server processes.

The pure part lives here: the trigger models, the rules a schema cannot check, and the
arithmetic of ticks. Tokens, claims and the loop that calls :func:`due_tick` are the
service's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from ..errors import Problem
from .spec import Description, Identifier, SpecModel

__all__ = [
    "INPUT_BLOCK",
    "MAX_TRIGGERS",
    "TriggerSpec",
    "TriggerType",
    "check_triggers",
    "due_tick",
    "next_tick",
    "ticks_around",
]

MAX_TRIGGERS = 50
# The block of the initial state that a trigger's input table (or input file) is fed to.
INPUT_BLOCK = "read_csv"
MAX_CRON_LENGTH = 200


def _cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise PydanticCustomError(
            "invalid_cron",
            "'{value}' is not a cron expression: five fields (minute hour day month "
            "weekday), or six with seconds last, e.g. '*/5 * * * *'.", {"value": value})
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "invalid_timezone", "'{value}' is not an IANA time zone (e.g. 'Europe/Paris').",
            {"value": value}) from None
    return value


Cron = Annotated[str, Field(min_length=1, max_length=MAX_CRON_LENGTH), AfterValidator(_cron)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_timezone)]
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$")]
TriggerType = Literal["webhook", "schedule"]


class TriggerSpec(SpecModel):
    """One trigger of a definition."""

    id: Identifier = Field(description="Unique within the definition; names the trigger in "
                           "its hook URL and, as 'webhook:<id>' or 'schedule:<id>', in history.")
    type: TriggerType = Field(description="webhook: a URL with a secret token starts an "
                              "instance on the posted rows. schedule: a cron expression does.")
    description: Description = ""
    enabled: bool = Field(True, description="A disabled trigger starts nothing.")
    cron: Cron | None = Field(
        None, description="schedule only: when it fires, in cron syntax (croniter): five "
        "fields, or six with seconds last.")
    timezone: TimeZone = Field(
        "UTC", description="schedule only: the IANA time zone the cron expression reads in.")
    input_file: FileName | None = Field(
        None, description="schedule only: a file of the files area (GET /api/files) read by "
        "the initial state's read_csv instead of the file it names.")


def check_triggers(
    triggers: Sequence[tuple[int, TriggerSpec]], initial_block: str | None
) -> list[Problem]:
    """What the trigger models cannot check alone: unique ids, the fields each kind needs
    or refuses, and an initial state able to take a webhook's rows. ``initial_block`` is
    the initial state's block type (None: no block)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, trigger in triggers:
        path = f"triggers[{index}]"
        if trigger.id in seen:
            problems.append(Problem(
                f"{path}.id", "duplicate_trigger_id",
                f"Trigger id '{trigger.id}' is already used by triggers[{seen[trigger.id]}]."))
        seen.setdefault(trigger.id, index)
        if trigger.type == "schedule":
            if trigger.cron is None:
                problems.append(Problem(f"{path}.cron", "missing_field",
                                        "A schedule trigger needs a cron expression."))
            if trigger.input_file is not None and initial_block != INPUT_BLOCK:
                problems.append(Problem(
                    f"{path}.input_file", "trigger_needs_read_csv",
                    "input_file is read by the initial state's read_csv block; the initial "
                    "state runs " + (f"'{initial_block}'." if initial_block else "no block.")))
            continue
        for name in ("cron", "input_file"):
            if getattr(trigger, name) is not None:
                problems.append(Problem(f"{path}.{name}", "not_for_webhook",
                                        f"{name} is for schedule triggers only."))
        if "timezone" in trigger.model_fields_set:
            problems.append(Problem(f"{path}.timezone", "not_for_webhook",
                                    "timezone is for schedule triggers only."))
        if initial_block != INPUT_BLOCK:
            problems.append(Problem(
                path, "trigger_needs_read_csv",
                "A webhook's rows become the table the initial state's read_csv block reads; "
                "the initial state runs " + (f"'{initial_block}'." if initial_block
                                             else "no block.")))
    return problems


# Farther from now than any change of a zone's offset that matters to a tick: within
# this of a change (summer time moves clocks by 1 hour, or 2), wall-clock ticks may fall
# in another order than their moments.
_NEAR_MS = 3 * 3_600_000
_SCAN_LIMIT = 100_000  # ticks looked at near a change: hours of a cron of seconds


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _wall(at_ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(zone).replace(tzinfo=None)


def _at(wall: datetime, zone: ZoneInfo) -> int:
    # fold=0: a wall time the autumn change repeats is its first pass; one the spring
    # change skips is read with the offset before the change (02:30 is 03:30 summer time).
    return _ms(wall.replace(tzinfo=zone, fold=0))


def _change_near(zone: ZoneInfo, now_ms: int) -> timedelta:
    """How far the zone's offset moves within hours of ``now_ms`` (zero: not at all)."""
    offsets = [datetime.fromtimestamp(at / 1000, UTC).astimezone(zone).utcoffset()
               or timedelta() for at in (now_ms - _NEAR_MS, now_ms, now_ms + _NEAR_MS)]
    return max(offsets) - min(offsets)


def due_tick(cron: str, timezone: str, now_ms: int) -> int:
    """The latest tick at or before ``now_ms`` (milliseconds since the epoch, UTC)."""
    return ticks_around(cron, timezone, now_ms)[0]


def ticks_around(cron: str, timezone: str, now_ms: int) -> tuple[int, int]:
    """The latest tick at or before ``now_ms``, and the first after it.

    A schedule's ticks are the wall-clock times its cron names in its zone, each one
    moment: a time the autumn change of clocks repeats ticks once, at its first pass, and
    one the spring change skips ticks as if the clock had not changed. So a daily
    schedule starts one instance a day, whatever the change."""
    zone = ZoneInfo(timezone)
    wall = _wall(now_ms, zone)
    shift = _change_near(zone, now_ms)
    if not shift:
        # croniter's previous tick is strictly before its start: start just after now, so
        # a tick that falls exactly now counts as due. The one after it is the next.
        ticks = croniter(cron, wall + timedelta(milliseconds=1))
        return _at(ticks.get_prev(datetime), zone), _at(ticks.get_next(datetime), zone)
    # Near a change: look at every wall-clock tick that may be the answer, those less than
    # the change away from now (and the first one beyond, on either side).
    due = due_wall = None
    earlier = croniter(cron, wall + shift)
    for _ in range(_SCAN_LIMIT):
        tick = earlier.get_prev(datetime)
        if due_wall is not None and tick <= due_wall - shift:
            break
        at = _at(tick, zone)
        if at <= now_ms and (due is None or at > due):
            due, due_wall = at, tick
    following = following_wall = None
    later = croniter(cron, wall - shift)
    for _ in range(_SCAN_LIMIT):
        tick = later.get_next(datetime)
        if following_wall is not None and tick >= following_wall + shift:
            break
        at = _at(tick, zone)
        if at > now_ms and (following is None or at < following):
            following, following_wall = at, tick
    assert due is not None, "a valid cron has ticks"
    assert following is not None, "a valid cron has ticks"
    return due, following


def next_tick(cron: str, timezone: str, now_ms: int) -> int:
    """The first tick strictly after ``now_ms``."""
    return ticks_around(cron, timezone, now_ms)[1]
