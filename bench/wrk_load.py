"""The load generator of the HTTP benchmarks: `wrk <https://github.com/wg/wrk>`_ and its Lua.

wrk is C (Debian package ``wrk``; ``make bench`` installs it), so it takes a small share
of the cores it measures, unlike a Python client. :func:`run` starts ``wrk -t C -c C``:
closed loop, one keep-alive connection per wrk thread, so each connection owns one
instance, ``prefix + str(offset + thread number)``, and alternates
``POST /api/instances/<id>/actions/toggle_off`` and ``.../toggle_on`` on it (no think
time). wrk's Lua counts, per thread (= per connection = per instance), the answers that
were 200 and the others by status, and its ``done`` prints one ``RESULT`` line (requests,
duration, socket errors, latency mean and p50/p95/p99 from wrk's histogram, request sent
-> response read) and one ``THREAD`` line per connection; :func:`run` parses them.

Clients spread over several URLs (several servers) are one wrk process per URL, side by
side; their figures are summed (requests, counts) or the worst taken (duration,
latencies: an approximation of the pooled percentiles).

wrk stops at its deadline with one request in flight per connection, unanswered: that
request may still commit on the server, so an instance's version may exceed its 200s by
one per wrk run (:func:`check_versions` allows that, no more).
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LUA", "Result", "check_versions", "lua_script", "require_wrk", "run"]

# One connection per thread; thread ``number`` fires on instance ``args[1] .. (args[2] +
# number)``. ``done`` runs once, in wrk's main thread, after every thread has stopped.
LUA = """
local threads, count = {}, 0
function setup(thread)
  thread:set("number", count)
  table.insert(threads, thread)
  count = count + 1
end
function init(args)
  local id = args[1] .. (tonumber(args[2]) + number)
  paths = {"/api/instances/" .. id .. "/actions/toggle_off",
           "/api/instances/" .. id .. "/actions/toggle_on"}
  step, ok, failed, statuses = 0, 0, 0, ""
end
function request()
  step = step + 1
  return wrk.format("POST", paths[(step - 1) % 2 + 1])
end
function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    failed = failed + 1
    if failed <= 20 then statuses = statuses .. status .. "," end
  end
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT %d %d %d %.1f %.1f %.1f %.1f\\n", summary.requests,
    summary.duration, errors.connect + errors.read + errors.write + errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95),
    latency:percentile(99)))
  for _, thread in ipairs(threads) do
    local statuses = thread:get("statuses")
    if statuses == "" then statuses = "-" end
    io.write(string.format("THREAD %d %d %d %s\\n", thread:get("number"),
      thread:get("ok"), thread:get("failed"), statuses))
  end
end
"""


@dataclass
class Result:
    """One wrk run (or several side by side, merged)."""

    requests: int  # answers received, whatever their status
    seconds: float  # wrk's own measure of the run
    socket_errors: int  # connect, read, write errors and timeouts
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    ok: dict[int, int] = field(default_factory=dict)  # 200s per connection number
    statuses: Counter[int] = field(default_factory=Counter)  # non-200s (first 20 each)
    non_200: int = 0
    wall: float = 0.0  # seconds from starting wrk to its exit
    wrk_cpu: float = 0.0  # CPU seconds wrk took (all its processes)

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.requests / self.seconds

    @property
    def failed(self) -> int:
        """Answers that were not 200, plus socket errors."""
        return self.non_200 + self.socket_errors

    @property
    def ok_total(self) -> int:
        return sum(self.ok.values())


def require_wrk() -> str:
    """wrk's path, or a clear error."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found: `apt-get install wrk` (or `make bench`, which "
                         "installs it)")
    return path


@contextlib.contextmanager
def lua_script() -> Iterator[Path]:
    """:data:`LUA` in a temporary file, for ``wrk -s``."""
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        path = Path(tmp) / "toggle.lua"
        path.write_text(LUA)
        yield path


def _parse(out: str, offset: int) -> Result:
    lines = out.splitlines()
    try:
        line = next(line for line in lines if line.startswith("RESULT "))
    except StopIteration:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out}") from None
    requests, micros, errors, mean, p50, p95, p99 = line.split()[1:]
    result = Result(int(requests), int(micros) / 1e6, int(errors), float(mean) / 1e3,
                    float(p50) / 1e3, float(p95) / 1e3, float(p99) / 1e3)
    for line in lines:
        if line.startswith("THREAD "):
            number, ok, failed, statuses = line.split()[1:]
            result.ok[offset + int(number)] = int(ok)
            result.non_200 += int(failed)
            if statuses != "-":
                result.statuses.update(int(s) for s in statuses.split(",") if s)
    return result


def _merge(parts: list[Result]) -> Result:
    if len(parts) == 1:
        return parts[0]
    merged = Result(
        sum(p.requests for p in parts), max(p.seconds for p in parts),
        sum(p.socket_errors for p in parts),
        sum(p.mean_ms * p.requests for p in parts) / max(1, sum(p.requests for p in parts)),
        max(p.p50_ms for p in parts), max(p.p95_ms for p in parts),
        max(p.p99_ms for p in parts))
    for part in parts:
        merged.ok.update(part.ok)
        merged.statuses.update(part.statuses)
        merged.non_200 += part.non_200
    return merged


def run(urls: list[str], clients: int, seconds: int, script: Path, prefix: str, *,
        timeout: int = 30, started: Callable[[], None] | None = None) -> Result:
    """``clients`` connections spread over ``urls`` for ``seconds`` (whole: wrk takes no
    fractions), one wrk process per URL; connection k fires on instance ``prefix + k``.

    ``started`` is called once every wrk process has been started. The result's ``wall``
    and ``wrk_cpu`` cover the wrk processes' lifetime (CPU from ``RUSAGE_CHILDREN``: call
    this with no other child process exiting meanwhile).
    """
    wrk = require_wrk()
    shares = [clients // len(urls) + (1 if n < clients % len(urls) else 0)
              for n in range(len(urls))]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    runs: list[tuple[subprocess.Popen[str], int]] = []
    offset = 0
    for url, share in zip(urls, shares, strict=True):
        if share == 0:
            continue
        runs.append((subprocess.Popen(
            [wrk, "-t", str(share), "-c", str(share), "-d", f"{max(1, seconds)}s",
             "--timeout", f"{timeout}s", "-s", str(script), url, "--", prefix, str(offset)],
            stdout=subprocess.PIPE, text=True), offset))
        offset += share
    if started is not None:
        started()
    parts = []
    for process, first in runs:
        out, _ = process.communicate(timeout=seconds + timeout + 30)
        if process.returncode != 0:
            raise RuntimeError(f"wrk exited with {process.returncode}:\n{out}")
        parts.append(_parse(out, first))
    result = _merge(parts)
    result.wall = time.monotonic() - began
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.wrk_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return result


def check_versions(gained: dict[int, int], runs: list[Result]) -> list[str]:
    """Problems with the versions instances gained over ``runs`` (wrk runs on the same
    instances, connection k on instance k): each must equal the 200s its connection got,
    plus at most one request per run cut off by wrk's deadline (unanswered, but maybe
    committed). Empty when all is well."""
    problems = []
    for number, versions in sorted(gained.items()):
        ok = sum(result.ok.get(number, 0) for result in runs)
        if not ok <= versions <= ok + len(runs):
            problems.append(f"connection {number}: {versions} versions gained for {ok} 200s "
                            f"over {len(runs)} wrk run(s)")
    return problems
