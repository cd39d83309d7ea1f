"""Which parts of the video make the reel. PURE functions: scores in, segments out.

Contract: ``select(windows, duration, target_seconds=None, threshold=None, padding_seconds=0,
fps=None, cuts=(), reach=0) -> list[Segment]``.

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
* ``cuts`` (shot cuts, seconds): each candidate's start and end move to the nearest cut within
  ``reach`` seconds (half a window), never past the video's ends, BEFORE the target rule, so
  the total still never exceeds the target. When one cut is within reach of both edges of a
  short window, only the nearer edge moves to it (a window never collapses).
* Neither ``target_seconds`` nor ``threshold``: BadInputError.

``Selection`` is the user's choice (target or threshold, padding, snapping), checked once when
it is made; ``Selection.choose(windows, duration, fps, cuts, reach)`` is ``select`` with it.

``segments_from_rows`` turns a hand-edited table (start, end, score, keep) into segments under the
same guarantees (sorted, merged, clamped, snapped), for re-rendering without the model.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, replace
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


SNAP_MODES = ("shots", "none")


@dataclass(frozen=True)
class Selection:
    """How the reel is chosen from the scores. Checked when made (BadInputError), so a Selection
    that exists can always be applied. ``edited``: the segments are the user's own table."""

    target_seconds: float | None = None
    threshold: float | None = None
    padding_seconds: float = 0.0
    snap: str = "shots"  # "shots": edges move to shot cuts within half a window; "none"
    edited: bool = False

    def __post_init__(self) -> None:
        check_selection(self.target_seconds, self.threshold, self.padding_seconds, self.snap)

    def choose(self, windows: Sequence[Window], duration: float, fps: float | None = None,
               cuts: Sequence[float] = (), reach: float = 0.0) -> list["Segment"]:
        """``select`` with these settings; ``cuts`` are used only when ``snap`` is "shots"."""
        return select(windows, duration, self.target_seconds, self.threshold, self.padding_seconds, fps,
                      cuts=cuts if self.snap == "shots" else (), reach=reach)

    def as_edited(self) -> "Selection":
        return replace(self, edited=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Selection":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def select(
    windows: Sequence[Window],
    duration: float,
    target_seconds: float | None = None,
    threshold: float | None = None,
    padding_seconds: float = 0.0,
    fps: float | None = None,
    cuts: Sequence[float] = (),
    reach: float = 0.0,
) -> list[Segment]:
    """Choose the reel's segments; see the module docstring for the guarantees."""
    check_selection(target_seconds, threshold, padding_seconds)
    if not math.isfinite(duration) or duration <= 0:
        raise BadInputError("The video has no length.")
    cuts = sorted(cuts)
    candidates = [
        _candidate(w, duration, padding_seconds, fps, cuts, reach)
        for w in windows
        if w.score is not None and (threshold is None or w.score >= threshold)
    ]
    candidates = [c for c in candidates if c.duration > _EPS]
    if target_seconds is not None:
        candidates = _best_within(candidates, target_seconds)
    return merge(candidates)


def check_selection(target_seconds, threshold, padding_seconds, snap: str = "none") -> None:
    """BadInputError for a selection that cannot be made (checked before any scoring)."""
    if target_seconds is None and threshold is None:
        raise BadInputError("Choose a target reel length or a score threshold.")
    if target_seconds is not None and (not math.isfinite(target_seconds) or target_seconds <= 0):
        raise BadInputError(f"The target length must be more than 0 seconds; got {target_seconds}.")
    if threshold is not None and not (0.0 <= threshold <= 1.0):
        raise BadInputError(f"The score threshold must be between 0 and 1; got {threshold}.")
    if not math.isfinite(padding_seconds) or padding_seconds < 0:
        raise BadInputError(f"Padding must be 0 seconds or more; got {padding_seconds}.")
    if snap not in SNAP_MODES:
        raise BadInputError(f"Snapping must be one of {', '.join(SNAP_MODES)}; got {snap!r}.")


def _candidate(window: Window, duration: float, padding: float, fps: float | None,
               cuts: Sequence[float] = (), reach: float = 0.0) -> Segment:
    # Frame grid first, then cuts (which lie on the grid): an edge is judged where it will be cut.
    start, end = snap(max(0.0, window.start - padding), fps), snap(min(duration, window.end + padding), fps)
    if cuts and reach > 0:
        start, end = snap_to_cuts(start, end, cuts, reach)
    return Segment(max(0.0, start), min(end, video_end(duration, fps)), window.score)


def snap_to_cuts(start: float, end: float, cuts: Sequence[float], reach: float) -> tuple[float, float]:
    """(start, end) with each edge moved to the nearest of the sorted ``cuts`` within ``reach``
    (ties: the earlier cut). If the same cut is nearest to both edges, only the nearer edge
    takes it, and the other looks for the nearest cut on its own side (else stays)."""
    new_start, new_end = _nearest(cuts, start, reach), _nearest(cuts, end, reach)
    if new_start is not None and new_end is not None and new_end - new_start <= _EPS:
        if abs(new_start - start) <= abs(new_end - end):
            new_end = _nearest([c for c in cuts if c > new_start + _EPS], end, reach)
        else:
            new_start = _nearest([c for c in cuts if c < new_end - _EPS], start, reach)
    start = start if new_start is None else new_start
    end = end if new_end is None else new_end
    return start, end


def _nearest(cuts: Sequence[float], moment: float, reach: float) -> float | None:
    position = bisect.bisect_left(cuts, moment)
    near = [c for c in cuts[max(0, position - 1):position + 1] if abs(c - moment) <= reach + _EPS]
    return min(near, key=lambda c: (abs(c - moment), c)) if near else None


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


def snapped_edges(segment: Segment, cuts: Sequence[float], tolerance: float = 1e-3) -> tuple[bool, bool]:
    """(start on a shot cut, end on a shot cut): what the segment table and the JSON show."""
    return (any(abs(segment.start - c) <= tolerance for c in cuts), any(abs(segment.end - c) <= tolerance for c in cuts))


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
