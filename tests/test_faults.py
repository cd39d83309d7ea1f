"""Faults inside the model or a tool: the user gets a worded error, the device lock is free again,
memory is handed back, nothing half-written stays on disk, and the next request is served.

The app runs with a 2 s stall limit (``generation_stall_s``) so a hang is detected quickly.
"""

from __future__ import annotations

import functools
import stat
import threading
import time

import pytest
import torch
from gradio_client import handle_file

import pipelines.loading
from components.adapter import GENERIC_MESSAGE
from pipelines.devices import DEVICE_LOCK
from pipelines.errors import RenderError
from pipelines.limits import LIMITS
from pipelines.loading import load_model
from tests.app_server import serve
from tests.test_bad_inputs import assert_user_worded

STALL_S = 2


@pytest.fixture(scope="module")
def app(tiny_smolvlm):
    with serve(tiny_smolvlm, limits=LIMITS.with_value("generation_stall_s", STALL_S)) as (url, demo):
        yield url, demo


@pytest.fixture()
def model(tiny_smolvlm):
    """The very model object the app generates with (the loading cache is shared in-process)."""
    return load_model(str(tiny_smolvlm), "cpu", "fp32").model


def _ask(client, image, tokens=4):
    return client.predict({"text": "Describe", "files": [handle_file(str(image))]}, [], max_new_tokens=tokens,
                          api_name="/chat")


def _error_of(call) -> str:
    with pytest.raises(Exception) as caught:
        call()
    return str(caught.value)


def _served_again(client, image) -> None:
    assert DEVICE_LOCK.active == 0
    history, _box, stats, _frames = _ask(client, image)
    assert history[-1]["role"] == "assistant" and "new tokens" in stats


def test_exception_inside_generate(client, model, sample_image, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("simulated failure deep inside generate at /opt/secret/path.py")

    monkeypatch.setattr(model, "generate", broken)
    message = _error_of(lambda: _ask(client, sample_image))
    assert message.startswith(GENERIC_MESSAGE[:30]) and "Traceback" not in message and "/opt/secret" not in message
    monkeypatch.undo()
    _served_again(client, sample_image)


def test_hang_inside_generate(client, model, sample_image, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(model, "generate", lambda **kwargs: release.wait(60))
    started = time.monotonic()
    try:
        message = _error_of(lambda: _ask(client, sample_image))
        assert "stopped responding" in message and time.monotonic() - started < STALL_S + 5
        assert_user_worded(message)
        monkeypatch.undo()
        _served_again(client, sample_image)
    finally:
        release.set()  # let the abandoned thread finish


def test_hang_inside_a_forward_pass_hands_the_device_back(client, model, sample_image, monkeypatch):
    """The hung thread holds the device lock; the watchdog takes it back for the next request."""
    release = threading.Event()
    forward = model.forward

    @functools.wraps(forward)  # generate() checks its inputs against forward's signature
    def stuck(*args, **kwargs):
        release.wait(60)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", stuck)
    try:
        message = _error_of(lambda: _ask(client, sample_image))
        assert "stopped responding" in message
        monkeypatch.undo()
        _served_again(client, sample_image)
        assert DEVICE_LOCK.max_active == 1
    finally:
        release.set()


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 68719476736 bytes"),
    MemoryError(),
], ids=["cuda", "cpu", "python"])
def test_out_of_memory_is_worded_and_frees_memory(client, model, sample_image, monkeypatch, error):
    freed = []
    free_memory = pipelines.loading.free_memory
    monkeypatch.setattr(pipelines.loading, "free_memory", lambda: (freed.append(1), free_memory()))

    def oom(**kwargs):
        raise error

    monkeypatch.setattr(model, "generate", oom)
    message = _error_of(lambda: _ask(client, sample_image))
    assert "ran out of memory" in message and freed
    assert_user_worded(message)
    monkeypatch.undo()
    _served_again(client, sample_image)


def test_ffmpeg_dying_mid_render_leaves_no_partial_file(tmp_path, monkeypatch, short_video):
    render = pytest.importorskip("pipelines.highlights.render")
    from pipelines import media
    from pipelines.highlights.selection import Segment

    fake = tmp_path / "ffmpeg"  # writes half a file to its output, then is killed
    fake.write_text('#!/bin/sh\nfor last; do :; done\nprintf "partial" > "$last"\nkill -9 $$\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(render, "ffmpeg_exe", lambda: str(fake))
    out = tmp_path / "out"
    with pytest.raises(RenderError) as caught:
        render.render_reel(short_video, [Segment(0.0, 2.0)], out / "reel.mp4", media.probe_video(short_video))
    assert_user_worded(str(caught.value))
    assert list(out.iterdir()) == []
