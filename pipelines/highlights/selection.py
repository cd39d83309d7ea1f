"""Which parts of the video make the reel. PURE functions: scores in, segments out.

Contract: ``select(windows, duration, target_seconds=None, threshold=None, padding_seconds=0,
fps=None) -> list[Segment]``.

* Each scored window becomes a candidate interval: widened by ``padding_seconds`` on both sides,
  snapped to the frame grid when ``fps`` is given (so cuts are frame-accurate and the reel's
  length is exactly the JSON's), and clamped to [0, duration].
* ``threshold``: only windows scoring at least this are candidates.
* ``target_seconds``: candidates are taken best score first (ties: earlier first); one is kept
  when the union of everything kept stays within the target, otherwise skipped (a shorter one
  further down may still fit). So the total never exceeds the target, and it falls short by
  less than one candidate's length whenever the candidates add up to more than the target.
* The kept intervals are returned in chronological order, with overlapping or touching ones
  merged (a merged segment's score is the best of its windows). Segments never overlap and lie
  inside the video.
* Neither ``target_seconds`` nor ``threshold``: BadInputError.

``segments_from_rows`` turns a hand-edited table (start, end, score, keep) into segments under the
same guarantees (sorted, merged, clamped, snapped), for re-rendering without the model.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import BadInputError
from .windows import Window

_EPS = 1e-9


@dataclass(frozen=True)
class Segment:
    """A part of the source video that goes into the reel, in source seconds."""

    start: float
    end: float
    score: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def total_seconds(segments: Iterable[Segment]) -> float:
    return sum(s.duration for s in segments)


def select(
    windows: Sequence[Window],
    duration: float,
    target_seconds: float | None = None,
    threshold: float | None = None,
    padding_seconds: float = 0.0,
    fps: float | None = None,
) -> list[Segment]:
    """Choose the reel's segments; see the module docstring for the guarantees."""
    check_selection(duration, target_seconds, threshold, padding_seconds)
    candidates = [
        _candidate(w, duration, padding_seconds, fps)
        for w in windows
        if w.score is not None and (threshold is None or w.score >= threshold)
    ]
    candidates = [c for c in candidates if c.duration > _EPS]
    if target_seconds is not None:
        candidates = _best_within(candidates, target_seconds)
    return merge(candidates)


def check_selection(duration, target_seconds, threshold, padding_seconds) -> None:
    """BadInputError for a selection that cannot be made (the UI and CLI check before scoring)."""
    if target_seconds is None and threshold is None:
        raise BadInputError("Choose a target reel length or a score threshold.")
    if target_seconds is not None and (not math.isfinite(target_seconds) or target_seconds <= 0):
        raise BadInputError(f"The target length must be more than 0 seconds; got {target_seconds}.")
    if threshold is not None and not (0.0 <= threshold <= 1.0):
        raise BadInputError(f"The score threshold must be between 0 and 1; got {threshold}.")
    if not math.isfinite(padding_seconds) or padding_seconds < 0:
        raise BadInputError(f"Padding must be 0 seconds or more; got {padding_seconds}.")
    if not math.isfinite(duration) or duration <= 0:
        raise BadInputError("The video has no length.")


def _candidate(window: Window, duration: float, padding: float, fps: float | None) -> Segment:
    start = snap(max(0.0, window.start - padding), fps)
    end = snap(min(duration, window.end + padding), fps)
    return Segment(max(0.0, start), min(end, video_end(duration, fps)), window.score)


def snap(seconds: float, fps: float | None) -> float:
    """The nearest frame boundary (``fps`` None: unchanged)."""
    if not fps:
        return seconds
    return round(round(seconds * fps) / fps, 6)


def video_end(duration: float, fps: float | None) -> float:
    """The last frame boundary inside the video (a cut may not run past the last frame)."""
    if not fps:
        return duration
    return round(math.floor(duration * fps + 1e-6) / fps, 6)


def _best_within(candidates: list[Segment], target: float) -> list[Segment]:
    ranked = sorted(candidates, key=lambda c: (-(c.score or 0.0), c.start))
    union = _Union()
    kept: list[Segment] = []
    for candidate in ranked:
        if union.total + union.added_by(candidate) <= target + _EPS:
            union.add(candidate)
            kept.append(candidate)
        if union.total >= target - _EPS:
            break
    return kept


class _Union:
    """Disjoint sorted intervals and their total length; O(log n) to ask what one more adds
    (a four-hour video has thousands of windows; re-merging everything per window would not do)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.total = 0.0

    def _touching(self, segment: Segment) -> tuple[int, int]:
        low = bisect.bisect_left(self.ends, segment.start - _EPS)
        high = bisect.bisect_right(self.starts, segment.end + _EPS)
        return low, high

    def added_by(self, segment: Segment) -> float:
        low, high = self._touching(segment)
        covered = sum(max(0.0, min(e, segment.end) - max(s, segment.start))
                      for s, e in zip(self.starts[low:high], self.ends[low:high]))
        return segment.duration - covered

    def add(self, segment: Segment) -> None:
        low, high = self._touching(segment)
        start = min([segment.start, *self.starts[low:high]])
        end = max([segment.end, *self.ends[low:high]])
        self.total += (end - start) - sum(e - s for s, e in zip(self.starts[low:high], self.ends[low:high]))
        self.starts[low:high] = [start]
        self.ends[low:high] = [end]


def merge(segments: Iterable[Segment]) -> list[Segment]:
    """Chronological, with overlapping or touching segments joined (best score kept)."""
    merged: list[Segment] = []
    for segment in sorted(segments, key=lambda s: (s.start, s.end)):
        if merged and segment.start <= merged[-1].end + _EPS:
            last = merged[-1]
            merged[-1] = Segment(last.start, max(last.end, segment.end), _best(last.score, segment.score))
        else:
            merged.append(segment)
    return merged


def _best(a: float | None, b: float | None) -> float | None:
    scores = [s for s in (a, b) if s is not None]
    return max(scores) if scores else None


def selected_flags(windows: Sequence[Window], segments: Sequence[Segment]) -> list[bool]:
    """For each window: does any segment cover part of it? (for the JSON and the plot)"""
    return [any(s.start < w.end - _EPS and s.end > w.start + _EPS for s in segments) for w in windows]


def segments_from_rows(rows: Iterable[Sequence], duration: float, fps: float | None = None) -> list[Segment]:
    """Hand-edited table rows ``(start, end[, score[, keep]])`` -> clean segments.

    Rows with keep false, or empty start/end cells, are skipped; others must be numbers with
    start < end inside the video (after clamping), else BadInputError names the row.
    """
    segments = []
    for number, row in enumerate(rows, start=1):
        row = list(row) + [None] * (4 - len(row))
        start, end, score, keep = row[:4]
        if keep is not None and not _truthy(keep):
            continue
        if _blank(start) and _blank(end):
            continue
        segments.append(_row_segment(number, start, end, score, duration, fps))
    return merge(segments)


def _row_segment(number: int, start, end, score, duration: float, fps: float | None) -> Segment:
    try:
        start_s, end_s = float(start), float(end)
    except (TypeError, ValueError):
        raise BadInputError(f"Row {number}: start and end must be numbers of seconds.") from None
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        raise BadInputError(f"Row {number}: start and end must be numbers of seconds.")
    start_s = snap(max(0.0, start_s), fps)
    end_s = min(snap(min(end_s, duration), fps), video_end(duration, fps))
    if end_s - start_s <= _EPS:
        raise BadInputError(
            f"Row {number}: the segment must end after it starts, inside the video (0 to {duration:.1f} s)."
        )
    return Segment(start_s, end_s, _optional_float(score))


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "x", "✓")
    return bool(value)


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and math.isnan(value))


def _optional_float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
