"""Reading Server-Sent Events in tests, as a browser's EventSource parses them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    """One dispatched event (``event`` set), or one block without data: its comments and
    ``retry``."""

    event: str | None = None
    id: str | None = None
    data: Any = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


def messages(lines: Iterable[str]) -> Iterator[Message]:
    """The blocks of a stream, one per blank line, each as it completes."""
    current = Message()
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                current.data = json.loads("\n".join(data))
                current.event = current.event or "message"
            if data or current.comments or current.retry is not None:
                yield current
            current, data = Message(), []
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            current.event = value
        elif name == "id":
            current.id = value
        elif name == "retry":
            current.retry = int(value)


class Reader:
    """The messages of a streamed httpx response, each awaited under a deadline."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._messages = messages(lines)
        self.seen: list[Message] = []

    def next(self) -> Message | None:
        """The next message; None once the stream has ended."""
        found = next(self._messages, None)
        if found is not None:
            self.seen.append(found)
        return found

    def until(self, wanted: Any, *, within: float = 30) -> Message:
        """Read until a message for which ``wanted(message)`` holds; fail past ``within``
        seconds or at the end of the stream."""
        deadline = time.monotonic() + within
        while True:
            assert time.monotonic() < deadline, f"not seen within {within}s: {self.seen[-5:]}"
            found = self.next()
            assert found is not None, f"the stream ended first: {self.seen[-5:]}"
            if wanted(found):
                return found

    def rest(self, *, within: float = 30) -> list[Message]:
        """Every message until the stream ends (which it must within ``within`` s)."""
        deadline, found = time.monotonic() + within, []
        while (message := self.next()) is not None:
            found.append(message)
            assert time.monotonic() < deadline, f"the stream did not end within {within}s"
        return found

    def events(self) -> list[Message]:
        """The dispatched events seen so far."""
        return [message for message in self.seen if message.event is not None]
