"""ZeroGPU support: on a ZeroGPU Space, model work runs under ``spaces.GPU``; elsewhere nothing changes.

Hugging Face ZeroGPU Spaces have no GPU in the app's process. A function decorated with
``spaces.GPU(duration=...)`` is run in a forked worker that holds a GPU for at most ``duration``
seconds; its arguments and results (each yielded item, for a generator) are PICKLED across the
process boundary, and the module-level state of the app (the loaded-model cache, preloaded and
moved to "cuda" before the server starts) is inherited by the fork. Shorter requested durations
are scheduled sooner, and a task that outlives its duration is killed: so the duration is
estimated per request, from its tokens and frames (``estimate_seconds``).

Contract:
- ``spaces`` is imported when it is installed (Spaces provide it; it is NOT a requirement).
  Import this module before torch initialises CUDA: app.py imports it first.
- ``gpu_task(duration)``: ``spaces.GPU(duration=duration)`` when ``spaces`` is installed (which
  itself is a no-op off ZeroGPU hardware), else the function unchanged.
- ``enabled()``: True on ZeroGPU hardware (``SPACES_ZERO_GPU``, as ``spaces`` reads it) with
  ``spaces`` installed. Only then does the engine of local models (pipelines.engines) send
  generation (``stream_on_gpu``) and batch scoring (``forward_logits``) to the GPU worker;
  otherwise they run in-process exactly as before. A scan that keeps frame features
  (pipelines.features) sends ``features_pass`` instead: the new frames are encoded and the batch
  scored in ONE GPU task, and the new features come back to be kept on the parent's disk.
- Across the boundary go only picklable, light values: the model's cache key (never the model),
  CPU tensors, settings. The worker looks the model up in its (forked) cache, loading it if the
  fork predates it.
- Stop: the worker cannot see the caller's ``threading.Event``. The worker sends an empty
  heartbeat chunk at least every ``HEARTBEAT_S`` (a detail of this boundary, never seen above
  it); the caller checks its event on every item and closes the worker's stream when it is set
  (``spaces`` then stops the worker's task).
- Imports point one way: this module uses pipelines.generation; nothing below it imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Iterator

try:  # Spaces provide the package; everywhere else the app runs without it. First: before torch.
    import spaces
except ImportError:  # pragma: no cover - depends on the environment
    spaces = None

from .background import PENDING, Background  # noqa: E402
from .generation import Chunk, stream_generate  # noqa: E402

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5
# Estimate: fixed cost (worker start, weights onto the GPU) + prefill + vision + decode. The
# per-unit costs are generous figures for HF generate on one ZeroGPU slice (an H200 MIG): about
# 30 ms per new token for a ~2B model, more for bigger ones; a task killed for running late
# loses the whole answer, while asking a little too much only queues it a little later.
OVERHEAD_S = 8.0
PREFILL_TOKENS_PER_S = 4000.0
VISION_S_PER_FRAME = 0.05
DECODE_S_PER_TOKEN = 0.02
DECODE_S_PER_TOKEN_PER_BILLION = 0.006
MIN_DURATION_S = 10
MAX_DURATION_S = int(os.environ.get("VLMS_ZEROGPU_MAX_DURATION", 120))


def on_space(environ=os.environ) -> bool:
    """Running on a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(environ.get("SPACE_ID"))


def enabled(environ=os.environ) -> bool:
    """ZeroGPU hardware and the ``spaces`` package: model work must go through ``spaces.GPU``."""
    return spaces is not None and environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def gpu_task(duration) -> Callable:
    """``spaces.GPU(duration=duration)`` when ``spaces`` is installed, else the identity.

    ``duration`` is seconds, or a function of the task's own arguments returning seconds.
    """
    def decorate(function: Callable) -> Callable:
        if spaces is None:
            return function
        return spaces.GPU(duration=duration)(function)

    return decorate


def estimate_seconds(prompt_tokens: int, max_new_tokens: int = 0, frames: int = 0, params: int = 0) -> int:
    """GPU seconds to reserve for one request: prompt (incl. visual) tokens, vision frames or
    image tiles, new tokens to generate at most, and the model's size (parameters; 0 = unknown,
    costed as 2B). Clamped to [MIN_DURATION_S, MAX_DURATION_S]."""
    billions = (params or 2e9) / 1e9
    prefill = prompt_tokens / PREFILL_TOKENS_PER_S * max(1.0, billions / 2)
    decode = max_new_tokens * (DECODE_S_PER_TOKEN + DECODE_S_PER_TOKEN_PER_BILLION * billions)
    seconds = OVERHEAD_S + prefill + frames * VISION_S_PER_FRAME + decode
    return int(min(MAX_DURATION_S, max(MIN_DURATION_S, round(seconds + 0.5))))


def visual_inputs(inputs: dict) -> int:
    """How many images, tiles or video frames the vision encoder will see in ``inputs``."""
    count = 0
    for name in ("pixel_values", "pixel_values_videos"):
        tensor = inputs.get(name)
        if tensor is not None and hasattr(tensor, "shape"):
            # SmolVLM: (batch, frames/tiles, C, H, W); PerceptionLM: (batch[, frames], tiles, C, H, W)
            count += int(_product(tensor.shape[:-3]))
    return count


def _product(numbers) -> int:
    result = 1
    for number in numbers:
        result *= int(number)
    return result


# --------------------------------------------------------------------------------------------
# Values that cross the process boundary
# --------------------------------------------------------------------------------------------


def model_key(loaded) -> tuple[str, str, str]:
    """A picklable handle to a loaded model: (source, device, dtype name)."""
    from .devices import dtype_name

    return loaded.spec.source, loaded.device, dtype_name(loaded.dtype)


def worker_model(key: tuple[str, str, str]):
    """In the GPU worker: the model the parent loaded (inherited by the fork), or load it now."""
    from .loading import load_model

    return load_model(*key)


def to_cpu(inputs: dict) -> dict:
    return {name: value.cpu() if hasattr(value, "cpu") else value for name, value in dict(inputs).items()}


def to_device(inputs: dict, device: str) -> dict:
    return {name: value.to(device) if hasattr(value, "to") else value for name, value in inputs.items()}


# --------------------------------------------------------------------------------------------
# Generation (chat, compare)
# --------------------------------------------------------------------------------------------


def _generation_duration(key, inputs, settings, stall_s=None) -> int:
    from .loading import cached_models

    params = next((m.param_count for m in cached_models() if model_key(m) == key), 0)
    return estimate_seconds(int(inputs["input_ids"].shape[-1]), settings.max_new_tokens, visual_inputs(inputs), params)


def _generate_in_worker(key, inputs, settings, stall_s=None) -> Iterator:
    """Runs in the GPU worker: the ordinary in-process stream, plus an empty chunk whenever
    nothing came for ``HEARTBEAT_S``, so the caller can close it on Stop."""
    loaded = worker_model(key)
    inputs = to_device(inputs, loaded.device)
    produce = lambda stop: stream_generate(loaded, inputs, settings, stop, stall_s=stall_s)  # noqa: E731
    last = None
    with Background(produce, name="vlms-gpu-task") as chunks:
        while True:
            try:
                chunk = chunks.next_within(HEARTBEAT_S)
            except StopIteration:
                return
            if chunk is PENDING:
                yield _heartbeat(last, inputs)
                continue
            last = chunk
            yield chunk


def _heartbeat(last, inputs) -> Chunk:
    if last is None:
        now = time.perf_counter()
        return Chunk("", 0, int(inputs["input_ids"].shape[-1]), now, None, now)
    return dataclasses.replace(last, text="", now=time.perf_counter())


_generate_on_gpu = gpu_task(duration=_generation_duration)(_generate_in_worker)


def stream_on_gpu(loaded, inputs: dict, settings, cancel: threading.Event | None = None, *,
                  stall_s: float | None = None) -> Iterator:
    """``generation.stream_generate`` on ZeroGPU: the same chunks, produced by the GPU worker."""
    cancel = cancel or threading.Event()
    remote = _generate_on_gpu(model_key(loaded), to_cpu(inputs), settings, stall_s)
    last = None
    try:
        for chunk in remote:
            if cancel.is_set():
                break
            last = chunk
            if chunk.text or chunk.finish_reason:  # the worker's heartbeats stay at this boundary
                yield chunk
    finally:
        remote.close()  # spaces stops the worker's task when its stream is closed early
    if cancel.is_set() and (last is None or last.finish_reason is None):
        yield _cancelled(last, inputs)


def _cancelled(last, inputs):
    if last is None:
        now = time.perf_counter()
        return Chunk("", 0, int(inputs["input_ids"].shape[-1]), now, None, now, "cancelled")
    return dataclasses.replace(last, text="", now=time.perf_counter(), finish_reason="cancelled")


# --------------------------------------------------------------------------------------------
# One forward pass (batched scoring)
# --------------------------------------------------------------------------------------------


def _forward_duration(key, inputs, forward_kwargs) -> int:
    return estimate_seconds(int(inputs["input_ids"].numel()), 0, visual_inputs(inputs))


def _forward_in_worker(key, inputs, forward_kwargs):
    import torch

    loaded = worker_model(key)
    kwargs = to_device(forward_kwargs, loaded.device)
    with torch.inference_mode():
        output = loaded.model(**to_device(inputs, loaded.device), **kwargs)
    return output.logits.float().cpu()


_forward_on_gpu = gpu_task(duration=_forward_duration)(_forward_in_worker)


def forward_logits(loaded, inputs: dict, **forward_kwargs):
    """``loaded.model(**inputs, **forward_kwargs).logits`` computed by the GPU worker, as a CPU
    float tensor. For batch scoring on ZeroGPU (check ``enabled()`` first)."""
    return _forward_on_gpu(model_key(loaded), to_cpu(inputs), to_cpu(forward_kwargs))


def _features_duration(key, text_inputs, frames, forward_kwargs) -> int:
    encoded = frames.pixels.shape[0] if frames.pixels is not None else 0
    return estimate_seconds(int(text_inputs["input_ids"].numel()), 0, encoded)


def _features_in_worker(key, text_inputs, frames, forward_kwargs):
    from .features import features_pass as run_pass

    loaded = worker_model(key)
    logits, new = run_pass(loaded, text_inputs, frames, **to_device(forward_kwargs, loaded.device))
    return logits.float().cpu(), new.cpu() if new is not None else None


_features_on_gpu = gpu_task(duration=_features_duration)(_features_in_worker)


def features_pass(loaded, text_inputs: dict, frames, **forward_kwargs):
    """``features.features_pass`` computed by the GPU worker: (CPU float logits, the newly encoded
    frames' features on the CPU or None). Only the pixels of frames not yet encoded are sent."""
    return _features_on_gpu(model_key(loaded), to_cpu(text_inputs), frames, to_cpu(forward_kwargs))


def _encode_duration(key, pixels, masks) -> int:
    return estimate_seconds(0, 0, int(pixels.shape[0]))


def _encode_in_worker(key, pixels, masks):
    from .features import encode_held

    return encode_held(worker_model(key), pixels, masks)


_encode_on_gpu = gpu_task(duration=_encode_duration)(_encode_in_worker)


def encode_frames(loaded, pixels, masks=None):
    """``features.encode_held`` computed by the GPU worker: the frames' vision features, on the
    CPU (a chat prompt's new frames; the generation then runs on features in its own task)."""
    return _encode_on_gpu(model_key(loaded), pixels.cpu(), masks.cpu() if masks is not None else None)
