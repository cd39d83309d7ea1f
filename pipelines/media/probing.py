"""Probing: what kind of media a file is, and a video's headers checked against the limits before
anything is decoded (then ONE frame, for the rotation). See the package docstring."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Literal

import av

from ..errors import BadInputError, DecodeError
from ..limits import LIMITS, Limits
from ..timecode import clock
from .files import display_name, require_non_empty
from .images import image_kind, is_still_image_box, open_header

# ffmpeg demuxer names that are real video containers. Image demuxers (image2, png_pipe, ...) and
# raw elementary streams (h264, m4v: no timestamps) are deliberately absent.
VIDEO_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm", "avi", "mpeg", "mpegts", "flv", "ogg", "gif", "asf"})
VIDEO_FORMAT_NAMES = "MP4, MOV, MKV, WebM, AVI, MPEG, FLV, OGG or animated GIF"


@dataclass(frozen=True)
class VideoInfo:
    """What probing learned. ``width``/``height`` are the DISPLAYED size (after rotation);
    ``rotation`` is the clockwise turn (0/90/180/270) that makes the stored picture upright.
    ``frame_count`` may be an estimate (duration x fps) for containers that do not store it.
    ``variable_rate``: frames are not evenly spaced in time (phone recordings, screen captures),
    so frame i is NOT shown at i / fps; readers then look frames up by time (PyAV), not by count."""

    path: str
    duration: float
    fps: float
    frame_count: int
    width: int
    height: int
    has_audio: bool
    rotation: int = 0
    variable_rate: bool = False


def file_kind(path) -> Literal["image", "video"] | None:
    """"image", "video" or None, judged by CONTENT (never the file name).

    An animated GIF counts as a video (people who upload one expect it to be watched); other
    animated formats (APNG, animated WEBP) are images (their first frame). Unreadable -> None.
    """
    try:
        if os.path.getsize(path) == 0:
            return None
    except OSError:
        return None
    kind = image_kind(path)
    if kind is not None:
        return kind
    return "video" if _is_video_container(path) else None


def _is_video_container(path) -> bool:
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return _is_video_format(container) and video_stream(container) is not None
    except Exception:  # PyAV/FFmpeg raise many types on non-media
        return False


def probe_video(path, limits: Limits = LIMITS) -> VideoInfo:
    """Read a video's headers and check them against ``limits``; decode at most one frame.

    Raises DecodeError (empty, random bytes, damaged) or BadInputError (an image or audio file,
    too long, frame too large). The length and size checks run before anything is decoded.
    """
    name = display_name(path)
    require_non_empty(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as exc:  # FFmpegError subclasses, OSError, UnicodeDecodeError...
        raise DecodeError(f"Could not read {name} as a video: the file may be damaged or is not a video. Use {VIDEO_FORMAT_NAMES}.") from exc
    with container:
        stream = video_stream(container)
        # FFmpeg's mov demuxer also opens HEIC/AVIF photos, as one-frame "videos".
        if stream is None or not _is_video_format(container) or is_still_image_box(path):
            raise _not_a_video_error(path, container)
        has_audio = len(container.streams.audio) > 0
        duration, fps, frame_count = _timing(container, stream, name)
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_video_limits(name, duration, width, height, limits)
        variable = _is_variable_rate(stream)
        rotation = _rotation(container, stream, name)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(str(path), duration, fps, frame_count, width, height, has_audio, rotation, variable)


def _is_variable_rate(stream) -> bool:
    """From the container's sample index where it lists every frame (MP4/MOV): do the gaps between
    frames differ by more than timestamp rounding? Otherwise (Matroska cues list keyframes only)
    compare FFmpeg's nominal rate (r_frame_rate) with the average rate, which differ for VFR."""
    stamps = sorted(e.timestamp for e in _index_entries(stream))
    gaps = [b - a for a, b in zip(stamps, stamps[1:]) if b > a]
    if len(gaps) >= 2 and len(stamps) >= 0.9 * (stream.frames or len(stamps)):
        return max(gaps) - min(gaps) > max(1, 0.1 * min(gaps))
    nominal, average = stream.base_rate, stream.average_rate
    return bool(nominal and average) and abs(float(nominal) - float(average)) > 0.01 * float(average)


def _index_entries(stream) -> list:
    try:
        return list(stream.index_entries)
    except Exception:  # not every demuxer keeps an index
        return []


def _is_video_format(container) -> bool:
    return bool(VIDEO_CONTAINERS.intersection(container.format.name.split(",")))


def video_stream(container):
    """The first real video stream; cover art in audio files (attached_pic) does not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _not_a_video_error(path, container) -> BadInputError:
    """The most useful of: it is an image / it is audio only / it is not a supported video."""
    name = display_name(path)
    try:
        with open_header(path) as image:
            kind = image.format
    except Exception:
        kind = None
    if kind:
        return BadInputError(f"{name} is an image ({kind}), not a video. Attach it as an image instead.")
    if container.streams.audio and video_stream(container) is None:
        return BadInputError(f"{name} has no video track (is it an audio file?). Upload a video.")
    return DecodeError(f"{name} is not a video in a supported format. Use {VIDEO_FORMAT_NAMES}.")


def _timing(container, stream, name: str) -> tuple[float, float, int]:
    """(duration s, average fps, frame count) from headers, each with a fallback chain."""
    frames = int(stream.frames or 0)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif _tagged_duration(stream) is not None:
        duration = _tagged_duration(stream)
    elif container.duration:
        duration = container.duration / av.time_base
    if not rate and frames and duration:
        rate = frames / duration
    if not rate or rate <= 0:
        raise DecodeError(f"Could not read {name}'s frame rate: the file may be damaged. Re-export it and try again.")
    fps = float(rate)
    if duration is None and frames:
        duration = frames / fps
    if duration is None or not math.isfinite(duration) or duration <= 0:
        raise DecodeError(f"Could not tell how long {name} is: the file may be damaged. Re-export it and try again.")
    if frames <= 0:
        frames = max(1, int(round(duration * fps)))  # an estimate; readers clamp to what exists
    return duration, fps, frames


def _tagged_duration(stream) -> float | None:
    """Matroska/WebM keep a per-stream length only as a "DURATION" tag (HH:MM:SS.nnnnnnnnn); the
    container's duration also counts audio, which can run longer than the picture."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration") or ""
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", tag.strip())
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _check_video_limits(name: str, duration: float, width: int, height: int, limits: Limits) -> None:
    longest = float(limits.max_video_seconds.value)
    if duration > longest:
        # Floored clocks can coincide just past the limit ("4:00:00 long; the limit is 4:00:00").
        shown = clock(duration) if clock(duration) != clock(longest) else clock(duration, decimals=3)
        raise BadInputError(f"{name} is {shown} long; the limit is {clock(longest)}. Trim the video and try again.")
    if width <= 0 or height <= 0:
        raise DecodeError(f"Could not read {name}'s frame size: the file may be damaged. Re-export it and try again.")
    cap = int(limits.max_video_pixels.value)
    if width * height > cap:
        raise BadInputError(f"{name}'s frames are {width}x{height} pixels; the limit is {cap:,} pixels per frame. Downscale the video and try again.")


def _rotation(container, stream, name: str) -> int:
    """Clockwise display rotation. PyAV exposes the display matrix on decoded frames only, so
    decode the first frame; that also proves the stream decodes at all."""
    try:
        frame = next(container.decode(stream), None)
    except Exception as exc:
        raise DecodeError(f"Could not decode {name}: the file may be damaged. Re-export it and try again.") from exc
    if frame is None:
        raise DecodeError(f"{name} contains no decodable frames: the file may be damaged. Re-export it and try again.")
    return int(round(-frame.rotation / 90.0)) % 4 * 90  # PyAV reports counter-clockwise
