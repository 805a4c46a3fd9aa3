"""``python -m benchmarks SUITE [--quick] [--rows N] [--only PART] [--json FILE]``."""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from typing import Any

SUITES = {
    "engine": "benchmarks.engine",
    "scheduler": "benchmarks.scheduler",
    "storage": "benchmarks.storage",
    "observability": "benchmarks.observability",
    "monitor": "benchmarks.monitor",
    "peers": "benchmarks.peers",
    "cluster": "benchmarks.cluster",
    "footprint": "benchmarks.footprint",
    "history": "benchmarks.history",
    "throttling": "benchmarks.throttling",
    "workflows": "benchmarks.workflows",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--json", metavar="FILE", help="write the figures as one flat JSON object")
    parser.add_argument(
        "--rows", type=int, metavar="N", help="the data size, for suites that have one (history)"
    )
    parser.add_argument(
        "--only",
        metavar="PART",
        help="one part of a suite, for suites that have parts (observability: otel, logcapture)",
    )
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(SUITES[args.suite])
    except ModuleNotFoundError as exc:
        if exc.name == SUITES[args.suite]:
            print(f"the {args.suite!r} suite is not available yet", file=sys.stderr)
            return 2
        raise
    options: dict[str, Any] = {"quick": args.quick, "json_path": args.json}
    if args.rows is not None:
        if "rows" not in inspect.signature(module.run).parameters:
            parser.error(f"the {args.suite!r} suite has no --rows")
        if args.rows < 1:
            parser.error("--rows must be at least 1")
        options["rows"] = args.rows
    if args.only is not None:
        parts = getattr(module, "PARTS", {})
        if args.only not in parts:
            parser.error(
                f"the {args.suite!r} suite has no part {args.only!r}"
                + (f" (parts: {', '.join(parts)})" if parts else "")
            )
        options["only"] = args.only
    module.run(**options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
