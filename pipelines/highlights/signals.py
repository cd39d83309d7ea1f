"""What the picture and the sound say without the model: shot cuts, loudness, where things move
and where faces are.

Contract
--------
* ``read_signals(path, info) -> Signals`` makes ONE pass over the file (video and audio packets
  demuxed together) and is meant to run in a bounded child (``measure`` does that through
  pipelines.isolation: FFmpeg parses untrusted bytes). Every frame is decoded and shrunk to
  ``SIGNAL_WIDTH`` px wide; on those small frames
  - PySceneDetect's ContentDetector finds the hard cuts (``cuts``: the times, on the frame grid,
    where a new shot starts; 0 and the end are not cuts);
  - the difference to the previous frame gives a motion track: every ``TRACK_S`` seconds, where
    the picture changed (x, y as fractions of the frame) and how much of it did (``amount``),
    which is what the ``follow`` reframing steers by (reframe.py);
  - every ``FACE_S`` seconds, the frontal faces OpenCV's bundled Haar cascade finds on the
    frame's luma shrunk to ``FACE_WIDTH`` px (``faces``: per step, up to ``MAX_FACES`` faces as
    (x, y, width) fractions of the frame, biggest first; reframe.py steers by them first).
  The soundtrack, resampled to mono 16 kHz, gives the loudness (dBFS, floored at ``FLOOR_DB``)
  of every ``BLOCK_S`` block; ``loudness`` is None when the video has no audio stream.
* ``read_signals_and_frames(path, info, indices) -> SignalsAndFrames`` is that pass keeping the
  frames a scan will score, exactly as ``media.read_frames`` gives them (``measure_with_frames``
  runs it bounded): the highlight scan then decodes nothing itself (windows.py, pipeline.py).
* ``SignalMeter``: the per-frame state of the pass (feed decoded frames and audio packets).
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

SIGNALS_VERSION = 2  # 2: faces. Bump when what read_signals computes changes (cached per video content)
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
# Faces: looked for twice a second (faces move slowly, and the crop path is smoothed over a second
# anyway), on the luma at 192 px wide: the cascade's smallest face (20 px) is then ~10% of the
# frame's width, a third of a 9:16 crop of a 16:9 video. Cost measured on the 10-minute 640x360
# benchmark video: see benchmarks/highlights_vs_reference.py --signals-only.
FACE_S = 0.5
FACE_WIDTH = 192
FACE_CASCADE = "haarcascade_frontalface_default.xml"  # 5x faster than alt2 on busy frames (0.6 vs 3.4 ms)
FACE_SCALE_STEP, FACE_NEIGHBOURS, FACE_MIN_PX = 1.15, 4, 20
MAX_FACES = 3


@dataclass(frozen=True)
class Signals:
    cuts: tuple[float, ...]
    loudness: tuple[float, ...] | None
    motion: tuple[tuple[float, float, float], ...]  # (x, y, amount) per TRACK_S step
    frames: int = 0
    note: str = ""  # why a signal is missing (the sound could not be decoded, the pass failed)
    faces: tuple[tuple[tuple[float, float, float], ...], ...] = ()  # per FACE_S step: (x, y, width)s

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
                   tuple(tuple(m) for m in data["motion"]), int(data.get("frames", 0)), str(data.get("note", "")),
                   tuple(tuple(tuple(f) for f in step) for step in data.get("faces", ())))


@dataclass(frozen=True)
class AudioFeature:
    loudness_db: float  # the window's level minus the video's level
    burst_db: float  # its loudest BURST_S minus the video's level
    score: float  # 0..1


TIMEOUT_PER_S = 600.0  # the decode time limit applies per this many seconds of video


@dataclass(frozen=True)
class SignalsAndFrames:
    """What ``read_signals_and_frames`` gives: the signals, and the kept frames ((N, H, W, 3)
    uint8 RGB, upright, in the order asked), or None when they could not be matched exactly to
    what ``media.read_frames`` would give (then the scan decodes them itself)."""

    signals: Signals
    frames: np.ndarray | None


def measure(path, info: media.VideoInfo, limits: Limits = LIMITS, cancel=None) -> Signals:
    """``read_signals`` in a bounded child process: the limits table's memory, and its decode time
    limit once per ``TIMEOUT_PER_S`` of video (this pass reads EVERY frame, so it grows with the
    length: ~1.6 s of CPU per minute of 640x360 at 30 fps)."""
    return _isolated(read_signals, path, info, limits, cancel)


def measure_with_frames(path, info: media.VideoInfo, indices: Sequence[int], limits: Limits = LIMITS,
                        cancel=None) -> SignalsAndFrames:
    """``read_signals_and_frames`` in a bounded child process, bounded as ``measure``."""
    return _isolated(read_signals_and_frames, path, info, limits, cancel, tuple(int(i) for i in indices))


def _isolated(function, path, info: media.VideoInfo, limits: Limits, cancel, *more):
    periods = max(1, math.ceil(info.duration / TIMEOUT_PER_S))
    return isolation.run(function, str(path), info, *more, what=media.display_name(path),
                         timeout_s=float(limits.decode_timeout_s.value) * periods,
                         memory_mb=float(limits.decode_memory_mb.value), cancel=cancel)


def read_signals(path, info: media.VideoInfo) -> Signals:
    """Cuts, motion track, faces and loudness from one demuxing pass; see the module docstring."""
    return read_signals_and_frames(path, info, ()).signals


def read_signals_and_frames(path, info: media.VideoInfo, indices: Sequence[int]) -> SignalsAndFrames:
    """The signals pass that also keeps the frames at ``indices`` (frame numbers, any order, as
    ``media.read_frames`` takes them) from the SAME decoding: the scan's frames at no second
    decode. Kept only for constant-rate video, and only when every kept frame is shown exactly
    where ``media.read_frames``' cursor looks for it (else ``frames`` is None)."""
    import av

    wanted = [min(int(i), info.frame_count - 1) for i in indices]
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[0] if container.streams.audio and info.has_audio else None
        meter = SignalMeter(info, audio is not None)
        keeper = _Keeper(set(wanted), info, video) if wanted and not info.variable_rate else None
        for packet in container.demux(*[s for s in (video, audio) if s is not None]):
            if packet.stream is video:
                for frame in packet.decode():
                    if keeper is not None:
                        keeper.add(len(meter.clock.times), frame)
                    meter.add_video(frame)
            elif audio is not None and packet.stream is audio:
                meter.add_audio(packet)
        return SignalsAndFrames(meter.result(), keeper.frames(wanted) if keeper is not None else None)


class _Keeper:
    """The frames a scan will want, taken as they go by. A frame counts only if it is shown
    within ``media.reading.Cursor``'s tolerance of index / fps from the stream's start, which is
    the frame that cursor returns for that index in constant-rate video (so the scan's pixels, and
    its scores, are exactly those of its own decoding)."""

    def __init__(self, wanted: set[int], info: media.VideoInfo, stream) -> None:
        self.wanted, self.info, self.kept, self.exact = wanted, info, {}, True
        self.time_base = float(stream.time_base)
        self.start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        self.tolerance = min(0.5 / info.fps, max(2 * self.time_base, 0.002))  # as Cursor's

    def add(self, index: int, frame) -> None:
        if index not in self.wanted or not self.exact:
            return
        shown = None if frame.pts is None else frame.pts * self.time_base
        if shown is None or abs(shown - self.start - index / self.info.fps) > self.tolerance:
            self.exact = False  # timestamps off the nominal grid: leave these frames to the scan
            return
        self.kept[index] = _upright(frame.to_ndarray(format="rgb24"), self.info)

    def frames(self, wanted: list[int]) -> np.ndarray | None:
        if not self.exact or any(i not in self.kept for i in wanted):
            return None
        return np.stack([self.kept[i] for i in wanted])


class SignalMeter:
    """The state of one signals pass, fed the decoded video frames in display order and the audio
    packets as demuxed (``add_video``, ``add_audio``); ``result()`` gives the Signals. A soundtrack
    that fails to decode stops the audio signal only (``note`` says why)."""

    def __init__(self, info: media.VideoInfo, has_audio: bool) -> None:
        import av
        import cv2
        from scenedetect import ContentDetector

        cv2.setNumThreads(1)  # tiny frames: OpenCV's thread pool would cost more than it saves
        self.info = info
        self.detector = ContentDetector(threshold=CUT_THRESHOLD,
                                        min_scene_len=max(1, int(round(MIN_SHOT_S * info.fps))))
        self.motion, self.loudness, self.faces = _MotionTrack(), _Loudness(), _Faces()
        self.cuts: list[float] = []
        self.clock = _Clock(info)
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE) if has_audio else None
        self.has_audio = has_audio
        self._ffmpeg_error = av.error.FFmpegError
        self.note = ""

    def add_video(self, frame) -> None:
        from scenedetect import FrameTimecode

        index, seconds = len(self.clock.times), self.clock.add(frame)
        small, luma, grey = _small(frame, self.info, FACE_WIDTH if self.faces.due(seconds) else None)
        found = self.detector.process_frame(FrameTimecode(index, self.info.fps), small)
        self.cuts += [round(self.clock.times[c.frame_num], 6) for c in found if 0 < c.frame_num <= index]
        self.motion.add(seconds, luma)
        if grey is not None:
            self.faces.add(seconds, grey)

    def add_audio(self, packet) -> None:
        if self.resampler is None:
            return
        try:
            for frame in packet.decode():
                self.loudness.add_frames(self.resampler.resample(frame))
        except self._ffmpeg_error as error:  # the picture can still be used
            self.resampler, self.has_audio = None, False
            self.note = f"The soundtrack could not be decoded ({error.strerror})."

    def result(self) -> Signals:
        if self.resampler is not None:
            self.loudness.add_frames(self.resampler.resample(None))
            self.resampler = None
        return Signals(tuple(sorted(set(self.cuts))), self.loudness.blocks() if self.has_audio else None,
                       self.motion.track(), len(self.clock.times), self.note, self.faces.steps())


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


def _small(frame, info: media.VideoInfo, grey_width: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The frame shrunk to SIGNAL_WIDTH px wide (displayed orientation): BGR for OpenCV and its
    luma; and, when ``grey_width`` is given, the luma shrunk to that width (for the face
    cascade), else None.

    For 8-bit 4:2:0 (nearly every file) each plane is read in place (no copy of the frame) and
    shrunk by OpenCV's area filter, and only the small picture is converted to BGR: 1.6 s of CPU
    for 2 minutes of 640x360 at 30 fps, where swscale's bilinear reformat to BGR took 4.2 s.
    Other formats go through swscale."""
    import cv2

    coded_w, coded_h = frame.width, frame.height
    width, height = _fit(coded_w, coded_h, SIGNAL_WIDTH)
    grey = None
    if frame.format.name in _PLANAR_420 and coded_w % 2 == 0 and coded_h % 2 == 0:
        luma, blue, red = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes)
        planes = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in (luma, red, blue)]
        small, small_luma = cv2.cvtColor(cv2.merge(planes), cv2.COLOR_YCrCb2BGR), planes[0]
        if grey_width:
            grey = cv2.resize(luma, _fit(coded_w, coded_h, grey_width), interpolation=cv2.INTER_AREA)
    else:
        small = frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()
        small_luma = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if grey_width:
            grey_w, grey_h = _fit(coded_w, coded_h, grey_width)
            grey = frame.reformat(width=grey_w, height=grey_h, format="gray", interpolation="AREA").to_ndarray()
    return _upright(small, info), _upright(small_luma, info), None if grey is None else _upright(grey, info)


def _fit(coded_w: int, coded_h: int, longest: int) -> tuple[int, int]:
    """(width, height) with the long edge ``longest`` px, the aspect kept."""
    width = longest if coded_w >= coded_h else max(2, int(round(longest * coded_w / coded_h)))
    return width, max(2, int(round(width * coded_h / coded_w)))


def _upright(picture: np.ndarray, info: media.VideoInfo) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(picture, -(info.rotation // 90))) if info.rotation else picture


class _Faces:
    """Every FACE_S seconds, the frontal faces in a grey frame: (x, y, width) as fractions of the
    frame, biggest first, at most MAX_FACES (a crowd steers nothing anyway)."""

    def __init__(self) -> None:
        self.found: dict[int, tuple[tuple[float, float, float], ...]] = {}
        self.cascade = None

    def due(self, seconds: float) -> bool:
        return int(seconds / FACE_S + 1e-6) not in self.found

    def add(self, seconds: float, grey: np.ndarray) -> None:
        import cv2

        if self.cascade is None:
            self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + FACE_CASCADE)
            if self.cascade.empty():
                raise RuntimeError(f"OpenCV's {FACE_CASCADE} could not be loaded")
        boxes = self.cascade.detectMultiScale(grey, scaleFactor=FACE_SCALE_STEP, minNeighbors=FACE_NEIGHBOURS,
                                              minSize=(FACE_MIN_PX, FACE_MIN_PX))
        height, width = grey.shape
        faces = [((x + w / 2) / width, (y + h / 2) / height, w / width) for x, y, w, h in
                 (tuple(int(v) for v in box) for box in boxes)]
        faces.sort(key=lambda face: -face[2])
        self.found[int(seconds / FACE_S + 1e-6)] = tuple(tuple(round(v, 4) for v in f) for f in faces[:MAX_FACES])

    def steps(self) -> tuple[tuple[tuple[float, float, float], ...], ...]:
        if not self.found:
            return ()
        return tuple(self.found.get(step, ()) for step in range(max(self.found) + 1))


class _MotionTrack:
    """Per TRACK_S step: the difference-weighted centre of what changed, and how much did."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.sums: dict[int, list[float]] = {}  # step -> [weight*x, weight*y, weight, amount, frames]

    def add(self, seconds: float, luma: np.ndarray) -> None:
        """``luma``: the small frame's brightness (uint8)."""
        import cv2

        if self.previous is not None and self.previous.shape == luma.shape:
            change = cv2.absdiff(luma, self.previous)
            change[change < MOTION_DELTA] = 0
            height, width = luma.shape
            columns = change.sum(axis=0, dtype=np.float64)
            weight = float(columns.sum())
            entry = self.sums.setdefault(int(seconds / TRACK_S + 1e-6), [0.0, 0.0, 0.0, 0.0, 0])
            if weight > 0:
                rows = change.sum(axis=1, dtype=np.float64)
                entry[0] += float(columns @ (np.arange(width) + 0.5)) / width
                entry[1] += float(rows @ (np.arange(height) + 0.5)) / height
                entry[2] += weight
            entry[3] += float(cv2.countNonZero(change)) / change.size
            entry[4] += 1
        self.previous = luma

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
