#!/usr/bin/env python3
"""Start the workflow engine: ``python run_server.py --host 127.0.0.1 --port 5000``.

See ``python run_server.py --help`` and README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Runs from a checkout without installing the package too.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from workflow_engine.server import main

if __name__ == "__main__":
    main()
