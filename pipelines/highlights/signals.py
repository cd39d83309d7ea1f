"""What the picture and the sound say without the model: shot cuts, loudness, and where things move.

Contract
--------
* ``read_signals(path, info) -> Signals`` makes ONE pass over the file (video and audio packets
  demuxed together) and is meant to run in a bounded child (``measure`` does that through
  pipelines.isolation: FFmpeg parses untrusted bytes). Every frame is decoded and shrunk by
  swscale to ``SIGNAL_WIDTH`` px wide; on those small frames
  - PySceneDetect's ContentDetector finds the hard cuts (``cuts``: the times, on the frame grid,
    where a new shot starts; 0 and the end are not cuts);
  - the difference to the previous frame gives a motion track: every ``TRACK_S`` seconds, where
    the picture changed (x, y as fractions of the frame) and how much of it did (``amount``),
    which is what the ``follow`` reframing steers by (reframe.py).
  The soundtrack, resampled to mono 16 kHz, gives the loudness (dBFS, floored at ``FLOOR_DB``)
  of every ``BLOCK_S`` block; ``loudness`` is None when the video has no audio stream.
* ``shot_windows(duration, cuts, window_seconds)`` (pure): whole shots as windows, shots longer
  than a window split into window-long pieces (the last piece may be shorter).
* ``window_audio(loudness, windows) -> list[AudioFeature]`` (pure): per window, its loudness
  relative to the VIDEO'S OWN level (the median block: a quiet vlog and a loud stadium are
  judged each against itself), the loudest ``BURST_S`` burst in it relative to the same level
  (cheers, impacts), and a 0..1 ``score`` from the two (``AUDIO_RANGE_DB`` above the level = 1).
* ``mix(visual, audio, weight)``: ``(1 - weight) * visual + weight * audio``.

This module must not import torch or gradio (the decoding child imports it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from .. import isolation, media
from ..limits import LIMITS, Limits
from .windows import MIN_TAIL_S, Window

SIGNALS_VERSION = 1  # bump when what read_signals computes changes (cached per video content)
SIGNAL_WIDTH = 128  # px: enough for cuts and motion, and swscale makes it nearly free
TRACK_S = 0.1
BLOCK_S = 0.1
BURST_S = 0.3
AUDIO_RATE = 16_000
FLOOR_DB = -100.0  # digital silence
AUDIO_RANGE_DB = 20.0  # this far above the video's own level scores 1
CUT_THRESHOLD = 27.0  # ContentDetector's default: HSV change score that makes a cut
MIN_SHOT_S = 0.5  # shorter "shots" are flashes, not cuts
MOTION_DELTA = 24  # grey levels: smaller frame differences are noise and compression


@dataclass(frozen=True)
class Signals:
    cuts: tuple[float, ...]
    loudness: tuple[float, ...] | None
    motion: tuple[tuple[float, float, float], ...]  # (x, y, amount) per TRACK_S step
    frames: int = 0
    note: str = ""  # why a signal is missing (the sound could not be decoded, the pass failed)

    @classmethod
    def missing(cls, why: str) -> "Signals":
        """No cuts, no sound, no motion: the reel is made as before, and ``why`` says so."""
        return cls((), None, (), 0, why)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Signals":
        loudness = data.get("loudness")
        return cls(tuple(data["cuts"]), None if loudness is None else tuple(loudness),
                   tuple(tuple(m) for m in data["motion"]), int(data.get("frames", 0)), str(data.get("note", "")))


@dataclass(frozen=True)
class AudioFeature:
    loudness_db: float  # the window's level minus the video's level
    burst_db: float  # its loudest BURST_S minus the video's level
    score: float  # 0..1


TIMEOUT_PER_S = 600.0  # the decode time limit applies per this many seconds of video


def measure(path, info: media.VideoInfo, limits: Limits = LIMITS, cancel=None) -> Signals:
    """``read_signals`` in a bounded child process: the limits table's memory, and its decode time
    limit once per ``TIMEOUT_PER_S`` of video (this pass reads EVERY frame, so it grows with the
    length: ~2 s of CPU per minute of 640x360 at 30 fps)."""
    periods = max(1, math.ceil(info.duration / TIMEOUT_PER_S))
    return isolation.run(read_signals, str(path), info, what=media.display_name(path),
                         timeout_s=float(limits.decode_timeout_s.value) * periods,
                         memory_mb=float(limits.decode_memory_mb.value), cancel=cancel)


def read_signals(path, info: media.VideoInfo) -> Signals:
    """Cuts, motion track and loudness from one demuxing pass; see the module docstring."""
    import av
    import cv2
    from scenedetect import ContentDetector, FrameTimecode

    cv2.setNumThreads(1)  # tiny frames: OpenCV's thread pool would cost more than it saves

    detector = ContentDetector(threshold=CUT_THRESHOLD, min_scene_len=max(1, int(round(MIN_SHOT_S * info.fps))))
    motion, loudness = _MotionTrack(), _Loudness()
    cuts: list[float] = []
    clock = _Clock(info)
    note = ""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[0] if container.streams.audio and info.has_audio else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE) if audio else None
        for packet in container.demux(*[s for s in (video, audio) if s is not None]):
            if audio is not None and packet.stream is audio:
                try:
                    for frame in packet.decode():
                        loudness.add_frames(resampler.resample(frame))
                except av.error.FFmpegError as error:  # the picture can still be used
                    audio, resampler, note = None, None, f"The soundtrack could not be decoded ({error.strerror})."
                continue
            if packet.stream is not video:
                continue
            for frame in packet.decode():
                index, seconds = len(clock.times), clock.add(frame)
                small = _small(frame, info)
                found = detector.process_frame(FrameTimecode(index, info.fps), small)
                cuts += [round(clock.times[c.frame_num], 6) for c in found if 0 < c.frame_num <= index]
                motion.add(seconds, small)
        if resampler is not None:
            loudness.add_frames(resampler.resample(None))
    return Signals(tuple(sorted(set(cuts))), loudness.blocks() if audio else None, motion.track(), len(clock.times),
                   note)


class _Clock:
    """When each decoded frame is shown, from the first frame: index / fps, except in
    variable-rate files, where the frame's own timestamp counts (never going backwards)."""

    def __init__(self, info: media.VideoInfo) -> None:
        self.info, self.origin, self.times = info, None, []

    def add(self, frame) -> float:
        seconds = len(self.times) / self.info.fps
        if self.info.variable_rate and frame.time is not None:
            self.origin = frame.time if self.origin is None else self.origin
            seconds = max(self.times[-1] if self.times else 0.0, frame.time - self.origin)
        self.times.append(seconds)
        return seconds


_PLANAR_420 = ("yuv420p", "yuvj420p")


def _small(frame, info: media.VideoInfo) -> np.ndarray:
    """The frame shrunk to SIGNAL_WIDTH px wide (displayed orientation), BGR for OpenCV.

    For 8-bit 4:2:0 (nearly every file) each plane is shrunk by OpenCV's area filter and only
    the small picture is converted to BGR: 1.6 s of CPU for 2 minutes of 640x360 at 30 fps,
    where swscale's bilinear reformat to BGR took 4.2 s. Other formats go through swscale."""
    import cv2

    coded_w, coded_h = frame.width, frame.height
    width = SIGNAL_WIDTH if coded_w >= coded_h else max(2, int(round(SIGNAL_WIDTH * coded_w / coded_h)))
    height = max(2, int(round(width * coded_h / coded_w)))
    if frame.format.name in _PLANAR_420 and coded_w % 2 == 0 and coded_h % 2 == 0:
        packed = frame.to_ndarray()  # (H * 3/2, W): Y, then U, then V
        half = (coded_h // 2, coded_w // 2)
        quarter = coded_h * coded_w // 4
        luma = packed[:coded_h]
        chroma = packed[coded_h:].reshape(-1)
        blue, red = chroma[:quarter].reshape(half), chroma[quarter:2 * quarter].reshape(half)
        planes = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in (luma, red, blue)]
        small = cv2.cvtColor(cv2.merge(planes), cv2.COLOR_YCrCb2BGR)
    else:
        small = frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(np.rot90(small, -(info.rotation // 90))) if info.rotation else small


class _MotionTrack:
    """Per TRACK_S step: the difference-weighted centre of what changed, and how much did."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.sums: dict[int, list[float]] = {}  # step -> [weight*x, weight*y, weight, amount, frames]

    def add(self, seconds: float, small: np.ndarray) -> None:
        grey = small.mean(axis=2, dtype=np.float32)
        if self.previous is not None and self.previous.shape == grey.shape:
            change = np.abs(grey - self.previous)
            change[change < MOTION_DELTA] = 0.0
            weight = float(change.sum())
            height, width = grey.shape
            entry = self.sums.setdefault(int(seconds / TRACK_S + 1e-6), [0.0, 0.0, 0.0, 0.0, 0])
            if weight > 0:
                columns, rows = change.sum(axis=0), change.sum(axis=1)
                entry[0] += float(columns @ (np.arange(width) + 0.5)) / width
                entry[1] += float(rows @ (np.arange(height) + 0.5)) / height
                entry[2] += weight
            entry[3] += float(np.count_nonzero(change)) / change.size
            entry[4] += 1
        self.previous = grey

    def track(self) -> tuple[tuple[float, float, float], ...]:
        if not self.sums:
            return ()
        steps = []
        for step in range(max(self.sums) + 1):
            wx, wy, weight, amount, frames = self.sums.get(step, [0.0, 0.0, 0.0, 0.0, 0])
            if weight > 0:
                steps.append((round(wx / weight, 4), round(wy / weight, 4), round(amount / max(frames, 1), 5)))
            else:
                steps.append((0.5, 0.5, 0.0))
        return tuple(steps)


class _Loudness:
    """Mean-square power of every BLOCK_S block of mono samples, as dBFS."""

    def __init__(self) -> None:
        self.block = int(round(BLOCK_S * AUDIO_RATE))
        self.pending = np.zeros(0, dtype=np.float32)
        self.levels: list[float] = []

    def add_frames(self, frames) -> None:
        for frame in frames:
            self.pending = np.concatenate([self.pending, frame.to_ndarray().reshape(-1).astype(np.float32)])
        whole = len(self.pending) // self.block
        if whole:
            chunk = self.pending[:whole * self.block].reshape(whole, self.block)
            self.levels += [_db(p) for p in (chunk.astype(np.float64) ** 2).mean(axis=1)]
            self.pending = self.pending[whole * self.block:]

    def blocks(self) -> tuple[float, ...]:
        tail = [_db(float((self.pending.astype(np.float64) ** 2).mean()))] if len(self.pending) else []
        return tuple(round(v, 2) for v in self.levels + tail)


def _db(power: float) -> float:
    return max(FLOOR_DB, 10.0 * math.log10(power)) if power > 0 else FLOOR_DB


# =============================================================================================
# Pure: windows from shots, audio per window, mixing
# =============================================================================================


def shot_windows(duration: float, cuts: Sequence[float], window_seconds: float) -> list[Window]:
    """Whole shots as windows; see the module docstring. A piece shorter than MIN_TAIL_S joins
    the piece before it (it would show nothing the model could judge)."""
    edges = [0.0, *[c for c in sorted(cuts) if 0.0 < c < duration], duration]
    spans: list[tuple[float, float]] = []
    for start, end in zip(edges, edges[1:]):
        pieces = max(1, math.ceil((end - start) / window_seconds - 1e-9))
        for k in range(pieces):
            spans.append((round(start + k * window_seconds, 6), round(min(end, start + (k + 1) * window_seconds), 6)))
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and end - start < MIN_TAIL_S:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [Window(i, start, end) for i, (start, end) in enumerate(merged)]


def window_audio(loudness: Sequence[float] | None, windows: Sequence[Window]) -> list[AudioFeature] | None:
    """Per window: loudness and burst relative to the video's own level, and a 0..1 score."""
    if not loudness:
        return None
    levels = np.asarray(loudness, dtype=np.float64)
    reference = float(np.median(levels))
    power = 10.0 ** (levels / 10.0)
    burst = max(1, int(round(BURST_S / BLOCK_S)))
    features = []
    for window in windows:
        first = min(len(levels) - 1, int(window.start / BLOCK_S + 1e-6))
        last = max(first + 1, min(len(levels), int(math.ceil(window.end / BLOCK_S - 1e-6))))
        inside = power[first:last]
        loud = _db(float(inside.mean())) - reference
        rolling = np.convolve(inside, np.ones(min(burst, len(inside))) / min(burst, len(inside)), mode="valid")
        peak = _db(float(rolling.max())) - reference
        score = min(1.0, 0.5 * max(loud, 0.0) / AUDIO_RANGE_DB + 0.5 * max(peak, 0.0) / AUDIO_RANGE_DB)
        features.append(AudioFeature(round(loud, 2), round(peak, 2), round(score, 6)))
    return features


def mix(visual: float, audio: float | None, weight: float) -> float:
    """The window's score: the model's P(yes) mixed with the audio score (visual alone when the
    video has no sound or the weight is 0, so those score exactly as before)."""
    if audio is None or weight <= 0:
        return visual
    return (1.0 - weight) * visual + weight * audio
