"""An instance's table, now and after each step of its history, as JSON or CSV."""

from __future__ import annotations

import io
from typing import Literal

import pandas as pd
from flask import Blueprint, Response, request
from pydantic import Field

from ..blocks.tables import flatten_json, neutralise_formulas, sorted_rows
from ..errors import InvalidParameter
from . import table_service
from .requests import MAX_INT, QueryModel, query
from .responses import json_response
from .schemas import TablePage

__all__ = ["blueprint"]

blueprint = Blueprint("data", __name__, url_prefix="/api/instances")

MAX_ROWS = 10_000


class DataQuery(QueryModel):
    """Which rows, in which format."""

    format: Literal["json", "csv"] = "json"
    offset: int = Field(0, ge=0, le=MAX_INT)
    limit: int = Field(100, ge=1, le=MAX_ROWS, description="Rows per page (CSV: all if absent).")
    neutralise_formulas: bool = Field(
        True, description="CSV: prefix cells a spreadsheet would run as a formula with '."
    )
    sort: str | None = Field(
        None, min_length=1, max_length=300,
        description="A column to order the rows by before paging; '-column' for descending.",
    )


def _page(instance_id: str, seq: int, frame: pd.DataFrame) -> Response:
    params = query(DataQuery)
    if params.sort is not None:
        column = params.sort.removeprefix("-")
        if column not in frame.columns:
            raise InvalidParameter(f"sort: the table has no column {column!r}.",
                                   parameter="sort", columns=[str(c) for c in frame.columns])
        frame = sorted_rows(frame, column, descending=params.sort.startswith("-"))
    if params.format == "csv":
        # CSV is for downloading: the whole table unless a page was asked for.
        if "limit" in request.args or params.offset:
            frame = frame.iloc[params.offset: params.offset + params.limit]
        frame = flatten_json(frame)  # a CSV cell is text: lists and objects as JSON
        if params.neutralise_formulas:
            frame = neutralise_formulas(frame)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        return Response(buffer.getvalue(), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{instance_id}-{seq}.csv"'})
    page = frame.iloc[params.offset: params.offset + params.limit]
    plain = page.astype(object).where(pd.notna(page), None)
    rows = [{str(key): value for key, value in row.items()}
            for row in plain.to_dict(orient="records")]
    return json_response(TablePage(
        instance_id=instance_id, seq=seq, total_rows=len(frame),
        columns=[str(c) for c in frame.columns], offset=params.offset, limit=params.limit,
        rows=rows,
    ))


@blueprint.get("/<instance_id>/data")
def current_data(instance_id: str) -> Response:
    """The instance's current table."""
    return _page(instance_id, *table_service().at(instance_id))


@blueprint.get("/<instance_id>/history/<int:seq>/data")
def data_at(instance_id: str, seq: int) -> Response:
    """The table as it was right after history event ``seq`` (intermediate results)."""
    return _page(instance_id, *table_service().at(instance_id, seq))


@blueprint.get("/<instance_id>/progress/data")
def data_so_far(instance_id: str) -> Response:
    """The running enrichment's table so far: its input, with the answers already in
    (another running block's: its input). Once no block runs, the current table: a viewer
    refreshing as progress arrives may ask just after the run ended, and gets the freshest
    table rather than an error."""
    return _page(instance_id, *table_service().so_far(instance_id))
