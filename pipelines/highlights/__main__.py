"""Command line: highlight reels for one or many videos.

    python -m pipelines.highlights VIDEO_OR_FOLDER [...] --model M (--criteria TEXT | --auto-criteria)
        (--target-seconds N | --threshold T) [--window-seconds W] [--snap shots|none]
        [--windows fixed|shots] [--audio-weight W] [--aspect source|9:16|1:1|16:9]
        [--reframe center|follow] [--asr MODEL] [--speech auto|on|off] [--captions]
        [--caption-style lines|words] [--engine-url URL [--engine-in-flight K]] [--jobs N] --out DIR

writes DIR/<video stem>/highlights.mp4, .json, .srt, .edl and .xspf for every video (a folder
stands for the videos in it, by extension, sorted), with a progress bar per video (one job) or a
line per finished video (several). A video that cannot be used gets a one-line error and the
others still run; the exit status is 1 when any video failed (2 for bad arguments, 130 on
Ctrl-C). Ranges come from the limits table (pipelines/limits.py), like the app's sliders. Scores
are cached (see cache.py), so running again with another --target-seconds or --threshold makes
no model call.

Clipping at scale: ``--engine-url http://HOST:PORT/v1`` scores on a model server (vLLM; its
batching serves the windows of all videos at once, at most ``--engine-in-flight`` requests);
``--model`` then names a model the server serves (default: its first). ``--jobs N`` keeps N
videos in flight (decoding in bounded child processes, scoring on the engine). A finished video
leaves a stamp (``DIR/.done/<stem>.json``: the video's size and time, and the settings), so after
a crash or Ctrl-C the same command skips it and goes on with the rest (``--redo`` ignores stamps).
Last line: the totals.

Speech: ``--asr MODEL`` (a speech-model key such as whisper-tiny, its hub id, or a local Whisper
checkpoint dir) transcribes each video first (cached like the scores). Then each window's score
hears what is said in it (``--speech auto``, the default; ``off`` scores frames only), and the
folder also gets transcript.srt/.vtt (source time) and reel-transcript.srt/.vtt (the reel's
time). ``--captions`` burns what is said into the reel (``--caption-style lines``: at most two
lines; ``words``: short word groups). Without ``--asr`` nothing is transcribed (a run costs what
it did before), unless ``--captions`` or ``--speech on`` asks for speech: then the default speech
model is used (``--asr off`` forbids it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..engines import DEFAULT_IN_FLIGHT, is_server_model, server_engine, server_model_key
from ..errors import GenerationCancelled, VLMError
from ..limits import Limits
from ..registry import ASR_REGISTRY, DEFAULT_ASR_MODEL, DEFAULT_CPU_MODEL, REGISTRY
from ..runtime import Runtime
from .cache import ScoreCache
from .captions import CAPTION_STYLES
from .hearing import SPEECH_MODES, speech_model
from .pipeline import DEFAULT_AUDIO_WEIGHT, DEFAULT_WINDOW_SECONDS, WINDOW_MODES, HighlightRequest, make_highlights
from .reframe import ASPECTS, REFRAMES
from .selection import SNAP_MODES


def _ranged(limits: Limits, name: str, kind=float):
    """An argparse type that enforces a limits-table row's bounds."""
    row = getattr(limits, name)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not row.minimum <= value <= row.value:
            raise argparse.ArgumentTypeError(f"must be between {row.minimum:g} and {row.value:g} {row.unit}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def build_parser(limits: Limits | None = None) -> argparse.ArgumentParser:
    """The CLI's arguments; ranged ones follow ``limits`` (default: the environment's,
    ``Limits.from_env()``)."""
    limits = Limits.from_env() if limits is None else limits
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.highlights",
        description="Find the highlights of videos with a small vision-language model and cut them into a reel.",
        epilog=f"Models: {', '.join(REGISTRY)}, a hub id of one of those, or a local checkpoint directory.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files, or folders of videos")
    parser.add_argument("--model", default=os.environ.get("VLMS_MODEL"),
                        help=f"registry key, hub id or local checkpoint dir (default {DEFAULT_CPU_MODEL}); with "
                             "--engine-url: a model the server serves (default: the first it lists)")
    criteria = parser.add_mutually_exclusive_group(required=True)
    criteria.add_argument("--criteria", help="what counts as a highlight, in words")
    criteria.add_argument("--auto-criteria", action="store_true", help="let the model watch the video and propose criteria")
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target-seconds", type=_positive, help="reel length to aim for (best windows first)")
    goal.add_argument("--threshold", type=_fraction, help="keep every window scoring at least this (0-1)")
    parser.add_argument("--window-seconds", type=_ranged(limits, "window_seconds"), default=DEFAULT_WINDOW_SECONDS,
                        help=f"window length (default {DEFAULT_WINDOW_SECONDS:g})")
    parser.add_argument("--overlap-seconds", type=float, default=0.0, help="overlap of consecutive windows (default 0)")
    parser.add_argument("--frames-per-window", type=_ranged(limits, "frames_per_window", int), default=None,
                        help="frames the model sees per window (default: one per 5 s of window on SmolVLM2, "
                             "per 2.5 s on PerceptionLM, at least 2)")
    parser.add_argument("--padding-seconds", type=float, default=0.0, help="extra seconds around each selected window")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    parser.add_argument("--snap", choices=SNAP_MODES, default="shots",
                        help="move segment edges to the nearest shot cut within half a window (default shots)")
    parser.add_argument("--windows", choices=WINDOW_MODES, default="fixed",
                        help="score fixed-length windows, or whole shots split at the window length (default fixed)")
    parser.add_argument("--audio-weight", type=_fraction, default=DEFAULT_AUDIO_WEIGHT,
                        help=f"share of the sound in a window's score, 0-1 (default {DEFAULT_AUDIO_WEIGHT:g})")
    parser.add_argument("--aspect", choices=list(ASPECTS), default="source",
                        help="reel shape: source, 9:16 (1080x1920), 1:1 (1080x1080) or 16:9 (1920x1080)")
    parser.add_argument("--reframe", choices=REFRAMES, default="center",
                        help="crop in the middle, or follow the action (default center)")
    parser.add_argument("--asr", default=os.environ.get("VLMS_ASR") or None, metavar="MODEL",
                        help=f"transcribe with this speech model ({', '.join(ASR_REGISTRY)}, a hub id or a local "
                             f"Whisper dir; 'off': never). Default: none, or {DEFAULT_ASR_MODEL} when --captions or "
                             "--speech on asks for speech")
    parser.add_argument("--speech", choices=SPEECH_MODES, default="auto",
                        help="score windows with what is said in them: auto (when there is speech; the default), "
                             "on or off")
    parser.add_argument("--captions", action="store_true", help="burn captions of what is said into the reel")
    parser.add_argument("--caption-style", choices=CAPTION_STYLES, default="lines",
                        help="lines: at most two lines at a time (default); words: short word groups")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="auto", help="auto, bf16, fp16 or fp32")
    parser.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per video)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="score cache folder (default $VLMS_CACHE_DIR or ~/.cache/vlm-studio)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the score cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--engine-url", default=os.environ.get("VLMS_ENGINE_URL"), metavar="URL",
                        help="score on an OpenAI-compatible model server (vLLM), e.g. http://127.0.0.1:8000/v1; "
                             "API key from VLMS_ENGINE_API_KEY")
    parser.add_argument("--engine-in-flight", type=int, default=DEFAULT_IN_FLIGHT, metavar="K",
                        help=f"requests kept open on the model server at once (default {DEFAULT_IN_FLIGHT})")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="videos in flight at once (default 1)")
    parser.add_argument("--redo", action="store_true", help="also redo videos a previous run finished")
    return parser


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
DONE_DIR = ".done"  # DIR/.done/<stem>.json: one stamp per finished video, beside (not in) its folder


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    limits = Limits.from_env()
    parser = build_parser(limits)
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.engine_in_flight < 1:
        parser.error("--jobs and --engine-in-flight must be at least 1")
    runtime = Runtime(args.device, args.dtype, limits, args.engine_url or None,
                      os.environ.get("VLMS_ENGINE_API_KEY") or None, args.engine_in_flight)
    try:
        args.model = _engine_model(args, runtime)
    except VLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    videos = expand_videos(args.videos)
    if not videos:
        print("error: no videos found in " + " ".join(args.videos), file=sys.stderr)
        return 1
    cache = ScoreCache(args.cache_dir, enabled=not args.no_cache)
    jobs = list(zip(videos, _output_folders(videos, args.out)))
    quiet = args.quiet or args.jobs > 1  # several bars at once would garble the terminal
    stop = threading.Event()
    started = time.monotonic()
    outcomes: list[tuple[str, float]] = []
    with ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="vlms-cli-video") as pool:
        futures = [pool.submit(_one_video, video, folder, args, runtime, cache, quiet, stop) for video, folder in jobs]
        try:
            for future in futures:
                outcomes.append(future.result())
        except KeyboardInterrupt:
            stop.set()  # every video in flight stops at its next batch or frame chunk
            for future in futures:
                future.cancel()
            print("\ninterrupted: finished videos are kept; run the same command again to go on.", file=sys.stderr)
            return 130
    print(_total(outcomes, time.monotonic() - started))
    return 1 if any(kind == "failed" for kind, _ in outcomes) else 0


def _engine_model(args, runtime: Runtime) -> str:
    """With --engine-url, --model names a model the server serves (default: the first it lists)."""
    if not runtime.engine_url:
        return args.model or DEFAULT_CPU_MODEL
    if args.model:
        return args.model if is_server_model(args.model) else server_model_key(args.model)
    served = server_engine(runtime).served()
    if not served:
        raise VLMError(f"The model server at {runtime.engine_url} serves no model.")
    return served[0].key


def expand_videos(paths: list[str]) -> list[str]:
    """Files as given; a folder: its video files (by extension), sorted, not recursive."""
    videos: list[str] = []
    for path in paths:
        folder = Path(path)
        if folder.is_dir():
            videos += sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            videos.append(path)
    return videos


def _one_video(video: str, folder: Path, args, runtime: Runtime, cache: ScoreCache, quiet: bool,
               stop: threading.Event) -> tuple[str, float]:
    """("done" | "skipped" | "failed", reel seconds); prints one line either way."""
    name = Path(video).name
    if not Path(video).is_file():
        print(f"error: {video}: no such file", file=sys.stderr)
        return "failed", 0.0
    request = HighlightRequest(
        video=video, model=args.model, criteria=args.criteria or "", auto_criteria=args.auto_criteria,
        window_seconds=args.window_seconds, overlap_seconds=args.overlap_seconds,
        frames_per_window=args.frames_per_window, target_seconds=args.target_seconds,
        threshold=args.threshold, padding_seconds=args.padding_seconds, batch_size=args.batch_size,
        snap=args.snap, windows=args.windows, audio_weight=args.audio_weight, aspect=args.aspect, reframe=args.reframe,
        asr_model=speech_model(args.asr, DEFAULT_ASR_MODEL, args.speech, args.captions),
        speech=args.speech, captions=args.captions, caption_style=args.caption_style,
    )
    stamp = _stamp(video, request)
    if not args.redo and _read_stamp(folder) == stamp:
        print(f"{name}: done in an earlier run, skipped ({folder})")
        return "skipped", float(_read_stamp(folder, "reel_seconds") or 0.0)
    if stop.is_set():
        return "failed", 0.0
    bar = _bar(name, quiet)
    try:
        result = make_highlights(request, runtime, folder, cancel=stop, on_progress=bar.update if bar else None,
                                 cache=cache)
    except GenerationCancelled:
        _close(bar)
        return "failed", 0.0
    except VLMError as error:
        _close(bar)
        print(f"error: {name}: {error}", file=sys.stderr)
        return "failed", 0.0
    except Exception as error:  # a bug: say so, keep the traceback, and go on with the next video
        _close(bar)
        logging.getLogger("vlm_studio").exception("Unexpected error on %s", name)
        print(f"error: {name}: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return "failed", 0.0
    _close(bar)
    _write_stamp(folder, {**stamp, "reel_seconds": result.selected_seconds})
    print(_summary(name, result))
    return "done", result.selected_seconds


def _stamp(video: str, request: HighlightRequest) -> dict:
    stat = Path(video).stat()
    settings = {key: value for key, value in vars(request).items() if key != "video"}
    return {"video": str(Path(video).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "settings": json.loads(json.dumps(settings, default=str))}


def _stamp_path(folder: Path) -> Path:
    return folder.parent / DONE_DIR / f"{folder.name}.json"


def _read_stamp(folder: Path, field: str | None = None):
    try:
        data = json.loads(_stamp_path(folder).read_text())
    except (OSError, ValueError):
        return None
    if field is not None:
        return data.get(field)
    data.pop("reel_seconds", None)
    return data


def _write_stamp(folder: Path, stamp: dict) -> None:
    """Written last, atomically: a video with a stamp has all its files."""
    path = _stamp_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(stamp))
    temporary.replace(path)


def _total(outcomes: list[tuple[str, float]], seconds: float) -> str:
    count = lambda kind: sum(1 for k, _ in outcomes if k == kind)  # noqa: E731
    reels = sum(length for kind, length in outcomes if kind != "failed")
    return (f"total: {len(outcomes)} videos, {count('done')} done, {count('skipped')} skipped, "
            f"{count('failed')} failed; {reels:.1f} s of reels; {seconds:.1f} s")


def _summary(name: str, result) -> str:
    cached = " (scores from the cache)" if result.analysis.from_cache else ""
    if result.analysis.transcript is not None:
        cached += " · scored with what is said" if result.analysis.speech_used else f" · {result.analysis.speech_note}"
    if result.reel is None:
        return f"{name}: no window was selected; wrote {result.files['json']} only{cached}"
    return (f"{name}: {result.selected_seconds:.1f} s reel from {len(result.segments)} segments -> "
            f"{result.reel}{cached}")


def _output_folders(videos: list[str], out: Path) -> list[Path]:
    """DIR/<stem>, with -2, -3... when two videos share a stem (a/clip.mp4, b/clip.mp4)."""
    folders, seen = [], {}
    for video in videos:
        stem = Path(video).stem or "video"
        seen[stem] = seen.get(stem, 0) + 1
        folders.append(out / (stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"))
    return folders


class _Bar:
    """A tqdm bar driven by ``on_progress(fraction, message)``."""

    def __init__(self, name: str):
        from tqdm import tqdm

        self.name = name
        self.tqdm = tqdm(total=100, desc=name, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}",
                         file=sys.stderr, dynamic_ncols=True)

    def update(self, fraction: float, message: str = "") -> None:
        self.tqdm.n = round(100 * fraction, 1)
        self.tqdm.set_description_str(f"{self.name}: {message}" if message else self.name, refresh=False)
        self.tqdm.refresh()

    def close(self) -> None:
        self.tqdm.close()


def _bar(name: str, quiet: bool) -> _Bar | None:
    return None if quiet else _Bar(name)


def _close(bar: _Bar | None) -> None:
    if bar is not None:
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
