"""Reel shapes: vertical (9:16), square (1:1) or wide (16:9) reels cut out of any video.

Contract (PURE: numbers in, numbers out; render.py turns them into ffmpeg filters)
--------------------------------------------------------------------------------
* ``ReelShape(aspect, reframe)``: ``aspect`` one of ``ASPECTS`` ("source" keeps the video's own
  frame, as before); ``reframe`` "center" (a fixed crop in the middle) or "follow" (the crop
  moves along the action). BadInputError for anything else. ``output_size`` is the standard
  size of the aspect (1080x1920, 1080x1080, 1920x1080), or None for "source".
* ``crop_size(width, height, aspect) -> (w, h)``: the largest crop of that aspect inside the
  frame, in even pixels. It slides along ONE axis: x when the video is wider than the aspect,
  else y.
* ``crop_paths(shape, segments, info, signals) -> list[CropPath] | None``: per segment, the crop
  position of every frame of that segment (source pixels). "follow" steers by the motion track
  of the signals pass (signals.py: where the picture changed, every TRACK_S seconds; the
  frames are decoded once, for cuts, sound and motion together, never again for this): a step
  with too little change holds the previous aim; the aims are smoothed by a centred moving
  average over ``SMOOTH_S`` seconds, then rate-limited so the crop glides (at most
  ``max_step(width, fps)`` px per frame, i.e. ``MAX_PAN_PER_S`` of the frame per second), and
  clamped so the crop never leaves the frame. Each segment starts at its own aim (a segment is
  a new cut in the reel, so a jump between segments is an edit, not a camera move).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import BadInputError

ASPECTS = {"source": None, "9:16": (9, 16), "1:1": (1, 1), "16:9": (16, 9)}
OUTPUT_SIZES = {"9:16": (1080, 1920), "1:1": (1080, 1080), "16:9": (1920, 1080)}
REFRAMES = ("center", "follow")
SMOOTH_S = 1.0
MAX_PAN_PER_S = 0.4  # of the frame's width (or height) per second: a calm pan
MIN_MOTION = 0.0005  # fraction of the (small) frame that must change for a step to steer


@dataclass(frozen=True)
class ReelShape:
    aspect: str = "source"
    reframe: str = "center"

    def __post_init__(self) -> None:
        if self.aspect not in ASPECTS:
            raise BadInputError(f"The reel shape must be one of {', '.join(ASPECTS)}; got {self.aspect!r}.")
        if self.reframe not in REFRAMES:
            raise BadInputError(f"Reframing must be one of {', '.join(REFRAMES)}; got {self.reframe!r}.")

    @property
    def output_size(self) -> tuple[int, int] | None:
        return OUTPUT_SIZES.get(self.aspect)


@dataclass(frozen=True)
class CropPath:
    """A crop of ``width`` x ``height`` source pixels; its top-left corner for every frame."""

    width: int
    height: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]


def crop_size(width: int, height: int, aspect: str) -> tuple[int, int]:
    ratio_w, ratio_h = ASPECTS[aspect]
    if width * ratio_h >= height * ratio_w:  # wider than the aspect: full height, narrower width
        return max(2, _even(height * ratio_w / ratio_h)), _even_floor(height)
    return _even_floor(width), max(2, _even(width * ratio_h / ratio_w))


def _even(value: float) -> int:
    return int(value // 2 * 2)


def _even_floor(value: int) -> int:
    return int(value) - int(value) % 2


def max_step(extent: int, fps: float) -> int:
    """The most the crop moves between two frames, in source pixels (at least 1)."""
    return max(1, int(MAX_PAN_PER_S * extent / fps))


def crop_paths(shape: ReelShape, segments: Sequence, info, signals=None) -> list[CropPath] | None:
    """One CropPath per segment (None for the "source" shape); see the module docstring."""
    if shape.aspect == "source":
        return None
    crop_w, crop_h = crop_size(info.width, info.height, shape.aspect)
    slide_x = crop_w < info.width
    extent, window = (info.width, crop_w) if slide_x else (info.height, crop_h)
    track = signals.motion if (signals is not None and shape.reframe == "follow") else ()
    paths = []
    for segment in segments:
        frames = max(1, int(round(segment.duration * info.fps)))
        corners = _follow(track, segment.start, frames, info.fps, extent, window, 0 if slide_x else 1)
        fixed = (info.height - crop_h) // 2 if slide_x else (info.width - crop_w) // 2
        xs, ys = (corners, (fixed,) * frames) if slide_x else ((fixed,) * frames, corners)
        paths.append(CropPath(crop_w, crop_h, tuple(xs), tuple(ys)))
    return paths


def _follow(track, start: float, frames: int, fps: float, extent: int, window: int, axis: int) -> tuple[int, ...]:
    """Top-left offsets along one axis for ``frames`` frames from ``start`` (centred when the
    track is empty or nothing moves)."""
    from .signals import TRACK_S

    aims = np.full(frames, extent / 2.0)
    held, first = None, None
    for k in range(frames):
        step = int((start + k / fps) / TRACK_S + 1e-6)
        if step < len(track) and track[step][2] >= MIN_MOTION:
            held = track[step][axis] * extent
            first = k if first is None else first
        if held is not None:
            aims[k] = held
    if first is not None:  # before the first movement, aim where the action starts
        aims[:first] = aims[first]
    centres = _glide(_smooth(aims, max(1, int(round(SMOOTH_S * fps)))), max_step(extent, fps))
    low, high = window / 2.0, extent - window / 2.0
    return tuple(int(round(min(max(c, low), high) - window / 2.0)) for c in centres)


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average, the ends padded with their own values (no pull to zero)."""
    if width <= 1 or len(values) < 2:
        return values
    half = width // 2
    padded = np.concatenate([np.full(half, values[0]), values, np.full(width - half - 1, values[-1])])
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _glide(values: np.ndarray, limit: float) -> list[float]:
    """Follow ``values`` but move at most ``limit`` per frame."""
    out = [float(values[0])]
    for value in values[1:]:
        out.append(out[-1] + max(-limit, min(limit, float(value) - out[-1])))
    return out
