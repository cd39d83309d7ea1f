"""GPU figures: decode speed against the memory-bandwidth ceiling (eager vs static cache +
torch.compile), time to first token for one image and a 64-frame video, and the highlights scan
of a 1-hour video with SmolVLM2-2.2B.

    python -m benchmarks.run --device cuda --only gpu

* Stand-ins are built ON the device from the configs (tests/tiny_models.build_full_size with
  ``device``), never copied over.
* Decode: batch 1, bf16, a short text prompt, ``NEW_TOKENS`` forced new tokens. Eager = the
  default dynamic cache; static = ``cache_implementation="static"``, with which transformers
  compiles the decoding step (torch.compile, "reduce-overhead") on CUDA by itself. Each mode is
  warmed up on the same shapes first (the compile happens there and is reported separately), and
  both must produce the SAME tokens (greedy): a faster mode that changes answers does not count.
  The ceiling is the measured device-to-device copy bandwidth divided by the bytes of the weights
  one decoding step reads (the text decoder and its output head).
* TTFT goes through the app's pipeline (prepare_chat + stream_generate, warm).
* The scan is ``pipelines.highlights.analyse`` on a generated 1-hour 640x360 video, 10 s windows,
  the default frames per window, criteria given (no criteria generation); target under 60 s.

``run(device="cpu", quick=True)`` runs the same code on a CPU with fewer tokens, which is how the
tests keep it working where no GPU is lent (pass ``model_dir`` to use a tiny checkpoint).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from .common import CACHE_DIR, Row, cached, stand_in

SIZES = ("256m", "500m", "2.2b")
NEW_TOKENS = 128
QUICK_NEW_TOKENS = 8
SCAN_SECONDS = 3600
SCAN_TARGET_S = 60.0
SCAN_BATCH = 16
MODES = ("eager", "static")


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth(device: str, megabytes: int = 1024, repeats: int = 10) -> float:
    """Bytes per second moved by ``Tensor.copy_`` on ``device`` (read + write counted)."""
    source = torch.empty(megabytes << 19, dtype=torch.bfloat16, device=device)  # 2 bytes each
    target = torch.empty_like(source)
    target.copy_(source)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        target.copy_(source)
    synchronize(device)
    elapsed = time.perf_counter() - started
    moved = 2 * source.numel() * source.element_size() * repeats
    del source, target
    return moved / elapsed


def decode_weight_bytes(model) -> int:
    """Bytes of the weights one decoding step reads: the text decoder and the output head
    (the vision tower only runs in the prefill)."""
    seen, total = set(), 0
    for module in (model.get_decoder(), model.get_output_embeddings()):
        for parameter in module.parameters():
            if id(parameter) not in seen:
                seen.add(id(parameter))
                total += parameter.numel() * parameter.element_size()
    return total


def text_inputs(model_dir: Path, device: str) -> dict:
    from pipelines.chat import ChatRequest, prepare_chat
    from pipelines.messages import Turn
    from pipelines.runtime import Runtime

    request = ChatRequest(str(model_dir), (Turn("user", "Write a short story about a lighthouse keeper."),))
    return prepare_chat(request, Runtime(device=device, dtype="bf16")).inputs


def generate_timed(model, inputs: dict, new_tokens: int, mode: str, device: str) -> tuple[float, torch.Tensor]:
    extra = {"cache_implementation": "static"} if mode == "static" else {}
    synchronize(device)
    started = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                **extra)
    synchronize(device)
    return time.perf_counter() - started, output[0, inputs["input_ids"].shape[-1]:].cpu()


def decode_speed(loaded, inputs: dict, mode: str, device: str, new_tokens: int, repeats: int = 3) -> dict:
    """Warm-up (compile) time, decode tokens/s after the first token, and the greedy tokens."""
    warmup_s, tokens = generate_timed(loaded.model, inputs, new_tokens, mode, device)
    generate_timed(loaded.model, inputs, 1, mode, device)
    first, full = [], []
    for _ in range(repeats):
        first.append(generate_timed(loaded.model, inputs, 1, mode, device)[0])
        elapsed, again = generate_timed(loaded.model, inputs, new_tokens, mode, device)
        full.append(elapsed)
        if not torch.equal(again, tokens):
            raise AssertionError(f"{mode}: greedy decoding is not repeatable")
    decode_s = statistics.median(full) - statistics.median(first)
    return {"warmup_s": warmup_s, "tokens_per_s": (new_tokens - 1) / decode_s, "tokens": tokens}


def decode_rows(size: str, model_dir: Path, device: str, bandwidth: float, new_tokens: int) -> list[Row]:
    from pipelines.runtime import Runtime

    loaded = Runtime(device=device, dtype="bf16").load(str(model_dir))
    inputs = text_inputs(model_dir, device)
    ceiling = bandwidth / decode_weight_bytes(loaded.model)
    results = {mode: decode_speed(loaded, inputs, mode, device, new_tokens) for mode in MODES}
    same = torch.equal(results["eager"]["tokens"], results["static"]["tokens"])
    rows = []
    for mode, result in results.items():
        speed = result["tokens_per_s"]
        rows.append(Row("gpu", f"decode {size} bf16 batch 1, {mode}", speed, ceiling, "tok/s", speed / ceiling,
                        "fraction of the bandwidth ceiling", None,
                        f"warm-up {result['warmup_s']:.1f} s; tokens identical to eager: {same}"))
    eager, static = (results[m]["tokens_per_s"] for m in MODES)
    rows.append(Row("gpu", f"decode {size}: static+compile vs eager", static, eager, "tok/s", static / eager,
                    "adopt the faster one if outputs match", same and static > eager))
    return rows


def ttft_rows(size: str, model_dir: Path, device: str) -> list[Row]:
    from pipelines.chat import ChatRequest, prepare_chat
    from pipelines.generation import GenerationSettings, stream_generate
    from pipelines.messages import Attachment, Turn
    from pipelines.runtime import Runtime

    from .chat_overhead import _inputs
    from .memory import video_64s

    runtime = Runtime(device=device, dtype="bf16")
    cases = {"one image": (_inputs("image"), None), "64-frame video": (Attachment("video", str(video_64s())), 64)}
    rows = []
    for name, (attachment, frames) in cases.items():
        request = ChatRequest(str(model_dir), (Turn("user", "Describe this.", (attachment,)),), max_frames=frames)
        prepared = prepare_chat(request, runtime)
        times = []
        for _ in range(3):  # the first one warms up
            last = None
            for last in stream_generate(prepared.loaded, prepared.inputs, GenerationSettings(max_new_tokens=1, min_new_tokens=1)):
                pass
            times.append(last.time_to_first_token)
        rows.append(Row("gpu", f"TTFT {size} bf16, {name} ({prepared.prompt_tokens} tokens)", statistics.median(times[1:]),
                        None, "s", None, "reported", None))
    return rows


def hour_video(seconds: int = SCAN_SECONDS) -> Path:
    from tests.media_factory import make_video

    return cached(CACHE_DIR / f"scan-{seconds}s-640x360.mp4",
                  lambda out: make_video(out.with_suffix(".mp4"), seconds=seconds, fps=24, size=(640, 360)).rename(out))


def scan_row(model_dir: Path, device: str, seconds: int = SCAN_SECONDS, batch_size: int = SCAN_BATCH) -> Row:
    from pipelines.highlights import HighlightRequest, ScoreCache, analyse
    from pipelines.runtime import Runtime

    video = hour_video(seconds)
    runtime = Runtime(device=device, dtype="bf16")
    runtime.load(str(model_dir))  # loading is not part of the scan
    request = HighlightRequest(video=str(video), model=str(model_dir), criteria="a goal; a crowd cheering",
                               window_seconds=10, target_seconds=60, batch_size=batch_size)
    started = time.perf_counter()
    analysis = analyse(request, runtime, cache=ScoreCache(enabled=False))
    elapsed = time.perf_counter() - started
    target = SCAN_TARGET_S * seconds / SCAN_SECONDS
    return Row("gpu", f"highlights scan, {seconds // 60}-min video, {len(analysis.windows)} windows x "
               f"{analysis.frames_per_window} frames", elapsed, target, "s", target / elapsed,
               f"< {target:.0f} s", elapsed < target, f"scoring alone {analysis.scoring_seconds:.1f} s; batch {batch_size}")


def run(device: str = "cuda", quick: bool = False, model_dir: Path | None = None) -> list[Row]:
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    sizes = ("256m",) if quick else SIZES
    new_tokens = QUICK_NEW_TOKENS if quick else NEW_TOKENS
    bandwidth = copy_bandwidth(device, megabytes=64 if quick else 1024)
    rows = [Row("gpu", f"copy bandwidth ({device})", bandwidth / 1e9, None, "GB/s", None, "reported", None)]
    for size in sizes:
        path = model_dir or stand_in(size, device)
        rows += decode_rows(size, path, device, bandwidth, new_tokens)
        rows += ttft_rows(size, path, device)
    scan_model = model_dir or stand_in("256m" if quick else "2.2b", device)
    rows.append(scan_row(scan_model, device, seconds=120 if quick else SCAN_SECONDS))
    return rows
