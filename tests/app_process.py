"""Run ``python app.py`` in its own process, as a user does, with its log captured in a file.

Used where what matters is what the served app does and writes, not what a test can reach
in-process: the log test (no traceback during real use) and the user-boundary benchmarks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def app_process(model, log_path, *, device: str = "cpu", dtype: str = "fp32", args: tuple[str, ...] = (),
                env: dict | None = None, ready_timeout_s: float = 180) -> Iterator[str]:
    """Yield the URL of ``app.py --model model`` once it answers HTTP; stopped (SIGTERM, then
    SIGKILL) and reaped at the end. Everything it prints goes to ``log_path``."""
    port = free_port()
    command = [sys.executable, str(ROOT / "app.py"), "--model", str(model), "--device", device, "--dtype", dtype,
               "--host", "127.0.0.1", "--port", str(port), *args]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, ready_timeout_s, log_path)
        yield url
    finally:
        _stop(process)


def _wait_until_serving(url: str, process: subprocess.Popen, timeout_s: float, log_path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{Path(log_path).read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/gradio_api/info", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app.py did not serve within {timeout_s:.0f} s:\n{Path(log_path).read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
