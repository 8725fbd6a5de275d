"""The Sixtyfour blocks that find a way to reach each row's person: an email address, a
phone number.

They share everything with :mod:`.enrichment` (the request per row, the shared enricher,
row errors, ``on_unknown_outcome``); what differs is the request's body and how the
answer becomes columns. A row that already has what is sought is skipped with
``skip_existing``; an answer that found nothing is not an error: the row's columns stay
empty and its status says ``NOT_FOUND``.

``find_email`` in PROFESSIONAL mode sends its rows in bulk requests of up to
``batch_size`` leads (``bulk``, on by default): 10,000 rows are about 100 requests
instead of 10,000, each lead still stored, reused and never paid twice as its own
request; a lead a bulk answer leaves out is a row error (``upstream_lead_missing``) that
a retry sends again. The bulk endpoint takes no mode, so PERSONAL mode always asks per
row.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..sixtyfour.config import BULK_MAX_LEADS
from .base import ColumnName
from .enrichment import EnrichmentParams, _empty, _SixtyfourBlock

__all__ = ["FindEmail", "FindPhone"]

_STATUS_RANK = {"OK": 0, "VALID": 0, "CATCH_ALL": 1, "UNKNOWN": 2, "RISKY": 3}


class FindEmailParams(EnrichmentParams):
    """Parameters of ``find_email``."""

    mode: Literal["PROFESSIONAL", "PERSONAL"] = "PROFESSIONAL"
    output_column: ColumnName = "email"
    skip_existing: bool = Field(True, description="Rows with an address are not looked up.")
    bulk: bool = Field(True, description="In PROFESSIONAL mode, send up to batch_size rows "
                       "per request through the bulk endpoint (one request against the rate "
                       "budget per batch); off: one request per row. PERSONAL mode is always "
                       "one request per row (the bulk endpoint takes no mode).")
    batch_size: int = Field(BULK_MAX_LEADS, ge=1, le=BULK_MAX_LEADS,
                            description="Rows per bulk request, when bulk applies.")


class _ContactSearch(_SixtyfourBlock):
    """A search for one contact detail per row, into ``output_column``."""

    def skip(self, row: dict[str, Any]) -> bool:
        column = self.params.output_column
        if self.params.skip_existing and not _empty(row.get(column)):
            row[f"{column}_status"] = "EXISTING"
            return True
        return False


class FindEmail(_ContactSearch):
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

    def body(self, subject: dict[str, Any]) -> dict[str, Any]:
        return {"lead": subject, "mode": self.params.mode}

    def bulk_size(self) -> int | None:
        """Leads per bulk request: in PROFESSIONAL mode with ``bulk`` (none otherwise)."""
        if self.params.bulk and self.params.mode == "PROFESSIONAL":
            return int(self.params.batch_size)
        return None

    def submissions(self, rows: int) -> int:
        """Submissions for ``rows`` rows: one per batch in bulk."""
        size = self.bulk_size()
        return rows if size is None else math.ceil(rows / size)

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


class FindPhoneParams(EnrichmentParams):
    """Parameters of ``find_phone``."""

    output_column: ColumnName = "phone"
    skip_existing: bool = Field(True, description="Rows with a number in output_column are "
                                "not looked up.")


class FindPhone(_ContactSearch):
    """Find a phone number per row."""

    kind = "find_phone"
    kind_of_job = "find_phone"
    description = ("Find each row's phone number with Sixtyfour; the first number goes to "
                   "output_column, its region beside it, every number found in a list.")
    Params = FindPhoneParams
    produces = ("output_column, output_column_region, output_columns (all numbers), "
                "output_column_status, <prefix>_error")
    default_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "name": ("name", "full_name"), "company": ("company", "company_name"),
        "title": ("title", "job_title"), "linkedin": ("linkedin", "linkedin_url"),
        "email": ("email",), "domain": ("domain", "company_domain", "website"),
        "location": ("location", "company_location"),
    }

    def body(self, subject: dict[str, Any]) -> dict[str, Any]:
        return {"lead": subject}

    def output_columns(self) -> dict[str, str]:
        column = self.params.output_column
        return {column: "str", f"{column}_region": "str", f"{column}s": "list[str]",
                f"{column}_status": "str"}

    def write(self, rows: list[dict[str, Any]], index: int, result: dict[str, Any]) -> None:
        column, row = self.params.output_column, rows[index]
        numbers = _phone_numbers(result.get("phone"))
        # Nothing found ("") is an answer, not an error: empty columns, status NOT_FOUND.
        row[column] = numbers[0][0] if numbers else None
        row[f"{column}_region"] = numbers[0][1] if numbers else None
        row[f"{column}s"] = [number for number, _ in numbers] or None
        row[f"{column}_status"] = "FOUND" if numbers else "NOT_FOUND"


def _phone_numbers(found: Any) -> list[tuple[str, str | None]]:
    """The numbers of a find-phone answer, in its order, each with its region (none for
    the plain-text form): ``phone`` is a string, a list of ``{number, region}``, or ``""``."""
    items = found if isinstance(found, list) else [found]
    numbers: dict[str, str | None] = {}
    for item in items:
        number, region = (item.get("number"), item.get("region")) if isinstance(
            item, dict) else (item, None)
        if isinstance(number, int | float) and not isinstance(number, bool):
            number = str(number)
        if not isinstance(number, str) or not number.strip():
            continue
        region = region.strip() if isinstance(region, str) and region.strip() else None
        numbers.setdefault(number.strip(), region)
    return list(numbers.items())
