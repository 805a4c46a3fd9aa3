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
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode in (0, -signal.SIGINT), out
