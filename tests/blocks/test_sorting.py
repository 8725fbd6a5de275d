"""Ordering a table's rows for reading it page by page."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.blocks.tables import sorted_rows

cells = st.one_of(st.none(), st.integers(-1000, 1000).map(str), st.text(max_size=5),
                  st.integers(-5, 5), st.lists(st.integers(), max_size=2))


@given(st.lists(cells, max_size=30), st.booleans())
def test_sorting_keeps_every_row_once_and_puts_missing_values_last(
    values: list[object], descending: bool,
) -> None:
    table = pd.DataFrame({"key": pd.Series(values, dtype=object),
                          "row": range(len(values))})
    ordered = sorted_rows(table, "key", descending=descending)
    assert sorted(ordered["row"]) == list(range(len(values)))
    missing = ordered["key"].isna().tolist()
    assert missing == sorted(missing)  # every missing value after every present one


@given(st.lists(st.one_of(st.none(), st.integers(-10**6, 10**6)), max_size=30),
       st.booleans())
def test_numbers_written_as_text_are_ordered_as_numbers(
    numbers: list[int | None], descending: bool,
) -> None:
    table = pd.DataFrame({"key": [None if n is None else str(n) for n in numbers],
                          "row": range(len(numbers))})
    ordered = sorted_rows(table, "key", descending=descending)
    present = [int(v) for v in ordered["key"] if isinstance(v, str)]
    assert present == sorted(present, reverse=descending)
    # Stable: equal values keep the order they had.
    for value in set(present):
        rows = [r for v, r in zip(ordered["key"], ordered["row"], strict=True) if v == str(value)]
        assert rows == sorted(rows)
