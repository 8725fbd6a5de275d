"""Response bodies out of the response models."""

from __future__ import annotations

from flask import Response
from pydantic import BaseModel

__all__ = ["json_response"]


def json_response(body: BaseModel, status: int = 200) -> Response:
    """``body`` serialised by pydantic (in Rust, no intermediate dict) as a JSON response."""
    return Response(body.model_dump_json(), status=status, mimetype="application/json")
