"""What a run of a pipeline will ask of the upstream API, before it starts.

The paid blocks (the ones that call the enrichment API) send one request per row they
are given (``find_email`` in bulk: one per batch of up to 100 rows), and the answer takes
at least one more (a poll) unless the API calls back (webhooks). The rows a paid block
is given are known from the files the pipeline reads (under the run's inputs); a block
before it that can drop rows (a filter, a dedupe), or the block's own skipping of rows
that have what it finds, makes that figure an upper bound; one that makes a row per
person found (``enrich_company`` with people as rows) makes it unknown. The rate budget
then gives the least time the requests can take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import BlockSpec, Workflow
from ..errors import FileNotFound
from . import Catalog
from .csv_files import ReadCsv
from .enrichment import _SixtyfourBlock
from .tables import CsvInvalid, read_csv_table

__all__ = ["PaidStep", "RunEstimate", "estimate_run"]

# The blocks that keep every row they are given (the others may drop some).
_KEEPS_ROWS = {"save_csv", "select_columns"}


@dataclass(frozen=True)
class PaidStep:
    """A state whose block calls the upstream API."""

    state_id: str
    block: str
    rows: int | None  # None: not known (a file that cannot be read now)
    exact: bool  # False: blocks before it may drop rows, ``rows`` is at most
    requests: int | None


@dataclass(frozen=True)
class RunEstimate:
    """The upstream requests of one run, and the least time the rate budget allows."""

    steps: list[PaidStep]
    requests: int | None
    per_minute: int
    least_seconds: float | None


def estimate_run(
    catalog: Catalog, workflow: Workflow, inputs: Mapping[str, Mapping[str, Any]], *,
    per_second: float, per_minute: int, polls_per_row: int,
) -> RunEstimate:
    """Follow the states in the definition's order, as a pipeline runs them."""
    rows: int | None = None
    exact = True
    steps: list[PaidStep] = []
    for state in workflow.states.values():
        if state.block is None:
            continue
        params = {**state.block.params, **inputs.get(state.id, {})}
        block = catalog.build(BlockSpec(type=state.block.type, params=params))
        if isinstance(block, ReadCsv):
            rows, exact = _rows_of(catalog, block), True
        elif isinstance(block, _SixtyfourBlock):
            # Rows that already have what the block finds are not sent: at most, then.
            skips = bool(getattr(block.params, "skip_existing", False))
            steps.append(PaidStep(state.id, block.kind, rows, exact and not skips,
                                  None if rows is None
                                  else block.submissions(rows) * (1 + polls_per_row)))
            exact = exact and block.params.on_row_error != "drop"
            if block.adds_rows():  # one row per person found: how many is not known
                rows = None
        elif block.kind not in _KEEPS_ROWS:
            exact = False
    counted = [step.requests for step in steps]
    requests = None if None in counted else sum(c for c in counted if c is not None)
    return RunEstimate(steps, requests, per_minute,
                       None if requests is None else round(requests / per_second, 1))


def _rows_of(catalog: Catalog, block: ReadCsv) -> int | None:
    params = block.params
    try:
        table = read_csv_table(catalog.files.existing(params.file), name=params.file,
                               delimiter=params.delimiter, encoding=params.encoding,
                               max_rows=params.max_rows, limits=catalog.limits)
    except (CsvInvalid, FileNotFound):
        return None
    return len(table)
