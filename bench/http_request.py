"""The http_request block's overhead per row: ``python bench/http_request.py``.

N rows (300 by default) through the block, in this process, against a local JSON API
that answers each request after L ms (20 by default), on a SQLite store in a temporary
directory. The baseline, measured in the same run, is a plain httpx loop doing the same
GETs one after another with one client: what any caller would pay.

Reported for GET and POST at several concurrencies: wall time, rows/s, and ms per row
over the baseline's (at concurrency 1). A GET costs the host's rate-budget reservation (a
write transaction) on top of the request; a POST also its claim before it leaves and its
stored answer after (two more writes). The budget is set high (60,000/min) so that it
never waits: what is measured is the bookkeeping, not the pacing.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from workflow_engine.blocks import BlockContext  # noqa: E402
from workflow_engine.blocks.http_request import HttpRequest, HttpRequestParams  # noqa: E402
from workflow_engine.outbound import AddressPolicy, HttpCalls  # noqa: E402
from workflow_engine.storage import LocalArea  # noqa: E402
from workflow_engine.store import Store, make_engine  # noqa: E402


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def api(latency: float) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        time.sleep(latency)  # the API's own latency, simulated
        body = {"name": request.path.rsplit("/", 1)[-1], "employees": 42}
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)
    return app


def baseline(url: str, rows: int) -> float:
    began = time.perf_counter()
    with httpx.Client() as client:
        for index in range(rows):
            client.get(f"{url}/companies/c{index}").json()
    return time.perf_counter() - began


def through_block(url: str, rows: int, method: str, concurrency: int, root: Path,
                  run: int) -> float:
    store = Store(make_engine(f"sqlite:///{root / f'bench-{run}.db'}"))
    store.create_schema()
    calls = HttpCalls(store, policy=AddressPolicy(
        networks=(ipaddress.ip_network("127.0.0.1/32"),)))
    params: dict[str, Any] = {"url": f"{url}/companies/{{name}}", "method": method,
                              "extract": {"employees": "employees"},
                              "rate_per_minute": 60_000, "concurrency": concurrency}
    if method == "POST":
        params["body"] = {"name": "{name}"}
    block = HttpRequest(HttpRequestParams.model_validate(params))
    (root / "files").mkdir(exist_ok=True)
    context = BlockContext(files=LocalArea(root / "files"), outputs=LocalArea(root / "files"),
                           http=calls, instance_id=f"bench-{run}")
    table = pd.DataFrame({"name": [f"c{index}" for index in range(rows)]})
    began = time.perf_counter()
    output = block(table, context)
    took = time.perf_counter() - began
    assert output["http_error"].isna().all(), output["http_error"].dropna().head()
    calls.close()
    store.dispose()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    server = make_server("127.0.0.1", 0, api(args.latency_ms / 1000), threaded=True,
                         request_handler=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.port}"
    base = baseline(url, args.rows)
    per_row = base / args.rows * 1000
    print(f"{args.rows} rows, API latency {args.latency_ms:g} ms")
    print(f"{'run':<28}{'wall s':>9}{'rows/s':>9}{'ms/row':>9}{'vs base':>10}")
    print(f"{'baseline: httpx loop':<28}{base:>9.2f}{args.rows / base:>9.1f}{per_row:>9.1f}"
          f"{'':>10}")
    with tempfile.TemporaryDirectory() as directory:
        for run, (method, concurrency) in enumerate(
                [("GET", 1), ("GET", 4), ("GET", 16), ("POST", 1), ("POST", 4), ("POST", 16)]):
            took = through_block(url, args.rows, method, concurrency, Path(directory), run)
            ms = took / args.rows * 1000
            print(f"{f'block {method}, concurrency {concurrency}':<28}{took:>9.2f}"
                  f"{args.rows / took:>9.1f}{ms:>9.1f}{ms - per_row:>+9.1f}ms")
    server.shutdown()


if __name__ == "__main__":
    main()
