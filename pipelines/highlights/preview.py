"""A look at the crop before (or beside) the reel: a few source frames with the crop drawn on.

Contract: ``crop_preview(analysis, segments, shape, count=4) -> list[(PIL.Image, caption)]``.
Empty for the "source" shape. Otherwise ``count`` moments spread over the selected segments
(the middle of ``count`` equal slices of the reel); their source frames are decoded in a bounded
child (pipelines.isolation, like every decode of an upload), shrunk to ``PREVIEW_WIDTH`` px, and
the crop of that frame (reframe.crop_paths, the same numbers the render uses) is drawn as a
rectangle with the outside dimmed. Captions give the source time.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .. import isolation, media
from ..limits import LIMITS, Limits
from ..timecode import clock
from .reframe import ReelShape, crop_paths

PREVIEW_WIDTH = 240


def crop_preview(analysis, segments: Sequence, shape: ReelShape, count: int = 4,
                 limits: Limits = LIMITS) -> list[tuple[Image.Image, str]]:
    """Frames with their crop drawn on; see the module docstring."""
    if shape.output_size is None or not segments:
        return []
    info = analysis.info
    paths = crop_paths(shape, segments, info, analysis.signals)
    moments = _moments(segments, count)
    indices = [min(info.frame_count - 1, int(round((segments[s].start + offset) * info.fps))) for s, offset in moments]
    read = functools.partial(media.read_frames, backend="pyav")
    frames = isolation.run(read, str(analysis.video), indices, info, what=media.display_name(analysis.video),
                           timeout_s=float(limits.decode_timeout_s.value),
                           memory_mb=float(limits.decode_memory_mb.value))
    pictures = []
    for (segment, offset), frame in zip(moments, frames):
        path = paths[segment]
        k = min(len(path.xs) - 1, int(round(offset * info.fps)))
        box = (path.xs[k], path.ys[k], path.xs[k] + path.width, path.ys[k] + path.height)
        pictures.append((_drawn(frame, box), f"{clock(segments[segment].start + offset)}"))
    return pictures


def _moments(segments: Sequence, count: int) -> list[tuple[int, float]]:
    """(segment number, seconds into it) at the middle of ``count`` equal slices of the reel."""
    total = sum(s.duration for s in segments)
    moments = []
    for k in range(count):
        left = (k + 0.5) * total / count
        for number, segment in enumerate(segments):
            if left < segment.duration or number == len(segments) - 1:
                moments.append((number, min(left, segment.duration)))
                break
            left -= segment.duration
    return moments


def _drawn(frame: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    height, width = frame.shape[:2]
    dimmed = (frame * 0.35).astype(np.uint8)
    x0, y0, x1, y1 = box
    dimmed[y0:y1, x0:x1] = frame[y0:y1, x0:x1]
    image = Image.fromarray(dimmed)
    ImageDraw.Draw(image).rectangle([x0, y0, x1 - 1, y1 - 1], outline=(245, 158, 11), width=max(1, width // 160))
    scale = PREVIEW_WIDTH / width
    return image.resize((PREVIEW_WIDTH, max(1, int(round(height * scale)))))
