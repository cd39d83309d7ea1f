"""Chat overhead: time to first token and decode speed through the pipeline (worker thread,
streamer, cancel criteria, device-lock hooks) vs a bare ``model.generate`` on identical inputs.

Model: the full-size random SmolVLM2-256M stand-in, fp32 and bf16. Inputs: one image (one tile,
the CPU default) and an 8-frame video. Target: at most 5% overhead on both figures. Both sides
read TTFT and decode speed from the same run's token timestamps (the bare side through a streamer
that only records times), medians of interleaved repeats.
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers.generation.streamers import BaseStreamer

from pipelines.chat import ChatRequest, prepare_chat
from pipelines.devices import on_fresh_thread
from pipelines.generation import GenerationSettings, stream_generate
from pipelines.messages import Attachment, Turn
from pipelines.runtime import Runtime

from .common import CACHE_DIR, Row, cached, stand_in

NEW_TOKENS = 32


def _inputs(kind: str) -> Attachment:
    from tests.media_factory import make_image, make_video

    if kind == "image":
        path = cached(CACHE_DIR / "photo-512.png", lambda out: make_image(out.with_suffix(".png"), size=(512, 512),
                                                                           fmt="PNG").rename(out))
        return Attachment("image", str(path))
    path = cached(CACHE_DIR / "clip-8s.mp4", lambda out: make_video(out.with_suffix(".mp4"), seconds=8, fps=24,
                                                                     size=(640, 360)).rename(out))
    return Attachment("video", str(path))


def _bare_model(model_dir, dtype: torch.dtype, device: str):
    from transformers import AutoModelForImageTextToText

    return on_fresh_thread(lambda: AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype).to(device).eval())


class _Clock(BaseStreamer):
    """Timestamps of what ``generate`` hands a streamer: the prompt first, then each new token.
    The cheapest way to read a bare generate's TTFT and decode speed from ONE run."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _bare(model, inputs) -> tuple[float, float]:
    """(time to first token, decode tokens/s) of a bare ``generate``. It runs on a thread that ends
    with it, as everything tensor-heavy in the app does: a generate on this (long-lived) main
    thread would leave an OpenMP pool here that slows every OTHER thread's decoding
    (pipelines/devices.py), i.e. the harness would penalise the pipeline for the reference's sake."""
    clock = _Clock()
    started = time.perf_counter()
    on_fresh_thread(_generate, model, inputs, clock)
    first, last = clock.times[1], clock.times[-1]  # times[0]: the prompt
    return first - started, (len(clock.times) - 2) / (last - first)


def _generate(model, inputs, streamer: BaseStreamer) -> None:
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                       streamer=streamer)


def _ours(loaded, inputs) -> tuple[float, float]:
    settings = GenerationSettings(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    last = None
    for last in stream_generate(loaded, inputs, settings):
        pass
    return last.time_to_first_token, last.tokens_per_second


def measure(model_dir, dtype_name: str, kind: str, repeats: int, device: str = "cpu") -> dict:
    runtime = Runtime(device=device, dtype=dtype_name)
    request = ChatRequest(str(model_dir), (Turn("user", "Describe this.", (_inputs(kind),)),),
                          max_frames=8 if kind == "video" else None, video_fps=None)
    started = time.perf_counter()
    prepared = prepare_chat(request, runtime)
    prepare_s = time.perf_counter() - started
    inputs = prepared.inputs
    bare = _bare_model(model_dir, prepared.loaded.dtype, device)
    _bare(bare, inputs)  # warm-up both paths
    _ours(prepared.loaded, inputs)
    bare_runs, our_runs = [], []
    for _ in range(repeats):  # interleaved so drift on a busy machine hits both alike
        bare_runs.append(_bare(bare, inputs))
        our_runs.append(_ours(prepared.loaded, inputs))
    del bare
    median = lambda runs, k: statistics.median(run[k] for run in runs)  # noqa: E731
    return {"prepare_s": prepare_s, "visual_tokens": prepared.visual_tokens, "prompt_tokens": prepared.prompt_tokens,
            "ttft_ours": median(our_runs, 0), "ttft_bare": median(bare_runs, 0),
            "tps_ours": median(our_runs, 1), "tps_bare": median(bare_runs, 1)}


def run(device: str = "cpu", quick: bool = False) -> list[Row]:
    model_dir = stand_in("256m", device)
    rows = []
    for dtype in ("bf16",) if quick else ("bf16", "fp32"):
        for kind in ("image", "video"):
            m = measure(model_dir, dtype, kind, repeats=2 if quick else 3, device=device)
            case = f"256M {dtype}, {kind} ({m['visual_tokens']} visual tokens)"
            note = f"preprocessing (decode + processor) {m['prepare_s']:.2f} s, not in either figure"
            rows.append(Row("chat", f"TTFT {case}", m["ttft_ours"], m["ttft_bare"], "s",
                            m["ttft_bare"] / m["ttft_ours"], "overhead <= 5%", m["ttft_ours"] <= 1.05 * m["ttft_bare"],
                            note))
            rows.append(Row("chat", f"decode {case}", m["tps_ours"], m["tps_bare"], "tok/s",
                            m["tps_ours"] / m["tps_bare"], "overhead <= 5%", m["tps_ours"] >= m["tps_bare"] / 1.05))
    return rows
