"""Live instance events over Server-Sent Events, from real servers over loopback: shipped
pipelines streamed from another process than the one running them, a client that drops
mid-run and resumes, the limits on streams, and the thread a dropped client frees."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DEFINITIONS, ROOT, approval
from tests.sse import Message, Reader
from workflow_engine.testing import PostgresServer, SandboxProcess, ServerProcess, running_server

pytestmark = pytest.mark.slow

LEADS, ARIGLAD = 15, 5  # rows of data/leads.csv, and of those at Ariglad Inc
TIMEOUT = httpx.Timeout(20)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """The Sixtyfour sandbox, its jobs done in about 0.3 s."""
    found = SandboxProcess(rate=6000, latency=0.3)
    yield found
    found.stop()


@pytest.fixture(scope="module")
def database_url(database: str, request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database for the module's servers."""
    if database == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.create_database()
    return f"sqlite:///{tmp_path_factory.mktemp('streams') / 'workflow.db'}"


def serving(database_url: str, data_dir: Path, **env: str) -> Any:
    return running_server(database_url, data_dir=data_dir, definitions=DEFINITIONS,
                          env={"SAMPLES_DIR": str(ROOT / "data"),
                               "EVENT_STREAM_POLL_SECONDS": "0.1", **env})


@pytest.fixture(scope="module")
def pair(database_url: str, sandbox: SandboxProcess,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers on one database: ``runs`` is where actions are fired (so where blocks
    run), and its streams last a second; ``watches`` serves streams of what the other
    runs, with a keep-alive every half second."""
    data_dir = tmp_path_factory.mktemp("pair")
    enrichment = {"SIXTYFOUR_API_KEY": "sandbox-key", "SIXTYFOUR_BASE_URL": sandbox.url,
                  "SIXTYFOUR_RATE_PER_MINUTE": "6000", "BLOCK_HEARTBEAT_SECONDS": "0.2"}
    with serving(database_url, data_dir, **enrichment, EVENT_STREAM_MAX_SECONDS="1") as runs, \
            serving(database_url, data_dir, **enrichment,
                    EVENT_STREAM_HEARTBEAT_SECONDS="0.5") as watches:
        yield runs, watches


@pytest.fixture(scope="module")
def tight(database_url: str, tmp_path_factory: pytest.TempPathFactory,
          pair: tuple[ServerProcess, ServerProcess]) -> Iterator[ServerProcess]:
    """A server that serves one stream at a time (on the same database as the pair, which
    has created the schema by now)."""
    with serving(database_url, tmp_path_factory.mktemp("tight"),
                 MAX_EVENT_STREAMS="1") as server:
        httpx.post(f"{server.url}/api/definitions", json=approval()).raise_for_status()
        yield server


def start(base: str, definition_id: str) -> str:
    """A new instance of the definition; its id."""
    instance_id = f"{definition_id}-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{base}/api/instances",
                          json={"definition_id": definition_id, "id": instance_id})
    assert response.status_code == 201, response.text
    return instance_id


def events_url(server: ServerProcess, instance_id: str) -> str:
    return f"{server.url}/api/instances/{instance_id}/events"


def watch(server: ServerProcess, instance_id: str, **headers: str) -> Any:
    """The stream of the instance's events, open while the block runs."""
    return httpx.stream("GET", events_url(server, instance_id), headers=headers,
                        timeout=TIMEOUT)


def follow(server: ServerProcess, instance_id: str, last_id: str | None,
           *, within: float = 60) -> list[Message]:
    """What an EventSource gets from ``last_id`` on: it reconnects with Last-Event-ID
    whenever a stream ends without ``end``, and stops at ``end`` or a 204."""
    deadline, found = time.monotonic() + within, []
    while time.monotonic() < deadline:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        with watch(server, instance_id, **headers) as response:
            if response.status_code == 204:
                return found
            assert response.status_code == 200, response.read()
            for message in Reader(response.iter_lines()).rest(within=within):
                found.append(message)
                last_id = message.id or last_id
        if found and found[-1].event == "end":
            return found
    raise AssertionError(f"no end within {within}s: {found[-5:]}")


def history(server: ServerProcess, instance_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(
        f"{server.url}/api/instances/{instance_id}/history", params={"limit": 200}
    ).json()["items"]
    return items


def open_streams(server: ServerProcess) -> float:
    """The server's gauge of open event streams."""
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("workflow_event_streams "):
            return float(line.split()[1])
    raise AssertionError("no workflow_event_streams gauge")


def eventually(check: Callable[[], bool], *, within: float = 10) -> None:
    """Return once ``check()`` holds; fail if it does not within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not true within {within}s"
        time.sleep(0.02)


def level(message: Message) -> dict[str, Any] | None:
    """The progress a message tells: a progress event's, or the one an instance carries."""
    if message.event == "progress":
        found: dict[str, Any] = message.data
        return found
    if message.event == "instance":
        carried: dict[str, Any] | None = message.data["progress"]
        return carried
    return None


def progress_of(block: str, total: int) -> Callable[[Message], bool]:
    """Whether a message tells the progress of a run of ``block`` over ``total`` rows."""
    def tells(message: Message) -> bool:
        found = level(message)
        return found is not None and (found["block"], found["rows_total"]) == (block, total)
    return tells


def test_a_shipped_pipeline_streams_every_event_and_its_progress_from_another_process(
    pair: tuple[ServerProcess, ServerProcess], sandbox: SandboxProcess
) -> None:
    """leads-enriched runs on one server and is watched on the other: every history event
    in order, as GET .../history has it; the instance at each version seen; the enrichment's
    progress (from the runner's heartbeats, read from the database) rising to 15 of 15;
    then ``end``, and the stream closes by itself."""
    runs, watches = pair
    instance_id = start(runs.url, "leads-enriched")
    sandbox.configure(hold_results=True)
    try:
        with watch(watches, instance_id) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = Reader(response.iter_lines())
            first = reader.until(lambda message: message.event == "instance")
            assert (first.id, first.data["status"]) == ("1.0", "active")
            # The stream is still open: the event was sent as it happened, not buffered.
            httpx.post(f"{runs.url}/api/instances/{instance_id}/actions/run").raise_for_status()
            held = level(reader.until(progress_of("enrich_lead", LEADS)))
            assert held is not None
            assert held["rows_done"] < LEADS
            sandbox.configure(hold_results=False)
            reader.rest(within=60)
    finally:
        sandbox.configure(hold_results=False)
    events = reader.events()
    assert [message.data for message in events if message.event == "history"] == history(
        runs, instance_id)
    assert [message.id for message in events if message.event == "history"] == [
        str(seq) for seq in range(1, len(history(runs, instance_id)) + 1)]
    snapshots = [message.data for message in events if message.event == "instance"]
    assert snapshots[-1] == httpx.get(f"{runs.url}/api/instances/{instance_id}").json()
    assert [snapshot["version"] for snapshot in snapshots] == sorted(
        {snapshot["version"] for snapshot in snapshots})
    told = [(index, level(message)) for index, message in enumerate(events)
            if progress_of("enrich_lead", LEADS)(message)]
    rows = [found["rows_done"] for _, found in told if found is not None]
    assert rows == sorted(rows)
    assert rows[-1] == LEADS
    succeeded = next(index for index, message in enumerate(events)
                     if message.event == "history" and message.data["type"] == "block_succeeded"
                     and message.data["data"]["block"] == "enrich_lead")
    assert told[-1][0] == succeeded - 1  # the last level, 15 of 15, just before it settled
    assert (events[-1].event, events[-1].data["status"]) == ("end", "completed")
    assert events[-1].id == f"{snapshots[-1]['version']}.0"


def test_a_client_that_drops_mid_run_resumes_with_last_event_id_missing_nothing(
    pair: tuple[ServerProcess, ServerProcess], sandbox: SandboxProcess
) -> None:
    """ariglad-education: watched until its enrichment runs, dropped, the run let go on
    meanwhile, then followed from the last id on the other server (whose streams last a
    second, so the client reconnects several times): together the connections carry
    every history event exactly once, then ``end``; a reconnect after ``end`` is 204."""
    runs, watches = pair
    instance_id = start(runs.url, "ariglad-education")
    sandbox.configure(hold_results=True)
    try:
        with watch(watches, instance_id) as response:
            reader = Reader(response.iter_lines())
            reader.until(lambda message: message.event == "instance")
            httpx.post(f"{runs.url}/api/instances/{instance_id}/actions/run").raise_for_status()
            reader.until(progress_of("enrich_lead", ARIGLAD))
        # Dropped. What happens now is only for the next connection to tell.
        sandbox.configure(hold_results=False)
        httpx.get(f"{runs.url}/api/instances/{instance_id}", params={"wait": 30},
                  timeout=40).raise_for_status()
    finally:
        sandbox.configure(hold_results=False)
    before = reader.events()
    after = [message for message in follow(runs, instance_id, before[-1].id) if message.event]
    seqs = [message.data["seq"] for message in before + after if message.event == "history"]
    assert seqs == list(range(1, len(history(runs, instance_id)) + 1))
    assert [message.data for message in before + after if message.event == "history"] == (
        history(runs, instance_id))
    assert after[0].event == "history"  # what was missed comes first, nothing again
    assert (after[-1].event, after[-1].data["status"]) == ("end", "completed")
    with watch(runs, instance_id, **{"Last-Event-ID": str(after[-1].id)}) as response:
        assert response.status_code == 204


def test_a_stream_with_nothing_to_say_sends_keep_alives(
    pair: tuple[ServerProcess, ServerProcess]
) -> None:
    _, watches = pair
    instance_id = start(watches.url, "document-approval")
    with watch(watches, instance_id) as response:
        reader = Reader(response.iter_lines())
        reader.until(lambda message: message.event == "instance")
        reader.until(lambda message: "keep-alive" in message.comments, within=5)


def test_a_stream_ends_after_its_time_telling_the_client_to_reconnect(
    pair: tuple[ServerProcess, ServerProcess]
) -> None:
    runs, _ = pair
    instance_id = start(runs.url, "document-approval")
    with watch(runs, instance_id) as response:
        messages = Reader(response.iter_lines()).rest(within=10)
    assert [message.event for message in messages if message.event] == ["history", "instance"]
    assert messages[-1].retry == 1000
    assert any("reconnect with Last-Event-ID" in comment for comment in messages[-1].comments)
    assert 'workflow_event_streams_ended_total{reason="expired"}' in httpx.get(
        f"{runs.url}/metrics").text


def test_each_event_is_sent_the_moment_it_happens(tight: ServerProcess) -> None:
    """A fire on an instance being watched reaches the open stream at once."""
    instance_id = start(tight.url, "approval")
    with watch(tight, instance_id) as response:
        reader = Reader(response.iter_lines())
        reader.until(lambda message: message.event == "instance")
        httpx.post(f"{tight.url}/api/instances/{instance_id}/actions/submit").raise_for_status()
        fired = reader.until(lambda message: message.event == "history", within=5)
        assert (fired.id, fired.data["action_id"]) == ("2", "submit")
        snapshot = reader.until(lambda message: message.event == "instance", within=5)
        assert (snapshot.id, snapshot.data["current_state"]) == ("2.0", "review")
    eventually(lambda: open_streams(tight) == 0)


def test_past_the_limit_a_stream_is_refused_with_503(tight: ServerProcess) -> None:
    instance_id = start(tight.url, "approval")
    eventually(lambda: open_streams(tight) == 0)
    with watch(tight, instance_id) as response:
        # Held by a name: a reader dropped meanwhile would close its connection.
        reader = Reader(response.iter_lines())
        reader.until(lambda message: message.event == "instance")
        refused = httpx.get(events_url(tight, instance_id))
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["code"] == "too_many_streams"
        # Other requests are answered meanwhile.
        assert httpx.get(f"{tight.url}/api/instances/{instance_id}").status_code == 200


def test_a_client_that_drops_frees_its_slot_at_once(tight: ServerProcess) -> None:
    """The socket closed under a stream that has nothing to send (its next keep-alive is
    15 s away): the server sees it within a poll, ends the stream and frees the slot."""
    instance_id = start(tight.url, "approval")
    eventually(lambda: open_streams(tight) == 0)
    host, port = tight.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(f"GET /api/instances/{instance_id}/events HTTP/1.1\r\n"
                       f"Host: {host}\r\n\r\n".encode())
        received = b""
        while b"event: instance" not in received:
            chunk = client.recv(65536)
            assert chunk, received
            received += chunk
        assert open_streams(tight) == 1
    dropped = time.monotonic()
    eventually(lambda: open_streams(tight) == 0, within=5)
    assert time.monotonic() - dropped < 5
    with watch(tight, instance_id) as response:
        assert response.status_code == 200
    eventually(lambda: '"reason": "disconnected"' in tight.output())


def test_a_running_enrichment_shows_its_table_filling_in_from_another_process(
    pair: tuple[ServerProcess, ServerProcess], sandbox: SandboxProcess
) -> None:
    """leads-enriched runs once on the sample; then again, with an input file of those rows
    and three new ones, while the sandbox holds every new answer. The other server shows
    the run as the store has it: the 15 answered before are in (reused, not paid again),
    the 3 new ones sent and waiting, their columns still empty; then the run ends."""
    runs, watches = pair
    first = start(runs.url, "leads-enriched")
    httpx.post(f"{runs.url}/api/instances/{first}/actions/run",
               params={"wait": 50}, timeout=60).raise_for_status()
    answered = httpx.get(f"{runs.url}/api/instances/{first}/data", params={"limit": 100}).json()
    lines = (ROOT / "data" / "leads.csv").read_text().splitlines()
    new = [f"New Person {n},Ariglad Inc,,\"Austin, TX\"," for n in range(3)]
    httpx.post(f"{runs.url}/api/files", files={"file": (
        "more-leads.csv", "\n".join([*lines, *new]) + "\n", "text/csv")},
        params={"overwrite": "true"}).raise_for_status()

    second = f"more-{uuid.uuid4().hex[:8]}"
    httpx.post(f"{runs.url}/api/instances", json={
        "definition_id": "leads-enriched", "id": second,
        "inputs": {"reading": {"file": "more-leads.csv"}}}).raise_for_status()
    sandbox.configure(hold_results=True)
    try:
        httpx.post(f"{runs.url}/api/instances/{second}/actions/run").raise_for_status()

        def waiting_on_the_new_rows() -> bool:
            progress = httpx.get(f"{watches.url}/api/instances/{second}").json()["progress"]
            return progress is not None and progress["block"] == "enrich_lead" and (
                progress["rows_done"], progress["rows_sent"]) == (LEADS, LEADS + 3)
        eventually(waiting_on_the_new_rows, within=30)
        so_far = httpx.get(f"{watches.url}/api/instances/{second}/progress/data",
                           params={"limit": 100}).json()
    finally:
        sandbox.configure(hold_results=False)
    assert so_far["total_rows"] == LEADS + 3
    assert so_far["columns"] == answered["columns"]
    by_name = {row["name"]: row for row in answered["rows"]}
    for row in so_far["rows"][:LEADS]:
        assert row["title"] == by_name[row["name"]]["title"] is not None
    assert [row["title"] for row in so_far["rows"][LEADS:]] == [None] * 3
    done = httpx.get(f"{runs.url}/api/instances/{second}", params={"wait": 50}, timeout=60).json()
    assert done["status"] == "completed"
    ended = httpx.get(f"{watches.url}/api/instances/{second}/progress/data",
                      params={"limit": 100}).json()
    assert ended == httpx.get(f"{watches.url}/api/instances/{second}/data",
                              params={"limit": 100}).json()
