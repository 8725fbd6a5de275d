"""API tokens: who may call, and what they may do.

Tokens are random strings handed to clients once; the server keeps only their SHA-256
digests (a token has 256 bits of entropy, so a fast hash is enough: there is nothing to
brute-force). Each token has a name (recorded as the actor in history) and scopes:

- ``read``: every GET;
- ``run``: start instances, fire actions, retry, cancel, upload files (and read);
- ``admin``: create and version definitions (and run and read).

``python -m workflow_engine.auth --name ci --scopes run`` makes a new token and prints
the entry to add to the tokens file (or to ``API_TOKENS``).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "Scope",
    "Token",
    "TokenRegistry",
    "digest",
]


class Scope(StrEnum):
    """What a token may do; each scope includes the ones before it."""

    READ = "read"
    RUN = "run"
    ADMIN = "admin"


_RANK = {Scope.READ: 0, Scope.RUN: 1, Scope.ADMIN: 2}


def digest(token: str) -> str:
    """How a token is stored: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    scopes: list[Scope] = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    may_set_actor: bool = False


@dataclass(frozen=True)
class Token:
    """A configured token, by its digest."""

    name: str
    scopes: frozenset[Scope]
    sha256: str
    may_set_actor: bool = False

    def allows(self, needed: Scope) -> bool:
        """Whether one of the token's scopes covers ``needed``."""
        return any(_RANK[scope] >= _RANK[needed] for scope in self.scopes)

    def granted(self) -> list[Scope]:
        """Every scope the token covers, the least first (``run`` grants ``read`` too)."""
        return [scope for scope in Scope if self.allows(scope)]


class TokenRegistry:
    """The configured tokens. Empty means the API is open (and served on loopback only)."""

    def __init__(self, tokens: Iterable[Token] = ()) -> None:
        self._tokens = list(tokens)

    @property
    def enabled(self) -> bool:
        """Whether any token is configured."""
        return bool(self._tokens)

    @classmethod
    def load(cls, inline: str | None, file: Path | None) -> TokenRegistry:
        """Tokens from a JSON list (``API_TOKENS``) and/or a JSON file (``TOKENS_FILE``)."""
        entries: list[Any] = []
        sources = []
        if inline:
            sources.append(("API_TOKENS", inline))
        if file is not None:
            sources.append((str(file), file.read_text(encoding="utf-8")))
        for label, text in sources:
            try:
                data = json.loads(text)
                items = data["tokens"] if isinstance(data, dict) else data
                entries += [_Entry.model_validate(item) for item in items]
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise ValueError(f"{label}: not a valid list of tokens: {exc}") from None
        return cls(Token(e.name, frozenset(e.scopes), e.sha256, e.may_set_actor)
                   for e in entries)

    def authenticate(self, presented: str) -> Token | None:
        """The token whose digest matches, compared in constant time."""
        wanted = digest(presented)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(token.sha256, wanted):
                found = token
        return found


def main(argv: list[str] | None = None) -> None:
    """Print a new token and the entry that configures it."""
    parser = argparse.ArgumentParser(description="Make a new API token.")
    parser.add_argument("--name", required=True, help="recorded as the actor in history")
    parser.add_argument("--scopes", default="read", help="comma-separated: read,run,admin")
    parser.add_argument("--may-set-actor", action="store_true",
                        help="let the token refine its actor with X-Actor")
    args = parser.parse_args(argv)
    token = secrets.token_urlsafe(32)
    entry = _Entry(name=args.name, scopes=[Scope(s) for s in args.scopes.split(",")],
                   sha256=digest(token), may_set_actor=args.may_set_actor)
    print(f"token (shown once, give it to the client): {token}")
    print("entry for the tokens file:")
    print(entry.model_dump_json())


if __name__ == "__main__":
    main()
