"""The highlight generator: probe -> criteria -> windows -> one frame pass + batched scoring ->
selection -> render -> exports.

Contract
--------
* ``analyse(request, runtime, cancel, on_progress, cache) -> Analysis``: every window's score.
  Everything the request can get wrong is checked BEFORE any model work. Scores come from the
  cache when the same video content, model, dtype, criteria and window settings were scored
  before; then no model is loaded and no forward pass runs.
* ``choose(analysis, target_seconds, threshold, padding_seconds) -> segments`` (pure, see
  selection.py) and ``finish(analysis, segments, out_dir, ...) -> HighlightResult`` (reel +
  exports) need no model: a new target, threshold or hand-edited table re-renders in seconds.
* ``make_highlights(request, runtime, out_dir, ...)`` does all of it.
* Progress: ``on_progress(fraction, message)`` across the whole run; messages name the stage
  and, while scoring, the windows done and the time left. Cancel: ``cancel`` (a threading.Event)
  stops decoding, scoring (at the next forward pass) and ffmpeg; GenerationCancelled is raised
  and no partial reel is left.

Prompt (one question per window, answered by the first token's yes/no logits): the system
prompt says the model judges a short clip cut from a longer video; the user turn is the clip as
a video, then "Highlights of this video: <criteria>. Does this clip show one of these
highlights? Answer yes or no."
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import isolation, media
from ..devices import choose_device, choose_dtype, dtype_name, wall_time
from ..errors import BadInputError, GenerationCancelled
from ..limits import LIMITS, Limits
from ..registry import PERCEPTION_LM, SMOLVLM, resolve
from ..runtime import Runtime
from ..scoring import DEFAULT_BATCH_SIZE, Scorer
from . import exports, selection
from .cache import ScoreCache, file_sha256
from .criteria import propose_criteria, tidy_criteria
from .render import render_reel
from .selection import Segment
from .windows import Window, check_window_settings, iter_window_clips, make_windows

ProgressFn = Callable[[float, str], None]

DEFAULT_WINDOW_SECONDS = 10.0
# Frames the model sees per window, by default: one every SECONDS_PER_FRAME seconds of the window
# (at least MIN_FRAMES), so a scan costs the same per minute of video whatever the window length.
# The vision tower is ~90% of a window's cost (SmolVLM2: a 512 px SigLIP pass per frame, ~1 s on 2
# CPU cores in bf16), so this is THE speed/detail dial. SmolVLM2: one frame per 5 s (2 per 10 s
# window; each frame is 64 tokens). PerceptionLM: one per 2.5 s (it pools each frame to 256
# tokens and is normally run on a GPU, where frames are cheap). The user can ask for up to the
# ``frames_per_window`` limit.
SECONDS_PER_FRAME = {SMOLVLM: 5.0, PERCEPTION_LM: 2.5}
MIN_FRAMES = 2


def default_frames_per_window(family: str, window_seconds: float, limits: Limits = LIMITS) -> int:
    most = int(limits.frames_per_window.value)
    return max(MIN_FRAMES, min(most, int(round(window_seconds / SECONDS_PER_FRAME[family]))))


MAX_BATCH_SIZE = 64

SCORING_SYSTEM_PROMPT = (
    "You are a video highlight analyzer. You watch a short clip cut from a longer video and judge "
    "whether it shows a highlight."
)
SCORING_QUESTION = "Highlights of this video: {criteria}\nDoes this clip show one of these highlights? Answer yes or no."


def scoring_question(criteria: str) -> str:
    return SCORING_QUESTION.format(criteria=criteria.strip())


@dataclass(frozen=True)
class HighlightRequest:
    video: str
    model: str
    criteria: str = ""
    auto_criteria: bool = False  # ask the model for criteria when ``criteria`` is empty
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    overlap_seconds: float = 0.0
    frames_per_window: int | None = None  # None: default_frames_per_window(family, window_seconds)
    target_seconds: float | None = None
    threshold: float | None = None
    padding_seconds: float = 0.0
    batch_size: int = DEFAULT_BATCH_SIZE

    @property
    def selection(self) -> dict:
        return {"target_seconds": self.target_seconds, "threshold": self.threshold, "padding_seconds": self.padding_seconds}


@dataclass
class Analysis:
    """Every window's score, plus what produced them. JSON-able through ``to_dict``."""

    video: str
    video_hash: str
    info: media.VideoInfo
    model: str  # the model's source (hub id or local directory)
    model_label: str
    dtype: str
    criteria: str
    window_seconds: float
    overlap_seconds: float
    frames_per_window: int
    windows: list[Window]
    from_cache: bool = False
    scoring_seconds: float = 0.0

    @property
    def duration(self) -> float:
        return self.info.duration

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def has_audio(self) -> bool:
        return self.info.has_audio

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Analysis":
        values = dict(data)
        values["info"] = media.VideoInfo(**values["info"])
        values["windows"] = [Window(**w) for w in values["windows"]]
        return cls(**values)


@dataclass
class HighlightResult:
    analysis: Analysis
    segments: list[Segment]
    reel: Path | None  # None when nothing was selected
    files: dict[str, Path] = field(default_factory=dict)  # json, srt, edl, xspf (and mp4)
    selection: dict = field(default_factory=dict)

    @property
    def selected_seconds(self) -> float:
        return selection.total_seconds(self.segments)


# =============================================================================================
# Checks
# =============================================================================================


def check_request(request: HighlightRequest, runtime: Runtime) -> None:
    """Every mistake a request can hold, found before any decoding or model work."""
    limits = runtime.limits
    if not request.video:
        raise BadInputError("Upload a video first.")
    check_window_settings(request.window_seconds, request.overlap_seconds, request.frames_per_window, limits)
    if not request.criteria.strip() and not request.auto_criteria:
        raise BadInputError("Describe what counts as a highlight, or let the model suggest criteria.")
    longest = int(limits.max_criteria_chars.value)
    if len(request.criteria.strip()) > longest:
        raise BadInputError(f"The highlight criteria are {len(request.criteria.strip()):,} characters; the limit is {longest:,}. Shorten them.")
    if request.target_seconds is None and request.threshold is None:
        raise BadInputError("Choose a target reel length or a score threshold.")
    selection.check_selection(1.0, request.target_seconds, request.threshold, request.padding_seconds)
    if not 1 <= int(request.batch_size) <= MAX_BATCH_SIZE:
        raise BadInputError(f"The batch size must be between 1 and {MAX_BATCH_SIZE}; got {request.batch_size}.")


# =============================================================================================
# Analysis
# =============================================================================================


def analyse(
    request: HighlightRequest,
    runtime: Runtime,
    cancel: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
    cache: ScoreCache | None = None,
) -> Analysis:
    """Score every window of the request's video; see the module docstring."""
    check_request(request, runtime)
    cancel = cancel or threading.Event()
    cache = cache if cache is not None else ScoreCache()
    progress = _Progress(on_progress)
    progress.stage(0.0, 0.03, "Reading the video")
    info = probe(request.video, runtime.limits)
    spec = resolve(request.model)
    dtype = dtype_name(choose_dtype(choose_device(runtime.device), runtime.dtype))
    frames = int(request.frames_per_window or default_frames_per_window(spec.family, request.window_seconds, runtime.limits))
    video_hash = file_sha256(request.video)
    criteria = _criteria(request, runtime, cache, video_hash, spec.source, dtype, cancel, progress)
    settings = dict(window_seconds=float(request.window_seconds), overlap_seconds=float(request.overlap_seconds),
                    frames_per_window=frames)
    key = cache.key("scores", video=video_hash, model=spec.source, dtype=dtype, criteria=criteria, **settings)
    base = dict(video=str(request.video), video_hash=video_hash, info=info, model=spec.source,
                model_label=spec.label, dtype=dtype, criteria=criteria, **settings)
    cached = cache.load(key)
    if cached is not None:
        progress.stage(0.9, 0.9, "Scores found in the cache")
        return Analysis(**base, windows=[Window(**w) for w in cached["windows"]], from_cache=True,
                        scoring_seconds=float(cached.get("scoring_seconds", 0.0)))
    analysis = _score_windows(request, runtime, base, cancel, progress)
    cache.store(key, {"windows": [asdict(w) for w in analysis.windows], "scoring_seconds": analysis.scoring_seconds})
    return analysis


def probe(video, limits) -> media.VideoInfo:
    """``media.probe_video`` in a bounded child process: FFmpeg parses untrusted uploaded bytes."""
    return isolation.run(media.probe_video, str(video), limits, what=media._name(video),
                         timeout_s=isolation.PROBE_TIMEOUT_S, memory_mb=float(limits.decode_memory_mb.value))


def _criteria(request, runtime, cache, video_hash, source, dtype, cancel, progress) -> str:
    if request.criteria.strip():
        return tidy_criteria(request.criteria)
    key = cache.key("criteria", video=video_hash, model=source, dtype=dtype)
    cached = cache.load(key)
    if cached is not None:
        return cached["criteria"]
    progress.stage(0.03, 0.15, "Watching the video to suggest criteria")
    criteria = propose_criteria(request.video, request.model, runtime, cancel,
                                on_progress=lambda f, _m: progress.update(f))
    cache.store(key, {"criteria": criteria})
    return criteria


def suggest_criteria(video: str, model: str, runtime: Runtime, cancel: threading.Event | None = None,
                     on_progress: ProgressFn | None = None, cache: ScoreCache | None = None) -> str:
    """The model's proposal for ``video`` (cached per video content and model), for the UI button."""
    cache = cache if cache is not None else ScoreCache()
    probe(video, runtime.limits)
    spec = resolve(model)
    dtype = dtype_name(choose_dtype(choose_device(runtime.device), runtime.dtype))
    request = HighlightRequest(video=video, model=model, auto_criteria=True)
    return _criteria(request, runtime, cache, file_sha256(video), spec.source, dtype, cancel or threading.Event(),
                     _Progress(on_progress))


def _score_windows(request, runtime, base: dict, cancel, progress: "_Progress") -> Analysis:
    progress.stage(0.15, 0.2, "Loading the model")
    loaded = runtime.load(request.model)
    info: media.VideoInfo = base["info"]
    windows = make_windows(info.duration, request.window_seconds, request.overlap_seconds)
    scorer = Scorer(loaded, scoring_question(base["criteria"]), system_prompt=SCORING_SYSTEM_PROMPT)
    progress.stage(0.2, 0.9, f"Scoring {len(windows)} windows")
    started = wall_time()
    scores: dict[int, float] = {}
    pending: list = []

    def flush() -> None:
        for (window, _), value in zip(pending, scorer.score_batch([clip for _, clip in pending], cancel)):
            scores[window.index] = value
        pending.clear()
        progress.counted(len(scores), len(windows), wall_time() - started, "Scoring windows")

    clips = iter_window_clips(request.video, info, windows, base["frames_per_window"], cancel,
                              prefetch=2 * request.batch_size, limits=runtime.limits)
    try:
        for window, clip in clips:
            pending.append((window, clip))
            if len(pending) >= request.batch_size:
                flush()
        if pending:
            flush()
    finally:
        clips.close()
    scored = [Window(w.index, w.start, w.end, scores[w.index]) for w in windows]
    return Analysis(**base, windows=scored, scoring_seconds=wall_time() - started)


# =============================================================================================
# Selection, render, exports
# =============================================================================================


def choose(analysis: Analysis, target_seconds: float | None = None, threshold: float | None = None,
           padding_seconds: float = 0.0) -> list[Segment]:
    """The reel's segments from cached scores (pure; selection.select on the frame grid)."""
    return selection.select(analysis.windows, analysis.duration, target_seconds, threshold, padding_seconds, analysis.fps)


def finish(
    analysis: Analysis,
    segments: list[Segment],
    out_dir,
    selection_settings: dict | None = None,
    cancel: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
    progress_from: float = 0.9,
) -> HighlightResult:
    """Render the reel (when anything is selected) and write every export into ``out_dir``.

    ``progress_from``: where this step starts on the progress bar (0 when it is all the work,
    as for a re-render of an edited selection)."""
    out_dir = Path(out_dir)
    progress = _Progress(on_progress)
    reel = None
    if segments:
        progress.stage(progress_from, 0.99, "Rendering the reel")
        reel = render_reel(analysis.video, segments, out_dir / exports.REEL_NAME, analysis.info, cancel,
                           on_progress=lambda f: progress.update(f))
    files = exports.write_all(analysis, segments, out_dir, selection_settings, reel)
    if reel is not None:
        files = {"mp4": reel, **files}
    progress.stage(1.0, 1.0, "Done")
    return HighlightResult(analysis, list(segments), reel, files, dict(selection_settings or {}))


def make_highlights(
    request: HighlightRequest,
    runtime: Runtime,
    out_dir,
    cancel: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
    cache: ScoreCache | None = None,
) -> HighlightResult:
    """analyse -> choose -> finish."""
    cancel = cancel or threading.Event()
    analysis = analyse(request, runtime, cancel, on_progress, cache)
    segments = choose(analysis, request.target_seconds, request.threshold, request.padding_seconds)
    if cancel.is_set():
        raise GenerationCancelled("Stopped.")
    return finish(analysis, segments, out_dir, request.selection, cancel, on_progress)


# =============================================================================================
# Progress
# =============================================================================================


class _Progress:
    """Maps each stage's own 0..1 onto its slice of the whole run, and words the ETA."""

    def __init__(self, callback: ProgressFn | None):
        self.callback = callback
        self.low, self.high, self.message = 0.0, 1.0, ""

    def stage(self, low: float, high: float, message: str) -> None:
        self.low, self.high, self.message = low, high, message
        self.update(0.0)

    def update(self, fraction: float, message: str | None = None) -> None:
        if self.callback is not None:
            fraction = min(1.0, max(0.0, fraction))
            self.callback(self.low + (self.high - self.low) * fraction, message or self.message)

    def counted(self, done: int, total: int, elapsed: float, what: str) -> None:
        left = elapsed / done * (total - done) if done else None
        eta = f" · about {_duration(left)} left" if left is not None and done < total else ""
        self.update(done / total if total else 1.0, f"{what} {done}/{total}{eta}")


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}" if whole >= 60 else f"{whole} s"
