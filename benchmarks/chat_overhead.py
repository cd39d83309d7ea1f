"""Chat overhead: time to first token and decode speed through the pipeline (worker thread,
streamer, cancel criteria, device-lock hooks) vs a bare ``model.generate`` on identical inputs.

Model: the full-size random SmolVLM2-256M stand-in, fp32 and bf16. Inputs: one image (one tile,
the CPU default) and an 8-frame video. Target: at most 5% overhead on both figures. Both sides
drive the same loaded module and read TTFT and decode speed from the same run's token timestamps
(the bare side through a streamer that only records times). Rounds run one of each, taking turns
at going first; a row's ratio is the median of the rounds' paired ratios.
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


class _Clock(BaseStreamer):
    """Timestamps of what ``generate`` hands a streamer: the prompt first, then each new token.
    The cheapest way to read a bare generate's TTFT and decode speed from ONE run."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _bare(model, inputs, new_tokens: int = NEW_TOKENS) -> tuple[float, float]:
    """(time to first token, decode tokens/s) of a bare ``generate``. It runs on a thread that ends
    with it, as everything tensor-heavy in the app does: a generate on this (long-lived) main
    thread would leave an OpenMP pool here that slows every OTHER thread's decoding
    (pipelines/devices.py), i.e. the harness would penalise the pipeline for the reference's sake."""
    clock = _Clock()
    started = time.perf_counter()
    on_fresh_thread(_generate, model, inputs, clock, new_tokens)
    first, last = clock.times[1], clock.times[-1]  # times[0]: the prompt
    return first - started, (len(clock.times) - 2) / (last - first)


def _generate(model, inputs, streamer: BaseStreamer, new_tokens: int = NEW_TOKENS) -> None:
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       streamer=streamer)


def _ours(loaded, inputs) -> tuple[float, float]:
    settings = GenerationSettings(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    last = None
    for last in stream_generate(loaded, inputs, settings):
        pass
    return last.time_to_first_token, last.tokens_per_second


def measure(model_dir, dtype_name: str, kind: str, repeats: int, device: str = "cpu") -> dict:
    """One warm-up of each side, then ``repeats`` rounds of one bare and one pipeline run. Returns
    the per-round figures, each side as a list of (time to first token, decode tokens/s)."""
    runtime = Runtime(device=device, dtype=dtype_name)
    request = ChatRequest(str(model_dir), (Turn("user", "Describe this.", (_inputs(kind),)),),
                          max_frames=8 if kind == "video" else None, video_fps=None)
    started = time.perf_counter()
    prepared = prepare_chat(request, runtime)
    prepare_s = time.perf_counter() - started
    inputs = prepared.inputs
    # The SAME module on both sides, so the ratio compares the pipeline alone: with a second copy
    # of the weights the bf16 decode ratio wandered from 0.91x to 1.10x between full runs.
    sides = {"bare": lambda: _bare(prepared.loaded.model, inputs), "ours": lambda: _ours(prepared.loaded, inputs)}
    for run_once in sides.values():  # warm-up
        run_once()
    runs = {name: [] for name in sides}
    for round_ in range(repeats):  # interleaved, taking turns at going first: drift hits both alike
        for name in list(sides)[::-1 if round_ % 2 else 1]:
            runs[name].append(sides[name]())
    return {"prepare_s": prepare_s, "visual_tokens": prepared.visual_tokens, "prompt_tokens": prepared.prompt_tokens,
            **runs}


def paired_ratios(ours: list[float], bare: list[float], higher_is_better: bool) -> list[float]:
    """Round-by-round ratios, > 1 when ours is better. Each pair ran back to back, so slow drift
    of a shared machine cancels within a pair instead of landing on one side's median."""
    return [o / b if higher_is_better else b / o for o, b in zip(ours, bare, strict=True)]


def overhead_row(case: str, unit: str, ours: list[float], bare: list[float], note: str = "") -> Row:
    """A row whose ratio is the median paired ratio; the note gives their spread, which is the
    measurement's noise: the pipeline adds the same small cost to every round."""
    ratios = paired_ratios(ours, bare, higher_is_better=unit == "tok/s")
    ratio = statistics.median(ratios)
    spread = f"{len(ratios)} paired rounds, ratios {min(ratios):.2f}-{max(ratios):.2f}"
    return Row("chat", case, statistics.median(ours), statistics.median(bare), unit, ratio, "overhead <= 5%",
               ratio >= 1 / 1.05, "; ".join(part for part in (spread, note) if part))


def run(device: str = "cpu", quick: bool = False) -> list[Row]:
    model_dir = stand_in("256m", device)
    rows = []
    for dtype in ("bf16",) if quick else ("bf16", "fp32"):
        for kind in ("image", "video"):
            m = measure(model_dir, dtype, kind, repeats=2 if quick else 5, device=device)
            case = f"256M {dtype}, {kind} ({m['visual_tokens']} visual tokens)"
            side = lambda name, k: [r[k] for r in m[name]]  # noqa: E731
            rows.append(overhead_row(f"TTFT {case}", "s", side("ours", 0), side("bare", 0),
                                     f"preprocessing (decode + processor) {m['prepare_s']:.2f} s, not in either figure"))
            rows.append(overhead_row(f"decode {case}", "tok/s", side("ours", 1), side("bare", 1)))
    return rows
