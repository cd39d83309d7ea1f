"""Windows over a video, and ONE sequential decoding pass that yields every window's frames.

Contract
--------
* ``make_windows(duration, window_seconds, overlap_seconds)`` is PURE: windows start every
  ``window_seconds - overlap_seconds`` seconds from 0 and cover the whole video; the last one
  ends at ``duration`` and may be shorter (but never shorter than ``MIN_TAIL_S``, a sliver that
  would be scored on a near-copy of the previous window's last frames is dropped).
* ``frame_indices(window, fps, frame_count, frames)`` is PURE: ``frames`` frame numbers spread
  evenly over the window (the middle of each of ``frames`` equal slices), clamped to the video.
  A window holding fewer frames than asked repeats frames, so every window of a scan has the
  same frame count (one batch shape; PerceptionLM needs that).
* ``iter_window_clips(path, info, windows, frames)`` decodes the frames of ALL windows in ONE
  forward pass over the file and yields ``(window, VideoClip)`` in window order. The pass is cut
  into consecutive chunks (at most ``CHUNK_BYTES`` of frames, never less than one window); each
  chunk is read by ``media.read_frames`` with the PyAV forward cursor in a child process bounded
  in time and memory (pipelines.isolation: uploads are untrusted), starting with one forward seek
  to where the previous chunk ended. A worker (``background.Background``) stays at most
  ``prefetch`` windows ahead, so decoding overlaps scoring and only the frames of windows not yet consumed are held.
  A clip describes the window as a standalone short video (duration = window length, timestamps
  from the window start), which is how the model is asked about it. Closing the iterator (or
  ``cancel``) stops the thread, kills a running child and joins both.
* One pass over the file: when the signals pass runs (signals.py decodes EVERY frame for cuts,
  motion and faces) and the scan's frames are known before it (fixed windows) and fit
  ``CHUNK_BYTES``, that pass keeps them (``scan_frames`` says which; ``KeptFrames`` holds them)
  and ``iter_window_clips(..., kept=...)`` yields the windows from them, decoding nothing.
  Measured on the 10-minute 640x360 benchmark video (60 windows, 2 frames each): the scan's own
  seeking decode took 2.9 s of CPU, keeping its 120 frames in the signals pass ~0.1 s.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from .. import isolation, media
from ..background import PENDING, Background
from ..errors import BadInputError, DecodeError, GenerationCancelled
from ..limits import LIMITS, Limits

MIN_TAIL_S = 0.5  # a last window shorter than this adds nothing the previous one did not show
CHUNK_BYTES = 256 << 20  # decoded frames handed over per child process
_POLL_S = 0.1  # how often the reader re-checks ``cancel`` while the worker decodes


@dataclass(frozen=True)
class Window:
    """A stretch of the source video, in seconds; ``score`` once the model has judged it."""

    index: int
    start: float
    end: float
    score: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def check_window_settings(window_seconds: float, overlap_seconds: float, frames: int | None, limits: Limits = LIMITS) -> None:
    """Raise BadInputError for settings outside the limits table (and overlap >= half a window)."""
    limits.window_seconds.check(window_seconds, "Window length")
    if not math.isfinite(overlap_seconds) or overlap_seconds < 0 or overlap_seconds > window_seconds / 2:
        raise BadInputError(
            f"Window overlap must be between 0 and half the window length ({window_seconds / 2:g} s); got {overlap_seconds:g}."
        )
    if frames is not None:
        if isinstance(frames, bool) or int(frames) != frames:
            raise BadInputError(f"Frames per window must be a whole number; got {frames!r}.")
        limits.frames_per_window.check(int(frames), "Frames per window")


def make_windows(duration: float, window_seconds: float, overlap_seconds: float = 0.0) -> list[Window]:
    """Windows covering [0, duration]; see the module docstring."""
    if not math.isfinite(duration) or duration <= 0:
        raise BadInputError("The video has no length, so it cannot be cut into windows.")
    step = window_seconds - overlap_seconds
    if window_seconds <= 0 or step <= 0:
        raise BadInputError("Windows must be longer than their overlap.")
    windows: list[Window] = []
    start = 0.0
    while start < duration:
        end = duration if start + window_seconds >= duration else _tidy(start + window_seconds)
        if windows and end - start < MIN_TAIL_S and end <= windows[-1].end + MIN_TAIL_S:
            break
        windows.append(Window(len(windows), _tidy(start), end))
        if end >= duration:
            break
        start = len(windows) * step  # multiply, not accumulate: no drift over thousands of windows
    return windows


def _tidy(seconds: float) -> float:
    """Round away float noise (0.30000000000000004) without moving a time by a visible amount."""
    return round(seconds, 6)


def frame_indices(window: Window, fps: float, frame_count: int, frames: int) -> tuple[int, ...]:
    """``frames`` frame numbers spread over ``window`` (middle of each equal slice)."""
    first = min(int(math.floor(window.start * fps + 1e-6)), frame_count - 1)
    last = max(first, min(int(math.ceil(window.end * fps - 1e-6)) - 1, frame_count - 1))
    picks = []
    for k in range(frames):
        moment = window.start + (k + 0.5) * window.duration / frames
        picks.append(min(max(int(math.floor(moment * fps + 1e-6)), first), last))
    return tuple(picks)


def window_clip(window: Window, info: media.VideoInfo, indices: Sequence[int], frames: np.ndarray) -> media.VideoClip:
    """The window as a standalone clip: its own length, and timestamps from its start."""
    offset = int(math.floor(window.start * info.fps + 1e-6))
    relative = tuple(max(0, i - offset) for i in indices)
    span = max(1, int(round(window.duration * info.fps)))
    clip_info = replace(info, duration=window.duration, frame_count=max(span, relative[-1] + 1))
    sample = media.FrameSample(relative, tuple(i / info.fps for i in relative))
    return media.VideoClip(clip_info, sample, frames)


PLACEHOLDER_EDGE = 32  # long edge of a stand-in frame: the processor only needs its shape


def placeholder_clip(window: Window, info: media.VideoInfo, indices: Sequence[int]) -> media.VideoClip:
    """The window as a clip whose frames are black stand-ins of the video's aspect ratio: the
    prompt (timestamps, placeholder tokens) is the real one, for a scorer that already holds
    these frames' vision features (pipelines.features) and needs no pixels."""
    scale = PLACEHOLDER_EDGE / max(info.width, info.height, 1)
    height, width = max(1, round(info.height * scale)), max(1, round(info.width * scale))
    return window_clip(window, info, indices, np.zeros((len(indices), height, width, 3), np.uint8))


@dataclass(frozen=True)
class KeptFrames:
    """Frames decoded already (by the signals pass): ``frames[k]`` is frame number ``indices[k]``."""

    indices: tuple[int, ...]
    frames: np.ndarray

    def has_all(self, wanted: Sequence[int]) -> bool:
        return set(wanted) <= set(self.indices)

    def take(self, wanted: Sequence[int]) -> np.ndarray:
        position = {index: k for k, index in enumerate(self.indices)}
        return self.frames[[position[i] for i in wanted]]


def window_frames(windows: Sequence[Window], info: media.VideoInfo, frames: int) -> tuple[int, ...]:
    """Every frame number a scan of ``windows`` scores (sorted, unique): the scan's frame grid."""
    return tuple(sorted({i for w in windows for i in frame_indices(w, info.fps, info.frame_count, frames)}))


def scan_frames(windows: Sequence[Window], info: media.VideoInfo, frames: int) -> tuple[int, ...]:
    """The frame numbers a scan of ``windows`` decodes (``window_frames``), or () when they would
    pass CHUNK_BYTES (then the scan decodes them itself, chunk by chunk)."""
    wanted = window_frames(windows, info, frames)
    return wanted if len(wanted) * info.width * info.height * 3 <= CHUNK_BYTES else ()


def iter_window_clips(
    path,
    info: media.VideoInfo,
    windows: Sequence[Window],
    frames: int,
    cancel: threading.Event | None = None,
    prefetch: int = 8,
    limits: Limits = LIMITS,
    kept: KeptFrames | None = None,
) -> Iterator[tuple[Window, media.VideoClip]]:
    """Yield ``(window, clip)`` in window order from ONE decoding pass, or from ``kept`` frames
    when they hold every window's; see the module docstring."""
    plan = [frame_indices(w, info.fps, info.frame_count, frames) for w in windows]
    if kept is not None and all(kept.has_all(indices) for indices in plan):
        for window, indices in zip(windows, plan):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("Stopped.")
            yield window, window_clip(window, info, indices, kept.take(indices))
        return
    produce = functools.partial(_decode_windows, path, info, windows, plan, limits=limits)
    yielded = 0
    # ``cancel`` reaches the worker's stop event too: a running decoding child is killed at once.
    with Background(produce, name="vlms-scan", max_queued=prefetch, cancel=cancel) as clips:
        while True:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("Stopped.")
            try:
                item = clips.next_within(_POLL_S)
            except StopIteration:
                break
            if item is not PENDING:
                yielded += 1
                yield item
    if yielded < len(windows):
        raise DecodeError("The video could not be decoded to the end: the file may be damaged or truncated.")


def chunks(plan: Sequence[Sequence[int]], frame_bytes: int, budget: int | None = None) -> list[list[int]]:
    """Consecutive runs of window positions whose distinct frames fit ``budget`` bytes (at least
    one window per run), so a chunk's frames are bounded whatever the resolution."""
    budget = CHUNK_BYTES if budget is None else budget
    runs: list[list[int]] = []
    seen: set[int] = set()
    for position, indices in enumerate(plan):
        grown = seen | set(indices)
        if runs and len(grown) * frame_bytes > budget:
            runs.append([position])
            seen = set(indices)
        else:
            if not runs:
                runs.append([])
            runs[-1].append(position)
            seen = grown
    return runs


def _decode_windows(path, info, windows, plan, stop: threading.Event, limits: Limits):
    """Worker: chunk after chunk, each read in a bounded child; windows are handed over in order."""
    for run in chunks(plan, info.width * info.height * 3):
        if stop.is_set():
            return
        indices = sorted({i for position in run for i in plan[position]})
        decoded = _read_isolated(path, indices, info, stop, limits)
        frame_of = {index: decoded[k] for k, index in enumerate(indices)}
        for position in run:
            picked = np.stack([frame_of[i] for i in plan[position]])
            yield windows[position], window_clip(windows[position], info, plan[position], picked)


def _read_isolated(path, indices: list[int], info: media.VideoInfo, stop: threading.Event, limits: Limits) -> np.ndarray:
    # The PyAV forward cursor: sequential decoding, forward seeks across gaps only. A partial of a
    # media function, because the child imports nothing but pipelines.media.
    read_forward = functools.partial(media.read_frames, backend="pyav")
    return isolation.run(read_forward, str(path), indices, info, what=media.display_name(path),
                         timeout_s=float(limits.decode_timeout_s.value),
                         memory_mb=float(limits.decode_memory_mb.value), cancel=stop)
