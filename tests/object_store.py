"""A real S3-compatible object store for the tests: moto's server on a free port of the
loopback, started once per session; each test gets an empty bucket of its own."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from moto.server import ThreadedMotoServer

__all__ = ["ObjectStore", "bucket", "object_store"]

REGION = "eu-west-1"


class ObjectStore:
    """moto's S3 server in a thread of this process, answering on 127.0.0.1."""

    def __init__(self) -> None:
        # One line per request on stderr otherwise.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._filesystem: Any = None

    @property
    def options(self) -> dict[str, Any]:
        """``STORAGE_OPTIONS`` that reach this server (moto takes any key)."""
        return {"endpoint_url": self.endpoint_url, "key": "test-key", "secret": "test-secret",
                "client_kwargs": {"region_name": REGION}}

    def filesystem(self) -> Any:
        """An s3fs filesystem on this server, to look at what the engine stored (one for
        the session: building its client takes a while)."""
        if self._filesystem is None:
            self._filesystem = fsspec.filesystem(
                "s3", skip_instance_cache=True, use_listings_cache=False, **self.options)
        return self._filesystem

    def create_bucket(self) -> str:
        """A new empty bucket's name."""
        name = f"test-{uuid.uuid4().hex[:16]}"
        self.filesystem().mkdir(name, region_name=REGION)
        return name

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    """The session's S3-compatible server."""
    server = ObjectStore()
    yield server
    server.stop()


@pytest.fixture
def bucket(object_store: ObjectStore) -> str:
    """An empty bucket for this test."""
    return object_store.create_bucket()
