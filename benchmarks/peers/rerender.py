"""``python -m benchmarks.peers.rerender <run>/outcomes.json``: print a stored run's report."""

from __future__ import annotations

import sys
from pathlib import Path

from .render import load_run

if __name__ == "__main__":
    sys.stdout.write(load_run(Path(sys.argv[1])))
