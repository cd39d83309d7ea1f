"""Serve the Highlights tab for tests: the real app when its layout has the tab, else the tab
alone in a small Blocks launched the same way (so the tab's tests run before and after it is
wired into components/layout.py)."""

from __future__ import annotations

from contextlib import contextmanager

import gradio as gr

from app import prepare_temp_dir
from components.config import AppConfig
from tests.app_server import serve


def has_endpoint(demo, name: str) -> bool:
    return any(getattr(fn, "api_name", None) == name for fn in demo.fns.values())


@contextmanager
def serve_highlights(model_dir, **config_changes):
    """Yield (url, demo) of an app whose ``/highlights`` endpoint works on ``model_dir``."""
    with serve(model_dir, **config_changes) as (url, demo):
        if has_endpoint(demo, "highlights"):
            yield url, demo
            return
    with _tab_alone(model_dir, **config_changes) as served:
        yield served


@contextmanager
def _tab_alone(model_dir, **config_changes):
    from components.highlights_tab import build_highlights_tab

    prepare_temp_dir()
    config = AppConfig(model=str(model_dir), device="cpu", dtype="fp32", **config_changes)
    with gr.Blocks(title="VLM Studio") as demo:
        with gr.Tabs():
            with gr.Tab("Highlights", id="highlights"):
                build_highlights_tab(config)
    demo.queue(max_size=int(config.limits.queue_size.value))
    demo.launch(prevent_thread_lock=True, quiet=True, show_error=True, server_name="127.0.0.1",
                max_file_size=config.max_file_size)
    try:
        yield demo.local_url.rstrip("/"), demo
    finally:
        demo.close()
