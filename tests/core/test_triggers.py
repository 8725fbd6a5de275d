"""The arithmetic of schedule ticks: which tick is due at a moment, and which comes next."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_engine.core.triggers import due_tick, next_tick, ticks_around

CRONS = ["*/5 * * * *", "0 14 * * *", "* * * * * */7", "30 2 * * 1-5", "0 0 29 2 *"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]
HOUR_MS = 3_600_000
# The changes of clocks in those zones (summer time, in and out), where wall-clock ticks
# and moments part ways: moments within hours of them are drawn as often as any other.
CHANGES = [int(datetime(*at, tzinfo=UTC).timestamp() * 1000) for at in (
    (2026, 3, 8, 7), (2026, 11, 1, 6), (2026, 3, 29, 1), (2026, 10, 25, 1),
    (2027, 3, 14, 7), (2027, 11, 7, 6))]
MOMENTS = st.integers(int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000),
                      int(datetime(2029, 1, 1, tzinfo=UTC).timestamp() * 1000)) | st.builds(
    lambda change, offset: change + offset, st.sampled_from(CHANGES),
    st.integers(-4 * HOUR_MS, 4 * HOUR_MS))


def ms(*at: int) -> int:
    return int(datetime(*at, tzinfo=UTC).timestamp() * 1000)


def due_ticks_walked(cron: str, zone: str, start: int, end: int) -> list[int]:
    """The due ticks seen by a schedule loop looking every minute from start to end."""
    seen: list[int] = []
    for now in range(start, end, 60_000):
        tick = due_tick(cron, zone, now)
        if not seen or tick != seen[-1]:
            seen.append(tick)
    return seen


# Near a change of clocks a cron of seconds takes tens of milliseconds: no deadline.
@settings(deadline=None)
@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), now=MOMENTS)
def test_the_due_tick_is_the_latest_at_or_before_now_and_the_next_the_first_after(
    cron: str, zone: str, now: int
) -> None:
    due, following = ticks_around(cron, zone, now)
    assert due <= now < following
    assert (due, following) == (due_tick(cron, zone, now), next_tick(cron, zone, now))
    # Nothing falls between them: the tick after the due one is the next.
    assert next_tick(cron, zone, due) == following


# Near a change of clocks a cron of seconds takes tens of milliseconds: no deadline.
@settings(deadline=None)
@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), now=MOMENTS)
def test_a_moment_on_a_tick_makes_that_tick_due(cron: str, zone: str, now: int) -> None:
    tick = next_tick(cron, zone, now)
    assert due_tick(cron, zone, tick) == tick
    assert croniter.is_valid(cron)


class TestChangesOfClocks:
    """A tick is a wall-clock time, each one moment: never two starts for one, whatever
    summer time does."""

    def test_a_daily_tick_in_the_repeated_hour_fires_once(self) -> None:
        # New York, 2026-11-01: 01:00-02:00 EDT (05:00-06:00 UTC), then again as EST.
        walked = due_ticks_walked("30 1 * * *", "America/New_York", ms(2026, 10, 31, 12),
                                  ms(2026, 11, 2, 12))
        assert walked == [ms(2026, 10, 31, 5, 30), ms(2026, 11, 1, 5, 30),
                          ms(2026, 11, 2, 6, 30)]

    def test_ticks_of_the_repeated_hour_fire_at_their_first_pass(self) -> None:
        walked = due_ticks_walked("*/30 * * * *", "America/New_York", ms(2026, 11, 1, 4),
                                  ms(2026, 11, 1, 8))
        # 00:00, 00:30, 01:00 and 01:30 EDT, then 02:00 and 02:30 EST: the second pass of
        # 01:00 and 01:30 starts nothing.
        assert walked == [ms(2026, 11, 1, h, m) for h, m in
                          ((4, 0), (4, 30), (5, 0), (5, 30), (7, 0), (7, 30))]

    def test_a_skipped_tick_fires_as_if_the_clock_had_not_changed(self) -> None:
        # New York, 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC); 02:30 does not
        # exist that day and ticks at 03:30 EDT, once.
        walked = due_ticks_walked("30 2 * * *", "America/New_York", ms(2026, 3, 7, 12),
                                  ms(2026, 3, 9, 12))
        assert walked == [ms(2026, 3, 7, 7, 30), ms(2026, 3, 8, 7, 30),
                          ms(2026, 3, 9, 6, 30)]

    def test_the_next_tick_is_never_behind_now_across_a_change(self) -> None:
        for now in range(ms(2026, 11, 1, 3), ms(2026, 11, 1, 9), 60_000):
            due, following = ticks_around("*/30 * * * *", "America/New_York", now)
            assert due <= now < following
            assert following - now <= 90 * 60_000
