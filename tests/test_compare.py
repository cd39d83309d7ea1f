"""Compare pipeline on the tiny checkpoints: several labelled images in one question, and
SmolVLM2 vs PerceptionLM side by side (concurrent and one after the other), Stop, limits, memory."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import torch

from components.compare_tab import labelled
from pipelines import compare, loading, memory, side_by_side
from pipelines.background import PENDING, Background
from pipelines.chat import start_chat
from pipelines.compare import (
    image_labels,
    preset_prompt,
    side_by_side_requests,
    start_multi_image,
)
from pipelines.devices import DEVICE_LOCK
from pipelines.errors import BadInputError, NotEnoughMemoryError
from pipelines.generation import GenerationSettings
from pipelines.limits import LIMITS
from pipelines.memory import plan_memory
from pipelines.registry import resolve
from pipelines.runtime import Runtime
from pipelines.side_by_side import stream_side_by_side

RUNTIME = Runtime(device="cpu", dtype="fp32")
FEW = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
SOME = GenerationSettings(max_new_tokens=48, min_new_tokens=48)  # long enough for both to be mid-answer
ENDLESS = GenerationSettings(max_new_tokens=2000, min_new_tokens=2000)


def _threads(name_prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name_prefix)]


def _wait_until_no_threads(seconds: float) -> float:
    started = time.perf_counter()
    while (_threads("vlms-generate") or _threads("vlms-compare")) and time.perf_counter() - started < seconds:
        time.sleep(0.02)
    assert not _threads("vlms-generate"), "a generation thread is still running"
    assert not _threads("vlms-compare"), "a compare thread is still running"
    return time.perf_counter() - started


def _pair(tiny_smolvlm, tiny_plm, images, settings=SOME, **kwargs):
    return side_by_side_requests(str(tiny_smolvlm), str(tiny_plm), "Describe.", [str(i) for i in images],
                                 settings=settings, **kwargs)


def _prompt(stream) -> str:
    prepared = stream.prepared
    return prepared.loaded.tokenizer.decode(prepared.inputs["input_ids"][0])


# --- several images in one question ------------------------------------------------------------


def test_prompt_labels_match_the_gallery_captions(tiny_model, sample_image, second_image):
    paths = [str(sample_image), str(second_image), str(sample_image)]
    stream = start_multi_image(str(tiny_model), paths, "What differs?", RUNTIME, settings=FEW)
    prompt = _prompt(stream)
    chunks = list(stream)
    captions = [caption for _, caption in labelled(paths)]
    assert captions == image_labels(3) == ["Image 1", "Image 2", "Image 3"]
    positions = [prompt.index(f"{caption}:") for caption in captions]
    assert positions == sorted(positions) and "Image 4" not in prompt
    assert chunks[-1].finish_reason == "length" and chunks[-1].generated_tokens == 6
    assert stream.prepared.visual_tokens > 0


@pytest.mark.parametrize("count, message", [(1, "at least 2 images"), (9, "At most 8 images")])
def test_image_count_is_refused_before_any_model_work(tiny_smolvlm, sample_image, monkeypatch, count, message):
    monkeypatch.setattr("pipelines.runtime.load_model", _must_not_load)
    with pytest.raises(BadInputError, match=message):
        start_multi_image(str(tiny_smolvlm), [str(sample_image)] * count, "What differs?", RUNTIME)
    if count > 1:
        with pytest.raises(BadInputError, match=message):
            _pair(tiny_smolvlm, tiny_smolvlm, [sample_image] * count)


def test_the_compare_limit_comes_from_the_limits_table(tiny_smolvlm, sample_image, monkeypatch):
    three = Runtime("cpu", "fp32", LIMITS.with_value("compare_images", 3))
    monkeypatch.setattr("pipelines.runtime.load_model", _must_not_load)
    with pytest.raises(BadInputError, match="At most 3 images"):
        start_multi_image(str(tiny_smolvlm), [str(sample_image)] * 4, "x", three)


def test_compare_limit_governs_even_above_the_chat_limit(tiny_smolvlm, sample_image):
    chat_allows_two = Runtime("cpu", "fp32", LIMITS.with_value("max_images_per_message", 2))
    stream = start_multi_image(str(tiny_smolvlm), [str(sample_image)] * 3, "x", chat_allows_two, settings=FEW)
    assert "Image 3:" in _prompt(stream)
    stream.close()


def test_wrong_inputs_are_refused_with_clear_messages(tiny_smolvlm, sample_image, short_video, monkeypatch):
    monkeypatch.setattr("pipelines.runtime.load_model", _must_not_load)
    with pytest.raises(BadInputError, match="not a still image"):
        start_multi_image(str(tiny_smolvlm), [str(sample_image), str(short_video)], "x", RUNTIME)
    with pytest.raises(BadInputError, match="Type a question"):
        start_multi_image(str(tiny_smolvlm), [str(sample_image)] * 2, "  ", RUNTIME)
    with pytest.raises(BadInputError, match="either images or a video"):
        _pair(tiny_smolvlm, tiny_smolvlm, [sample_image], video=str(short_video))
    with pytest.raises(BadInputError, match="not a video"):
        _pair(tiny_smolvlm, tiny_smolvlm, [], video=str(sample_image))


def test_presets_name_the_purpose():
    assert "for a shop's front page" in preset_prompt("Rank them for a purpose", "a shop's front page")
    assert compare.DEFAULT_PURPOSE in preset_prompt("Rank them for a purpose", "")
    with pytest.raises(BadInputError, match="Unknown preset"):
        preset_prompt("nope")


def _must_not_load(*args, **kwargs):
    raise AssertionError("a model was loaded although the input was refused")


# --- two models side by side ---------------------------------------------------------------------


def test_smolvlm_and_plm_stream_into_two_panes_at_the_same_time(tiny_smolvlm, tiny_plm, sample_image, second_image):
    passes: list[int] = []  # which model ran each forward pass, in order
    hooks = [RUNTIME.load(str(model)).model.register_forward_pre_hook(lambda *_, pane=pane: passes.append(pane))
             for pane, model in enumerate((tiny_smolvlm, tiny_plm))]
    try:
        updates = [(u.pane, u.chunk) for u in
                   stream_side_by_side(*_pair(tiny_smolvlm, tiny_plm, [sample_image, second_image]), RUNTIME)]
    finally:
        for hook in hooks:
            hook.remove()
    chunks = [(pane, chunk) for pane, chunk in updates if chunk is not None]
    first_finish = next(i for i, (_, chunk) in enumerate(chunks) if chunk.finish_reason is not None)
    before = [pane for pane, _ in chunks[:first_finish]]
    assert before.count(0) >= 2 and before.count(1) >= 2, "both panes must stream before either finishes"
    for pane in (0, 1):
        own = [chunk for p, chunk in chunks if p == pane]
        assert own[-1].finish_reason == "length" and own[-1].generated_tokens == 48
    # Token-level interleaving on the one device lock, not one generation after the other ...
    switches = sum(1 for a, b in zip(passes, passes[1:]) if a != b)
    assert passes.count(0) == passes.count(1) == 48 and switches >= 24
    assert DEVICE_LOCK.max_active == 1  # ... and never two forward passes at once
    _wait_until_no_threads(1.0)


def test_pane_stats_and_each_family_samples_video_its_own_way(tiny_smolvlm, tiny_plm, short_video):
    requests = _pair(tiny_smolvlm, tiny_plm, [], settings=FEW, video=str(short_video))
    *_, last = stream_side_by_side(*requests, RUNTIME)
    smol, plm = last.panes
    assert (smol.info.video_frames, plm.info.video_frames) == (6, 32)  # 1 fps of 6 s; PerceptionLM's 32
    for pane in (smol, plm):
        assert pane.status == "done" and pane.answer and pane.last.generated_tokens == 6
        assert pane.last.time_to_first_token > 0 and pane.last.tokens_per_second > 0
        assert 0 < pane.info.visual_tokens < pane.info.prompt_tokens
        assert pane.info.weights_bytes > 0 and pane.peak_memory > pane.info.weights_bytes
        assert "both models running" in pane.memory_note


def test_stop_ends_both_generation_threads_within_two_seconds(tiny_smolvlm, tiny_plm, sample_image, second_image):
    cancel = threading.Event()
    updates = stream_side_by_side(*_pair(tiny_smolvlm, tiny_plm, [sample_image, second_image], settings=ENDLESS),
                                  RUNTIME, cancel)
    for update in updates:
        if all(pane.chunks >= 1 for pane in update.panes):
            break
    assert len(_threads("vlms-generate")) == 2
    cancel.set()
    started = time.perf_counter()
    *_, last = updates
    assert [pane.status for pane in last.panes] == ["stopped", "stopped"]
    assert all(pane.last.generated_tokens < 2000 for pane in last.panes)
    _wait_until_no_threads(2.0)
    assert time.perf_counter() - started < 2.0, "Stop took more than 2 s to end both threads"


def test_leaving_the_stream_early_stops_both(tiny_smolvlm, tiny_plm, sample_image):
    updates = stream_side_by_side(*_pair(tiny_smolvlm, tiny_plm, [sample_image], settings=ENDLESS), RUNTIME)
    for update in updates:
        if update.chunk is not None:
            break
    updates.close()  # what Gradio does when the client goes away
    _wait_until_no_threads(2.0)


def test_updates_only_on_change_and_a_consumer_keeps_control(tiny_smolvlm, tiny_plm, sample_image, monkeypatch):
    """No heartbeats from the pipeline: a consumer paces itself with Background.next_within."""
    def slow_start(*args, **kwargs):
        time.sleep(0.5)  # a long load or prefill, during which a consumer must still get control
        return start_chat(*args, **kwargs)

    monkeypatch.setattr(side_by_side, "start_chat", slow_start)
    requests = _pair(tiny_smolvlm, tiny_plm, [sample_image], settings=FEW)
    updates, waits = [], 0
    with Background(lambda stop: stream_side_by_side(*requests, RUNTIME, cancel=stop), name="test-pacer") as paced:
        while True:
            try:
                update = paced.next_within(0.1)
            except StopIteration:
                break
            if update is PENDING:
                waits += 1
            else:
                updates.append(update)
    assert waits >= 2  # the consumer had control while nothing changed
    assert all(u.pane in (0, 1) for u in updates)
    assert [p.status for p in updates[-1].panes] == ["done", "done"]


def test_one_after_the_other_runs_a_then_b(tiny_smolvlm, tiny_plm, sample_image):
    updates = [(u.pane, u.chunk, u.panes) for u in
               stream_side_by_side(*_pair(tiny_smolvlm, tiny_plm, [sample_image], settings=FEW), RUNTIME,
                                   sequential=True)]
    order = [pane for pane, chunk, _ in updates if chunk is not None]
    assert order == sorted(order) and set(order) == {0, 1}
    panes = updates[-1][2]
    assert all(p.status == "done" and p.peak_memory and "both" not in p.memory_note for p in panes)


def test_stop_in_sequential_mode_skips_the_second_model(tiny_smolvlm, tiny_plm, sample_image):
    cancel = threading.Event()
    updates = stream_side_by_side(*_pair(tiny_smolvlm, tiny_plm, [sample_image], settings=ENDLESS), RUNTIME,
                                  cancel, sequential=True)
    next(u for u in updates if u.chunk is not None)
    cancel.set()
    *_, last = updates
    assert [p.status for p in last.panes] == ["stopped", "stopped"] and last.panes[1].info is None
    _wait_until_no_threads(2.0)


def test_a_failure_in_one_pane_leaves_the_other_running(tiny_smolvlm, tiny_plm, sample_image, monkeypatch):
    plm = RUNTIME.load(str(tiny_plm))
    monkeypatch.setattr(plm, "spec", replace(plm.spec, context_length=12))
    *_, last = stream_side_by_side(*_pair(tiny_smolvlm, tiny_plm, [sample_image], settings=FEW), RUNTIME)
    smol_pane, plm_pane = last.panes
    assert smol_pane.status == "done" and smol_pane.last.generated_tokens == 6
    assert plm_pane.status == "failed" and "the limit for this model is 12" in plm_pane.error


def test_a_bug_in_one_pane_stops_both_and_reaches_the_caller(tiny_smolvlm, tiny_plm, sample_image, monkeypatch):
    plm = RUNTIME.load(str(tiny_plm))

    def broken_generate(**kwargs):
        raise RuntimeError("simulated failure inside generate")

    monkeypatch.setattr(plm.model, "generate", broken_generate)
    with pytest.raises(RuntimeError, match="simulated failure"):
        list(stream_side_by_side(*_pair(tiny_smolvlm, tiny_plm, [sample_image], settings=ENDLESS), RUNTIME))
    _wait_until_no_threads(2.0)


# --- memory --------------------------------------------------------------------------------------


def test_memory_estimate_is_parameters_times_dtype_bytes():
    plan = plan_memory(["smolvlm2-2.2b", "plm-8b"], "cpu", "bf16")
    assert dict(plan.needed) == {
        "SmolVLM2 2.2B (bf16)": int(2_246_784_880 * 2 * 1.2),
        "PerceptionLM 8B (bf16)": int(8_600_000_000 * 2 * 1.2),
    }
    same_twice = plan_memory(["smolvlm2-256m", "smolvlm2-256m"], "cpu", "fp32")
    assert same_twice.distinct == 1 and same_twice.total == int(256_484_928 * 4 * 1.2)


def test_local_checkpoints_are_estimated_from_their_safetensors(tiny_plm):
    loaded = RUNTIME.load(str(tiny_plm))
    estimate = memory.estimate_bytes(resolve(str(tiny_plm)), torch.float32)
    assert estimate == pytest.approx(loaded.param_count * 4 * 1.2, rel=0.02)


def test_pair_that_does_not_fit_is_refused_before_loading(tiny_smolvlm, tiny_plm, sample_image, monkeypatch):
    loading.clear_cache()
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1_000)
    requests = _pair(tiny_smolvlm, tiny_plm, [sample_image], settings=FEW)
    with pytest.raises(NotEnoughMemoryError, match="Run one after the other") as info:
        next(stream_side_by_side(*requests, RUNTIME))
    assert "do not fit in memory at once" in str(info.value)
    assert not loading.is_loaded(str(tiny_smolvlm), "cpu", "fp32") and not loading.is_loaded(str(tiny_plm), "cpu", "fp32")


def test_one_after_the_other_unloads_the_first_model_when_both_do_not_fit(tiny_smolvlm, tiny_plm, sample_image,
                                                                           monkeypatch):
    loading.clear_cache()
    one_model = memory.estimate_bytes(resolve(str(tiny_plm)), torch.float32) * 3 // 2
    monkeypatch.setattr(memory, "available_bytes", lambda device: one_model)
    requests = _pair(tiny_smolvlm, tiny_plm, [sample_image], settings=FEW)
    *_, last = stream_side_by_side(*requests, RUNTIME, sequential=True)
    assert [p.status for p in last.panes] == ["done", "done"]
    assert not loading.is_loaded(str(tiny_smolvlm), "cpu", "fp32") and loading.is_loaded(str(tiny_plm), "cpu", "fp32")


def test_peak_memory_tracks_a_run():
    with memory.PeakMemory("cpu") as monitor:
        before = monitor.peak()
        block = bytearray(64 << 20)  # 64 MB, every page touched, then freed before the run ends
        block[:: 4096] = b"x" * len(block[:: 4096])
        time.sleep(0.1)
        del block
    assert monitor.peak() - before >= 60 << 20 and "sampled" in monitor.what
    assert not _threads("vlms-memory")


def test_cuda_figures_come_from_the_allocator(monkeypatch):
    """No GPU in CI: the CUDA branches are checked against a stand-in allocator."""
    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 6 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 4 * gib)
    assert memory.available_bytes("cuda") == 12 * gib  # free + cached-but-unused
    peaks = iter([3 * gib, 5 * gib])
    resets = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: resets.append(device))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: next(peaks))
    with memory.PeakMemory("cuda") as monitor:
        pass
    assert resets == ["cuda"] and monitor.peak() == 5 * gib and "GPU" in monitor.what
