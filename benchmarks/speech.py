"""What transcription costs: seconds per minute of audio for Whisper tiny and base (issue 17).

    python -m benchmarks.run --only speech [--quick] [--device cpu|cuda]
    python -m benchmarks.speech [--seconds 60] [--sizes tiny,base] [--dtypes fp32,bf16]

Full-size random stand-ins with the real shapes (tests/tiny_models.build_full_size_whisper) run
the app's own path on a generated video whose soundtrack is espeak-ng speech every few seconds:
the soundtrack decoded to 16 kHz in the bounded child (``recognition.read_soundtrack``), then
``recognition.recognize`` (transformers' speech-recognition pipeline, 30 s windows, word
timestamps, greedy). A random decoder would stop or ramble at random, so every window decodes
exactly ``TOKENS_PER_WINDOW`` tokens: what a 30 s window of steady talk takes (~75 words at 150
words a minute, ~100 text tokens, plus timestamps). Windows overlap (a 20 s step), as in the app.

Rows: seconds of work per minute of audio (``ours``) against real time (60 s per minute:
``ratio`` = how many times faster than real time), and what that adds to a 10-minute video.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .common import CACHE_DIR, Row, cached, print_table  # noqa: E402

TOKENS_PER_WINDOW = 120
SIZES = ("tiny", "base")
LINE = "Today we look at how the method works, step by step, and why it matters."


def whisper_stand_in(size: str) -> Path:
    from tests.tiny_models import build_full_size_whisper

    return cached(CACHE_DIR / f"whisper-{size}", lambda out: build_full_size_whisper(size, out))


def talk_video(seconds: float) -> Path:
    """``seconds`` of video with a spoken line every 6 s (speech about 70% of the time)."""
    from tests import media_factory

    lines = tuple((float(start), LINE) for start in range(1, int(seconds) - 5, 6))
    return cached(CACHE_DIR / f"talk-{int(seconds)}s.mp4",
                  lambda out: media_factory.make_speech_video(out.with_suffix(".mp4"), seconds, lines).rename(out))


def measure(model: Path, video: Path, device: str = "cpu", dtype: str = "fp32",
            tokens_per_window: int = TOKENS_PER_WINDOW) -> dict:
    """Seconds to decode the soundtrack and to transcribe it (the model loaded and warm)."""
    from pipelines.speech import recognition
    from pipelines.speech.asr import load_asr

    asr = load_asr(str(model), device, dtype)
    forced = {"min_new_tokens": tokens_per_window, "max_new_tokens": tokens_per_window}
    started = time.perf_counter()
    soundtrack = recognition.read_soundtrack(video)
    decoded = time.perf_counter() - started
    recognition.recognize(asr, soundtrack.samples[: 5 * soundtrack.rate], soundtrack.rate, 5.0,
                          generate_kwargs={"min_new_tokens": 4, "max_new_tokens": 4})  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    transcript = recognition.recognize(asr, soundtrack.samples, soundtrack.rate, soundtrack.info.duration,
                                       generate_kwargs=forced)
    transcribed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"audio_s": soundtrack.seconds, "decode_s": decoded, "transcribe_s": transcribed,
            "windows": recognition.window_count(soundtrack.seconds), "phrases": len(transcript.phrases),
            "tokens": tokens_per_window, "cpu_s": cpu,
            "load": os.getloadavg()[0]}  # other work on the machine slows every step: say how much there was


def rows_for(size: str, dtype: str, figures: dict) -> list[Row]:
    minutes = figures["audio_s"] / 60
    per_minute = (figures["decode_s"] + figures["transcribe_s"]) / minutes
    note = (f"{figures['audio_s']:.0f} s audio, {figures['windows']} windows x {figures['tokens']} tokens; "
            f"decode {figures['decode_s']:.2f} s, Whisper {figures['transcribe_s']:.1f} s "
            f"({figures['cpu_s']:.1f} s of CPU); "
            f"load average {figures['load']:.1f} on {os.cpu_count()} CPUs")
    return [
        Row("speech", f"whisper-{size} {dtype}: s per audio minute", round(per_minute, 2), 60.0, "s", round(60 / per_minute, 2),
            "faster than real time", per_minute < 60, note),
        Row("speech", f"whisper-{size} {dtype}: added to a 10-minute video", round(10 * per_minute, 1), None, "s", None,
            "(estimate: 10 x the per-minute figure)", None),
    ]


def run(device: str = "cpu", quick: bool = False, sizes=SIZES, dtypes=None, seconds: float | None = None) -> list[Row]:
    seconds = seconds or (30.0 if quick else 60.0)
    dtypes = dtypes or (("fp32",) if quick or device == "cpu" else ("fp32", "bf16"))
    video = talk_video(seconds)
    rows: list[Row] = []
    for size in sizes:
        model = whisper_stand_in(size)
        for dtype in dtypes:
            rows += rows_for(size, dtype, measure(model, video, device, dtype))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--dtypes", default="fp32")
    args = parser.parse_args(argv)
    print_table(run(args.device, sizes=args.sizes.split(","), dtypes=tuple(args.dtypes.split(",")), seconds=args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
