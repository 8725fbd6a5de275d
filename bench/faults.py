"""Kill the server at random moments under load, and check nothing acknowledged is lost:
``python bench/faults.py [--kills 10]``.

Each cycle starts the server on the same SQLite file (``SQLITE_SYNCHRONOUS`` as
configured, FULL by default), drives the mixed load of ``bench/load.py`` at it, and
sends the whole server SIGKILL at a random moment. Every start and fire the server
acknowledged (answered 201/200) is remembered. At the end the server is started once
more and every acknowledgement is checked against what it serves:

- **lost transitions**: an acknowledged fire whose event (seq = the version it answered,
  same action) is not in the instance's history, or an acknowledged start whose
  instance is gone; must be 0;
- **inconsistent instances**: an instance whose history is not gapless from 1 to its
  version, or does not replay (each step leaving from where the previous one arrived) to
  its current state; must be 0.

Bounded: only 127.0.0.1, each cycle a few seconds, the script stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from load import LOOP, run_load
from workflow_engine.testing import running_server


def get(port: int, path: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    return response.status, body


def history(port: int, instance_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = ""
    while True:
        _, page = get(port, f"/api/instances/{instance_id}/history?limit=200{cursor}")
        events += page["items"]
        if page["next_cursor"] is None:
            return events
        cursor = f"&cursor={page['next_cursor']}"


def all_instances(port: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        _, page = get(port, f"/api/instances?limit=200{cursor}")
        found += page["items"]
        if page["next_cursor"] is None:
            return found
        cursor = f"&cursor={page['next_cursor']}"


def verify(port: int, acknowledged: list[tuple[str, int, str]], started: list[str]
           ) -> tuple[int, int, int]:
    """(lost transitions, lost starts, inconsistent instances)."""
    histories: dict[str, list[dict[str, Any]]] = {}
    lost = 0
    for instance_id, version, action in acknowledged:
        events = histories.setdefault(instance_id, history(port, instance_id))
        if len(events) < version or events[version - 1]["action_id"] != action:
            lost += 1
    lost_starts = sum(1 for i in started if get(port, f"/api/instances/{i}")[0] != 200)
    inconsistent = 0
    for instance in all_instances(port):
        events = histories.get(instance["id"]) or history(port, instance["id"])
        gapless = [e["seq"] for e in events] == list(range(1, instance["version"] + 1))
        state = None
        replays = True
        for event in events:
            if event["type"] != "instance_started" and event["from_state"] != state:
                replays = False
            state = event["to_state"]
        if not (gapless and replays and state == instance["current_state"]):
            inconsistent += 1
    return lost, lost_starts, inconsistent


def _drive(outcome: dict[str, Any], port: int, clients: int, seconds: float, seed: int
           ) -> None:
    outcome.update(run_load(port, clients, seconds, seed=seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    chance = random.Random(args.seed)
    acknowledged: list[tuple[str, int, str]] = []
    started: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "wf.db"
        print(f"{'cycle':>5}{'killed after s':>16}{'acked fires':>13}{'acked starts':>14}")
        for cycle in range(1, args.kills + 1):
            with running_server(db) as server:
                port = int(server.url.rsplit(":", 1)[1])
                if cycle == 1:
                    connection = http.client.HTTPConnection("127.0.0.1", port)
                    connection.request("POST", "/api/definitions", body=json.dumps(LOOP),
                                       headers={"Content-Type": "application/json"})
                    assert connection.getresponse().status == 201
                kill_after = chance.uniform(0.5, 3.0)
                outcome: dict[str, Any] = {}
                load = threading.Thread(target=_drive, args=(
                    outcome, port, args.clients, kill_after + 0.7, cycle * 100))
                load.start()
                time.sleep(kill_after)
                server.stop(signal.SIGKILL)
                load.join()
            acknowledged += outcome["acknowledged"]
            started += outcome["started"]
            print(f"{cycle:>5}{kill_after:>16.2f}{len(outcome['acknowledged']):>13,}"
                  f"{len(outcome['started']):>14,}")
        with running_server(db) as server:
            port = int(server.url.rsplit(":", 1)[1])
            lost, lost_starts, inconsistent = verify(port, acknowledged, started)
            instances = len(all_instances(port))
    print()
    print(f"kills: {args.kills}; acknowledged fires: {len(acknowledged):,}; acknowledged "
          f"starts: {len(started):,}; instances after the last restart: {instances:,}")
    print(f"lost acknowledged transitions: {lost}; lost acknowledged starts: {lost_starts}; "
          f"instances inconsistent with their history: {inconsistent}")
    sys.exit(1 if lost or lost_starts or inconsistent else 0)


if __name__ == "__main__":
    main()
