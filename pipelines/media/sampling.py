"""Sampling: which frames a model sees, exactly as the checkpoint's processor would choose them.
PURE: no file is opened. See the package docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import BadInputError


@dataclass(frozen=True)
class FrameSample:
    """Frame indices to read (ascending, unique) and their times in seconds (index / fps)."""

    indices: tuple[int, ...]
    timestamps: tuple[float, ...]


def sample_indices(metadata, fps: float | None, max_frames: int) -> FrameSample:
    """Choose which frames a model sees, exactly as the checkpoint's processor would.

    ``metadata`` needs ``fps``, ``duration`` and ``frame_count`` (or transformers'
    ``total_num_frames``). ``fps`` a number: SmolVLMVideoProcessor.sample_frames with
    ``num_frames=max_frames`` (at most ``max_frames``, fewer for short clips, 1 s trimmed off both
    ends of long ones). ``fps`` None: BaseVideoProcessor.sample_frames with
    ``num_frames=max_frames`` (PerceptionLM), except that a clip with fewer frames than asked
    gives all its frames where transformers would raise.
    """
    frame_count, video_fps, duration = _checked_metadata(metadata)
    _check_sampling_args(fps, max_frames)
    if fps is None:
        indices = _uniform_indices(frame_count, max_frames)
    else:
        indices = _smolvlm_indices(frame_count, video_fps, duration, float(fps), max_frames)
    chosen = tuple(int(i) for i in indices)
    return FrameSample(chosen, tuple(i / video_fps for i in chosen))


def chosen_frames(metadata, frames: Sequence[int]) -> FrameSample:
    """The frames a caller chose itself (another stage's frame grid, so its work can be shared),
    as a sample: clamped into the video (header frame counts can be estimates), ascending, each
    once, with their times. PURE, like ``sample_indices``."""
    frame_count, video_fps, _duration = _checked_metadata(metadata)
    chosen = tuple(sorted(set(clamped_frames(frames, frame_count))))
    return FrameSample(chosen, tuple(i / video_fps for i in chosen))


def clamped_frames(indices: Sequence[int], frame_count: int) -> list[int]:
    """Frame numbers as ints, in request order, those past the end clamped to the last frame
    (header frame counts can be estimates); none, or a negative one, is a BadInputError."""
    wanted = [int(i) for i in indices]
    if not wanted:
        raise BadInputError("No frames were requested from the video.")
    if min(wanted) < 0:
        raise BadInputError("Frame numbers cannot be negative.")
    return [min(i, frame_count - 1) for i in wanted]


def _checked_metadata(metadata) -> tuple[int, float, float]:
    frame_count = getattr(metadata, "frame_count", None)
    if frame_count is None:
        frame_count = getattr(metadata, "total_num_frames", None)
    video_fps = getattr(metadata, "fps", None)
    if frame_count is None or int(frame_count) < 1:
        raise BadInputError("The video has no frames that can be read.")
    if video_fps is None or not math.isfinite(video_fps) or video_fps <= 0:
        raise BadInputError("The video's frame rate is unknown, so frames cannot be sampled.")
    duration = getattr(metadata, "duration", None)
    if duration is None:
        duration = int(frame_count) / video_fps  # transformers would fail; this is its meaning
    if not math.isfinite(duration) or duration < 0:
        raise BadInputError("The video's length is unknown, so frames cannot be sampled.")
    return int(frame_count), float(video_fps), float(duration)


def _check_sampling_args(fps, max_frames) -> None:
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise BadInputError(f"The number of frames to sample must be a whole number of at least 1; got {max_frames!r}.")
    if fps is not None and (isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0):
        raise BadInputError(f"Frames per second to sample must be greater than 0; got {fps!r}.")


def _uniform_indices(frame_count: int, max_frames: int) -> np.ndarray:
    """transformers.video_utils.default_sample_indices_fn(num_frames=...): i * total // n."""
    count = min(max_frames, frame_count)
    return np.arange(count, dtype=int) * frame_count // count


def _smolvlm_indices(frame_count: int, video_fps: float, duration: float, fps: float, max_frames: int, skip_secs: int = 1) -> np.ndarray:
    """SmolVLMVideoProcessor.sample_frames, line for line; its quirks are the contract:
    Python's round() (half to even) for the estimate; the trim test compares the duration with
    ``max_frames * fps`` (not with the frames actually wanted); the trimmed end is
    ``int(total - skip * fps)`` then capped at ``total - 1``; linspace truncates to int and
    ``unique`` may return fewer frames than wanted."""
    desired = max(1, min(int(round(fps * duration)), max_frames))
    start, end = 0, frame_count - 1
    if skip_secs > 0 and (duration - 2 * skip_secs) > (max_frames * fps):
        start = int(skip_secs * video_fps)
        end = int(frame_count - skip_secs * video_fps)
    start, end = max(0, start), min(end, frame_count - 1)
    if start >= end:
        start, end = 0, frame_count - 1
    return np.unique(np.linspace(start, end, desired, dtype=int))
