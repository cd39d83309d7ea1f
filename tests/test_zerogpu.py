"""ZeroGPU seam (pipelines.zerogpu): the duration estimate, nothing changes without ``spaces``, and
with a stand-in ``spaces`` whose GPU decorator pickles arguments and results across a boundary,
the chat stream and batch forward pass still work and Stop still stops."""

from __future__ import annotations

import importlib
import inspect
import pickle
import sys
import threading
import types

import pytest
import torch

from pipelines import engines, generation, zerogpu
from pipelines.chat import ChatRequest, prepare_chat, start_chat
from pipelines.generation import GenerationSettings
from pipelines.messages import Turn
from pipelines.runtime import Runtime

RUNTIME = Runtime("cpu", "fp32")


# ---------------------------------------------------------------- the estimate (pure)


def test_estimate_grows_with_tokens_frames_and_model_size():
    base = zerogpu.estimate_seconds(prompt_tokens=1000, max_new_tokens=256, frames=1, params=2_246_784_880)
    assert zerogpu.estimate_seconds(5000, 256, 1, 2_246_784_880) >= base  # a 64-frame video prompt
    assert zerogpu.estimate_seconds(1000, 1024, 1, 2_246_784_880) > base
    assert zerogpu.estimate_seconds(1000, 256, 64, 2_246_784_880) > base
    assert zerogpu.estimate_seconds(1000, 256, 1, 8_600_000_000) > base


def test_estimate_is_clamped_and_realistic():
    assert zerogpu.estimate_seconds(10, 1) == zerogpu.MIN_DURATION_S
    assert zerogpu.estimate_seconds(500_000, 8192, 128, 8_600_000_000) == zerogpu.MAX_DURATION_S
    # A typical chat on the 2.2B (one image, 512 new tokens): well under the default 60 s, above 20 s.
    assert 20 <= zerogpu.estimate_seconds(1200, 512, 17, 2_246_784_880) <= 60
    # Scoring a batch of four 16-frame windows (no generation): short.
    assert zerogpu.estimate_seconds(4 * 16 * 81, 0, 64, 2_246_784_880) <= 20


def test_visual_inputs_counts_images_tiles_and_frames():
    assert zerogpu.visual_inputs({"input_ids": torch.zeros(1, 5)}) == 0
    assert zerogpu.visual_inputs({"pixel_values": torch.zeros(1, 17, 3, 8, 8)}) == 17
    assert zerogpu.visual_inputs({"pixel_values": torch.zeros(2, 3, 8, 8), "pixel_values_videos": torch.zeros(1, 32, 3, 8, 8)}) == 34


# ---------------------------------------------------------------- without spaces


def test_without_spaces_nothing_changes(monkeypatch):
    assert zerogpu.spaces is None  # the test environment, like a local install, has no `spaces`
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not zerogpu.enabled()
    function = lambda: None  # noqa: E731
    assert zerogpu.gpu_task(duration=30)(function) is function
    assert zerogpu._generate_on_gpu is zerogpu._generate_in_worker
    assert zerogpu.on_space({"SPACE_ID": "user/vlm-studio"}) and not zerogpu.on_space({})


def test_without_spaces_generation_runs_in_process(tiny_smolvlm, monkeypatch):
    used = []
    monkeypatch.setattr(zerogpu, "stream_on_gpu", lambda *a, **k: used.append("gpu") or iter(()))
    stream = start_chat(_request(tiny_smolvlm, 8), RUNTIME)
    chunks = list(stream)
    assert not used and chunks[-1].finish_reason in ("stop", "length")


# ---------------------------------------------------------------- with a stand-in `spaces`


class FakeSpaces(types.ModuleType):
    """``spaces.GPU`` as ZeroGPU behaves: duration computed from the task's own arguments, and
    every argument and result pickled (the real one crosses into a forked worker process)."""

    def __init__(self):
        super().__init__("spaces")
        self.durations: list[int] = []
        self.closed = 0

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802 - the real name
        def decorate(task):
            def seconds(args, kwargs):
                self.durations.append(duration(*args, **kwargs) if callable(duration) else duration)

            if inspect.isgeneratorfunction(task):
                def generator_wrapper(*args, **kwargs):
                    seconds(args, kwargs)
                    args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
                    try:
                        for item in task(*args, **kwargs):
                            yield pickle.loads(pickle.dumps(item))
                    except GeneratorExit:
                        self.closed += 1
                        raise
                return generator_wrapper

            def wrapper(*args, **kwargs):
                seconds(args, kwargs)
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
                return pickle.loads(pickle.dumps(task(*args, **kwargs)))
            return wrapper

        return decorate if task is None else decorate(task)


@pytest.fixture()
def fake_spaces(monkeypatch):
    fake = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    importlib.reload(zerogpu)  # decorations happen at import, as on a Space
    assert zerogpu.enabled()
    yield fake
    monkeypatch.delitem(sys.modules, "spaces")
    importlib.reload(zerogpu)


def _request(model_dir, max_new_tokens: int) -> ChatRequest:
    return ChatRequest(model=str(model_dir), turns=(Turn("user", "Tell me a long story."),),
                       settings=GenerationSettings(max_new_tokens=max_new_tokens))


def test_with_spaces_the_chat_stream_comes_from_the_gpu_task(tiny_smolvlm, fake_spaces):
    stream = start_chat(_request(tiny_smolvlm, 16), RUNTIME)
    chunks = list(stream)
    assert fake_spaces.durations and zerogpu.MIN_DURATION_S <= fake_spaces.durations[0] <= zerogpu.MAX_DURATION_S
    assert chunks[-1].finish_reason in ("stop", "length")
    assert all(chunk.text or chunk.finish_reason for chunk in chunks)  # the worker's heartbeats stay inside
    local = list(generation.stream_here(stream.prepared.loaded, stream.prepared.inputs, stream.prepared.settings))
    assert "".join(c.text for c in chunks) == "".join(c.text for c in local)  # greedy: same answer


def test_with_spaces_the_duration_follows_the_request(tiny_smolvlm, fake_spaces):
    list(start_chat(_request(tiny_smolvlm, 4), RUNTIME))
    list(start_chat(_request(tiny_smolvlm, 2000), RUNTIME))
    short, long = fake_spaces.durations
    assert long > short


def test_with_spaces_stop_closes_the_gpu_task(tiny_smolvlm, fake_spaces):
    cancel = threading.Event()
    prepared = prepare_chat(_request(tiny_smolvlm, 2000), RUNTIME)
    chunks = []
    assert prepared.engine is engines.ZEROGPU  # chosen because spaces is there, on ZeroGPU hardware
    for chunk in prepared.engine.stream(prepared, cancel):
        chunks.append(chunk)
        if len(chunks) == 2:
            cancel.set()
    assert chunks[-1].finish_reason == "cancelled"
    assert fake_spaces.closed == 1
    assert not [t for t in threading.enumerate() if t.name == "vlms-generate" and t.is_alive()]


def test_with_spaces_forward_logits_match_the_local_pass(tiny_smolvlm, fake_spaces):
    prepared = prepare_chat(_request(tiny_smolvlm, 4), RUNTIME)
    with torch.inference_mode():
        local = prepared.loaded.model(**prepared.inputs, logits_to_keep=1).logits
    remote = zerogpu.forward_logits(prepared.loaded, prepared.inputs, logits_to_keep=1)
    assert fake_spaces.durations and remote.device.type == "cpu"
    torch.testing.assert_close(remote, local.float())
