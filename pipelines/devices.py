"""Device and dtype choice, and the ONE device lock that serialises model work.

Contract: ``choose_device``/``choose_dtype`` pick CUDA+bf16 when a GPU is present, else the CPU
in bf16 where the CPU has native bf16 instructions (measured on 2 cores with AMX: bf16 prefill ~3x
faster than fp32, decode about the same; benchmarks/, README "Performance")
and fp32 elsewhere. Both accept an explicit override.

``DEVICE_LOCK`` is taken around every top-level forward pass of every loaded model (installed as
module hooks by ``guard_model``). Two generations therefore interleave token by token instead
of running two forward passes at once or waiting for each other to finish: this is what lets
Compare stream two models into two panes on one device without deadlocking, and lets a chat and
a highlight scan share the machine. A request whose cancel event is set is refused at its next
forward pass, so Stop also ends a long prefill queue wait.

``on_fresh_thread(fn, ...)`` runs CPU tensor work (loading, the processor, scoring passes) on a
short-lived thread; generation runs on one too (pipelines.generation). The reason is measured,
not stylistic: torch's CPU backend (OpenMP, libgomp) keeps a worker pool for EVERY thread that
has run a parallel op, for as long as that thread lives. When long-lived threads (the app
server's worker pool, a CLI's main thread) keep pools, the pools hold more threads than the
machine has cores, libgomp stops spin-waiting, and every small op of a decoding step pays a
thread wake-up: on 2 cores, SmolVLM2-256M decoded 13 tok/s instead of 23 (bf16). Pools die with
their threads, so work done on threads that end leaves one live pool per running request.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import BadInputError, GenerationCancelled

_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
           "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}


def choose_device(requested: str | None = None) -> str:
    """'cuda' when available, else 'cpu'; an explicit request is validated, not ignored."""
    if requested in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(f"Device '{requested}' was requested but no CUDA GPU is available.")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise BadInputError(f"Unknown device '{requested}'. Use auto, cpu or cuda.")
    return requested


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU advertises native bf16 matmul (AVX512-BF16 or AMX-BF16)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def choose_dtype(device: str, requested: str | None = None) -> torch.dtype:
    if requested not in (None, "", "auto"):
        try:
            return _DTYPES[requested]
        except KeyError:
            raise BadInputError(f"Unknown dtype '{requested}'. Use auto, bf16, fp16 or fp32.") from None
    if device.startswith("cuda"):
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype, str(dtype))


class DeviceLock:
    """A re-entrant lock with counters, so tests and the soak can prove exclusivity.

    Built on a plain Lock (not an RLock) so that ``forfeit`` can hand the device back on behalf
    of a thread that hung inside a forward pass: the generation watchdog (pipelines.generation)
    abandons such a thread, and the next request must not wait for it forever. The abandoned
    thread's own later ``release`` is then a no-op, and its cancel event is set, so its next
    forward pass is refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()  # owner/depth/counters change together, under this
        self._owner: int | None = None
        self._depth = 0
        self.active = 0
        self.max_active = 0
        self.passes = 0

    @contextmanager
    def held(self, cancel: threading.Event | None = None):
        self.acquire(cancel)
        try:
            yield
        finally:
            self.release()

    def acquire(self, cancel: threading.Event | None = None) -> None:
        cancel = cancel or current_cancel_event()
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return
        while not self._lock.acquire(timeout=0.05):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("Stopped while waiting for the model.")
        with self._guard:
            self._owner, self._depth = me, 1
            self.active += 1
            self.passes += 1
            self.max_active = max(self.max_active, self.active)

    def release(self) -> None:
        with self._guard:
            if self._owner != threading.get_ident():
                return  # forfeited on this thread's behalf while it hung: nothing left to release
            self._depth -= 1
            if self._depth == 0:
                self._let_go()

    def forfeit(self, thread: threading.Thread) -> bool:
        """Release the lock if ``thread`` holds it (it hung); True if it did."""
        with self._guard:
            if self._owner is None or self._owner != thread.ident:
                return False
            self._let_go()
            return True

    def _let_go(self) -> None:
        self._owner, self._depth = None, 0
        self.active -= 1
        self._lock.release()


DEVICE_LOCK = DeviceLock()
_request = threading.local()


@contextmanager
def cancel_scope(event: threading.Event | None):
    """Tie the calling thread's forward passes to ``event`` (see module docstring)."""
    previous = getattr(_request, "cancel", None)
    _request.cancel = event
    try:
        yield
    finally:
        _request.cancel = previous


def current_cancel_event() -> threading.Event | None:
    return getattr(_request, "cancel", None)


def _before_forward(module, args, kwargs):
    # A stack per thread: the always-called post hook must release only what this pre hook took,
    # even when the pre hook itself raised (cancelled while queued) before acquiring.
    stack = _request.__dict__.setdefault("held", [])
    stack.append(False)
    cancel = current_cancel_event()
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("Stopped.")
    DEVICE_LOCK.acquire(cancel)
    stack[-1] = True


def _after_forward(module, args, kwargs, output):
    stack = _request.__dict__.get("held", [])
    if stack and stack.pop():
        DEVICE_LOCK.release()


def guard_model(model: torch.nn.Module) -> None:
    """Install the lock hooks once; ``always_call`` releases the lock even when forward raises."""
    if getattr(model, "_vlms_guarded", False):
        return
    model.register_forward_pre_hook(_before_forward, with_kwargs=True)
    model.register_forward_hook(_after_forward, with_kwargs=True, always_call=True)
    model._vlms_guarded = True


def on_fresh_thread(fn, /, *args, **kwargs):
    """``fn(*args, **kwargs)`` on a new thread that ends with it (module docstring); returns its
    result or re-raises its exception in the caller."""
    result, failure = [], []

    def run() -> None:
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as error:  # re-raised in the caller, with its traceback
            failure.append(error)

    worker = threading.Thread(target=run, name="vlms-tensor-work", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]
