"""The catalog of block types."""

from __future__ import annotations

from flask import Blueprint, Response

from . import block_service
from .responses import json_response
from .schemas import BlockCatalogOut, BlockTypeOut

__all__ = ["blueprint"]

blueprint = Blueprint("blocks", __name__, url_prefix="/api/blocks")


@blueprint.get("")
def list_blocks() -> Response:
    """Every block type: what it does, its parameters' JSON schema, what it needs and adds."""
    return json_response(BlockCatalogOut(
        items=[BlockTypeOut(**entry) for entry in block_service().types()]
    ))
