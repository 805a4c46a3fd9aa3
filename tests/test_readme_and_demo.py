"""The README's quick start runs as written, and the demo serves HTTP and runs its tasks."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_readme_quick_start_runs(tmp_path: Path) -> None:
    blocks = _python_blocks((ROOT / "README.md").read_text())
    script = next(b for b in blocks if "asyncio.run(main())" in b)
    path = tmp_path / "quickstart.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Welcome, Ann <ann@example.com>" in done.stdout
    # a second start recovers the pending rows and keeps the recurring key unique
    again = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr


_LIFESPAN_CHECK = """
import asyncio
import sys

import quickstart
from evertask import add_evertask
from evertask.storage import MemoryTaskStorage

LIFESPAN = sys.argv[1]
storage = MemoryTaskStorage()  # shared by both starts, like a database


def builder():
    return add_evertask(
        quickstart.Container(),
        lambda o: o.register_tasks_from_module(quickstart),
    ).use_storage(storage)


async def start_once():
    namespace = {"evertask": builder(), "DailyCleanup": quickstart.DailyCleanup}
    exec(compile(LIFESPAN, "readme-lifespan", "exec"), namespace)
    app = namespace["app"]
    async with app.router.lifespan_context(app):
        row = await storage.get_by_task_key("daily-cleanup")
        assert row is not None and row.is_recurring, row
        assert row.type == "daily-cleanup", row.type
        return row.id


async def main():
    first = await start_once()
    second = await start_once()  # a restart: the same series, not a second one
    assert first == second, (first, second)
    print("lifespan ok")


asyncio.run(main())
"""


def test_readme_fastapi_lifespan_registers_recurring_tasks_once(tmp_path: Path) -> None:
    blocks = _python_blocks((ROOT / "README.md").read_text())
    quickstart = next(b for b in blocks if "asyncio.run(main())" in b)
    lifespan = next(b for b in blocks if "async def lifespan" in b)
    (tmp_path / "quickstart.py").write_text(quickstart)
    (tmp_path / "check.py").write_text(_LIFESPAN_CHECK)
    done = subprocess.run(
        [sys.executable, "check.py", lifespan],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "lifespan ok" in done.stdout


def test_readme_quick_start_tasks_have_stable_names() -> None:
    blocks = _python_blocks((ROOT / "README.md").read_text())
    classes = re.findall(r"^class (\w+)\((EverTask\b[^)]*)\):", "\n".join(blocks), flags=re.M)
    assert classes
    for name, bases in classes:
        assert "task_name=" in bases, f"{name} in the README has no task_name="


def test_a_builder_method_without_its_extra_names_the_extra() -> None:
    # the README's Install section promises this error; sqlalchemy hidden as if not installed
    script = (
        "import sys\n"
        "sys.modules['sqlalchemy'] = None\n"
        "from dependency_injector import containers\n"
        "from evertask import add_evertask\n"
        "from evertask_abstractions import ConfigurationError\n"
        "builder = add_evertask(containers.DynamicContainer(), lambda o: o)\n"
        "try:\n"
        "    builder.add_sqlite_storage('x.db')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install" in done.stdout and "evertask[sqlite]" in done.stdout
    assert "sqlalchemy" in done.stdout


def _user_docs() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def _heading_anchors(markdown: str) -> set[str]:
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    headings = re.findall(r"^#+ (.*)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_docs_resolve() -> None:
    broken = []
    for doc in _user_docs():
        prose = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path) if path else doc
            if not dest.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif (
                anchor and dest.suffix == ".md" and anchor not in _heading_anchors(dest.read_text())
            ):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken


def test_docs_use_the_hosts_public_api_and_no_internal_notes() -> None:
    for doc in [*_user_docs(), *sorted((ROOT / "samples").rglob("*.py"))]:
        text = doc.read_text()
        assert "host.engine" not in text, f"{doc.name} tells users to reach into host.engine"
        assert "DESIGN" not in text, f"{doc.name} cites a design note users do not have"


def test_benchmarks_page_has_current_figures_not_a_diary() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "dates belong in CHANGELOG.md"
    assert not re.search(r"\b\d\d:\d\d UTC\b", text), "run times belong in CHANGELOG.md"
    for word in ("this session", "today", "this morning", "the day before"):
        assert word not in text, f"{word!r}: history belongs in CHANGELOG.md"
    hashes = [h for h in re.findall(r"\b[0-9a-f]{7}\b", text) if not h.isdigit()]
    assert not hashes, f"commit hashes belong in CHANGELOG.md: {hashes}"
    assert "Performance history" in (ROOT / "CHANGELOG.md").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, method: str = "GET") -> dict[str, object]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _poll(fn, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:  # the server may not be up yet
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out; last error: {last!r}")


def test_make_demo_runs_the_fastapi_sample() -> None:
    dry = subprocess.run(
        ["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "-m samples.fastapi_app" in dry.stdout


def test_demo_answers_http_and_executes_its_tasks(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVERTASK_DEMO_DB": str(tmp_path / "demo.db")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "samples.fastapi_app", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        info = _poll(lambda: _request(base + "/"))
        assert info["app"] == "EverTask for Python demo"
        tid = _request(base + "/welcome?email=bob@example.com&name=Bob", "POST")["task_id"]
        status = _poll(lambda: _request(f"{base}/tasks/{tid}")["status"] == "Completed" and "ok")
        assert status == "ok"
        stats = _poll(lambda: (s := _request(base + "/stats")).get("welcome", 0) >= 2 and s)
        assert stats["welcome"] >= 2  # the startup email and ours
        report = _request(base + "/report?name=adhoc", "POST")["task_id"]
        _poll(lambda: _request(f"{base}/tasks/{report}")["status"] == "Completed")
        assert _request(base + "/order?order_id=7", "POST")["workflow_id"]
        _poll(lambda: _request(base + "/stats").get("shipped", 0) >= 2)  # both parcels
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode in (0, -signal.SIGINT), out
