"""How fast can the engine fire actions? ``python bench/fires.py [--quick]``.

What is measured
----------------
1. **Durable fires over HTTP.** The real server, started the way ``run_server.py`` starts
   it (``workflow_engine.testing.running_server``: ``python -m workflow_engine.server``,
   waitress, ``--server-threads`` threads, no access log) on a fresh
   temporary SQLite file. The bench posts a definition that loops forever (states ``on``
   and ``off``; actions ``toggle_off`` to off and ``toggle_on`` to on, each from either
   state, so that a request wrk cut off never leaves a connection's next fire a 409),
   starts one instance per connection, and each connection alternates the two actions on
   its own instance: every request is a real transition committed with its history row.
   Every answer must be 200 (wrk's Lua counts the others by status; socket errors count
   too), and after each cell the bench reads every instance back and checks that the
   versions it gained are exactly the 200s its connection got, plus at most one request
   per wrk run that wrk cut off at its deadline (unanswered, maybe committed): no lost or
   phantom fires. This runs twice, with the default ``SQLITE_SYNCHRONOUS=FULL`` (fsync of
   the WAL on every commit) and with ``NORMAL`` (no fsync at commit; durable against a
   process crash only; ``--no-normal`` skips it).
2. **The ceiling of the stack.** ``bench/noop_app.py``: a Flask app whose route of the
   same shape (``POST /api/instances/<id>/actions/<action>``) returns a small JSON, served
   by ``workflow_engine.server.main`` itself, so the front's options are exactly the
   engine's. The ratios fires/s / no-op req/s and p50 fire / p50 no-op say how much of
   the budget the engine spends above Flask + the HTTP front + loopback.
   **The previous front, in the same run.** ``bench/gunicorn_front.py`` serves the engine
   (FULL) and the no-op app with gunicorn, 1 worker, ``gthread``, as the server was served
   before waitress. Each engine is compared with the no-op of its own front and with the
   best no-op of either front (the ceiling of the stack, whichever front gives it).
3. **In-process costs**, no HTTP: one ``core.fire`` (pure, timeit), building and dumping
   the response model, and one ``WorkflowService.fire`` (a committed SQLite transaction
   on a temporary file) with ``synchronous`` FULL and NORMAL.

Method
------
Load generator: `wrk <https://github.com/wg/wrk>`_ (C, Debian package ``wrk``; ``make
bench`` installs it) through ``bench/wrk_load.py``, shared with
``bench/cluster_fires.py``: ``wrk -t N -c N``, one persistent HTTP/1.1 keep-alive
connection per wrk thread, closed loop (a connection sends its next request as soon as
the previous answer is read; no think time). Being C, wrk takes a small share of the 2
cores it shares with the server, which a Python client did not.

All the servers run at once (idle ones cost nothing) and the cells are interleaved: for
each run, for each connection count N, for each server, one cell. A cell starts N fresh
instances, runs wrk for ``--warmup`` seconds, then again for ``--duration`` seconds
(whole seconds: wrk takes no fractions), which is the measurement: throughput is the
answers / wrk's own measure of the run; latency is wrk's (request written -> answer
read, every request of the run, from its histogram: mean, p50/p95/p99). Each table cell
is the median over ``--runs`` runs (req/s also shows the min-max range over runs).

CPU over the measured wrk run, 100% = one core: ``srv`` is the process that serves
(waitress's server, gunicorn's worker), ``wrk`` is wrk (user + system), ``box`` is the
whole machine busy (all cores) and ``other`` is box minus the two (kernel softirq,
gunicorn's master, the bench itself and any foreign load: a large ``other`` means the
cell was disturbed). The load average is printed at the start and the end.

Everything binds to 127.0.0.1, every loop is bounded in time, and the servers are
stopped when the script ends. The default run takes about 6 minutes (``--quick``: about
1.5 minutes).

``--profile-seconds S`` (off by default) afterwards samples the FULL server's worker with
py-spy (if installed) under N=8 load, twice for S seconds: the GIL holder (what the
worker's one usable core does) and the wall time of the request threads (what a fire
waits for), and prints the top functions.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wrk_load

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
DEFINITION_ID = "bench-toggle"
DEFINITION: dict[str, Any] = {
    "id": DEFINITION_ID,
    "name": "Benchmark toggle",
    "description": "Two states and two actions that loop forever: alternated, every fire "
                   "is a change.",
    "states": [
        {"id": "on", "name": "On", "is_initial": True},
        {"id": "off", "name": "Off"},
    ],
    # Either action fires from either state: a request wrk cut off at the end of its run
    # (maybe committed) never makes the next run's first fire a 409.
    "actions": [
        {"id": "toggle_off", "name": "Toggle off", "from_states": ["on", "off"],
         "to_state": "off"},
        {"id": "toggle_on", "name": "Toggle on", "from_states": ["on", "off"],
         "to_state": "on"},
    ],
}
ACTIONS = ("toggle_off", "toggle_on")  # an instance starts in "on"; wrk_load.LUA's order
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- measuring a cell ---------------------------------------------------------------------


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _box_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores summed, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@dataclass
class Target:
    """A server under test."""

    name: str
    port: int
    master_pid: int
    durable: bool  # fires that the bench can check by reading the instances back
    front: str  # "waitress" or "gunicorn"
    _worker: int | None = None

    @property
    def worker_pid(self) -> int:
        """The process that serves: gunicorn's worker (the master's only child), or the
        waitress server itself."""
        if self.front == "waitress":
            return self.master_pid
        if self._worker is None or not Path(f"/proc/{self._worker}").exists():
            children = _children(self.master_pid)
            if len(children) != 1:
                raise RuntimeError(f"{self.name}: expected 1 gunicorn worker, got {children}")
            self._worker = children[0]
        return self._worker


@dataclass
class Cell:
    """One measurement: a target, a connection count, one run."""

    rps: float
    mean: float
    p50: float
    p95: float
    p99: float
    errors: int
    server_cpu: float
    wrk_cpu: float
    box_cpu: float

    @property
    def other_cpu(self) -> float:
        """Busy CPU that is neither the worker nor wrk: kernel, gunicorn's master, the
        bench itself, and anything else running on the machine."""
        return self.box_cpu - self.server_cpu - self.wrk_cpu


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def _start_instances(target: Target, ids: list[str]) -> None:
    if not target.durable:
        return
    for iid in ids:
        status, body = _request(target.port, "POST", "/api/instances",
                                {"definitionId": DEFINITION_ID, "id": iid})
        if status != 201:
            raise RuntimeError(f"{target.name}: starting {iid} answered {status}: {body}")


def _check_instances(target: Target, ids: list[str], runs: list[wrk_load.Result]) -> int:
    """Instances whose versions gained are not the 200s their connection got (give or
    take the request per wrk run that wrk cut off); 0 for the no-op."""
    if not target.durable:
        return 0
    gained = {}
    for number, iid in enumerate(ids):
        status, body = _request(target.port, "GET", f"/api/instances/{iid}")
        if status != 200:
            raise RuntimeError(f"{target.name}: reading {iid} answered {status}: {body}")
        gained[number] = body["version"] - 1  # starting made version 1
    problems = wrk_load.check_versions(gained, runs)
    for problem in problems:
        print(f"  ! {target.name} ({ids[0]}...): {problem}", file=sys.stderr)
    return len(problems)


def measure(
    target: Target,
    clients: int,
    args: argparse.Namespace,
    tag: str,
    on_window_start: Callable[[], None] | None = None,
) -> Cell:
    """Drive ``target`` with wrk, ``clients`` connections on fresh instances; one cell."""
    prefix = f"{tag}-"
    ids = [f"{prefix}{k}" for k in range(clients)]
    _start_instances(target, ids)
    url = f"http://{HOST}:{target.port}"
    warm = wrk_load.run([url], clients, args.warmup, args.script, prefix)
    time.sleep(0.1)  # let a request wrk cut off finish before its connection's next one
    worker_pid = target.worker_pid
    srv0, busy0 = _proc_cpu_seconds(worker_pid), _box_busy_seconds()
    result = wrk_load.run([url], clients, args.duration, args.script, prefix,
                          started=on_window_start)
    srv1, busy1 = _proc_cpu_seconds(worker_pid), _box_busy_seconds()
    wrong = _check_instances(target, ids, [warm, result])
    for run, name in ((warm, "warm-up"), (result, "measured")):
        if run.failed:
            print(f"  ! {target.name} N={clients} {name}: {run.non_200} non-200 answers "
                  f"{dict(run.statuses)} (first 20 per connection), {run.socket_errors} "
                  "socket errors", file=sys.stderr)
    wall = result.wall
    return Cell(
        rps=result.rate,
        mean=result.mean_ms,
        p50=result.p50_ms,
        p95=result.p95_ms,
        p99=result.p99_ms,
        errors=warm.failed + result.failed + wrong,
        server_cpu=(srv1 - srv0) / wall * 100,
        wrk_cpu=result.wrk_cpu / wall * 100,
        box_cpu=(busy1 - busy0) / wall * 100,
    )


# -- the servers --------------------------------------------------------------------------


def _wait_up(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"no-op server exited:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no-op server did not answer within {timeout}s")


@contextlib.contextmanager
def _process(command: list[str], log_path: Path, workdir: Path,
             env: dict[str, str] | None = None) -> Iterator[tuple[int, int]]:
    """A server command on a free port (appended as ``--port``), stopped (its whole process
    group) at the end; yields (port, pid)."""
    from workflow_engine.testing import ServerProcess, free_port

    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)], stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir,
            env={**os.environ, **(env or {})},
        )
        server = ServerProcess(f"http://{HOST}:{port}", process, log)
        try:
            _wait_up(port, process, log_path, 30)
            yield port, process.pid
        finally:
            server.stop()


@contextlib.contextmanager
def noop_server(front: str, threads: int, workdir: Path) -> Iterator[Target]:
    """``bench/noop_app.py`` behind ``front``."""
    script = ["noop_app.py"] if front == "waitress" else ["gunicorn_front.py", "--noop"]
    command = [sys.executable, str(BENCH_DIR / script[0]), *script[1:],
               "--threads", str(threads)]
    with _process(command, workdir / f"noop-{front}.log", workdir) as (port, pid):
        yield Target(f"no-op Flask, {front}", port, pid, durable=False, front=front)


def _post_definition(port: int) -> None:
    status, body = _request(port, "POST", "/api/definitions", DEFINITION)
    if status not in (200, 201):
        raise RuntimeError(f"posting the definition answered {status}: {body}")


@contextlib.contextmanager
def engine_server(name: str, synchronous: str, threads: int, workdir: Path) -> Iterator[Target]:
    """The real server on a fresh SQLite file, with the bench's definition posted."""
    from workflow_engine.testing import running_server

    db = workdir / f"engine-{synchronous.lower()}.db"
    with running_server(db, threads=threads, env={"SQLITE_SYNCHRONOUS": synchronous}) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        _post_definition(port)
        yield Target(name, port, srv.process.pid, durable=True, front="waitress")


@contextlib.contextmanager
def gunicorn_engine(name: str, threads: int, workdir: Path) -> Iterator[Target]:
    """The engine (FULL) behind the previous front, on a fresh SQLite file."""
    db = workdir / "engine-gunicorn.db"
    env = {"SQLITE_SYNCHRONOUS": "FULL", "FILES_DIR": str(workdir / "files-g"),
           "OUTPUTS_DIR": str(workdir / "outputs-g"),
           "SNAPSHOTS_DIR": str(workdir / "snapshots-g")}
    command = [sys.executable, str(BENCH_DIR / "gunicorn_front.py"), "--db", str(db),
               "--threads", str(threads)]
    with _process(command, workdir / "engine-gunicorn.log", workdir, env) as (port, pid):
        _post_definition(port)
        yield Target(name, port, pid, durable=True, front="gunicorn")


# -- in-process costs ---------------------------------------------------------------------


def _timeit_us(stmt: str, namespace: dict[str, Any], repeat: int) -> float:
    timer = timeit.Timer(stmt, globals=namespace)
    number, _ = timer.autorange()
    return statistics.median(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def in_process(args: argparse.Namespace, workdir: Path) -> list[tuple[str, str]]:
    """(label, result) rows: the pure core, the response model, the service layer."""
    from workflow_engine import core
    from workflow_engine.api.schemas import InstanceOut
    from workflow_engine.service import WorkflowService
    from workflow_engine.store import Store, make_engine

    rows = []
    workflow = core.Workflow(core.validate_definition(DEFINITION).spec, version=1)
    instance = core.start(workflow, "i", now=0).instance
    changed = core.fire(workflow, instance, "toggle_off", now=1).instance
    namespace = {"core": core, "wf": workflow, "inst": instance, "changed": changed,
                 "InstanceOut": InstanceOut}
    repeat = 3 if args.quick else 7
    fire_us = _timeit_us("core.fire(wf, inst, 'toggle_off', now=1)",
                         namespace, repeat)
    rows.append(("core.fire (pure transition)", f"{fire_us:8.2f} µs"))
    dump_us = _timeit_us("InstanceOut.of(changed, wf).model_dump_json()",
                         namespace, repeat)
    rows.append(("InstanceOut.of(...).model_dump_json (response body)", f"{dump_us:8.2f} µs"))

    batch_seconds = 0.3 if args.quick else 1.0
    batches = 3 if args.quick else 5
    for synchronous in ("FULL", "NORMAL"):
        store = Store(make_engine(f"sqlite:///{workdir / f'svc-{synchronous}.db'}",
                                  synchronous=synchronous))
        store.create_schema()
        service = WorkflowService(store)
        service.create_definition(DEFINITION)
        service.start_instance(DEFINITION_ID, instance_id="svc")
        for step in range(50):  # warm the pool, the caches and the file
            service.fire("svc", ACTIONS[step & 1])
        step = 50
        means: list[float] = []
        singles: list[float] = []
        for _ in range(batches):
            count = 0
            begin = time.perf_counter()
            deadline = begin + batch_seconds
            while True:
                before = time.perf_counter()
                if before >= deadline:
                    break
                service.fire("svc", ACTIONS[step & 1])
                singles.append(time.perf_counter() - before)
                step += 1
                count += 1
            means.append((time.perf_counter() - begin) / count)
        store.dispose()
        singles.sort()
        rows.append((
            f"WorkflowService.fire, SQLite synchronous={synchronous}",
            f"{statistics.median(means) * 1e6:8.1f} µs  (per call p50 "
            f"{_percentile(singles, 0.5) * 1e6:.0f}, p99 {_percentile(singles, 0.99) * 1e6:.0f}"
            f" µs; {1 / statistics.median(means):,.0f} fires/s on one thread)",
        ))
    return rows


# -- profiling ----------------------------------------------------------------------------


def _category(frame: str) -> str:
    for needle, name in (
        ("sqlalchemy", "SQLAlchemy"), ("sqlite", "sqlite3 (driver/C)"),
        ("workflow_engine", "workflow_engine"), ("pydantic", "pydantic"),
        ("werkzeug", "werkzeug"), ("flask_cors", "flask-cors"), ("flask", "flask"),
        ("gunicorn", "gunicorn"), ("json", "json"), ("threading", "threading"),
        ("selectors", "selectors"), ("socket", "socket"), ("concurrent", "concurrent"),
    ):
        if needle in frame:
            return name
    return "other"


def _wait_kind(stack: str, leaf: str) -> str:
    if "sqlite3InvokeBusyHandler" in stack:
        return "sleeping in SQLite's busy handler (waiting for the write lock)"
    if "fsync" in leaf or "fdatasync" in leaf:
        return "fsync/fdatasync (commit)"
    if "take_gil" in stack:
        return "waiting for the GIL"
    if "libsqlite3" in leaf or "sqlite3" in leaf:
        return "running SQLite C code"
    if "libc" in leaf or "libpython" in leaf or "0x" in leaf:
        return "other C / syscalls"
    return "running Python"


def _spy(target: Target, args: argparse.Namespace, workdir: Path, name: str,
         options: list[str]) -> tuple[Cell, list[tuple[str, int]]] | None:
    """One py-spy recording of the worker under N=8 load: the cell and (stack, count)s."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        print("\n(py-spy not found: profile skipped)")
        return None
    seconds = args.profile_seconds
    raw = workdir / f"profile-{name}.txt"
    command = [pyspy, "record", "--pid", str(target.worker_pid), "--duration", str(seconds),
               "--format", "raw", "--output", str(raw), *options]
    spies: list[subprocess.Popen[bytes]] = []

    def start_spy() -> None:
        spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE))

    load = argparse.Namespace(**{**vars(args), "duration": seconds + 1})
    cell = measure(target, 8, load, f"prof-{name}", on_window_start=start_spy)
    if not spies:
        return None
    spy = spies[0]
    try:
        _, err = spy.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=10)
    if not raw.exists():
        print(f"\n(py-spy {name} failed: {err.decode(errors='replace').strip()[-400:]})")
        return None
    stacks = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack, int(count)))
    return cell, stacks


def profile(target: Target, args: argparse.Namespace, workdir: Path) -> None:
    """py-spy the worker under N=8 load, twice; print where the time goes.

    1. ``--gil --nonblocking``: only the thread holding the GIL, without pausing the
       process: what the one core the worker can use is spent on.
    2. ``--idle --native`` (blocking: it pauses the worker at each sample, so the load is
       lower while it runs): every thread, idle or not, with C frames; restricted to the
       threads inside the fire route, it says where a fire's wall time goes.
    """
    top = args.profile_top
    recorded = _spy(target, args, workdir, "gil", ["--gil", "--nonblocking", "--rate", "250"])
    if recorded is not None:
        cell, stacks = recorded
        own: Counter[str] = Counter()
        total: Counter[str] = Counter()
        categories: Counter[str] = Counter()
        for stack, count in stacks:
            frames = [_strip_line(frame) for frame in stack.split(";")]
            own[frames[-1]] += count
            categories[_category(frames[-1])] += count
            for frame in set(frames):
                total[frame] += count
        samples = sum(own.values()) or 1
        print(f"\nProfile 1: the GIL holder in the FULL server's worker under N=8 "
              f"(py-spy --gil --nonblocking, {args.profile_seconds} s at 250 Hz, "
              f"{samples} samples; {cell.rps:,.0f} fires/s, worker CPU "
              f"{cell.server_cpu:.0f}% meanwhile)")
        print("\n  self time by package (leaf frame)")
        for name, count in categories.most_common():
            print(f"  {count / samples:6.1%}  {name}")
        print("\n  top functions by self time")
        for frame, count in own.most_common(top):
            print(f"  {count / samples:6.1%}  {frame}")
        print("\n  top functions by inclusive time (below the gunicorn thread pool)")
        shown = 0
        for frame, count in total.most_common():
            if any(skip in frame for skip in ("threading.py", "concurrent/", "runpy",
                                              "arbiter.py", "app/base.py", "server.py")):
                continue
            print(f"  {count / samples:6.1%}  {frame}")
            shown += 1
            if shown >= top:
                break

    recorded = _spy(target, args, workdir, "wall", ["--idle", "--native", "--rate", "100"])
    if recorded is not None:
        cell, stacks = recorded
        kinds: Counter[str] = Counter()
        leaves: Counter[str] = Counter()
        for stack, count in stacks:
            if "fire_action" not in stack:
                continue
            leaf = _strip_line(stack.rsplit(";", 1)[-1])
            kinds[_wait_kind(stack, leaf)] += count
            leaves[leaf] += count
        samples = sum(kinds.values()) or 1
        print(f"\nProfile 2: wall time of the threads inside the fire route, same load "
              f"(py-spy --idle --native, blocking, {args.profile_seconds} s at 100 Hz; "
              f"{samples} thread samples; {cell.rps:,.0f} fires/s while sampled: the "
              "sampler's pauses slow the worker)")
        for kind, count in kinds.most_common():
            print(f"  {count / samples:6.1%}  {kind}")
        print("\n  top leaf frames")
        for leaf, count in leaves.most_common(10):
            print(f"  {count / samples:6.1%}  {leaf}")


def _strip_line(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file.py)": one entry per function.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="short run: 1 run of 2 s per cell, short in-process timings")
    parser.add_argument("--duration", type=int,
                        help="whole seconds measured per cell (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="whole seconds of load before each cell's run (default 1)")
    parser.add_argument("--runs", type=int, help="runs per cell, median reported (default 3)")
    parser.add_argument("--clients", default="1,8,32",
                        help="connection counts (default 1,8,32)")
    parser.add_argument("--server-threads", type=int, default=8,
                        help="request threads for every server (default 8, the server's)")
    parser.add_argument("--no-normal", action="store_true",
                        help="skip the SQLITE_SYNCHRONOUS=NORMAL server")
    parser.add_argument("--no-gunicorn", action="store_true",
                        help="skip the previous front (gunicorn gthread)")
    parser.add_argument("--profile-seconds", type=int, default=0,
                        help="py-spy the FULL server under N=8, 2 x this long (default off)")
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args(argv)
    args.duration = args.duration or (2 if args.quick else 5)
    args.runs = args.runs or (1 if args.quick else 3)
    args.client_counts = [int(n) for n in args.clients.split(",") if n.strip()]
    if (not 1 <= args.duration <= 60 or not 1 <= args.warmup <= 60 or args.runs > 20
            or args.profile_seconds > 60
            or any(n < 1 or n > 256 for n in args.client_counts)):
        parser.error("bounded: 1 <= duration, warmup <= 60, runs <= 20, "
                     "1 <= clients <= 256, profile <= 60")
    return args


def _machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import sqlite3
    from importlib.metadata import version

    wrk = subprocess.run([wrk_load.require_wrk(), "-v"], capture_output=True, text=True,
                         timeout=10, check=False).stdout.split()
    return (f"{os.cpu_count()} CPU ({model}), Linux {platform.release()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"waitress {version('waitress')}, gunicorn {version('gunicorn')}, "
            f"wrk {wrk[1] if len(wrk) > 1 else '?'}")


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _code_version() -> str:
    """The git commit of the code under test, and whether src/ differs from it."""
    root = BENCH_DIR.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{commit or 'unknown'}{' + uncommitted changes in src/' if dirty else ''}"


def _med(cells: list[Cell], attr: str) -> float:
    return statistics.median(getattr(cell, attr) for cell in cells)


def report_http(results: dict[tuple[str, int], list[Cell]], targets: list[Target],
                args: argparse.Namespace) -> None:
    """The HTTP tables."""
    print(f"\nHTTP, wrk, closed loop, N connections, {args.runs} run(s) x {args.duration} s "
          f"per cell (+{args.warmup} s warm-up), {args.server_threads} request threads; "
          "medians over runs")
    header = (f"{'server':<24} {'N':>3} {'req/s':>8} {'(min-max)':>13} {'mean ms':>7} "
              f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} {'srv CPU':>7} "
              f"{'wrk CPU':>7} {'other':>5} {'box':>5}")
    print(header)
    print("-" * len(header))
    for target in targets:
        name = target.name
        for n in args.client_counts:
            cells = results[(name, n)]
            rps = [cell.rps for cell in cells]
            spread = f"({min(rps):,.0f}-{max(rps):,.0f})"
            print(f"{name:<24} {n:>3} {_med(cells, 'rps'):>8,.0f} {spread:>13} "
                  f"{_med(cells, 'mean'):>7.2f} "
                  f"{_med(cells, 'p50'):>7.2f} {_med(cells, 'p95'):>7.2f} "
                  f"{_med(cells, 'p99'):>7.2f} {sum(c.errors for c in cells):>6} "
                  f"{_med(cells, 'server_cpu'):>6.0f}% {_med(cells, 'wrk_cpu'):>6.0f}% "
                  f"{_med(cells, 'other_cpu'):>4.0f}% {_med(cells, 'box_cpu'):>4.0f}%")
    ceilings = {target.front: target.name for target in targets if not target.durable}
    print("\nEngine vs. the no-op ceiling (same load generator): against the no-op of its own "
          "front, and against the best no-op of any front")
    header = (f"{'server':<24} {'N':>3} {'own front: fires/s / no-op':>27} "
              f"{'p50 / no-op p50':>16} {'best no-op: fires/s / req/s':>28}")
    print(header)
    print("-" * len(header))
    for target in targets:
        if not target.durable:
            continue
        for n in args.client_counts:
            fires, own = results[(target.name, n)], results[(ceilings[target.front], n)]
            best = max(_med(results[(name, n)], "rps") for name in ceilings.values())
            print(f"{target.name:<24} {n:>3} {_med(fires, 'rps') / _med(own, 'rps'):>27.2f} "
                  f"{_med(fires, 'p50') / _med(own, 'p50'):>16.2f} "
                  f"{_med(fires, 'rps') / best:>28.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the tables; non-zero exit if any request failed."""
    args = parse_args(argv)
    began = time.monotonic()
    print("bench/fires.py", " ".join(argv if argv is not None else sys.argv[1:]))
    print("machine:", _machine())
    print("code:", _code_version())
    print("load generator: wrk, one keep-alive connection per thread, closed loop, on the "
          "same machine as the servers")
    print("at start:", _load())

    results: dict[tuple[str, int], list[Cell]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fires-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        args.script = stack.enter_context(wrk_load.lua_script())
        threads = args.server_threads
        targets = [stack.enter_context(engine_server("fires, FULL, waitress", "FULL", threads,
                                                     workdir))]
        if not args.no_normal:
            targets.append(stack.enter_context(
                engine_server("fires, NORMAL, waitress", "NORMAL", threads, workdir)))
        if not args.no_gunicorn:
            targets.append(stack.enter_context(
                gunicorn_engine("fires, FULL, gunicorn", threads, workdir)))
        targets.append(stack.enter_context(noop_server("waitress", threads, workdir)))
        if not args.no_gunicorn:
            targets.append(stack.enter_context(noop_server("gunicorn", threads, workdir)))
        for run in range(args.runs):
            for n in args.client_counts:
                for index, target in enumerate(targets):
                    cell = measure(target, n, args, f"r{run}-n{n}-t{index}")
                    results.setdefault((target.name, n), []).append(cell)
                    print(f"  run {run + 1}/{args.runs} N={n:<3} {target.name:<24} "
                          f"{cell.rps:8,.0f} req/s  p50 {cell.p50:6.2f} ms  "
                          f"p99 {cell.p99:6.2f} ms  errors {cell.errors}  "
                          f"srv {cell.server_cpu:3.0f}% wrk {cell.wrk_cpu:3.0f}% "
                          f"other {cell.other_cpu:3.0f}%", flush=True)
        if args.profile_seconds > 0:
            profile(targets[0], args, workdir)
        stack.close()  # stop the servers before timing in process

        report_http(results, targets, args)
        print("\nIn process (no HTTP), median of repeats")
        for label, value in in_process(args, workdir):
            print(f"  {label:<48} {value}")
    errors = sum(cell.errors for cells in results.values() for cell in cells)
    print(f"\ntotal errors: {errors}; wall time {time.monotonic() - began:.0f} s; at end: "
          f"{_load()}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
