"""Command line: highlight reels for one or many videos.

    python -m pipelines.highlights VIDEO [VIDEO...] --model M (--criteria TEXT | --auto-criteria)
        (--target-seconds N | --threshold T) [--window-seconds W] --out DIR

writes DIR/<video stem>/highlights.mp4, .json, .srt, .edl and .xspf for every video, with a
progress bar per video. A video that cannot be used gets a one-line error and the others still
run; the exit status is 1 when any video failed (2 for bad arguments). Ranges come from the
limits table (pipelines/limits.py), like the app's sliders. Scores are cached (see cache.py), so
running again with another --target-seconds or --threshold makes no model call.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..errors import VLMError
from ..limits import LIMITS
from ..registry import DEFAULT_CPU_MODEL, REGISTRY
from ..runtime import Runtime
from .cache import ScoreCache
from .pipeline import DEFAULT_WINDOW_SECONDS, HighlightRequest, make_highlights


def _ranged(name: str, kind=float):
    """An argparse type that enforces a limits-table row's bounds."""
    row = getattr(LIMITS, name)

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.highlights",
        description="Find the highlights of videos with a small vision-language model and cut them into a reel.",
        epilog=f"Models: {', '.join(REGISTRY)}, a hub id of one of those, or a local checkpoint directory.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    parser.add_argument("--model", default=os.environ.get("VLMS_MODEL", DEFAULT_CPU_MODEL),
                        help=f"registry key, hub id or local checkpoint dir (default {DEFAULT_CPU_MODEL})")
    criteria = parser.add_mutually_exclusive_group(required=True)
    criteria.add_argument("--criteria", help="what counts as a highlight, in words")
    criteria.add_argument("--auto-criteria", action="store_true", help="let the model watch the video and propose criteria")
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target-seconds", type=_positive, help="reel length to aim for (best windows first)")
    goal.add_argument("--threshold", type=_fraction, help="keep every window scoring at least this (0-1)")
    parser.add_argument("--window-seconds", type=_ranged("window_seconds"), default=DEFAULT_WINDOW_SECONDS,
                        help=f"window length (default {DEFAULT_WINDOW_SECONDS:g})")
    parser.add_argument("--overlap-seconds", type=float, default=0.0, help="overlap of consecutive windows (default 0)")
    parser.add_argument("--frames-per-window", type=_ranged("frames_per_window", int), default=None,
                        help="frames the model sees per window (default: one per 5 s of window on SmolVLM2, "
                             "per 2.5 s on PerceptionLM, at least 2)")
    parser.add_argument("--padding-seconds", type=float, default=0.0, help="extra seconds around each selected window")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="auto", help="auto, bf16, fp16 or fp32")
    parser.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per video)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="score cache folder (default $VLMS_CACHE_DIR or ~/.cache/vlm-studio)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the score cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    runtime = Runtime(args.device, args.dtype)
    cache = ScoreCache(args.cache_dir, enabled=not args.no_cache)
    failures = 0
    for video, folder in zip(args.videos, _output_folders(args.videos, args.out)):
        failures += not _one_video(video, folder, args, runtime, cache)
    return 1 if failures else 0


def _one_video(video: str, folder: Path, args, runtime: Runtime, cache: ScoreCache) -> bool:
    name = Path(video).name
    if not Path(video).is_file():
        print(f"error: {video}: no such file", file=sys.stderr)
        return False
    request = HighlightRequest(
        video=video, model=args.model, criteria=args.criteria or "", auto_criteria=args.auto_criteria,
        window_seconds=args.window_seconds, overlap_seconds=args.overlap_seconds,
        frames_per_window=args.frames_per_window, target_seconds=args.target_seconds,
        threshold=args.threshold, padding_seconds=args.padding_seconds, batch_size=args.batch_size,
    )
    bar = _bar(name, args.quiet)
    try:
        result = make_highlights(request, runtime, folder, on_progress=bar.update if bar else None, cache=cache)
    except VLMError as error:
        _close(bar)
        print(f"error: {name}: {error}", file=sys.stderr)
        return False
    except Exception as error:  # a bug: say so, keep the traceback, and go on with the next video
        _close(bar)
        logging.getLogger("vlm_studio").exception("Unexpected error on %s", name)
        print(f"error: {name}: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return False
    _close(bar)
    print(_summary(name, result))
    return True


def _summary(name: str, result) -> str:
    cached = " (scores from the cache)" if result.analysis.from_cache else ""
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
