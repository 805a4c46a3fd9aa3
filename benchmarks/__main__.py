"""``python -m benchmarks SUITE [--quick] [--json FILE]``."""

from __future__ import annotations

import argparse
import importlib
import sys

SUITES = {
    "engine": "benchmarks.engine",
    "scheduler": "benchmarks.scheduler",
    "storage": "benchmarks.storage",
    "observability": "benchmarks.observability",
    "monitor": "benchmarks.monitor",
    "peers": "benchmarks.peers",
    "cluster": "benchmarks.cluster",
    "footprint": "benchmarks.footprint",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as one flat JSON object")
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(SUITES[args.suite])
    except ModuleNotFoundError as exc:
        if exc.name == SUITES[args.suite]:
            print(f"the {args.suite!r} suite is not available yet", file=sys.stderr)
            return 2
        raise
    module.run(quick=args.quick, json_path=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
