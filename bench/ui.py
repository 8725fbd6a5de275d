"""What does the browser UI cost over the bare stack? ``python bench/ui.py [--quick]``.

The page served at ``/`` measured in a real Chromium (Debian's ``/usr/bin/chromium``,
driven by Playwright) against the real server (``python -m workflow_engine.server``, the
shipped definitions, a fresh SQLite file) on loopback, each figure beside a baseline
measured in the same run:

- **first load of each page**: from navigation start (``performance.now()`` in the
  page, whose origin is the navigation's start) until the page's content is painted (a
  ``MutationObserver`` sees the element, then the frame that draws it has run), in a
  fresh browser context (cold cache) and again in the same context (warm cache: every
  file is revalidated, as its ``Cache-Control: no-cache`` asks). Baseline: the best
  no-op document the server serves (``/health``, or a 1 kB file under ``/ui/``);
- **live progress**: an instance of the shipped ``ariglad-education`` pipeline enriching
  five leads through the sandbox the server starts when no ``SIXTYFOUR_API_KEY`` is set,
  its page open; from the start request until the page shows rows done > 0, against the
  same change read off ``GET /api/instances/{id}/events`` by a plain httpx stream (what
  ``curl -N`` sees) in the same run;
- **a 10,000-row step table**: ``read_csv -> save_csv`` of a generated CSV; time to the
  first row painted, then a scroll of the table's scroller from top to bottom in 2 s,
  one step per animation frame, with the interval between frames recorded. Baseline: the
  same scroll over a plain static ``<table>`` of the same 10,000 rows in the same browser.

Median of ``--runs`` runs (p95 beside it: of 5 runs, close to their maximum). The
browser, the server and this script share the machine's cores.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

from workflow_engine.testing import ServerProcess, running_server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As tests/ui/conftest.py starts it: as root in a container, nothing reaching out.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
TABLE_ROWS = 10_000

# Installed in every page before its scripts run: for each (name, test) it records when
# the test first holds (``shown``, the DOM has it) and when the frame after that has been
# produced (``painted``: a task posted from that frame's requestAnimationFrame callback
# runs once its style, layout and paint are done), in ms from navigation start.
MARKS = """
(() => {
  const tests = %s;
  const marks = {};
  window.__marks = marks;
  const check = () => {
    let left = 0;
    for (const [name, test] of tests) {
      if (marks[name]) continue;
      let holds = false;
      try { holds = Boolean(test()); } catch (error) { holds = false; }
      if (!holds) { left += 1; continue; }
      const mark = marks[name] = { shown: performance.now() };
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => { mark.painted = performance.now(); };
        channel.port2.postMessage(null);
      });
    }
    if (left === 0) observer.disconnect();
  };
  const observer = new MutationObserver(check);
  observer.observe(document, { childList: true, subtree: true, characterData: true });
  document.addEventListener("DOMContentLoaded", check);
})();
"""

# What each page shows once its content is there, as JS tests (a mark each).
TEXT_SHOWN = "() => document.body && document.body.textContent.trim().length > 0"
PAGES: list[tuple[str, str, dict[str, str]]] = [
    ("baseline: /health as a document", "/health", {"content": TEXT_SHOWN}),
    ("baseline: /ui/vendor/htm.mjs (1 kB)", "/ui/vendor/htm.mjs", {"content": TEXT_SHOWN}),
    ("pipelines (every card's diagram)", "/#/", {"content": """() => {
        const cards = document.querySelectorAll(".card");
        return cards.length > 0
          && document.querySelectorAll(".card figure.diagram svg").length === cards.length;
      }"""}),
    ("definition (diagram, start form)", "/#/definitions/ariglad-education", {
        "content": """() => document.querySelector("figure.diagram svg")
          && document.getElementById("start-title")"""}),
    ("builder (palette)", "/#/builder", {
        "content": """() => document.querySelectorAll("[data-testid=palette] li").length > 0"""}),
    ("runs (list)", "/#/runs", {
        "content": """() => document.querySelector("table.list tbody tr")"""}),
    ("instance (current state)", "/#/instances/copy-1", {
        "content": """() => document.querySelector("[data-testid=current-state]")""",
        "diagram": """() => document.querySelector("figure.diagram svg")"""}),
    ("instance, 10,000-row table (first row)", "/#/instances/table-1", {
        "content": """() => {
          const row = document.querySelector(
            "[data-testid=table] .grid-body [role=row][aria-rowindex='2']");
          return row && !row.textContent.includes("…");
        }"""}),
]

# Scroll an element from top to bottom in `duration` ms, one step per animation frame;
# the intervals between frames, and how many frames had a placeholder row ("…", its page
# not yet fetched) in the middle of the view.
SCROLL = """
async ([selector, duration]) => {
  const scroller = document.querySelector(selector);
  scroller.scrollIntoView({ block: "center" });
  scroller.scrollTop = 0;
  const range = scroller.scrollHeight - scroller.clientHeight;
  const frames = [];
  let placeholders = 0;
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  await new Promise((resolve) => {
    let start = null;
    let last = null;
    const step = (now) => {
      if (start === null) start = now;
      else frames.push(now - last);
      last = now;
      const middle = Math.floor((scroller.scrollTop + scroller.clientHeight / 2) / 32);
      const row = scroller.querySelector(`[aria-rowindex='${middle + 2}']`);
      if (row && row.textContent.includes("…")) placeholders += 1;
      const done = Math.min(1, (now - start) / duration);
      scroller.scrollTop = done * range;
      if (done < 1) requestAnimationFrame(step); else resolve();
    };
    requestAnimationFrame(step);
  });
  return { frames, placeholders, range };
}
"""

# The floor of frame times in this browser: the same scroll over nothing to draw.
EMPTY_SCROLLER = ("<!doctype html><div id=scroller style='height:480px;overflow:auto'>"
                  f"<div style='height:{TABLE_ROWS * 32}px'></div></div>")

# Records when the instance page first shows rows done > 0, in ms since the epoch.
WATCH_PROGRESS = """
() => {
  const seen = window.__progress = {};
  const check = () => {
    const rows = document.querySelector("[data-testid=progress] .rows");
    if (seen.shown || !rows || !/^[1-9]/.test(rows.textContent.trim())) return;
    seen.shown = performance.timeOrigin + performance.now();
    observer.disconnect();
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        seen.painted = performance.timeOrigin + performance.now();
      };
      channel.port2.postMessage(null);
    });
  };
  const observer = new MutationObserver(check);
  observer.observe(document.getElementById("app"),
                   { childList: true, subtree: true, characterData: true });
  check();
}
"""

# Installed in the live instance's page: when its EventSource is handed the first event
# saying rows done > 0 (the event's own time stamp, ms since the epoch), before the
# page's handlers run.
SSE_ARRIVAL = """
(() => {
  const seen = window.__sse = {};
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      for (const type of ["progress", "instance"]) {
        this.addEventListener(type, (message) => {
          if (seen.arrived) return;
          const body = JSON.parse(message.data);
          const progress = type === "progress" ? body : body.progress || {};
          if ((progress.rows_done || 0) > 0) {
            seen.arrived = performance.timeOrigin + message.timeStamp;
          }
        });
      }
    }
  };
})();
"""

# How the page's requests went: their number and bytes over the wire (a revalidated
# file costs its headers), the document included.
REQUESTS = """
() => {
  const entries = [...performance.getEntriesByType("navigation"),
                   ...performance.getEntriesByType("resource")];
  return { count: entries.length,
           bytes: entries.reduce((sum, e) => sum + (e.transferSize || 0), 0) };
}
"""


def p95(values: list[float]) -> float:
    """The 95th percentile (interpolated; of a handful of runs, close to their max)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def write_table_csv(path: Path, rows: int) -> None:
    """A leads-shaped CSV of ``rows`` rows."""
    companies = ["Ariglad Inc", "Northwind Analytics", "Lumen Harbor", "Kestrel Works"]
    cities = ["Austin, TX", "Seattle, WA", "Lisbon, Portugal", "Nairobi, Kenya"]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "company", "email", "company_location", "linkedin"])
        for i in range(rows):
            writer.writerow([f"Person {i}", companies[i % 4],
                             f"p{i}@example.com" if i % 3 else "", cities[i % 7 % 4],
                             f"https://www.linkedin.com/in/p{i}" if i % 2 else ""])


def static_table(path: Path) -> str:
    """The baseline: the same rows as a plain ``<table>`` in a scroller of the UI's
    height (480 px) and row height (32 px)."""
    with path.open(newline="") as source:
        rows = list(csv.reader(source))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["#", *rows[0]])
    body = "".join(
        f"<tr><td>{i}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows[1:], 1))
    return ("<!doctype html><style>#scroller{height:480px;overflow:auto}"
            "table{border-collapse:collapse}td,th{height:31px;border-bottom:1px solid #ddd;"
            "padding:0 8px;white-space:nowrap;font:14px sans-serif}</style>"
            f"<div id=scroller><table><thead><tr>{head}</tr></thead><tbody>{body}"
            "</tbody></table></div>")


def run_pipeline(server: ServerProcess, definition_id: str, instance_id: str) -> None:
    """Start an instance and run it to the end."""
    started = httpx.post(f"{server.url}/api/instances",
                         json={"definition_id": definition_id, "id": instance_id})
    assert started.status_code == 201, started.text
    answer = httpx.post(f"{server.url}/api/instances/{instance_id}/actions/run?wait=60",
                        timeout=70).json()
    assert answer["status"] == "completed", answer


def table_definition() -> dict[str, Any]:
    """``read_csv -> save_csv`` of the generated table."""
    return {
        "id": "bench-table", "name": "A 10,000-row table",
        "states": [
            {"id": "ready", "name": "Ready", "is_initial": True},
            {"id": "reading", "name": "Reading table.csv",
             "block": {"type": "read_csv", "params": {"file": "table.csv"}}},
            {"id": "saved", "name": "Saved", "is_final": True,
             "block": {"type": "save_csv", "params": {"file_name": "table-copy.csv"}}},
        ],
        "actions": [
            {"id": "run", "name": "Run", "from_states": ["ready"], "to_state": "reading"},
            {"id": "save", "name": "Save", "trigger": "auto", "from_states": ["reading"],
             "to_state": "saved"},
        ],
    }


@contextmanager
def fresh_page(browser: Browser, marks: dict[str, str] | None = None, *,
               script: str | None = None) -> Iterator[Page]:
    """A page in a new browser context (its own empty cache), watching ``marks``, with
    ``script`` run before the page's own."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    if script:
        context.add_init_script(script)
    if marks:
        tests = "[" + ",".join(f"[{json.dumps(n)}, {t}]" for n, t in marks.items()) + "]"
        context.add_init_script(MARKS % tests)
    try:
        yield context.new_page()
    finally:
        context.close()


def load(page: Page, url: str, marks: dict[str, str]) -> dict[str, Any]:
    """Navigate to ``url``; each mark's ms to paint, and the page's requests."""
    page.goto(url, wait_until="commit")
    names = json.dumps(list(marks))
    page.wait_for_function(
        f"() => window.__marks && {names}.every((n) => window.__marks[n]?.painted)",
        timeout=60_000)
    found: dict[str, Any] = page.evaluate("() => window.__marks")
    return {"marks": {n: m["painted"] for n, m in found.items()},
            "requests": page.evaluate(REQUESTS)}


def measure_loads(browser: Browser, server: ServerProcess, runs: int
                  ) -> dict[str, dict[str, list[Any]]]:
    """Each page loaded cold (fresh context) then warm (same context), ``runs`` times,
    pages interleaved within a run."""
    results: dict[str, dict[str, list[Any]]] = {
        label: {"cold": [], "warm": [], "requests": [], "warm_requests": []}
        for label, _, _ in PAGES}
    for _ in range(runs):
        for label, path, marks in PAGES:
            with fresh_page(browser, marks) as page:
                cold = load(page, server.url + path, marks)
                page.goto("about:blank")
                warm = load(page, server.url + path, marks)
            results[label]["cold"].append(cold["marks"])
            results[label]["warm"].append(warm["marks"])
            results[label]["requests"].append(cold["requests"])
            results[label]["warm_requests"].append(warm["requests"])
    return results


def frame_stats(frames: list[float]) -> dict[str, float]:
    """Median, p95 and max frame interval, and the share of frames longer than 1 and 2
    frames of a 60 Hz display (16.7 and 33.3 ms, each with 1 ms allowed for the jitter of
    frame times: an idle page's frames measure 16.6 to 16.8 ms)."""
    return {"median": statistics.median(frames), "p95": p95(frames), "max": max(frames),
            "over_16": sum(f > 17.7 for f in frames) / len(frames),
            "over_33": sum(f > 34.3 for f in frames) / len(frames), "count": len(frames)}


def measure_scroll(browser: Browser, server: ServerProcess, files: Path, runs: int,
                   duration: float) -> dict[str, list[dict[str, float]]]:
    """The UI's virtual table and a static table, scrolled alike; alternating runs."""
    baseline_html = static_table(files / "table.csv")
    marks = {"content": PAGES[-1][2]["content"]}
    results: dict[str, list[dict[str, float]]] = {"ui": [], "static": [], "empty": []}
    for _ in range(runs):
        with fresh_page(browser, marks) as page:
            load(page, server.url + "/#/instances/table-1", marks)
            scrolled = page.evaluate(SCROLL, ["[data-testid=table] .grid-body", duration])
            stats = frame_stats(scrolled["frames"])
            stats["placeholders"] = scrolled["placeholders"] / len(scrolled["frames"])
            results["ui"].append(stats)
        with fresh_page(browser) as page:
            page.set_content(baseline_html)
            scrolled = page.evaluate(SCROLL, ["#scroller", duration])
            assert scrolled["range"] > TABLE_ROWS * 30, scrolled["range"]
            results["static"].append(frame_stats(scrolled["frames"]))
        with fresh_page(browser) as page:
            page.set_content(EMPTY_SCROLLER)
            scrolled = page.evaluate(SCROLL, ["#scroller", duration])
            results["empty"].append(frame_stats(scrolled["frames"]))
    return results


class Stream(threading.Thread):
    """The baseline watcher: the instance's event stream read by httpx as ``curl -N``
    reads it; notes when it first says rows done > 0 (a progress event, or an
    instance's progress) in seconds since the epoch."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.connected = threading.Event()
        self.progressed = threading.Event()
        self.at: float | None = None

    def run(self) -> None:
        event = None
        with httpx.stream("GET", self.url, timeout=httpx.Timeout(10, read=120)) as response:
            for line in response.iter_lines():
                self.connected.set()
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: ") and not self.progressed.is_set():
                    body = json.loads(line[len("data: "):])
                    progress = body if event == "progress" else body.get("progress") or {}
                    if event in ("progress", "instance") and progress.get("rows_done", 0) > 0:
                        self.at = time.time()
                        self.progressed.set()
                if event == "end":
                    return


def clock_offset(page: Page) -> float:
    """The page's epoch clock (``performance.timeOrigin + now()``) minus this process's
    ``time.time()``, in s: the median of a few bracketed readings."""
    readings = []
    for _ in range(7):
        before = time.time()
        seen = page.evaluate("() => performance.timeOrigin + performance.now()") / 1000
        after = time.time()
        readings.append(seen - (before + after) / 2)
    return statistics.median(readings)


def measure_live(browser: Browser, server: ServerProcess, files: Path, runs: int
                 ) -> list[dict[str, float]]:
    """Time from the start request to the first rows done > 0: on the instance page, and
    on a bare SSE stream, in the same run."""
    shipped = (ROOT / "data" / "leads.csv").read_text().splitlines()
    results = []
    for run in range(runs):
        # New names each run, so that no answer comes from the result cache.
        header, *rows = shipped
        renamed = [f"{row.split(',', 1)[0]} {run},{row.split(',', 1)[1]}" for row in rows]
        (files / "leads.csv").write_text("\n".join([header, *renamed]) + "\n")
        instance = f"live-{run}"
        started = httpx.post(f"{server.url}/api/instances",
                             json={"definition_id": "ariglad-education", "id": instance})
        assert started.status_code == 201, started.text
        with fresh_page(browser, script=SSE_ARRIVAL) as page:
            page.goto(f"{server.url}/#/instances/{instance}")
            page.get_by_text("live: live").wait_for()
            page.evaluate(WATCH_PROGRESS)
            stream = Stream(f"{server.url}/api/instances/{instance}/events")
            stream.start()
            assert stream.connected.wait(10)
            offset = clock_offset(page)
            began = time.time()
            fired = httpx.post(f"{server.url}/api/instances/{instance}/actions/run")
            assert fired.status_code in (200, 202), fired.text
            assert stream.progressed.wait(60)
            page.wait_for_function("() => window.__progress.painted", timeout=60_000)
            seen = page.evaluate("() => window.__progress")
            arrived = page.evaluate("() => window.__sse.arrived")
            stream.join(120)
            assert stream.at is not None
            results.append({
                "stream": (stream.at - began) * 1000,
                "arrived": (arrived / 1000 - offset - began) * 1000,
                "dom": (seen["shown"] / 1000 - offset - began) * 1000,
                "page": (seen["painted"] / 1000 - offset - began) * 1000,
                "offset_ms": offset * 1000,
            })
    return results


def chromium_version() -> str:
    """Chromium's own version line."""
    return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                          check=False).stdout.strip()


def print_loads(results: dict[str, dict[str, list[Any]]]) -> None:
    """The first-load table, with ratios to the best baseline."""
    def series(label: str, kind: str, mark: str) -> list[float]:
        return [float(r[mark]) for r in results[label][kind]]

    baselines = [label for label, _, _ in PAGES if label.startswith("baseline")]
    best = {kind: min(statistics.median(series(b, kind, "content")) for b in baselines)
            for kind in ("cold", "warm")}
    print("\nFirst load: ms from navigation start to content painted "
          "(median [p95]); ÷ the best no-op document; requests and kB of the cold load "
          "(warm: kB)")
    print(f"{'page':44}{'cold':>14}{'warm':>14}{'cold ÷':>8}{'warm ÷':>8}"
          f"{'req':>5}{'kB':>8}{'warm kB':>9}")
    for label, _, marks in PAGES:
        for mark in marks:
            name = label if mark == "content" else f"{label.split(' (')[0]} ({mark})"
            cold, warm = series(label, "cold", mark), series(label, "warm", mark)
            requests = results[label]["requests"]
            warm_requests = results[label]["warm_requests"]
            count = statistics.median(r["count"] for r in requests)
            kb = statistics.median(r["bytes"] for r in requests) / 1000
            warm_kb = statistics.median(r["bytes"] for r in warm_requests) / 1000
            print(f"{name:44}"
                  f"{statistics.median(cold):>7.1f} [{p95(cold):>4.0f}]"
                  f"{statistics.median(warm):>7.1f} [{p95(warm):>4.0f}]"
                  f"{statistics.median(cold) / best['cold']:>8.1f}"
                  f"{statistics.median(warm) / best['warm']:>8.1f}"
                  f"{count:>5.0f}{kb:>8.1f}{warm_kb:>9.1f}")


def print_scroll(results: dict[str, list[dict[str, float]]]) -> None:
    """The scroll table: medians over runs of each run's figure."""
    print("\nScrolling 10,000 rows top to bottom in 2 s, one step per frame "
          "(medians over runs of each run's figure)")
    print(f"{'table':32}{'frames':>7}{'median ms':>10}{'p95 ms':>8}{'max ms':>8}"
          f"{'>16.7 ms':>9}{'>33 ms':>8}{'placeholder':>12}")

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    for kind, label in (("ui", "UI's virtual table"), ("static", "static <table> (baseline)"),
                        ("empty", "empty scroller (the floor)")):
        placeholder = f"{med(kind, 'placeholders'):>11.0%}" if kind == "ui" else f"{'-':>11}"
        print(f"{label:32}{med(kind, 'count'):>7.0f}{med(kind, 'median'):>10.1f}"
              f"{med(kind, 'p95'):>8.1f}{med(kind, 'max'):>8.1f}{med(kind, 'over_16'):>9.0%}"
              f"{med(kind, 'over_33'):>8.0%} {placeholder}")
    print(f"{'UI ÷ static':32}{'':7}{med('ui', 'median') / med('static', 'median'):>10.2f}"
          f"{med('ui', 'p95') / med('static', 'p95'):>8.2f}"
          f"{med('ui', 'max') / med('static', 'max'):>8.2f}")


def print_live(results: list[dict[str, float]]) -> None:
    """The live-progress table."""
    def series(key: str) -> list[float]:
        return [r[key] for r in results]

    print("\nFrom the start request to the first rows done > 0 (ms, median [p95])")
    overhead = [r["page"] - r["stream"] for r in results]
    own = [r["page"] - r["arrived"] for r in results]
    for key, label in (("stream", "SSE stream read by httpx (baseline)"),
                       ("arrived", "instance page, its EventSource has it"),
                       ("dom", "instance page, DOM updated"),
                       ("page", "instance page, painted")):
        print(f"{label:40}{statistics.median(series(key)):>8.1f} [{p95(series(key)):>6.1f}]")
    ratio = statistics.median(series("page")) / statistics.median(series("stream"))
    print(f"{'page ÷ stream':40}{ratio:>8.3f}")
    print(f"{'page - stream, per run':40}{statistics.median(overhead):>8.1f} "
          f"[{p95(overhead):>6.1f}]   (runs: {', '.join(f'{o:.1f}' for o in overhead)})")
    print(f"{'page: painted - its EventSource had it':40}{statistics.median(own):>8.1f} "
          f"[{p95(own):>6.1f}]")
    offsets = ", ".join(f"{r['offset_ms']:.2f}" for r in results)
    print(f"clock offset page - script: {offsets} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scroll-seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="2 runs")
    parser.add_argument("--parts", nargs="+", choices=["loads", "scroll", "live"],
                        default=["loads", "scroll", "live"], help="what to measure")
    args = parser.parse_args()
    if args.quick:
        args.runs = 2
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"No Chromium at {CHROMIUM}: run scripts/system-packages or set "
                         "CHROMIUM.")
    # Enrichment goes to the server's own sandbox, never to the real API.
    for name in ("SIXTYFOUR_API_KEY", "SIXTYFOUR_BASE_URL"):
        os.environ.pop(name, None)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        files = work / "files"
        files.mkdir()
        shutil.copy(ROOT / "data" / "leads.csv", files / "leads.csv")
        write_table_csv(files / "table.csv", TABLE_ROWS)
        with running_server(work / "wf.db", definitions=ROOT / "definitions",
                            data_dir=work) as server:
            posted = httpx.post(f"{server.url}/api/definitions", json=table_definition())
            assert posted.status_code == 201, posted.text
            run_pipeline(server, "bench-table", "table-1")
            run_pipeline(server, "leads-copy", "copy-1")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                     args=CHROMIUM_ARGS)
                print(f"{chromium_version()}, headless; {args.runs} runs; server {server.url}")
                steps: list[tuple[str, Callable[[], Any]]] = [
                    ("loads", lambda: measure_loads(browser, server, args.runs)),
                    ("scroll", lambda: measure_scroll(browser, server, files, args.runs,
                                                      args.scroll_seconds * 1000)),
                    ("live", lambda: measure_live(browser, server, files, args.runs)),
                ]
                results = {}
                for name, step in steps:
                    if name not in args.parts:
                        continue
                    began = time.perf_counter()
                    results[name] = step()
                    print(f"  {name}: {time.perf_counter() - began:.1f} s")
                browser.close()
    for name, show in (("loads", print_loads), ("scroll", print_scroll),
                       ("live", print_live)):
        if name in results:
            show(results[name])


if __name__ == "__main__":
    main()
