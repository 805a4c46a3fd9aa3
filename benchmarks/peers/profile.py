"""``python -m benchmarks.peers.profile STACKS [FRAME ...]``: summarize py-spy's collapsed stacks.

``EVERTASK_BENCH_PROFILE=DIR python -m benchmarks peers`` runs EverTask's workers under
``py-spy record -f raw --idle`` and leaves ``DIR/<configuration>.txt``. This prints the
share of samples whose stack contains each given frame (a substring of ``function
(file:line)``), idle time included, then the frames most often at the top of the stack.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

DEFAULT_FRAMES = (
    "select (selectors.py",  # the event loop waiting: nothing to run
    "Driver._",  # the benchmark's own driver code
    "Dispatcher.",
    "WorkerExecutor.",
    "GroupCommitWriter.",
    "PostgresExecutor.",
    "SqliteExecutor.",
    "send (",
)


def summarize(path: Path, frames: tuple[str, ...] = DEFAULT_FRAMES, top: int = 12) -> str:
    """Inclusive shares of ``frames`` and the ``top`` leaf frames, as text."""
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        text, _, count = line.rpartition(" ")
        if text and count.isdigit():
            stacks.append((text.split(";"), int(count)))
    total = sum(n for _, n in stacks) or 1
    lines = [f"{total} samples"]
    for frame in frames:
        hits = sum(n for stack, n in stacks if any(frame in f for f in stack))
        lines.append(f"{hits / total:6.1%}  {frame}")
    leaves: Counter[str] = Counter()
    for stack, n in stacks:
        leaves[stack[-1]] += n
    lines.append("top of stack:")
    lines += [f"{n / total:6.1%}  {leaf}" for leaf, n in leaves.most_common(top)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(summarize(Path(sys.argv[1]), tuple(sys.argv[2:]) or DEFAULT_FRAMES))
