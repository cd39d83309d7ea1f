"""Memory: how much a model will need before it is loaded, how much the machine has free, and the
peak reached while a model runs.

Contract
--------
* ``estimate_bytes(spec, dtype)``: parameters x bytes per element x 1.2 (``ModelSpec.estimated_bytes``:
  weights plus ~20% for activations and caches). The parameter count comes from the registry, or
  for a local checkpoint from its safetensors headers (shapes only; no tensor is read).
* ``available_bytes(device)``: what a new model could use now. CUDA: free device memory
  (``torch.cuda.mem_get_info``) plus what PyTorch's caching allocator holds but does not use. CPU:
  ``MemAvailable`` from /proc/meminfo. ``None`` when the platform does not say (no check is made).
* ``is_out_of_memory(error)``: the ONE test for "memory ran out" (CUDA, CPU allocator, numpy).
* ``PeakMemory(device)``: the peak while a run is in progress, and a plain-words note of WHAT was
  measured. CUDA: ``torch.cuda.max_memory_allocated`` since the tracker started (tensors PyTorch
  allocated on the device, all threads). CPU: the process's resident set size, sampled every
  ``SAMPLE_INTERVAL_S`` by a small thread (``ru_maxrss`` cannot be reset, so it could only tell the
  peak since the process started). Both are process-wide: two models running at once share one
  figure, and the note says so.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .devices import choose_device, dtype_name
from .loading import MAX_CACHED_MODELS, cached_models, is_loaded, resolve_placement
from .registry import ModelSpec


log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.02
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means memory ran out during model work, on any device: CUDA raises
    ``torch.OutOfMemoryError``, torch's CPU allocator a plain RuntimeError ("can't allocate
    memory"), numpy and Python ``MemoryError``. The one test every model-work path uses."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


def param_count(spec: ModelSpec) -> int:
    """The registry's count, else the sum of tensor sizes in the checkpoint's safetensors files."""
    if spec.params:
        return spec.params
    if spec.is_local:
        return _safetensors_params(Path(spec.source))
    return 0


def _safetensors_params(directory: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as tensors:
                for name in tensors.keys():
                    total += _numel(tensors.get_slice(name).get_shape())
        except Exception as error:  # a damaged file: loading will say so; the estimate is just lower
            log.warning("Could not read tensor shapes from %s: %s", file.name, error)
    return total


def _numel(shape) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def estimate_bytes(spec: ModelSpec, dtype: torch.dtype) -> int:
    """Memory a model will take once loaded in ``dtype`` (see the module docstring)."""
    from dataclasses import replace

    return replace(spec, params=param_count(spec)).estimated_bytes(dtype.itemsize)


def weights_bytes(model: torch.nn.Module) -> int:
    """Exact size of a loaded model's parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def available_bytes(device: str) -> int | None:
    """Memory a new model could use on ``device`` now; None when the platform does not tell."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        # Blocks PyTorch has cached but not handed out count as used for the driver, yet a new
        # model would reuse them.
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return _meminfo_available()


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def format_bytes(count: int | None) -> str:
    if count is None:
        return "unknown"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _rss_bytes() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


def _max_rss_since_start() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KB


class PeakMemory:
    """Track the peak memory while a run is in progress; use as a context manager.

    ``peak()`` may be read at any time (also after ``stop()``); ``what`` says what the figure is.
    """

    _WHAT = {
        "cuda": "peak GPU memory allocated by PyTorch in this process",
        "rss": "peak resident memory of the app process (sampled)",
        "maxrss": "peak resident memory of the app process since it started",
    }

    def __init__(self, device: str):
        self.device = device
        self.mode = "cuda" if device.startswith("cuda") else ("rss" if _rss_bytes() is not None else "maxrss")
        self.what = self._WHAT[self.mode]
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "PeakMemory":
        if self.mode == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.mode == "rss":
            self._sample()
            self._thread = threading.Thread(target=self._sample_until_stopped, name="vlms-memory", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._peak = self.peak()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def peak(self) -> int:
        if self.mode == "cuda":
            return max(self._peak, int(torch.cuda.max_memory_allocated(self.device)))
        if self.mode == "maxrss":
            return _max_rss_since_start()
        if self._thread is not None:  # still running: include this very moment
            self._sample()
        return self._peak

    def __enter__(self) -> "PeakMemory":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _sample(self) -> None:
        rss = _rss_bytes()
        if rss is not None and rss > self._peak:
            self._peak = rss

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self._sample()


# =============================================================================================
# Will these models fit? (Compare asks before loading two models at once.)
# =============================================================================================


@dataclass(frozen=True)
class MemoryPlan:
    device: str
    distinct: int  # models in the pair (1 when both panes use the same model)
    needed: tuple[tuple[str, int], ...]  # (label, estimated bytes) of models not loaded yet
    reclaimable: int  # weights of cached models that loading the pair evicts
    available: int | None  # None: the platform does not say; no check is made

    @property
    def total(self) -> int:
        return sum(size for _, size in self.needed)

    @property
    def fits(self) -> bool:
        return self.available is None or self.total <= self.available + self.reclaimable

    def refusal(self) -> str:
        parts = ", ".join(f"{label} ~{format_bytes(size)}" for label, size in self.needed)
        where = "on the GPU" if self.device.startswith("cuda") else "in RAM"
        free = format_bytes((self.available or 0) + self.reclaimable)
        return (f"Both models do not fit in memory at once: they need about {format_bytes(self.total)} "
                f"({parts}; parameters x bytes per value + 20%), and about {free} is free {where}. "
                "Tick \"Run one after the other\" to load them one at a time, or pick smaller models.")


def plan_memory(models: Sequence[str], device: str | None = None, dtype: str | None = None) -> MemoryPlan:
    """Estimate what loading the local ``models`` on ``device`` in ``dtype`` (None: automatic, as
    ``Runtime`` has them) needs against what is free; loads nothing.

    needed = ``estimate_bytes`` (parameters x bytes per value of the dtype x 1.2) summed over the
    distinct models not loaded yet; available = ``available_bytes`` (CUDA: free device memory;
    CPU: MemAvailable) plus the weights of the cached models that loading them evicts (the cache
    keeps ``loading.MAX_CACHED_MODELS``)."""
    needed, pair_keys = [], []
    for name in models:
        spec, placed, placed_dtype = resolve_placement(name, device, dtype)
        key = (spec.source, placed, placed_dtype)
        if key in pair_keys:
            continue  # the same model twice is loaded once
        pair_keys.append(key)
        if not is_loaded(name, device, dtype):
            label = f"{spec.label} ({dtype_name(placed_dtype)})"
            needed.append((label, estimate_bytes(spec, placed_dtype)))
    where = choose_device(device)
    others = [m for m in cached_models() if (m.spec.source, m.device, m.dtype) not in pair_keys]
    kept = max(0, MAX_CACHED_MODELS - len(pair_keys))
    evicted = others[: max(0, len(others) - kept)]  # oldest first, as the cache evicts them
    reclaimable = sum(weights_bytes(m.model) for m in evicted) if needed else 0
    return MemoryPlan(where, len(pair_keys), tuple(needed), reclaimable, available_bytes(where))
