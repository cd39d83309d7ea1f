"""Start and stop a local vLLM OpenAI server: for trying the server engine, for the tests and the
benchmarks. (In production vLLM runs on its own GPU machines; README "Scaling out with vLLM".)

Contract: ``VllmServer(model_dir, port, name=None, venv=None)``; ``start()`` launches
``VENV/bin/python -m vllm.entrypoints.openai.api_server`` in its own process group with the flags
and environment measured on CPU machines (../shared/NOTES.md "vLLM on CPU"); ``wait_ready()``
polls ``/v1/models`` until the model is listed (or the process died: its log tail is in the
error); ``stop()`` sends SIGTERM to the group (all of vLLM's processes) and waits; SIGKILL after
``STOP_TIMEOUT_S``. ``url`` is the API base for ``--engine-url``. The venv is made by
``.ci/install_vllm`` (default: .venv-vllm in the repository root, or $VLMS_VLLM_VENV).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0


def default_venv() -> Path:
    return Path(os.environ.get("VLMS_VLLM_VENV") or REPO / ".venv-vllm")


class VllmNotInstalledError(RuntimeError):
    pass


class VllmServer:
    def __init__(self, model_dir, port: int, name: str | None = None, venv=None, host: str = "127.0.0.1",
                 log_path=None, max_images: int = 64, extra_args: tuple[str, ...] = ()):
        self.model_dir = str(Path(model_dir).resolve())
        self.port, self.host = int(port), host
        self.name = name or Path(self.model_dir).name
        self.venv = Path(venv) if venv else default_venv()
        self.log_path = Path(log_path) if log_path else Path(self.model_dir).parent / f"vllm-{self.port}.log"
        self.max_images = max_images
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        python = self.venv / "bin" / "python"
        if not python.exists():
            raise VllmNotInstalledError(f"vLLM is not installed in {self.venv}: run .ci/install_vllm first "
                                        "(or set VLMS_VLLM_VENV to where it is).")
        return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_dir,
                "--served-model-name", self.name, "--host", self.host, "--port", str(self.port),
                "--dtype", "float32", "--max-model-len", "8192",
                "--limit-mm-per-prompt", json.dumps({"image": self.max_images}), "--max-logprobs", "20",
                # Video frames go as images: never tiled (as the local video processor does), unless
                # the app asks for a high image detail per request.
                "--mm-processor-kwargs", json.dumps({"do_image_splitting": False}), "--trust-request-mm-kwargs",
                *self.extra_args]

    def environment(self) -> dict:
        cache = Path(os.environ.get("VLMS_VLLM_CACHE") or Path.home() / ".cache" / "vlms-vllm")
        env = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env.update(VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                   HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
                   VLLM_CACHE_ROOT=str(cache / "vllm"), TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"))
        return env

    def start(self) -> "VllmServer":
        command = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.environment(),
                                            cwd=str(self.log_path.parent), start_new_session=True)
        finally:
            log.close()  # the child holds its own descriptor
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> "VllmServer":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with code {self.process.returncode} before it was ready:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as answer:
                    if any(m.get("id") == self.name for m in json.load(answer).get("data", [])):
                        return self
            except OSError:
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"vLLM was not ready within {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the API server and its engine workers
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "VllmServer":
        return self.start().wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()
