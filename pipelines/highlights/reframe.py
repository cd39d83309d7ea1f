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
  position of every frame of that segment (source pixels). "follow" steers by what the signals
  pass found (signals.py; the frames are decoded once, for cuts, sound, motion and faces
  together, never again for this): where a face is, else where the picture changes. A face
  counts when it is seen again within ``FACE_HOLD_S`` (one lone detection is more likely a false
  one), and it is held through gaps of up to ``FACE_HOLD_S`` (the cascade misses turned heads);
  of several faces the crop keeps to the one it follows while that one stays at least
  ``KEEP_FACE_SHARE`` of the biggest's width, else takes the biggest (``face_aims``). Without a
  face, a motion step with too little change holds the previous aim. A face's aim moves linearly
  between two looks. The aims are smoothed by a centred moving average over ``SMOOTH_S``
  seconds, then rate-limited so the crop glides (at most
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
FACE_HOLD_S = 1.0  # a face is confirmed by, and held across, gaps up to this long
KEEP_FACE_SHARE = 0.6  # keep following a face while it is at least this share of the biggest's width


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
    following = signals is not None and shape.reframe == "follow"
    track = signals.motion if following else ()
    faces = face_aims(signals.faces) if following else ()
    paths = []
    for segment in segments:
        frames = max(1, int(round(segment.duration * info.fps)))
        corners = _follow(track, faces, segment.start, frames, info.fps, extent, window, 0 if slide_x else 1)
        fixed = (info.height - crop_h) // 2 if slide_x else (info.width - crop_w) // 2
        xs, ys = (corners, (fixed,) * frames) if slide_x else ((fixed,) * frames, corners)
        paths.append(CropPath(crop_w, crop_h, tuple(xs), tuple(ys)))
    return paths


def face_aims(faces: Sequence[Sequence[tuple[float, float, float]]]) -> tuple[tuple[float, float] | None, ...]:
    """Per face step of the signals (signals.FACE_S), the (x, y) fraction to centre on, or None
    when no confirmed face is in view; see the module docstring."""
    from .signals import FACE_S

    reach = max(1, int(round(FACE_HOLD_S / FACE_S)))
    aims: list[tuple[float, float] | None] = []
    followed, seen_at = None, -reach - 1
    for step, found in enumerate(faces):
        confirmed = [f for f in found if _seen_near(faces, step, f, reach)]
        if confirmed:
            biggest = max(confirmed, key=lambda f: f[2])
            same = [f for f in confirmed if followed is not None and _near(f, followed)
                    and f[2] >= KEEP_FACE_SHARE * biggest[2]]
            followed, seen_at = same[0] if same else biggest, step
        aims.append((followed[0], followed[1]) if followed is not None and step - seen_at <= reach else None)
    return tuple(aims)


def _seen_near(faces, step: int, face, reach: int) -> bool:
    """Whether another face step within ``reach`` steps saw a face where ``face`` is."""
    neighbours = range(max(0, step - reach), min(len(faces), step + reach + 1))
    return any(_near(face, other) for k in neighbours if k != step for other in faces[k])


def _near(face, other) -> bool:
    """Within one face width of each other (the same face, moved a little)."""
    size = max(face[2], other[2])
    return abs(face[0] - other[0]) <= size and abs(face[1] - other[1]) <= size


def _follow(track, faces, start: float, frames: int, fps: float, extent: int, window: int,
            axis: int) -> tuple[int, ...]:
    """Top-left offsets along one axis for ``frames`` frames from ``start``: toward a face when
    one is in view, else toward the motion (centred when neither says anything)."""
    from .signals import FACE_S, TRACK_S

    aims = np.full(frames, extent / 2.0)
    held, first = None, None
    for k in range(frames):
        seconds = start + k / fps
        step, face_step = int(seconds / TRACK_S + 1e-6), int(seconds / FACE_S + 1e-6)
        face = faces[face_step] if face_step < len(faces) else None
        if face is not None:
            held = _between(face, faces[face_step + 1] if face_step + 1 < len(faces) else None,
                            seconds / FACE_S - face_step, axis) * extent
            first = k if first is None else first
        elif step < len(track) and track[step][2] >= MIN_MOTION:
            held = track[step][axis] * extent
            first = k if first is None else first
        if held is not None:
            aims[k] = held
    if first is not None:  # before the first movement, aim where the action starts
        aims[:first] = aims[first]
    centres = _glide(_smooth(aims, max(1, int(round(SMOOTH_S * fps)))), max_step(extent, fps))
    low, high = window / 2.0, extent - window / 2.0
    return tuple(int(round(min(max(c, low), high) - window / 2.0)) for c in centres)


def _between(face, following, fraction: float, axis: int) -> float:
    """A face's position between two looks (linear), so a moving face is followed, not stepped to."""
    if following is None:
        return face[axis]
    return face[axis] + min(1.0, max(0.0, fraction)) * (following[axis] - face[axis])


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
