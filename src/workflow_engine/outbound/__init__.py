"""Outbound HTTP of the http_request block: the address guard and the calls."""

from __future__ import annotations

from .calls import CallCancelled, HttpCalls
from .exchange import IDEMPOTENT, MAX_REDIRECTS, Answer, Outgoing
from .guard import AddressPolicy, GuardedBackend

__all__ = [
    "IDEMPOTENT",
    "MAX_REDIRECTS",
    "AddressPolicy",
    "Answer",
    "CallCancelled",
    "GuardedBackend",
    "HttpCalls",
    "Outgoing",
]
