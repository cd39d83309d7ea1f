"""Two models answering the same input, side by side, as one stream of pane updates.

Contract
--------
* ``stream_side_by_side(request_a, request_b, runtime, cancel=None, sequential=False)`` runs
  both and yields a ``PaneUpdate`` whenever either pane changes (ready, new text, finished,
  failed). Nothing is yielded while nothing changes: UI pacing is the consumer's business.
  A ``VLMError`` inside one pane (input too long for that model, out of memory) fails that pane
  only; anything else stops both and is re-raised.

Concurrency policy (one device, one lock)
-----------------------------------------
By default the two runs go AT THE SAME TIME: each pane has its own worker that consumes its
``ChatStream``, and their events merge into ONE ``background.Background`` the caller iterates.
``devices.DEVICE_LOCK`` is taken per forward pass (hooks installed by ``guard_model``), never
around a whole generation, so the two generations interleave token by token on one GPU or CPU
and cannot deadlock: each waits at most one forward pass of the other. The device's throughput
is shared, so each pane's tokens/s is lower than it would be alone (the stats show the real
figure). ``sequential=True`` ("run one after the other") runs A to its end, then B; when the two
models do not fit in memory together, A is unloaded before B loads.

Stop: ``cancel`` stops both. Each generation gets its own child event (``StopEvent``), set by
``cancel`` too, so a pane that finishes (its stream sets its event when it ends) never stops
the other. Leaving the iterator early stops both; the pane workers are always joined.

Memory: before anything loads, ``memory.plan_memory`` estimates the pair against what is free; a
pair that does not fit is refused in the concurrent mode (``NotEnoughMemoryError``), with the
sequential mode suggested. Peak memory per pane is measured by ``memory.PeakMemory``
(process-wide; in concurrent mode it covers both models, and says so).
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Iterator

from . import memory
from .background import Background, StopEvent
from .chat import ChatRequest, ChatStream, start_chat
from .compare import compare_runtime
from .devices import choose_device
from .engines import is_server_model
from .errors import NotEnoughMemoryError, VLMError
from .generation import Chunk
from .loading import unload_model
from .runtime import Runtime

log = logging.getLogger(__name__)

PANES = ("A", "B")
# Pane events queued ahead of the reader: chunks of two answers; bounded, never reached in practice.
_MAX_QUEUED_EVENTS = 8192


@dataclass(frozen=True)
class PaneInfo:
    """What a pane shows about its prepared request; holds no reference to the model, so a
    model can be unloaded while its pane stays on screen."""

    description: str
    prompt_tokens: int
    visual_tokens: int
    video_frames: int  # frames of the video this model sampled (each family its own way)
    weights_bytes: int
    notices: tuple[str, ...]


@dataclass
class PaneState:
    """One pane as the merger sees it. Only the consuming thread changes it."""

    model: str
    status: str = "waiting"  # waiting | running | done | stopped | failed
    info: PaneInfo | None = None
    answer: str = ""
    chunks: int = 0
    last: Chunk | None = None
    error: str = ""
    peak_memory: int | None = None
    memory_note: str = ""

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "failed")


@dataclass(frozen=True)
class PaneUpdate:
    pane: int | None  # 0 (A) or 1 (B): the pane that changed (None: a consumer's own repeat)
    chunk: Chunk | None  # the new chunk, when the change is new text or the finish
    panes: tuple[PaneState, PaneState]  # both panes, live: read them, do not keep them


# Events a pane worker emits: (pane index, kind, payload).
_READY, _CHUNK, _FAILED, _CRASHED, _ENDED = "ready", "chunk", "failed", "crashed", "ended"


def stream_side_by_side(request_a: ChatRequest, request_b: ChatRequest, runtime: Runtime,
                        cancel: threading.Event | None = None, sequential: bool = False) -> Iterator[PaneUpdate]:
    """Run both requests (at once, or one after the other) and yield every pane change."""
    requests = (request_a, request_b)
    runtime = compare_runtime(runtime)
    # A server model's memory is the server's: only local models are planned for.
    plan = memory.plan_memory([r.model for r in requests if not is_server_model(r.model)], runtime.device,
                              runtime.dtype)
    if not plan.fits and not sequential:
        raise NotEnoughMemoryError(plan.refusal())
    panes = (PaneState(request_a.model), PaneState(request_b.model))
    monitor = None
    if sequential:
        unload_between = not plan.fits and plan.distinct == 2

        def run(emit, stop) -> None:
            _run_in_turn(requests, runtime, stop, emit, unload_between)
    else:
        for request in requests:  # in order, on this thread: load (or server) errors raise before any work
            runtime.engine_for(request.model).spec(request.model, runtime)
        monitor = memory.PeakMemory(plan.device)
        monitor.what += ", both models running"

        def run(emit, stop) -> None:
            _run_together(requests, runtime, stop, emit, monitor)
    events = Background.from_callback(run, name="vlms-compare", max_queued=_MAX_QUEUED_EVENTS, cancel=cancel)
    if monitor is not None:
        monitor.start()
    try:
        for index, kind, payload in events:
            if kind == _CRASHED:
                raise payload
            chunk = _apply(panes[index], kind, payload)
            yield PaneUpdate(index, chunk, panes)
    finally:
        events.close()  # stops both when the reader leaves early; joins every pane thread
        if monitor is not None:
            monitor.stop()


def _run_together(requests, runtime: Runtime, stop: threading.Event, emit, monitor) -> None:
    """Both panes at once, each on its own worker; returns when both have ended."""
    panes = [Background.from_callback(functools.partial(_pane_worker, index, request, runtime, emit, monitor),
                                      name=f"vlms-compare-{PANES[index].lower()}", max_queued=1, cancel=stop)
             for index, request in enumerate(requests)]
    try:
        for pane in panes:
            for _ in pane:  # they emit to the merged stream themselves; this waits for their end
                pass
    finally:
        for pane in panes:
            pane.close()


def _pane_worker(index, request, runtime, emit, monitor, _emit_here, stop) -> None:
    _run_pane(index, request, runtime, StopEvent(stop), emit, monitor)


def _run_in_turn(requests, runtime: Runtime, stop, emit, unload_between: bool) -> None:
    device = choose_device(runtime.device)
    for index, request in enumerate(requests):
        if stop.is_set():
            emit((index, _ENDED, (None, "")))  # stopped before it started
            continue
        with memory.PeakMemory(device) as monitor:
            _run_pane(index, request, runtime, StopEvent(stop), emit, monitor)
        if index == 0 and unload_between:
            unload_model(request.model, runtime.device, runtime.dtype)


def _run_pane(index: int, request: ChatRequest, runtime: Runtime, cancel, emit, monitor) -> None:
    """Prepare and stream one pane, reporting everything through ``emit``; never raises."""
    stream = None
    try:
        stream = start_chat(request, runtime, cancel)
        emit((index, _READY, _pane_info(stream)))
        for chunk in stream:
            emit((index, _CHUNK, (chunk, stream.text)))
    except VLMError as error:
        # The message only: the exception's traceback would keep the model alive in the queue.
        emit((index, _FAILED, str(error)))
    except BaseException as error:  # a bug: the reader re-raises it on the caller's thread
        emit((index, _CRASHED, error))
    finally:
        if stream is not None:
            stream.close()
        emit((index, _ENDED, (monitor.peak(), monitor.what)))


def _pane_info(stream: ChatStream) -> PaneInfo:
    prepared = stream.prepared
    return PaneInfo(prepared.description, prepared.prompt_tokens, prepared.visual_tokens,
                    len(prepared.frames_seen), prepared.weights_bytes, tuple(prepared.notices))


def _apply(pane: PaneState, kind: str, payload) -> Chunk | None:
    """Fold one worker event into its pane; returns the chunk when the event carried one."""
    if kind == _READY:
        pane.status, pane.info = "running", payload
    elif kind == _CHUNK:
        chunk, pane.answer = payload
        pane.chunks += 1
        pane.last = chunk
        if chunk.finish_reason is not None:
            pane.status = "stopped" if chunk.finish_reason == "cancelled" else "done"
        return chunk
    elif kind == _FAILED:
        pane.status, pane.error = "failed", payload
    elif kind == _ENDED:
        if not pane.finished:
            pane.status = "stopped"  # the run never started: Stop came first
        pane.peak_memory, pane.memory_note = payload
    return None
