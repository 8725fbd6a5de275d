"""The Sixtyfour block that researches a company per row, and optionally its people.

It shares everything with :mod:`.enrichment` (the request per row, the shared enricher,
row errors, ``on_unknown_outcome``). With ``find_people`` the API also answers a list of
people at the company (``structured_data.leads``: name, email, company, title, phone,
score as text, linkedin, and the ``lead_struct`` fields). ``people: "column"`` keeps that
list in one JSON column; ``people: "rows"`` gives each person a row of their own, the
company's columns repeated, so that a block after it (``find_email``, ``enrich_lead``)
works on the people. A company without people (none found, or its request failed) keeps
one row, its person columns empty and its row error, if any, on that row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .enrichment import (
    EnrichmentParams,
    Struct,
    _cast,
    _Enrichment,
    _struct_body,
    _struct_types,
)

__all__ = ["EnrichCompany"]

# What the API gives of each person, with the types the person columns get.
PERSON_FIELDS: dict[str, str] = {"name": "str", "email": "str", "title": "str",
                                 "phone": "str", "linkedin": "str", "score": "float"}


class EnrichCompanyParams(EnrichmentParams):
    """Parameters of ``enrich_company``."""

    struct: Struct = Field(min_length=1, max_length=100,
                           description="Field -> description, or {description, type}.")
    find_people: bool = Field(False, description="Also find people at the company.")
    people_focus_prompt: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        None, description="Who to look for (\"Heads of sales and marketing\"); only with "
        "find_people.")
    lead_struct: Annotated[Struct, Field(min_length=1, max_length=100)] | None = Field(
        None, description="Fields to research about each person found, as struct does "
        "for the company; only with find_people.")
    people: Literal["column", "rows"] = Field(
        "column", description="With find_people: 'column' keeps the people found as a list "
        "in <prefix>_people; 'rows' gives each person a row, the company's columns "
        "repeated, and the person's fields in <person_prefix>_<field> columns.")
    person_prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        "person", description="Prefix of the person columns, with people 'rows'.")
    research_plan: Annotated[str, StringConstraints(max_length=5000)] | None = None

    @field_validator("people_focus_prompt", "lead_struct", "people")
    @classmethod
    def _only_with_find_people(cls, value: Any, info: ValidationInfo) -> Any:
        # Asked for people without asking to find them: a mistake to report, not a
        # setting to ignore (nobody would be found).
        if value not in (None, "column") and info.data.get("find_people") is False:
            asked = "people: 'rows'" if info.field_name == "people" else info.field_name
            raise PydanticCustomError(
                "needs_find_people", "{asked} is only used with find_people: true",
                {"asked": asked})
        return value


class EnrichCompany(_Enrichment):
    """Research a company per row, and optionally find its people."""

    kind = "enrich_company"
    kind_of_job = "enrich_company"
    description = ("Research each row's company with Sixtyfour (target_company from company "
                   "name, website or domain, linkedin) and write the struct's fields; with "
                   "find_people, the people found, in a list column or one row per person.")
    Params = EnrichCompanyParams
    produces = ("the struct's fields, metadata columns, _error; with find_people, "
                "<prefix>_people, or with people 'rows' one row per person and "
                "<person_prefix>_name, _email, _title, _phone, _linkedin, _score and the "
                "lead_struct fields")
    default_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "name": ("company", "company_name"), "website": ("website", "company_website"),
        "domain": ("domain", "company_domain"), "linkedin": ("company_linkedin",),
        "location": ("company_location",),
    }

    # person field -> (its column, its declared type), with people "rows"
    person_columns: dict[str, tuple[str, str]]
    # The key a row's people ride under until the rows are exploded: a name the input
    # does not have, so no column of the input is lost.
    carrier: str

    @property
    def explodes(self) -> bool:
        """Whether the output has a row per person."""
        return bool(self.params.find_people and self.params.people == "rows")

    def person_fields(self) -> dict[str, str]:
        """Each person's fields and their types: the API's, then the lead_struct's."""
        extra = _struct_types(self.params.lead_struct or {})
        return {**PERSON_FIELDS, **{name: t for name, t in extra.items()
                                    if name not in PERSON_FIELDS}}

    def place(self, columns: Sequence[str]) -> None:
        """The struct's columns, then the person columns: ``<person_prefix>_<field>``, or
        ``<prefix>_<person_prefix>_<field>`` when that name is taken already."""
        super().place(columns)
        prefix = self.params.prefix
        taken = {*columns, *self.columns_of.values(), f"{prefix}_confidence_score",
                 f"{prefix}_notes", f"{prefix}_references", f"{prefix}_error"}
        self.person_columns = {}
        for name, declared in self.person_fields().items():
            column = f"{self.params.person_prefix}_{name}"
            self.person_columns[name] = (
                f"{prefix}_{column}" if column in taken else column, declared)
        self.carrier = "_people"
        while self.carrier in columns:
            self.carrier = f"_{self.carrier}"

    def body(self, subject: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"target_company": subject,
                                "struct": _struct_body(self.params.struct)}
        if self.params.find_people:
            body["find_people"] = True
            if self.params.people_focus_prompt:
                body["people_focus_prompt"] = self.params.people_focus_prompt
            if self.params.lead_struct:
                body["lead_struct"] = _struct_body(self.params.lead_struct)
        if self.params.research_plan:
            body["research_plan"] = self.params.research_plan
        return body

    def output_columns(self) -> dict[str, str]:
        columns = super().output_columns()
        if self.explodes:
            columns.update(dict(self.person_columns.values()))
        elif self.params.find_people:
            columns[f"{self.params.prefix}_people"] = "list"
        return columns

    def write(self, rows: list[dict[str, Any]], index: int, result: dict[str, Any]) -> None:
        super().write(rows, index, result)
        if not self.params.find_people:
            return
        data = result.get("structured_data")
        people = self.people_of(data.get("leads") if isinstance(data, dict) else None)
        if self.explodes:
            rows[index][self.carrier] = people
        else:
            rows[index][f"{self.params.prefix}_people"] = people or None

    def people_of(self, leads: Any) -> list[dict[str, Any]]:
        """The people of an answer (a list, or its JSON text), each person's fields cast
        to their types (the score, which comes as text, to a number); other keys the
        API gave are kept as they came."""
        found = _cast(leads, "list")
        fields = self.person_fields()
        return [{**person, **{name: _cast(person.get(name), declared)
                              for name, declared in fields.items()}}
                for person in (found if isinstance(found, list) else [])
                if isinstance(person, dict)]

    def _table(self, table: pd.DataFrame, rows: list[dict[str, Any]],
               error_column: str) -> pd.DataFrame:
        if self.explodes:
            rows = [self._person_row(row, person)
                    for row in rows for person in (row.pop(self.carrier, None) or [None])]
        return super()._table(table, rows, error_column)

    def _person_row(self, row: dict[str, Any], person: dict[str, Any] | None
                    ) -> dict[str, Any]:
        """The company's row with one person's columns (empty without a person)."""
        return {**row, **{column: (person or {}).get(name)
                          for name, (column, _) in self.person_columns.items()}}

    def keeps_rows(self) -> bool:
        """Every row stays, unless failed rows are dropped or people become rows."""
        return super().keeps_rows() and not self.explodes

    def adds_rows(self) -> bool:
        """With people as rows, a company found with several people makes several rows."""
        return self.explodes
