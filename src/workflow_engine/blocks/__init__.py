"""Blocks: the data steps a state runs when it is entered.

The registry here is the only place that knows them all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from ..core.definitions import BlockSpec
from ..core.validation import shape_problems
from ..errors import Problem
from ..limits import DEFAULT_LIMITS, Limits
from ..storage import FileArea
from .base import Block, BlockCancelled, BlockContext, BlockError, MissingColumns, describe
from .branches import Branches
from .columns import Dedupe, SelectColumns
from .companies import EnrichCompany
from .compute import Compute
from .contacts import FindEmail, FindPhone
from .csv_files import ReadCsv, SaveCsv
from .enrichment import EnrichLead
from .filtering import Filter
from .http_request import HttpRequest
from .tables import CsvInvalid

__all__ = [
    "BLOCKS",
    "Block",
    "BlockCancelled",
    "BlockContext",
    "BlockError",
    "Catalog",
    "CsvInvalid",
    "MissingColumns",
    "describe",
]

BLOCKS: Mapping[str, type[Block[Any]]] = {
    block.kind: block for block in (ReadCsv, Filter, Compute, Dedupe, SelectColumns, SaveCsv,
                                    EnrichLead, EnrichCompany, FindEmail, FindPhone,
                                    HttpRequest, Branches)
}


class Catalog:
    """The blocks a definition may use, as the core's validation and the runner see them."""

    def __init__(self, files: FileArea, blocks: Mapping[str, type[Block[Any]]] = BLOCKS,
                 *, limits: Limits = DEFAULT_LIMITS, secrets: Collection[str] | None = None
                 ) -> None:
        self.files = files
        self.blocks = blocks
        self.limits = limits
        # The names of the server's secrets (never their values): a definition naming
        # another is refused when it is saved.
        self.secrets = frozenset(secrets) if secrets is not None else None

    def build(self, spec: BlockSpec) -> Block[Any]:
        """The configured block for a (validated) spec, under the catalog's limits."""
        kind = self.blocks[spec.type]
        params = kind.Params.model_validate(spec.params)
        if kind.composite:  # its parts are blocks of this catalog
            return kind(params, self.limits, catalog=self)  # type: ignore[call-arg]
        return kind(params, self.limits)

    def check(self, spec: BlockSpec, path: str) -> list[Problem]:
        """Problems with a block spec: an unknown type, or parameters that do not fit."""
        kind = self.blocks.get(spec.type)
        if kind is None:
            return [Problem(f"{path}.type", "unknown_block_type",
                            f"No block type '{spec.type}'; known: {', '.join(self.blocks)}.")]
        try:
            kind.Params.model_validate(spec.params)
        except ValidationError as exc:
            return [
                Problem(f"{path}.params" + ("." if not p.path.startswith("[") else "") + p.path
                        if p.path != "$" else f"{path}.params", p.code, p.message)
                for p in shape_problems(exc, kind.Params)
            ]
        block = self.build(spec)
        if kind.composite:
            return block.check_parts(f"{path}.params")
        return block.check_secrets(self.secrets, f"{path}.params")

    def needs_table(self, spec: BlockSpec) -> bool:
        """Whether the block reads the table (all but the ones that make one)."""
        return self.blocks[spec.type].needs_table

    def required_columns(self, spec: BlockSpec) -> list[str]:
        """Columns the block needs in its input."""
        return self.build(spec).required_columns()

    def column_path(self, spec: BlockSpec, column: str) -> str:
        """Where in the spec's params the block names ``column`` (``""``: the params)."""
        return self.build(spec).column_path(column)

    def columns_after(self, spec: BlockSpec, columns: list[str] | None) -> list[str] | None:
        """The block's output columns, when they can be known before running."""
        return self.build(spec).columns_after(columns, self.files)

    def entries(self) -> list[dict[str, Any]]:
        """The catalog as served by ``GET /api/blocks``."""
        return [
            {
                "type": kind.kind,
                "description": kind.description,
                "needs_table": kind.needs_table,
                "composite": kind.composite,
                "requires": kind.requires,
                "produces": kind.produces,
                "params_schema": kind.Params.model_json_schema(by_alias=False),
            }
            for kind in self.blocks.values()
        ]
