"""Compare: several images in one question, and two models answering the same input side by side.

Contract
--------
* ``start_multi_image(model, images, question, runtime, cancel=None, **options)`` -> the
  ``chat.ChatStream`` of ONE user turn holding 2..N images (N = ``limits.compare_images``), each
  introduced to the model as ``messages.image_label(k)`` ("Image 1:", "Image 2:", ...).
  ``image_labels(n)`` returns the same names for the screen, so answers can be followed. Image
  count, file kinds and the question are checked before any model is loaded. ``options`` are
  other ``ChatRequest`` fields (settings, system_prompt, image_detail).
* ``side_by_side_requests(model_a, model_b, question, images=(), video=None, ...)`` -> two
  ``ChatRequest``s with the same input: text plus 0..N labelled images, or one video. Each model
  samples the video with its own family defaults (SmolVLM2 1 fps / max 64, PerceptionLM 32).
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

Memory rule
-----------
Before anything loads (``plan_memory``): needed = ``memory.estimate_bytes`` (parameters x bytes
per element of the dtype x 1.2) summed over the distinct models of the pair that are not loaded
yet; available = ``memory.available_bytes`` (CUDA: free device memory; CPU: MemAvailable) plus
the weights of the cached models that loading the pair will evict (the cache keeps
``loading.MAX_CACHED_MODELS``). If needed > available, the concurrent mode refuses with
``NotEnoughMemoryError`` and suggests the sequential mode. Peak memory per pane is measured by
``memory.PeakMemory`` (process-wide; in concurrent mode it covers both models, and says so).
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

from . import attachments, media, memory
from .background import Background, StopEvent
from .engines import is_server_model
from .chat import ChatRequest, ChatStream, start_chat
from .devices import choose_device, dtype_name
from .errors import BadInputError, NotEnoughMemoryError, VLMError
from .generation import Chunk
from .limits import LIMITS, Limits
from .loading import MAX_CACHED_MODELS, cached_models, is_loaded, resolve_placement, unload_model
from .messages import IMAGE, VIDEO, Attachment, Turn, image_label
from .runtime import Runtime

log = logging.getLogger(__name__)

PANES = ("A", "B")
# Pane events queued ahead of the reader: chunks of two answers; bounded, never reached in practice.
_MAX_QUEUED_EVENTS = 8192
DEFAULT_PURPOSE = "a presentation slide"

PRESETS: dict[str, str] = {
    "What differs?": "What are the differences between these images? Refer to each image by its label.",
    "What do they have in common?": "What do these images have in common? Refer to each image by its label.",
    "Rank them for a purpose": "Rank these images from best to worst for {purpose}. Answer with a numbered "
                               "list of image labels, each with a short reason.",
    "Describe each": "Describe each image in one or two sentences. Start each description with the "
                     "image's label.",
}


def preset_prompt(name: str, purpose: str = "") -> str:
    """The question of a preset; the ranking preset names the user's purpose."""
    try:
        template = PRESETS[name]
    except KeyError:
        raise BadInputError(f"Unknown preset '{name}'. Use one of: {', '.join(PRESETS)}.") from None
    return template.format(purpose=(purpose or "").strip() or DEFAULT_PURPOSE)


def image_labels(count: int) -> list[str]:
    """The on-screen names of ``count`` images: exactly what the prompt calls them."""
    return [image_label(number) for number in range(1, count + 1)]


# =============================================================================================
# Building and checking the input (no model work)
# =============================================================================================


def multi_image_turn(question: str, images: Sequence[str], limits: Limits = LIMITS) -> Turn:
    """One labelled user turn for a several-images question; counts are checked here."""
    _check_image_count(len(images), limits, at_least=int(limits.compare_images.minimum))
    return _compare_turn(question, images, None)


def side_by_side_turn(question: str, images: Sequence[str] = (), video: str | None = None,
                      limits: Limits = LIMITS) -> Turn:
    """The one turn both models answer: text plus 0..N labelled images, or one video."""
    if images and video:
        raise BadInputError("Give the two models either images or a video, not both: SmolVLM2 cannot "
                            "take both in one question.")
    _check_image_count(len(images), limits, at_least=0)  # one image, or none, is a fair model test
    return _compare_turn(question, images, video)


def _check_image_count(count: int, limits: Limits, at_least: int) -> None:
    row = limits.compare_images
    if count < at_least:
        raise BadInputError(f"Upload at least {at_least} images to compare; got {count}.")
    if count > row.value:
        raise BadInputError(f"At most {row.value:g} images can be compared at once; got {count}. "
                            "Remove some and try again.")


def _compare_turn(question: str, images: Sequence[str], video: str | None) -> Turn:
    question = (question or "").strip()
    if not question:
        raise BadInputError("Type a question (or pick a preset) first.")
    attachments = [Attachment(IMAGE, _checked_kind(path, IMAGE)) for path in images]
    if video:
        attachments.append(Attachment(VIDEO, _checked_kind(video, VIDEO)))
    return Turn("user", question, tuple(attachments), label_images=True)


def _checked_kind(path: str, wanted: str) -> str:
    """Refuse a file in the wrong box before any model loads; judged by content, not by name."""
    kind = attachments.kind_of(path)  # FFmpeg parses the untrusted container in a bounded child
    if kind == wanted:
        return path
    name = Path(path).name
    if wanted == IMAGE:
        raise BadInputError(f"'{name}' is not a still image this app can read. Use {media.IMAGE_FORMAT_NAMES} "
                            "images (videos go in the video box).")
    raise BadInputError(f"'{name}' is not a video this app can read. Use {media.VIDEO_FORMAT_NAMES}.")


def multi_image_request(model: str, images: Sequence[str], question: str, limits: Limits = LIMITS,
                        **options) -> ChatRequest:
    return ChatRequest(model=model, turns=(multi_image_turn(question, images, limits),), **options)


def side_by_side_requests(model_a: str, model_b: str, question: str, images: Sequence[str] = (),
                          video: str | None = None, limits: Limits = LIMITS,
                          **options) -> tuple[ChatRequest, ChatRequest]:
    """Two requests with the same turn. Video sampling is left to each model's family defaults."""
    turn = side_by_side_turn(question, images, video, limits)
    return (ChatRequest(model=model_a, turns=(turn,), **options),
            ChatRequest(model=model_b, turns=(turn,), **options))


def start_multi_image(model: str, images: Sequence[str], question: str, runtime: Runtime,
                      cancel: threading.Event | None = None, **options) -> ChatStream:
    request = multi_image_request(model, images, question, runtime.limits, **options)
    return start_chat(request, compare_runtime(runtime), cancel)


def compare_runtime(runtime: Runtime) -> Runtime:
    """Chat checks images per message; a comparison is governed by its own, separate limit."""
    limits = runtime.limits
    allowed = max(limits.max_images_per_message.value, limits.compare_images.value)
    return replace(runtime, limits=limits.with_value("max_images_per_message", allowed))


# =============================================================================================
# Memory plan (before loading)
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
        parts = ", ".join(f"{label} ~{memory.format_bytes(size)}" for label, size in self.needed)
        where = "on the GPU" if self.device.startswith("cuda") else "in RAM"
        free = memory.format_bytes((self.available or 0) + self.reclaimable)
        return (f"Both models do not fit in memory at once: they need about {memory.format_bytes(self.total)} "
                f"({parts}; parameters x bytes per value + 20%), and about {free} is free {where}. "
                "Tick \"Run one after the other\" to load them one at a time, or pick smaller models.")


def plan_memory(models: Sequence[str], runtime: Runtime) -> MemoryPlan:
    """Estimate what loading ``models`` needs against what is free; loads nothing."""
    needed, pair_keys = [], []
    for name in models:
        if is_server_model(name):
            continue  # its memory is the server's
        spec, device, dtype = resolve_placement(name, runtime.device, runtime.dtype)
        key = (spec.source, device, dtype)
        if key in pair_keys:
            continue  # the same model twice is loaded once
        pair_keys.append(key)
        if not is_loaded(name, runtime.device, runtime.dtype):
            label = f"{spec.label} ({dtype_name(dtype)})"
            needed.append((label, memory.estimate_bytes(spec, dtype)))
    device = choose_device(runtime.device)
    others = [m for m in cached_models() if (m.spec.source, m.device, m.dtype) not in pair_keys]
    kept = max(0, MAX_CACHED_MODELS - len(pair_keys))
    evicted = others[: max(0, len(others) - kept)]  # oldest first, as the cache evicts them
    reclaimable = sum(memory.weights_bytes(m.model) for m in evicted) if needed else 0
    return MemoryPlan(device, len(pair_keys), tuple(needed), reclaimable, memory.available_bytes(device))


# =============================================================================================
# Two models side by side
# =============================================================================================


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
    plan = plan_memory([r.model for r in requests], runtime)
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
