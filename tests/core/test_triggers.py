"""The arithmetic of schedule ticks: which tick is due at a moment, and which comes next."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core.triggers import due_tick, next_tick, ticks_around

CRONS = ["*/5 * * * *", "0 14 * * *", "* * * * * */7", "30 2 * * 1-5", "0 0 29 2 *"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]
MOMENTS = st.integers(int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000),
                      int(datetime(2029, 1, 1, tzinfo=UTC).timestamp() * 1000))


@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), now=MOMENTS)
def test_the_due_tick_is_the_latest_at_or_before_now_and_the_next_the_first_after(
    cron: str, zone: str, now: int
) -> None:
    due, following = ticks_around(cron, zone, now)
    assert due <= now < following
    assert (due, following) == (due_tick(cron, zone, now), next_tick(cron, zone, now))
    # Nothing falls between them: the tick after the due one is the next.
    assert next_tick(cron, zone, due) == following


@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), now=MOMENTS)
def test_a_moment_on_a_tick_makes_that_tick_due(cron: str, zone: str, now: int) -> None:
    tick = next_tick(cron, zone, now)
    assert due_tick(cron, zone, tick) == tick
    assert croniter.is_valid(cron)
