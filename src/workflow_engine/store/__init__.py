"""Persistence: SQLAlchemy Core tables and the transactions the service works in."""

from __future__ import annotations

from .database import Store, StoredDefinition, Transaction, make_engine

__all__ = ["Store", "StoredDefinition", "Transaction", "make_engine"]
