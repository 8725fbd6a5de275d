"""The Sixtyfour blocks that find a way to reach each row's person: an email address.

They share everything with :mod:`.enrichment` (the request per row, the shared enricher,
row errors, ``on_unknown_outcome``); what differs is the request's body and how the
answer becomes columns. A row that already has what is sought is skipped with
``skip_existing``; an answer that found nothing is not an error: the row's columns stay
empty and its status says ``NOT_FOUND``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from .enrichment import ColumnName, EnrichmentParams, _empty, _SixtyfourBlock

__all__ = ["FindEmail"]

_STATUS_RANK = {"OK": 0, "VALID": 0, "CATCH_ALL": 1, "UNKNOWN": 2, "RISKY": 3}


class FindEmailParams(EnrichmentParams):
    """Parameters of ``find_email``."""

    mode: Literal["PROFESSIONAL", "PERSONAL"] = "PROFESSIONAL"
    output_column: ColumnName = "email"
    skip_existing: bool = Field(True, description="Rows with an address are not looked up.")


class FindEmail(_SixtyfourBlock):
    """Find an email address per row."""

    kind = "find_email"
    kind_of_job = "find_email"
    description = ("Find each row's email address with Sixtyfour; the best address (status "
                   "OK first) goes to output_column, its status beside it.")
    Params = FindEmailParams
    produces = "output_column and output_column_status, <prefix>_error"
    default_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "name": ("name", "full_name"), "company": ("company", "company_name"),
        "title": ("title", "job_title"), "linkedin": ("linkedin", "linkedin_url"),
        "domain": ("domain", "company_domain", "website"),
        "location": ("location", "company_location"),
    }

    def skip(self, row: dict[str, Any]) -> bool:
        column = self.params.output_column
        if self.params.skip_existing and not _empty(row.get(column)):
            row[f"{column}_status"] = "EXISTING"
            return True
        return False

    def body(self, subject: dict[str, Any]) -> dict[str, Any]:
        return {"lead": subject, "mode": self.params.mode}

    def output_columns(self) -> dict[str, str]:
        column = self.params.output_column
        return {column: "str", f"{column}_status": "str"}

    def write(self, rows: list[dict[str, Any]], index: int, result: dict[str, Any]) -> None:
        column = self.params.output_column
        found = result.get("email")
        if self.params.mode == "PERSONAL" and result.get("personal_email"):
            found = result["personal_email"]
        if isinstance(found, str):  # a lead that had an address comes back unchanged
            found = [[found, "UNKNOWN"]] if found.strip() else []
        candidates = [c for c in (found if isinstance(found, list) else [])
                      if isinstance(c, list | tuple) and c and isinstance(c[0], str)]
        ranked = sorted(candidates, key=lambda c: _STATUS_RANK.get(
            str(c[1]).upper() if len(c) > 1 else "", 9))
        best = ranked[0] if ranked else None
        status = str(best[1]).upper() if best is not None and len(best) > 1 else "NOT_FOUND"
        # An address the API itself calls invalid (or did not find) is not an address.
        usable = best is not None and status not in ("INVALID", "NOT_FOUND")
        rows[index][column] = best[0] if usable and best is not None else None
        rows[index][f"{column}_status"] = status
