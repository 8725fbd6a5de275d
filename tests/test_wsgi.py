"""The WSGI application: one per process that serves it."""

from __future__ import annotations

import json
import subprocess
import sys

FORKED_APPS = """
import json
import os
from workflow_engine.wsgi import ProcessApp

builds = []

def build():
    builds.append(os.getpid())
    return f"app of {os.getpid()}"

app = ProcessApp(build)
mine = app.load()
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.write(write, app.load().encode())
    os._exit(0)
os.close(write)
forked = os.read(read, 64).decode()
os.waitpid(child, 0)
print(json.dumps({"parent": os.getpid(), "mine": mine, "again": app.load(),
                  "forked": forked, "child": child, "builds": builds}))
"""


def test_a_forked_process_builds_its_own_app_and_the_parent_keeps_its_one() -> None:
    """A worker forked after its master built (or imported) the app builds a new one:
    threads and connections do not cross a fork."""
    done = subprocess.run([sys.executable, "-c", FORKED_APPS], capture_output=True,
                          text=True, check=True)
    found = json.loads(done.stdout)
    assert found["mine"] == found["again"] == f"app of {found['parent']}"
    assert found["forked"] == f"app of {found['child']}"
    assert found["builds"] == [found["parent"]]
