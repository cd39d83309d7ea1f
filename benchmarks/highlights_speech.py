"""What hearing costs a highlights run: longer prompts, and captions in the render.

    python -m benchmarks.highlights_speech [--quick] [--asr MODEL_OR_DIR]

On the benchmarks' generated 640x360 video with sound (2 minutes with --quick, else 10) and the
full-size random SmolVLM2-256M stand-in (benchmarks.common.stand_in), on the CPU in the dtype the
app picks, one process:

1. scan with speech off (the first scan: decoding, vision encoder, language model; the frames'
   vision features are kept, as in the app);
2. scan again with speech ON and the same criteria: each 10 s window's question is preceded by
   what was said in it (a transcript VALUE of steady speech, ``WORDS_PER_MINUTE`` English words
   a minute, word-timed), so only the language model runs, on longer prompts;
3. scan again with speech off and other criteria: the same language-model-only work on the
   usual prompts. (2) - (3) is what the heard text itself costs; it is also given against (1).
4. render the same selection with and without burned-in captions ("lines"), source shape and
   9:16: what captions add to the render.

With ``--asr`` the video is also transcribed (pipelines.speech.transcribe, no cache) and the
seconds per minute of audio printed: with a random stand-in the words are nonsense but the work
(audio decoding, encoder, decoder up to its token limit per chunk) is real.

Writes benchmarks/results/highlights_speech-cpu-<time>.json and prints one line per row.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .common import RESULTS_DIR, machine, stand_in  # noqa: E402
from .highlights_vs_reference import RESCORE_CRITERIA, TARGET_SECONDS, WINDOW_SECONDS, cpu_seconds, source_video  # noqa: E402

WORDS_PER_MINUTE = 150  # a steady talk
CRITERIA = "the speaker explains the method; the audience laughs"
SPEECH = ("so today I want to show you how the new method works in practice and why it matters for "
          "everyone who edits video every day and wants the best moments without watching hours of footage").split()


def steady_talk(seconds: float):
    """A word-timed transcript: ``WORDS_PER_MINUTE`` words a minute, in 10-word phrases."""
    from pipelines.speech.transcript import Phrase, Transcript, Word

    step = 60.0 / WORDS_PER_MINUTE
    count = int(seconds / step)
    words = [Word(k * step, k * step + 0.8 * step, SPEECH[k % len(SPEECH)]) for k in range(count)]
    phrases = tuple(Phrase(chunk[0].start, chunk[-1].end, " ".join(w.text for w in chunk), tuple(chunk))
                    for chunk in (words[i:i + 10] for i in range(0, len(words), 10)))
    return Transcript(phrases, "steady-talk", "en")


def timed(function):
    mark, cpu = time.perf_counter(), cpu_seconds()
    value = function()
    return value, time.perf_counter() - mark, cpu_seconds() - cpu


def measure(quick: bool, asr: str | None = None) -> dict:
    from pipelines import media
    from pipelines.highlights import HighlightRequest, ReelShape, ScoreCache, analyse, choose, finish
    from pipelines.runtime import Runtime

    video, model = source_video(quick), stand_in("256m")
    runtime = Runtime("cpu", None)
    info = media.probe_video(str(video))
    talk = steady_talk(info.duration)
    request = HighlightRequest(video=str(video), model=str(model), criteria=CRITERIA, window_seconds=WINDOW_SECONDS,
                               target_seconds=TARGET_SECONDS, speech="off")
    figures: dict = {"video": video.name, "model": "random SmolVLM2-256M (full size)", "machine": machine()}
    with tempfile.TemporaryDirectory() as work:
        cache = ScoreCache(Path(work) / "cache")
        runtime.load(str(model))
        first, figures["scan_off_s"], figures["scan_off_cpu_s"] = timed(
            lambda: analyse(request, runtime, cache=cache, transcript=talk))
        _, figures["rescan_on_s"], figures["rescan_on_cpu_s"] = timed(
            lambda: analyse(replace(request, speech="on"), runtime, cache=cache, transcript=talk))
        _, figures["rescan_off_s"], figures["rescan_off_cpu_s"] = timed(
            lambda: analyse(replace(request, criteria=RESCORE_CRITERIA), runtime, cache=cache, transcript=talk))
        figures["windows"] = len(first.windows)
        figures["words_per_window"] = sum(len(t.split()) for t in first.said) / len(first.said)
        segments = choose(first, request.selection)
        for aspect in ("source", "9:16"):
            shape = ReelShape(aspect)
            for captions in (None, "lines"):
                label = f"render_{aspect.replace(':', 'x')}_{captions or 'plain'}"
                _, figures[f"{label}_s"], figures[f"{label}_cpu_s"] = timed(
                    lambda: finish(first, segments, Path(work) / label, request.selection, shape, captions=captions))
        if asr:
            from pipelines.speech import transcribe

            made, figures["transcribe_s"], figures["transcribe_cpu_s"] = timed(
                lambda: transcribe(str(video), asr, runtime, use_cache=False))
            figures["transcribe_s_per_audio_minute"] = figures["transcribe_s"] / (info.duration / 60)
            figures["asr"] = made.model
    return figures


def report(figures: dict) -> list[str]:
    # CPU seconds lead: the machine may be shared, and wall time then says more about the others.
    text_cost = figures["rescan_on_cpu_s"] - figures["rescan_off_cpu_s"]
    lines = [
        f"video {figures['video']} · {figures['model']} · {figures['windows']} windows of {WINDOW_SECONDS} s · "
        f"{figures['words_per_window']:.0f} words said per window",
        f"first scan, speech off: {figures['scan_off_cpu_s']:.1f} s CPU ({figures['scan_off_s']:.1f} s wall)",
        f"re-scan on kept frame features: speech on {figures['rescan_on_cpu_s']:.1f} s CPU, speech off (other "
        f"criteria) {figures['rescan_off_cpu_s']:.1f} s CPU (wall {figures['rescan_on_s']:.1f} / {figures['rescan_off_s']:.1f} s)",
        f"HEARD TEXT COSTS: {text_cost:+.1f} s CPU per scan = {100 * text_cost / figures['scan_off_cpu_s']:+.1f}% of a "
        f"first scan, x{figures['rescan_on_cpu_s'] / figures['rescan_off_cpu_s']:.2f} a language-model-only re-scan",
    ]
    for aspect in ("source", "9x16"):
        plain, burned = figures[f"render_{aspect}_plain_cpu_s"], figures[f"render_{aspect}_lines_cpu_s"]
        lines.append(f"render {aspect}: plain {plain:.1f} s CPU, with captions {burned:.1f} s CPU ({burned - plain:+.1f} s)")
    if "transcribe_s" in figures:
        lines.append(f"transcription ({figures['asr']}): {figures['transcribe_s']:.1f} s, "
                     f"{figures['transcribe_s_per_audio_minute']:.1f} s per minute of audio")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2-minute video instead of 10 minutes")
    parser.add_argument("--asr", default=None, help="also transcribe with this speech model (key or local dir)")
    args = parser.parse_args(argv)
    figures = measure(args.quick, args.asr)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"highlights_speech-cpu-{stamp}.json"
    path.write_text(json.dumps(figures, indent=2))
    for line in report(figures):
        print(line)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
