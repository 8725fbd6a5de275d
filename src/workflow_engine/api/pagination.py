"""Opaque keyset cursors: the client passes back what the previous page gave it."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..errors import InvalidParameter, Problem

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(kind: str, key: Any) -> str:
    """A cursor that resumes a listing of ``kind`` after ``key``."""
    raw = json.dumps({"k": kind, "after": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, key_type: type) -> Any:
    """The key a cursor resumes after; :class:`InvalidParameter` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        key = data["after"]
        valid = data["k"] == kind and isinstance(key, key_type) and not isinstance(key, bool)
        if valid and isinstance(key, int):
            valid = 0 <= key < 2**63
        elif valid and isinstance(key, str):
            valid = len(key) <= 64
    except (binascii.Error, ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise InvalidParameter(
            "The cursor is not valid for this listing; pass next_cursor from a previous page.",
            errors=[Problem("cursor", "invalid_cursor", "Not a cursor of this listing.")],
        )
    return key
