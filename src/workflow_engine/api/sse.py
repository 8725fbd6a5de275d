"""Server-Sent Events: an instance's event stream written as ``text/event-stream``.

Each item of the service's stream becomes one SSE event (``id``, ``event``, ``data``: the
same JSON the matching GET answers), or a comment. waitress sends every chunk the
application yields as soon as it is yielded (its ``send_bytes`` is 1, and nothing in the
request hooks buffers or compresses a body), so each event leaves in its own write.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

from flask import Response

from ..service import EventStream
from ..service.streams import Item, ItemKind
from .schemas import EventOut, InstanceOut, ProgressEvent, StreamEnd

__all__ = ["MEDIA_TYPE", "RETRY_MS", "StreamBody", "event_stream_response", "frame"]

MEDIA_TYPE = "text/event-stream"
# How long an EventSource waits before it reconnects (after a stream's time is up, or
# a dropped connection).
RETRY_MS = 1000


def frame(*, event: str | None = None, id: str | None = None, data: str | None = None,
          retry: int | None = None, comment: str | None = None) -> bytes:
    """One SSE block: its comment, fields, and the blank line that ends it."""
    lines = [f": {comment}"] if comment is not None else []
    if retry is not None:
        lines.append(f"retry: {retry}")
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        # JSON has no raw line breaks; split anyway, as the format requires of any data.
        lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


def encode(item: Item, instance_id: str) -> bytes:
    """One item of a stream, as SSE."""
    kind, position = item.kind, str(item.position) if item.position else None
    if kind is ItemKind.HISTORY and item.event is not None:
        body = EventOut.of(item.event).model_dump_json()
    elif kind is ItemKind.INSTANCE and item.instance and item.workflow:
        body = InstanceOut.of(item.instance, item.workflow, item.progress).model_dump_json()
    elif kind is ItemKind.PROGRESS and item.progress and item.position:
        body = ProgressEvent(**item.progress, instance_id=instance_id,
                             seq=item.position.seq).model_dump_json()
    elif kind is ItemKind.END and item.instance:
        instance = item.instance
        body = StreamEnd(instance_id=instance.id, status=instance.status,
                         current_state=instance.current_state,
                         version=instance.version).model_dump_json()
    elif kind is ItemKind.KEEP_ALIVE:
        return frame(comment="keep-alive")
    elif kind is ItemKind.EXPIRED:
        return frame(comment="this stream's time is up: reconnect with Last-Event-ID",
                     retry=RETRY_MS)
    else:  # pragma: no cover - the service makes no other items
        raise ValueError(f"cannot encode {item!r}")
    return frame(id=position, event=kind.value, data=body)


class StreamBody:
    """A response body that writes the stream as it goes. The server closes it when the
    client has gone or the stream has ended; closing frees the stream's slot."""

    def __init__(self, stream: EventStream, ended: Callable[[str, int], None]) -> None:
        self.stream = stream
        self._ended: Callable[[str, int], None] | None = ended
        # A body that is never closed (a response dropped by an error after the route)
        # still frees its slot when it is collected.
        self._close_stream = weakref.finalize(self, stream.close)

    def __iter__(self) -> Iterator[bytes]:
        # The first bytes go out at once: the client knows it is connected, and how long
        # to wait before it reconnects.
        yield frame(retry=RETRY_MS, comment="connected")
        for item in self.stream:
            yield encode(item, self.stream.instance_id)

    def close(self) -> None:
        """Close the stream (once) and say how it ended."""
        self._close_stream()  # once: later calls do nothing
        ended, self._ended = self._ended, None
        if ended is not None:
            ended(self.stream.ended or "disconnected", self.stream.sent)


def event_stream_response(stream: EventStream, ended: Callable[[str, int], None]) -> Response:
    """The streaming response."""
    response = Response(StreamBody(stream, ended), mimetype=MEDIA_TYPE)
    # Never stored: it is live, and it may have been asked for with a token in its URL.
    response.headers["Cache-Control"] = "no-store"
    # Proxies that buffer answers (nginx) pass this one through as it comes.
    response.headers["X-Accel-Buffering"] = "no"
    return response
