"""A video's soundtrack as samples, for speech recognition. See the package docstring.

Contract
--------
``read_soundtrack(path, rate=16000, limits=LIMITS) -> Soundtrack`` probes the video (the same
checks as ``probe_video``: not a video, too long, damaged -> BadInputError / DecodeError), then
demuxes ONLY its first audio stream and resamples it to ``rate`` Hz mono float32 (FFmpeg's
resampler: channels are mixed down, any sample format and rate is accepted). Never raises for
the soundtrack itself: a video without audio gives ``samples=None`` and a ``note``; an audio
stream that stops decoding part-way keeps what decoded before (and says so in ``note``).

Runs in the bounded child process (pipelines.isolation): FFmpeg parses untrusted bytes here. The
samples cost 64 KB per second at 16 kHz (230 MB for an hour), returned as one array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..limits import LIMITS, Limits
from .probing import VideoInfo, probe_video

SPEECH_RATE = 16_000  # Hz: what Whisper's feature extractor takes


@dataclass(frozen=True)
class Soundtrack:
    info: VideoInfo
    samples: np.ndarray | None  # float32 mono at ``rate``; None: the video has no usable audio
    rate: int
    note: str = ""

    @property
    def seconds(self) -> float:
        return 0.0 if self.samples is None else len(self.samples) / self.rate


def read_soundtrack(path, rate: int = SPEECH_RATE, limits: Limits = LIMITS) -> Soundtrack:
    """The first audio stream of ``path`` as ``rate`` Hz mono float32 (module docstring)."""
    import av

    info = probe_video(path, limits)
    if not info.has_audio:
        return Soundtrack(info, None, rate, "This video has no soundtrack.")
    parts: list[np.ndarray] = []
    note = ""
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        try:
            for frame in container.decode(stream):
                parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        except av.error.FFmpegError as error:  # keep what decoded: the speech before the damage
            note = f"The soundtrack stopped decoding after {sum(map(len, parts)) / rate:.0f} s ({error.strerror})."
    samples = np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)
    if not len(samples) and not note:
        note = "The soundtrack is empty."
    return Soundtrack(info, samples if len(samples) else None, rate, note)
