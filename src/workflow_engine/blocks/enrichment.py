"""The Sixtyfour blocks: enrich a lead for every row, and what every Sixtyfour block
shares (enriching a company is in :mod:`.companies`, finding an email or a phone number
in :mod:`.contacts`).

Each builds one request per row from the row's columns (empty values left out: the API
refuses nulls), hands the whole batch to the process-wide enricher (which shares the
key's rate budget with every other block and never pays twice for one request), and
writes what came back as columns. A row whose request fails gets its error in an error
column; ``on_row_error`` keeps it, drops it, or fails the block, and past
``max_error_ratio`` the block fails. ``on_unknown_outcome`` says what becomes of a row
whose submission left without its answer arriving (an error, or sent again). A refused
key (401, 402, 403) stops the block at once with one error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, StringConstraints

from ..core.conditions import FALSE_WORDS, TRUE_WORDS, as_number
from ..storage import FileArea
from .base import (
    Block,
    BlockContext,
    BlockError,
    BlockParams,
    ColumnName,
    check_row_errors,
    require_columns,
)

__all__ = ["EnrichLead"]

FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
TypeName = Literal["str", "int", "float", "bool", "list", "list[str]", "list[int]", "dict"]


class FieldSpec(BlockParams):
    """A struct field with a declared type."""

    description: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    type: TypeName = "str"


Struct = dict[FieldName, Annotated[str, StringConstraints(min_length=1, max_length=2000)]
              | FieldSpec]


class EnrichmentParams(BlockParams):
    """What every Sixtyfour block shares."""

    columns: dict[FieldName, ColumnName] | None = Field(
        None, description="API field -> column, replacing the default mapping.")
    on_row_error: Literal["keep", "drop", "fail"] = Field(
        "keep", description="A row whose request failed: keep it (error in the error "
        "column), drop it, or fail the block.")
    on_unknown_outcome: Literal["error", "resubmit"] = Field(
        "error", description="A row whose submission left but whose answer never came (lost "
        "to a timeout, or the server stopped before storing it), so that it may have started "
        "a paid job: 'error' gives it the row error upstream_outcome_unknown, now and on "
        "every later run or retry, without sending it again; 'resubmit' sends it again, "
        "once per run, accepting that it may be paid for twice (or more, if answers are "
        "lost again).")
    max_error_ratio: float = Field(
        0.5, ge=0, le=1, description="Fail the block when more rows than this share fail.")
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        "enrich", description="Prefix of the metadata and error columns.")


def _empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    # None, NaN, and pandas' NA (what a nullable column holds for a missing value).
    return bool(pd.isna(value))


def _cast(value: Any, declared: str) -> Any:
    """Move an API value toward its declared type; leave it be when it does not fit."""
    if _empty(value):
        return None
    if declared == "bool":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
    if declared in ("int", "float"):
        number = as_number(value)
        if number is None:
            return None
        return int(number) if declared == "int" else number
    if declared.startswith("list") or declared == "dict":
        # Kept as a real list or object (JSON answers carry it as such; a CSV gets its
        # JSON text); text that holds one is parsed, any other value is left as it came.
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                return value
            return parsed if isinstance(parsed, list | dict) else value
        return value
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_DTYPES = {"bool": "boolean", "int": "Int64", "float": "Float64", "list": "object",
           "list[str]": "object", "list[int]": "object", "dict": "object"}


class _SixtyfourBlock(Block[Any]):
    """Rows in, one request per row, columns out."""

    # struct field -> the column it is written to (set per run: it depends on the input)
    columns_of: dict[str, str]

    def place(self, columns: Sequence[str]) -> None:
        """Decide where the block writes, given the input's columns (set per run, and per
        static check: it depends on the input)."""
        self.columns_of = self.struct_columns(columns)

    def struct_columns(self, columns: Sequence[str] | None) -> dict[str, str]:
        """Where each struct field goes: its own name, or ``<prefix>_<name>`` when the
        input already has that column (an answer never overwrites what the user gave)."""
        struct = getattr(self.params, "struct", None) or {}
        taken = set(columns or ())
        return {name: f"{self.params.prefix}_{name}" if name in taken else name
                for name in struct}

    kind_of_job: ClassVar[str]
    default_columns: ClassVar[dict[str, tuple[str, ...]]]
    requires = "columns to describe each row (see the params' columns mapping)"

    def required_columns(self) -> list[str]:
        """The columns an explicit ``columns`` mapping names: one the table lacks is a
        mistake to report, not a field to leave out."""
        return list(dict.fromkeys((self.params.columns or {}).values()))

    def mapping(self, columns: Sequence[str]) -> dict[str, str]:
        """API field -> column, for the columns the table has."""
        chosen = self.params.columns
        if chosen is not None:
            return {api: column for api, column in chosen.items() if column in columns}
        mapping = {}
        for api, candidates in self.default_columns.items():
            found = next((c for c in candidates if c in columns), None)
            if found is not None:
                mapping[api] = found
        return mapping

    def subject(self, row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
        """What the API is told of a row: mapped values, empty ones left out."""
        return {api: (str(row[column]).strip() if not isinstance(row[column], bool | int | float)
                      else row[column])
                for api, column in mapping.items() if not _empty(row[column])}

    def body(self, subject: dict[str, Any]) -> dict[str, Any]:
        """The request for one row."""
        raise NotImplementedError

    def skip(self, row: dict[str, Any]) -> bool:
        """Whether a row needs no request."""
        return False

    def bulk_size(self) -> int | None:
        """Requests per bulk submission, for a block that sends them in bulk; None: one
        submission per request."""
        return None

    def submissions(self, rows: int) -> int:
        """How many submissions ``rows`` requests take (at most)."""
        return rows

    def write(self, rows: list[dict[str, Any]], index: int, result: dict[str, Any]) -> None:
        """Put a result into its row."""
        raise NotImplementedError

    def output_columns(self) -> dict[str, str]:
        """Columns the block writes, with their declared types."""
        raise NotImplementedError

    def _requests(self, table: pd.DataFrame
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int], str]:
        """The table's rows (their error column cleared or set to ``no_input``), the
        request of each row that needs one, and where each request's row is."""
        mapping = self.mapping([str(c) for c in table.columns])
        self.place([str(c) for c in table.columns])
        rows: list[dict[str, Any]] = table.to_dict(orient="records")  # type: ignore[assignment]
        error_column = f"{self.params.prefix}_error"
        bodies: list[dict[str, Any]] = []
        positions: list[int] = []
        for position, row in enumerate(rows):
            row[error_column] = None
            if self.skip(row):
                continue
            subject = self.subject(row, mapping)
            if not subject:
                row[error_column] = "no_input: the row has none of the mapped columns " \
                    f"({', '.join(mapping.values()) or 'none found'})"
                continue
            bodies.append(self.body(subject))
            positions.append(position)
        return rows, bodies, positions, error_column

    def _table(self, table: pd.DataFrame, rows: list[dict[str, Any]],
               error_column: str) -> pd.DataFrame:
        """The rows as the output table: the input's columns, then the block's, typed."""
        columns = [str(c) for c in table.columns]
        written = self.output_columns()
        order = columns + [c for c in written if c not in columns] + (
            [error_column] if error_column not in columns else [])
        output = pd.DataFrame(rows, columns=order)
        for column, declared in written.items():
            dtype: Any = _DTYPES.get(declared, "string")
            output[column] = output[column].astype(dtype)
        output[error_column] = output[error_column].astype("string")
        return output

    def __call__(self, table: pd.DataFrame | None, context: BlockContext) -> pd.DataFrame:
        assert table is not None
        enricher = context.enricher
        if enricher is None:
            raise BlockError("No enrichment client is configured on this server.")
        require_columns(table, self.required_columns(), self.kind)
        rows, bodies, positions, error_column = self._requests(table)

        done = [0]
        lock = threading.Lock()
        left: set[int] = set()  # requests sent or answered

        def on_sent(index: int) -> None:
            with lock:
                left.add(index)
                context.sent(len(left))

        def on_outcome(index: int, outcome: Any) -> None:
            position = positions[index]
            if outcome.error is not None:
                rows[position][error_column] = (
                    f"{outcome.error['code']}: {outcome.error['message']}")
            else:
                self.write(rows, position, outcome.result)
            with lock:
                done[0] += 1
                left.add(index)
                context.progress(done[0], len(bodies))
                context.sent(len(left))

        context.progress(0, len(bodies))
        context.sent(0)
        bulk = self.bulk_size()
        enricher.enrich(self.kind_of_job, bodies, on_outcome, cancel=context.cancel,
                        on_unknown_outcome=self.params.on_unknown_outcome, on_sent=on_sent,
                        **({} if bulk is None else {"bulk_size": bulk}))
        context.check_cancelled()

        check_row_errors(self.kind, [row[error_column] for row in rows],
                         on_row_error=self.params.on_row_error,
                         max_error_ratio=self.params.max_error_ratio)
        if self.params.on_row_error == "drop":
            rows = [row for row in rows if row[error_column] is None]
        return self._table(table, rows, error_column)

    def partial(self, table: pd.DataFrame, enricher: Any) -> pd.DataFrame:
        """The output so far, while the block runs: every row of the input, with the
        answers already stored written in (read from the store, so it holds whichever
        process runs the block); the other rows' new columns are empty."""
        rows, bodies, positions, error_column = self._requests(table)
        for index, result in enricher.stored_results(self.kind_of_job, bodies).items():
            self.write(rows, positions[index], result)
        return self._table(table, rows, error_column)

    def keeps_rows(self) -> bool:
        """Every row stays, unless failed rows are dropped."""
        return bool(self.params.on_row_error != "drop")

    def adds_rows(self) -> bool:
        """Whether the output may have more rows than the input (one per person found)."""
        return False

    def produced_columns(self) -> list[str]:
        """What the block adds."""
        if not hasattr(self, "columns_of"):
            self.place(())
        return [*self.output_columns(), f"{self.params.prefix}_error"]

    def columns_after(self, columns: Sequence[str] | None, files: FileArea) -> list[str] | None:
        """The input's columns and the ones the block writes, placed for that input."""
        if columns is not None:
            self.place(columns)
        return super().columns_after(columns, files)


def _struct_types(struct: dict[str, Any]) -> dict[str, str]:
    return {name: (spec.type if isinstance(spec, FieldSpec) else "str")
            for name, spec in struct.items()}


def _struct_body(struct: dict[str, Any]) -> dict[str, Any]:
    return {name: (spec.model_dump() if isinstance(spec, FieldSpec) else spec)
            for name, spec in struct.items()}


class _Enrichment(_SixtyfourBlock):
    """Writes struct fields, confidence, notes and references."""

    def output_columns(self) -> dict[str, str]:
        prefix = self.params.prefix
        return {**{self.columns_of[name]: declared
                   for name, declared in _struct_types(self.params.struct).items()},
                f"{prefix}_confidence_score": "float", f"{prefix}_notes": "str",
                f"{prefix}_references": "dict"}

    def write(self, rows: list[dict[str, Any]], index: int, result: dict[str, Any]) -> None:
        row, prefix = rows[index], self.params.prefix
        data = result.get("structured_data")
        data = data if isinstance(data, dict) else {}
        for name, declared in _struct_types(self.params.struct).items():
            row[self.columns_of[name]] = _cast(data.get(name), declared)
        row[f"{prefix}_confidence_score"] = _cast(result.get("confidence_score"), "float")
        row[f"{prefix}_notes"] = _cast(result.get("notes"), "str")
        row[f"{prefix}_references"] = _cast(result.get("references"), "dict")


class EnrichLeadParams(EnrichmentParams):
    """Parameters of ``enrich_lead``."""

    struct: Struct = Field(min_length=1, max_length=100,
                           description="Field -> description, or {description, type}.")
    research_plan: Annotated[str, StringConstraints(max_length=5000)] | None = None


class EnrichLead(_Enrichment):
    """Research a person per row."""

    kind = "enrich_lead"
    kind_of_job = "enrich_lead"
    description = ("Research each row's person with Sixtyfour (lead_info from name, company, "
                   "title, linkedin, email, location) and write the struct's fields.")
    Params = EnrichLeadParams
    produces = "the struct's fields, <prefix>_confidence_score, _notes, _references, _error"
    default_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "name": ("name", "full_name"), "company": ("company", "company_name"),
        "title": ("title", "job_title"), "linkedin": ("linkedin", "linkedin_url"),
        "email": ("email",), "location": ("location", "company_location"),
    }

    def body(self, subject: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"lead_info": subject, "struct": _struct_body(self.params.struct)}
        if self.params.research_plan:
            body["research_plan"] = self.params.research_plan
        return body
