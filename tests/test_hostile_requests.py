"""A table of hostile requests against the real server: each gets a clear 4xx
problem+json, the server keeps serving, and nothing stored changes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import approval
from workflow_engine.testing import ServerProcess, running_server

pytestmark = pytest.mark.slow

DEFINITION = json.dumps(approval())


def raw(method: str, path: str, body: bytes = b"", headers: str = "",
        content_type: str = "application/json") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{headers}\r\n")
    return head.encode("latin-1") + body


def nested(depth: int) -> bytes:
    return b'{"definition_id": "approval", "context": {"a": ' + b"[" * depth + b"]" * depth + b"}}"


HOSTILE: list[Any] = [
    # malformed and truncated JSON, on every endpoint that takes a body
    ("truncated definition", raw("POST", "/api/definitions", DEFINITION[:40].encode())),
    ("truncated PUT", raw("PUT", "/api/definitions/approval", b'{"name": ')),
    ("garbage start", raw("POST", "/api/instances", b"\x00\x01\x02")),
    ("JSON with trailing junk", raw("POST", "/api/instances", b'{"definition_id": "a"} xx')),
    ("deep nesting", raw("POST", "/api/instances", nested(50))),
    ("very deep nesting", raw("POST", "/api/instances", nested(50_000))),
    ("NaN", raw("POST", "/api/instances", b'{"definition_id": "approval", "version": NaN}')),
    # huge strings and arrays, wrong types
    ("huge name", raw("POST", "/api/definitions",
                      json.dumps(approval(id="big", name="x" * 100_000)).encode())),
    ("huge array", raw("POST", "/api/definitions", json.dumps(approval(
        id="many", states=[{"id": f"s{i}", "name": "s"} for i in range(20_000)])).encode())),
    ("body over the limit", raw("POST", "/api/definitions", b" " * (2 * 1024 * 1024))),
    ("wrong types", raw("POST", "/api/instances",
                        b'{"definition_id": ["approval"], "context": "x", "version": true}')),
    ("wrong content type", raw("POST", "/api/instances", b"definition_id=approval",
                               content_type="application/x-www-form-urlencoded")),
    # unicode and NUL in ids
    ("NUL in instance id", raw("GET", "/api/instances/a%00b")),
    ("NUL in a body id", raw("POST", "/api/instances",
                             b'{"definition_id": "approval", "id": "a\\u0000b"}')),
    ("unicode definition id", raw("GET", "/api/definitions/caf%C3%A9")),
    ("RTL override in id", raw("POST", "/api/instances",
                               '{"definition_id": "approval", "id": "a\u202eb"}'.encode())),
    # path traversal in every file parameter
    ("files traversal", raw("GET", "/api/files/..%2F..%2Fetc%2Fpasswd")),
    ("files dotdot", raw("GET", "/api/files/%2E%2E")),
    ("preview traversal", raw("GET", "/api/files/..%2Fwf.db/preview")),
    ("outputs traversal", raw("GET", "/api/outputs/..%2F..%2Fwf.db")),
    ("read_csv file outside", raw("POST", "/api/definitions", json.dumps(approval(
        id="evil", states=[{"id": "a", "name": "A", "is_initial": True, "block": {
            "type": "read_csv", "params": {"file": "../wf.db"}}}])).encode())),
    ("save_csv name outside", raw("POST", "/api/definitions", json.dumps(approval(
        id="evil2", states=[{"id": "a", "name": "A", "is_initial": True, "block": {
            "type": "save_csv", "params": {"file_name": "/tmp/x.csv"}}}])).encode())),
    ("upload name outside", raw(
        "POST", "/api/files",
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n'
        b"a\n1\n\r\n--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n"
        b"../../x.csv\r\n--b--\r\n", content_type="multipart/form-data; boundary=b")),
    # header injection attempts and oversized headers
    ("CR LF in a header", raw("POST", "/api/instances/i/actions/submit",
                              headers="X-Actor: a\r\n injected: yes\r\n")),
    ("control byte in a header", raw("POST", "/api/instances/i/actions/submit",
                                     headers="X-Actor: a\x01b\r\n")),
    ("oversized header", raw("GET", "/api/instances", headers="X-Pad: " + "p" * 9000 + "\r\n")),
    ("oversized URI", raw("GET", "/api/instances/" + "i" * 9000)),
    ("bad Idempotency-Key", raw("POST", "/api/instances/i/actions/submit",
                                headers="Idempotency-Key: " + "k" * 500 + "\r\n")),
    ("unknown method", raw("BREW", "/api/instances")),
]


def send(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def stored(server: ServerProcess) -> dict[str, Any]:
    """Everything a client can read back."""
    return {
        "definitions": httpx.get(f"{server.url}/api/definitions").json(),
        "instances": httpx.get(f"{server.url}/api/instances").json(),
        "history": httpx.get(f"{server.url}/api/instances/i/history").json(),
        "files": httpx.get(f"{server.url}/api/files").json(),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("hostile")
    with running_server(root / "wf.db") as running:
        httpx.post(f"{running.url}/api/definitions", json=approval()).raise_for_status()
        httpx.post(f"{running.url}/api/instances",
                   json={"definition_id": "approval", "id": "i"}).raise_for_status()
        yield running


@pytest.mark.parametrize(("name", "request_bytes"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_request(server: ServerProcess, name: str, request_bytes: bytes) -> None:
    before = stored(server)
    status, headers, body = send(int(server.url.rsplit(":", 1)[1]), request_bytes)
    assert 400 <= status < 500, (name, status, body[:300])
    assert headers.get("content-type") == "application/problem+json", (name, headers)
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["code"]
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert stored(server) == before


START = '{"definition_id": "approval", "id": "strict", "context": {"x": 1}}'
# (name, method, path, body, the rule it breaks, the path of the duplicate if any)
NOT_STRICT_JSON: list[Any] = [
    ("UTF-16 with a BOM", "POST", "/api/instances", START.encode("utf-16"), "encoding", None),
    ("UTF-16 without a BOM", "POST", "/api/instances", START.encode("utf-16-le"), "encoding",
     None),
    ("UTF-32", "POST", "/api/instances", START.encode("utf-32"), "encoding", None),
    ("UTF-8 with a BOM", "POST", "/api/instances", b"\xef\xbb\xbf" + START.encode(),
     "encoding", None),
    ("Latin-1", "POST", "/api/instances",
     '{"definition_id": "approval", "id": "strict", "context": {"x": "café"}}'.encode("latin-1"),
     "encoding", None),
    ("a number that overflows", "POST", "/api/instances",
     b'{"definition_id": "approval", "id": "strict", "context": {"x": 1e309}}', "non_finite",
     None),
    ("a negative overflow", "POST", "/api/instances",
     b'{"definition_id": "approval", "id": "strict", "context": {"x": [-1.5e400]}}',
     "non_finite", None),
    ("an integer past a double", "POST", "/api/instances",
     b'{"definition_id": "approval", "id": "strict", "context": {"x": 1' + b"0" * 400 + b"}}",
     "non_finite", None),
    ("Infinity", "POST", "/api/instances",
     b'{"definition_id": "approval", "id": "strict", "context": {"x": Infinity}}',
     "non_finite", None),
    ("a repeated name", "POST", "/api/instances",
     b'{"definition_id": "approval", "id": "strict", "context": {"x": 1, "x": 2}}',
     "duplicate_key", "context.x"),
    ("a repeated top-level name", "POST", "/api/instances",
     b'{"definition_id": "approval", "id": "strict", "definition_id": "other"}',
     "duplicate_key", "definition_id"),
    ("a repeated name in a definition", "POST", "/api/definitions", json.dumps(
        approval(id="twice")).replace('"name": "Submit"', '"name": "Submit", "name": "Send"',
                                      1).encode(), "duplicate_key", "actions[0].name"),
    ("a repeated name in a new version", "PUT", "/api/definitions/approval",
     b'{"id": "approval", "name": "A", "name": "B", "states": [], "actions": []}',
     "duplicate_key", "name"),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "rule", "where"), NOT_STRICT_JSON,
                         ids=[row[0] for row in NOT_STRICT_JSON])
def test_json_that_two_parsers_could_read_two_ways_is_refused(
    server: ServerProcess, name: str, method: str, path: str, body: bytes, rule: str,
    where: str | None,
) -> None:
    """400 malformed_json naming the rule (and the repeated name's path); nothing stored."""
    before = stored(server)
    status, headers, answer = send(int(server.url.rsplit(":", 1)[1]), raw(method, path, body))
    problem = json.loads(answer)
    assert (status, problem["code"], problem["rule"]) == (400, "malformed_json", rule), problem
    assert headers["content-type"] == "application/problem+json"
    if where is not None:
        assert problem["path"] == where
        assert [error["path"] for error in problem["errors"]] == [where]
    assert stored(server) == before
    assert httpx.get(f"{server.url}/api/instances/strict").status_code == 404


def multipart(filename: str, content: bytes) -> bytes:
    return (b'--b\r\nContent-Disposition: form-data; name="file"; filename="'
            + filename.encode() + b'"\r\nContent-Type: text/csv\r\n\r\n' + content
            + b"\r\n--b--\r\n")


WIDE = (",".join(f"c{i}" for i in range(100_000)) + "\n"
        + ",".join("1" for _ in range(100_000)) + "\n").encode()
# (name, file name, content, what the problem must carry)
BROKEN_CSVS: list[Any] = [
    ("a header that is not UTF-8", "cafe.csv", b"caf\xe9,b\n1,2\n", {"offset": 3}),
    ("a binary file named .csv", "bin.csv", bytes(range(256)) * 4, {"offset": 128}),
    ("100,000 columns", "wide.csv", WIDE, {"max_columns": 1000}),
]


@pytest.mark.parametrize(("name", "filename", "content", "carries"), BROKEN_CSVS,
                         ids=[row[0] for row in BROKEN_CSVS])
def test_a_broken_csv_upload_is_a_short_csv_invalid(
    server: ServerProcess, name: str, filename: str, content: bytes, carries: dict[str, Any],
) -> None:
    """422 csv_invalid with the offset (or the limit), a short message that quotes no raw
    bytes, and nothing stored (preview and read_csv: tests/api/test_files.py)."""
    before = stored(server)
    request = raw("POST", "/api/files", multipart(filename, content),
                  content_type="multipart/form-data; boundary=b")
    status, _, body = send(int(server.url.rsplit(":", 1)[1]), request)
    problem = json.loads(body)
    assert (status, problem["code"]) == (422, "csv_invalid"), problem
    assert carries.items() <= problem.items()
    assert len(problem["detail"]) < 200
    assert problem["detail"].isprintable()
    assert stored(server) == before
