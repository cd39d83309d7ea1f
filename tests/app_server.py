"""Run the real app in-process on 127.0.0.1 for tests, and tear it down cleanly."""

from __future__ import annotations

from contextlib import contextmanager

from app import launch, prepare_temp_dir
from components.config import AppConfig


@contextmanager
def serve(model_dir, **config_changes):
    """Yield the URL of the app serving ``model_dir``; the server is closed afterwards."""
    prepare_temp_dir()
    config = AppConfig(model=str(model_dir), device="cpu", dtype="fp32", **config_changes)
    demo = launch(config, prevent_thread_lock=True, server_port=None, quiet=True)
    demo.vlm_status.wait(120)
    try:
        yield demo.local_url.rstrip("/"), demo
    finally:
        demo.close()
