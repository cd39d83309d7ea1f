"""The highlight generator, as stages: plan -> criteria -> signals -> windows -> one frame pass +
batched scoring -> selection -> render -> exports.

Contract
--------
* ``plan_scan(request, runtime) -> ScanPlan``: the ONE planning step. Everything the request can
  get wrong is checked here, BEFORE any decoding or model work; the video is probed (in a
  bounded child), the model resolved, the dtype and frames per window worked out once.
* ``analyse(request, runtime, cancel, on_progress, cache) -> Analysis``: every window's score.
  Criteria come from the request or the model (cached); the model is shown frames of the scan's
  own grid (``criteria_frames``) through the feature store, so the frames it looks at for the
  criteria are not encoded again by the scan. The signals pass (signals.py: shot
  cuts, loudness, motion, faces; one bounded child, cached per video content) runs next, and
  with fixed windows it also keeps the frames the scan scores (one decoding of the file for
  both; windows.scan_frames); windows are fixed-length or whole shots (``request.windows``;
  whole shots are known only after the pass, so their scan decodes its own frames). Visual scores (the model's P(yes)) come from
  the cache when the same video content, model, dtype, criteria and windows were scored before;
  then no model is loaded and no forward pass runs. Otherwise the frames' vision features come
  from the feature store next to the score cache (pipelines.features) when this video was scanned
  before with this model (other criteria, another threshold): only the language model runs and
  the video is not decoded again. Each window's ``score`` is
  ``signals.mix(visual, audio, audio_weight)``; both signals are kept on the Analysis.
* ``choose(analysis, selection) -> segments`` (pure, see selection.py; snapped to shot cuts
  within half a window when ``selection.snap == "shots"``) and ``finish(analysis, segments,
  out_dir, selection, shape, ...) -> HighlightResult`` (reel in the chosen shape + exports) need
  no model: a new target, threshold, shape or hand-edited table re-renders in seconds.
* ``make_highlights(request, runtime, out_dir, ...)`` does all of it.
* Progress: ``on_progress(fraction, message)`` across the whole run; messages name the stage
  and, while scoring, the windows done and the time left. Cancel: ``cancel`` (a threading.Event)
  stops decoding, scoring (at the next forward pass) and ffmpeg; GenerationCancelled is raised
  and no partial reel is left.

Prompt (one question per window, answered by the first token's yes/no logits): the system
prompt says the model judges a short clip cut from a longer video; the user turn is the clip as
a video, then "Highlights of this video: <criteria>. Does this clip show one of these
highlights? Answer yes or no."

Speech (issue 17): with ``request.asr_model`` the video is transcribed first
(pipelines.speech.transcribe; cached per video content; ``analyse(..., transcript=T)`` takes
one already made instead). When speech is used (``request.speech``, hearing.py) the question
of each window is preceded by what was said in it ('Said in this part: "..."', cut to the
``speech_tokens`` limit); the score cache key then holds the window texts, so heard and
unheard scores never mix, while frame features (pixels only) are shared by both. The Analysis
keeps the transcript, each window's text (``said``) and whether scoring used it; ``finish``
burns captions of what is said in the reel into it when asked (captions.py).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from .. import isolation, media
from ..devices import choose_device, choose_dtype, dtype_name
from ..errors import BadInputError, DecodeError, GenerationCancelled
from ..features import FeaturesMissing, VideoFeatures
from ..limits import LIMITS, Limits
from ..registry import PERCEPTION_LM, SMOLVLM
from ..runtime import Runtime
from ..scoring import DEFAULT_BATCH_SIZE
from ..speech.transcript import Transcript
from ..timecode import clock
from . import exports, reframe, signals
from .cache import ScoreCache, file_sha256
from .captions import CAPTION_STYLES, reel_captions
from .criteria import CRITERIA_FRAMES, propose_criteria, tidy_criteria
from .hearing import Hearing, check_speech_mode, plan_hearing
from .reframe import ReelShape
from .render import reel_size, render_reel
from .selection import Segment, Selection, total_seconds
from .signals import AudioFeature, Signals
from .windows import (KeptFrames, Window, check_window_settings, frame_indices, iter_window_clips, make_windows,
                      placeholder_clip, scan_frames, window_frames)

ProgressFn = Callable[[float, str], None]
log = logging.getLogger(__name__)

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


def resolved_frames_per_window(requested: int | None, family: str, window_seconds: float, limits: Limits = LIMITS) -> int:
    """The frames a window shows: the requested number, else the family's default."""
    return int(requested or default_frames_per_window(family, window_seconds, limits))


MAX_BATCH_SIZE = 64

SCORING_SYSTEM_PROMPT = (
    "You are a video highlight analyzer. You watch a short clip cut from a longer video and judge "
    "whether it shows a highlight."
)
SCORING_QUESTION = "Highlights of this video: {criteria}\nDoes this clip show one of these highlights? Answer yes or no."


def scoring_question(criteria: str) -> str:
    return SCORING_QUESTION.format(criteria=criteria.strip())


WINDOW_MODES = ("fixed", "shots")
# The audio signal's share of a window's score, chosen by measurement on generated videos
# (benchmarks/audio_weight.py, README "Highlights"): every weight from 0.05 to 0.5 put a loud
# burst's window first and left videos with steady sound ranked exactly as by the picture; 1.0
# let noise in a steady soundtrack reorder them. The test models' picture scores differ by under
# 0.01, so the measurement cannot pick inside 0.05-0.5: 0.3 keeps the model the main judge.
DEFAULT_AUDIO_WEIGHT = 0.3


@dataclass(frozen=True)
class HighlightRequest:
    """What the user asked for, as typed (checked by ``plan_scan``)."""

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
    snap: str = "shots"  # "shots" | "none"
    windows: str = "fixed"  # "fixed" | "shots" (whole shots; overlap does not apply)
    audio_weight: float = DEFAULT_AUDIO_WEIGHT
    aspect: str = "source"  # reframe.ASPECTS
    reframe: str = "center"  # reframe.REFRAMES
    asr_model: str | None = None  # speech model (registry name or local dir); None: no transcript
    speech: str = "auto"  # hearing.SPEECH_MODES: use what is said in scoring (auto: when there is speech)
    captions: bool = False  # burn captions of what is said into the reel (needs a transcript)
    caption_style: str = "lines"  # captions.CAPTION_STYLES

    @property
    def selection(self) -> Selection:
        """The selection settings (BadInputError when they cannot be applied)."""
        return Selection(self.target_seconds, self.threshold, self.padding_seconds, self.snap)

    @property
    def shape(self) -> ReelShape:
        return ReelShape(self.aspect, self.reframe)


@dataclass(frozen=True)
class ModelPlan:
    """The model as the user named it, what it resolves to, and the dtype it will run in."""

    name: str  # what the user gave (registry key, hub id or local directory): runtime.load takes it
    source: str  # the model's source (hub id or local directory): cache keys and exports use it
    label: str
    family: str
    dtype: str


@dataclass(frozen=True)
class ScanPlan:
    """Everything a scan needs, worked out once from a checked request (``plan_scan``)."""

    request: HighlightRequest
    info: media.VideoInfo
    video_hash: str
    model: ModelPlan
    frames_per_window: int
    selection: Selection
    shape: ReelShape

    @property
    def video(self) -> str:
        return self.request.video

    def cache_parts(self, criteria: str, hearing: Hearing | None = None) -> dict:
        """What changes a visual score (the score cache key; audio mixing is not in it). Speech
        adds the window texts only when scoring hears them (hearing.py)."""
        request = self.request
        parts = dict(video=self.video_hash, model=self.model.source, dtype=self.model.dtype, criteria=criteria,
                     window_seconds=float(request.window_seconds), overlap_seconds=float(request.overlap_seconds),
                     frames_per_window=self.frames_per_window, **(hearing.cache_part() if hearing else {}))
        if request.windows == "fixed":
            return parts
        return {**parts, "windows": request.windows, "signals": signals.SIGNALS_VERSION}  # shots come from signals


@dataclass(frozen=True)
class Analysis:
    """Every window's score, plus what produced them. JSON-able through ``to_dict``.

    ``windows[i].score`` is the mixed score; ``visual[i]`` the model's P(yes), ``audio[i]`` the
    audio features (None: no soundtrack, or no signals pass)."""

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
    window_mode: str = "fixed"
    audio_weight: float = 0.0
    visual: tuple[float, ...] | None = None
    audio: tuple[AudioFeature, ...] | None = None
    signals: Signals | None = None
    signals_seconds: float = 0.0
    transcript: Transcript | None = None  # None: no speech model was asked for
    said: tuple[str, ...] | None = None  # what was said in each window (with a transcript)
    speech_used: bool = False  # scoring heard ``said``
    speech_note: str = ""  # why speech was not used, or the transcript's own note

    @property
    def duration(self) -> float:
        return self.info.duration

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def has_audio(self) -> bool:
        return self.info.has_audio

    @property
    def cuts(self) -> tuple[float, ...]:
        return self.signals.cuts if self.signals is not None else ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["transcript"] = self.transcript.to_dict() if self.transcript is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Analysis":
        values = dict(data)
        if values.get("transcript") is not None:
            values["transcript"] = Transcript.from_dict(values["transcript"])
        if values.get("said") is not None:
            values["said"] = tuple(values["said"])
        values["info"] = media.VideoInfo(**values["info"])
        values["windows"] = [Window(**w) for w in values["windows"]]
        if values.get("visual") is not None:
            values["visual"] = tuple(values["visual"])
        if values.get("audio") is not None:
            values["audio"] = tuple(AudioFeature(**a) for a in values["audio"])
        if values.get("signals") is not None:
            values["signals"] = Signals.from_dict(values["signals"])
        return cls(**values)


@dataclass(frozen=True)
class HighlightResult:
    analysis: Analysis
    segments: list[Segment]
    reel: Path | None  # None when nothing was selected
    files: dict[str, Path] = field(default_factory=dict)  # json, srt, edl, xspf (and mp4)
    selection: Selection | None = None
    shape: ReelShape = ReelShape()

    @property
    def selected_seconds(self) -> float:
        return total_seconds(self.segments)


# =============================================================================================
# Plan
# =============================================================================================


def check_request(request: HighlightRequest, runtime: Runtime, has_transcript: bool = False) -> None:
    """Every mistake a request can hold, found before any decoding or model work
    (``has_transcript``: the caller brings a transcript, so no speech model is needed)."""
    limits = runtime.limits
    if not request.video:
        raise BadInputError("Upload a video first.")
    check_window_settings(request.window_seconds, request.overlap_seconds, request.frames_per_window, limits)
    if not request.criteria.strip() and not request.auto_criteria:
        raise BadInputError("Describe what counts as a highlight, or let the model suggest criteria.")
    longest = int(limits.max_criteria_chars.value)
    if len(request.criteria.strip()) > longest:
        raise BadInputError(f"The highlight criteria are {len(request.criteria.strip()):,} characters; the limit is {longest:,}. Shorten them.")
    request.selection  # noqa: B018 -- constructing it checks it
    request.shape  # noqa: B018
    if request.windows not in WINDOW_MODES:
        raise BadInputError(f"Windows must be one of {', '.join(WINDOW_MODES)}; got {request.windows!r}.")
    if not (isinstance(request.audio_weight, (int, float)) and math.isfinite(request.audio_weight)
            and 0.0 <= request.audio_weight <= 1.0):
        raise BadInputError(f"The audio weight must be between 0 and 1; got {request.audio_weight}.")
    if not 1 <= int(request.batch_size) <= MAX_BATCH_SIZE:
        raise BadInputError(f"The batch size must be between 1 and {MAX_BATCH_SIZE}; got {request.batch_size}.")
    check_speech_mode(request.speech, request.asr_model, has_transcript)
    if request.caption_style not in CAPTION_STYLES:
        raise BadInputError(f"The caption style must be one of {', '.join(CAPTION_STYLES)}; got {request.caption_style!r}.")
    if request.captions and not request.asr_model and not has_transcript:
        raise BadInputError("Captions need a transcript: choose a speech model too (--asr on the command line).")


def plan_scan(request: HighlightRequest, runtime: Runtime, has_transcript: bool = False) -> ScanPlan:
    """Check the request, probe the video, resolve the model: the one planning step."""
    check_request(request, runtime, has_transcript)
    info = probe(request.video, runtime.limits)
    model = plan_model(request.model, runtime)
    frames = resolved_frames_per_window(request.frames_per_window, model.family, request.window_seconds, runtime.limits)
    return ScanPlan(request, info, file_sha256(request.video), model, frames, request.selection, request.shape)


def plan_model(name: str, runtime: Runtime) -> ModelPlan:
    spec = runtime.spec(name)  # a model on a server: asked of the server (pipelines.engines)
    local = runtime.engine_for(name).kind != "server"
    dtype = dtype_name(choose_dtype(choose_device(runtime.device), runtime.dtype)) if local else "server"
    return ModelPlan(name, spec.source, spec.label, spec.family, dtype)


def probe(video, limits) -> media.VideoInfo:
    """``media.probe_video`` in a bounded child process: FFmpeg parses untrusted uploaded bytes."""
    return isolation.run(media.probe_video, str(video), limits, what=media.display_name(video),
                         timeout_s=isolation.PROBE_TIMEOUT_S, memory_mb=float(limits.decode_memory_mb.value))


# =============================================================================================
# Analysis
# =============================================================================================


def analyse(
    request: HighlightRequest,
    runtime: Runtime,
    cancel: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
    cache: ScoreCache | None = None,
    transcript: Transcript | None = None,
) -> Analysis:
    """Score every window of the request's video; see the module docstring. ``transcript``:
    what is said in the video, already made (else made when the request names a speech model)."""
    cancel = cancel or threading.Event()
    cache = cache if cache is not None else ScoreCache()
    progress = _Progress(on_progress)
    progress.stage(0.0, 0.03, "Reading the video")
    plan = plan_scan(request, runtime, has_transcript=transcript is not None)
    if transcript is None:
        transcript = read_transcript(plan, runtime, cache, cancel, progress)
    criteria = resolve_criteria(plan, runtime, cache, cancel, progress, transcript)
    found, signals_seconds, kept = read_signals(plan, runtime, cache, cancel, progress)
    windows = scan_windows(plan, found)
    hearing = plan_hearing(request.speech, transcript, windows, runtime.limits)
    scored = visual_scores(plan, runtime, criteria, windows, cache, cancel, progress, hearing, kept)
    return assemble(plan, criteria, windows, scored, found, signals_seconds, transcript, hearing)


def read_transcript(plan: ScanPlan, runtime: Runtime, cache: ScoreCache, cancel: threading.Event,
                    progress: "_Progress") -> Transcript | None:
    """What is said in the video, with the request's speech model (None when it names none).
    pipelines.speech.transcribe caches it per video content next to the scores."""
    if not plan.request.asr_model:
        return None
    from ..speech import transcribe  # loads transformers' speech pipeline on first use

    progress.stage(0.03, 0.12, "Listening to what is said")
    return transcribe(plan.video, plan.request.asr_model, runtime,
                      progress=lambda fraction, message="": progress.update(fraction, message or None),
                      cancel=cancel, cache_dir=cache.root if cache.enabled else False)


@dataclass(frozen=True)
class VisualScores:
    """The model's P(yes) per window, how long scoring took, and whether the cache had them."""

    values: tuple[float, ...]
    seconds: float
    from_cache: bool


def visual_scores(plan: ScanPlan, runtime: Runtime, criteria: str, windows: list[Window], cache: ScoreCache,
                  cancel: threading.Event, progress: "_Progress", hearing: Hearing | None = None,
                  kept: KeptFrames | None = None) -> VisualScores:
    """From the cache when these windows were scored before with this model and criteria (and
    the same heard text); else scored (and stored). Audio is mixed in later, so its weight never
    invalidates the cache."""
    key = cache.key("scores", **plan.cache_parts(criteria, hearing))
    cached = cache.load(key)
    if cached is not None and len(cached.get("windows", ())) == len(windows):
        progress.stage(0.9, 0.9, "Scores found in the cache")
        return VisualScores(tuple(float(w["score"]) for w in cached["windows"]),
                            float(cached.get("scoring_seconds", 0.0)), True)
    values, seconds = score_windows(plan, runtime, criteria, windows, cancel, progress,
                                    cache.frame_features.for_video(plan.video_hash), hearing, kept)
    cache.store(key, {"windows": [asdict(replace(w, score=v)) for w, v in zip(windows, values)],
                      "scoring_seconds": seconds})
    return VisualScores(tuple(values), seconds, False)


def resolve_criteria(plan: ScanPlan, runtime: Runtime, cache: ScoreCache, cancel: threading.Event,
                     progress: "_Progress", transcript: Transcript | None = None) -> str:
    """The request's criteria, tidied; else the model's proposal (cached per video and model,
    and what is said in it when the request uses speech)."""
    if plan.request.criteria.strip():
        return tidy_criteria(plan.request.criteria)
    heard = transcript.text if transcript is not None and plan.request.speech != "off" else ""
    grid = window_frames(fixed_windows(plan), plan.info, plan.frames_per_window)
    return _proposed(plan.video, plan.video_hash, plan.model, runtime, cache, cancel, progress, heard,
                     criteria_frames(grid))


def fixed_windows(plan: ScanPlan) -> list[Window]:
    """The scan's windows when they are fixed; [] for whole shots (known after the signals pass)."""
    return scan_windows(plan, Signals.missing("")) if plan.request.windows == "fixed" else []


def criteria_frames(grid: tuple[int, ...], count: int = CRITERIA_FRAMES) -> tuple[int, ...] | None:
    """``count`` frames of the scan's frame grid (``windows.window_frames``), spread evenly over it
    (the middle frame of each equal slice), for the criteria step: what the vision encoder makes
    of them is kept and the scan reuses it. None when there is no grid (whole-shot windows): the
    chat's sampler chooses, as for any video question."""
    if not grid:
        return None
    if len(grid) <= count:
        return tuple(grid)
    return tuple(grid[int((k + 0.5) * len(grid) / count)] for k in range(count))


def suggest_criteria(video: str, model: str, runtime: Runtime, cancel: threading.Event | None = None,
                     on_progress: ProgressFn | None = None, cache: ScoreCache | None = None,
                     asr_model: str | None = None, window_seconds: float = DEFAULT_WINDOW_SECONDS,
                     overlap_seconds: float = 0.0, frames_per_window: int | None = None) -> str:
    """The model's proposal for ``video`` (cached per video content and model), for the UI button;
    with ``asr_model`` it also reads what is said in the video (transcribed, cached). The window
    settings are the ones the scan will use: the frames shown for the criteria are frames of its
    grid, encoded once for both (settings that cannot be used leave the choice to the sampler;
    the scan reports them)."""
    if not video:
        raise BadInputError("Upload a video first.")
    info = probe(video, runtime.limits)
    cache = cache if cache is not None else ScoreCache()
    cancel, progress = cancel or threading.Event(), _Progress(on_progress)
    heard = ""
    if asr_model:
        from ..speech import transcribe

        progress.stage(0.0, 0.1, "Listening to what is said")
        heard = transcribe(video, asr_model, runtime, progress=lambda f, m="": progress.update(f, m or None),
                           cancel=cancel, cache_dir=cache.root if cache.enabled else False).text
    planned = plan_model(model, runtime)
    grid = scan_grid(info, planned.family, window_seconds, overlap_seconds, frames_per_window, runtime.limits)
    return _proposed(video, file_sha256(video), planned, runtime, cache, cancel, progress, heard, criteria_frames(grid))


def scan_grid(info: media.VideoInfo, family: str, window_seconds: float, overlap_seconds: float = 0.0,
              requested_frames: int | None = None, limits: Limits = LIMITS) -> tuple[int, ...]:
    """The frame grid of a fixed-window scan with these settings (``windows.window_frames``);
    () when they cannot be used."""
    try:
        check_window_settings(window_seconds, overlap_seconds, requested_frames, limits)
    except BadInputError:
        return ()
    frames = resolved_frames_per_window(requested_frames, family, window_seconds, limits)
    return window_frames(make_windows(info.duration, window_seconds, overlap_seconds), info, frames)


def _proposed(video: str, video_hash: str, model: ModelPlan, runtime: Runtime, cache: ScoreCache,
              cancel: threading.Event, progress: "_Progress", heard: str = "",
              frames: tuple[int, ...] | None = None) -> str:
    speech = {"speech": heard} if heard else {}  # without speech: the key (and entry) as before
    key = cache.key("criteria", video=video_hash, model=model.source, dtype=model.dtype, **speech)
    cached = cache.load(key)
    if cached is not None:
        return cached["criteria"]
    progress.stage(0.03, 0.15, "Watching the video to suggest criteria")
    features = cache.frame_features.for_video(video_hash) if frames else None
    criteria = propose_criteria(video, model.name, runtime, cancel, on_progress=lambda f, _m: progress.update(f),
                                heard=heard, frame_numbers=frames, features=features)
    cache.store(key, {"criteria": criteria})
    return criteria


def read_signals(plan: ScanPlan, runtime: Runtime, cache: ScoreCache, cancel: threading.Event,
                 progress: "_Progress") -> tuple[Signals, float, KeptFrames | None]:
    """Shot cuts, loudness, motion and faces (signals.py) in one bounded child; cached per video
    content. Returns them, the seconds the pass took (0 from the cache), and the frames a scan of
    fixed windows will score when that same pass kept them (windows.scan_frames: one decoding
    of the file for both), else None (the scan decodes them itself)."""
    key = cache.key("signals", video=plan.video_hash, version=signals.SIGNALS_VERSION)
    cached = cache.load(key)
    if cached is not None:
        return Signals.from_dict(cached), 0.0, None
    progress.stage(0.15, 0.17, "Finding shots and listening to the sound")
    started = time.perf_counter()
    wanted = scan_frames(fixed_windows(plan), plan.info, plan.frames_per_window)
    try:
        found = signals.measure_with_frames(plan.video, plan.info, wanted, runtime.limits, cancel)
    except DecodeError as error:  # the reel can still be made as before; the JSON says why not more
        log.warning("No shots or sound for %s: %s", media.display_name(plan.video), error)
        return Signals.missing(f"Shots and sound were not measured: {error}"), time.perf_counter() - started, None
    cache.store(key, found.signals.to_dict())
    kept = KeptFrames(wanted, found.frames) if found.frames is not None else None
    return found.signals, time.perf_counter() - started, kept


def scan_windows(plan: ScanPlan, found: Signals) -> list[Window]:
    request = plan.request
    if request.windows == "shots":
        return signals.shot_windows(plan.info.duration, found.cuts, request.window_seconds)
    return make_windows(plan.info.duration, request.window_seconds, request.overlap_seconds)


def score_windows(plan: ScanPlan, runtime: Runtime, criteria: str, windows: list[Window], cancel,
                  progress: "_Progress", features: VideoFeatures | None = None,
                  hearing: Hearing | None = None, kept: KeptFrames | None = None) -> tuple[list[float], float]:
    """The model's P(yes) for every window, and the seconds it took.

    With ``features`` (the video's frame-feature store) and an engine that keeps them, windows
    whose frames were all encoded before are scored on those features, without decoding the video
    or running the vision encoder; the other windows come from ONE decoding pass, and their
    frames' features are kept for the next scan (pipelines.features); ``kept``: frames the
    signals pass decoded already (then nothing is decoded again). With ``hearing`` used,
    each window's question is preceded by what was said in it (cut to the token budget with the
    model's own tokenizer)."""
    progress.stage(0.17, 0.2, "Loading the model")
    scorer = runtime.engine_for(plan.model.name).scorer(plan.model.name, scoring_question(criteria), ("yes", "no"),
                                                        SCORING_SYSTEM_PROMPT, runtime, features=features)
    progress.stage(0.2, 0.9, f"Scoring {len(windows)} windows")
    frames = {w.index: frame_indices(w, plan.info.fps, plan.info.frame_count, plan.frames_per_window) for w in windows}
    known = scorer.frame_features
    ready = [w for w in windows if known is not None and known.has_all(frames[w.index])]
    lines = hearing.lines(scorer.count_tokens) if hearing is not None else ()
    said = {w.index: line for w, line in zip(windows, lines)}
    batcher = _Batcher(scorer, frames, plan.request.batch_size, len(windows), cancel, progress, said)
    batcher.feed(((w, placeholder_clip(w, plan.info, frames[w.index])) for w in ready), decoded=False)
    to_decode = [w for w in windows if w.index not in batcher.scores]  # incl. any whose features went missing
    if to_decode:
        clips = iter_window_clips(plan.video, plan.info, to_decode, plan.frames_per_window, cancel,
                                  prefetch=2 * plan.request.batch_size, limits=runtime.limits, kept=kept)
        try:
            batcher.feed(clips)
        finally:
            clips.close()
    return [batcher.scores[w.index] for w in windows], time.perf_counter() - batcher.started


class _Batcher:
    """(window, clip) pairs -> scores, ``batch_size`` windows per forward pass, with progress."""

    def __init__(self, scorer, frames: dict[int, tuple[int, ...]], batch_size: int, total: int, cancel, progress,
                 said: dict[int, str] | None = None):
        self.scorer, self.frames, self.batch_size, self.total = scorer, frames, batch_size, total
        self.cancel, self.progress = cancel, progress
        self.said = said or {}  # window index -> the line before its question (speech used)
        self.scores: dict[int, float] = {}
        self.started = time.perf_counter()

    def feed(self, pairs, decoded: bool = True) -> None:
        """Score every pair; a batch never mixes two feeds (placeholder and decoded frames).
        Placeholder windows whose kept features went missing are left unscored (decode them)."""
        pending: list = []
        for pair in pairs:
            pending.append(pair)
            if len(pending) >= self.batch_size:
                self._flush(pending, decoded)
        if pending:
            self._flush(pending, decoded)

    def _flush(self, pending: list, decoded: bool) -> None:
        windows = [window for window, _ in pending]
        try:
            texts = [self.said[w.index] for w in windows] if self.said else None
            values = self.scorer.score_batch([clip for _, clip in pending], self.cancel,
                                             [self.frames[w.index] for w in windows], decoded=decoded, texts=texts)
        except FeaturesMissing:  # evicted or damaged since the check: these windows get decoded
            pending.clear()
            return
        self.scores.update({w.index: v for w, v in zip(windows, values)})
        pending.clear()
        self.progress.counted(len(self.scores), self.total, time.perf_counter() - self.started, "Scoring windows")


def assemble(plan: ScanPlan, criteria: str, windows: list[Window], scored: VisualScores, found: Signals,
             signals_seconds: float = 0.0, transcript: Transcript | None = None,
             hearing: Hearing | None = None) -> Analysis:
    """The Analysis: each window's score mixes its visual score with its audio score."""
    hearing = hearing or Hearing()
    request = plan.request
    weight = float(request.audio_weight)
    audio = signals.window_audio(found.loudness, windows)
    mixed = [replace(w, score=signals.mix(v, a.score if a is not None else None, weight))
             for w, v, a in zip(windows, scored.values, audio or [None] * len(windows))]
    return Analysis(str(request.video), plan.video_hash, plan.info, plan.model.source, plan.model.label,
                    plan.model.dtype, criteria, float(request.window_seconds), float(request.overlap_seconds),
                    plan.frames_per_window, mixed, from_cache=scored.from_cache, scoring_seconds=scored.seconds,
                    window_mode=request.windows, audio_weight=weight if audio else 0.0, visual=scored.values,
                    audio=tuple(audio) if audio else None, signals=found, signals_seconds=signals_seconds,
                    transcript=transcript, said=hearing.texts if transcript is not None else None,
                    speech_used=hearing.used, speech_note=hearing.note or (transcript.note if transcript else ""))


# =============================================================================================
# Selection, render, exports
# =============================================================================================


def choose(analysis: Analysis, selection: Selection) -> list[Segment]:
    """The reel's segments from the scores (pure; on the frame grid, edges snapped to shot cuts
    within half a window when the selection says so)."""
    return selection.choose(analysis.windows, analysis.duration, analysis.fps, analysis.cuts,
                            reach=analysis.window_seconds / 2)


def finish(
    analysis: Analysis,
    segments: list[Segment],
    out_dir,
    selection: Selection | None = None,
    shape: ReelShape = ReelShape(),
    cancel: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
    progress_from: float = 0.9,
    captions: str | None = None,
) -> HighlightResult:
    """Render the reel in ``shape`` (when anything is selected) and write every export into
    ``out_dir``.

    ``progress_from``: where this step starts on the progress bar (0 when it is all the work,
    as for a re-render of an edited selection). ``captions``: a caption style
    (captions.CAPTION_STYLES) to burn what is said into the reel, or None; the analysis needs a
    transcript for it (without speech in the reel there is simply nothing to draw)."""
    out_dir = Path(out_dir)
    progress = _Progress(on_progress)
    if captions and analysis.transcript is None:
        raise BadInputError("Captions need a transcript: choose a speech model too.")
    reel = None
    if segments:
        progress.stage(progress_from, 0.99, "Rendering the reel")
        paths = reframe.crop_paths(shape, segments, analysis.info, analysis.signals)
        burned = (reel_captions(analysis.transcript, segments, captions, reel_size(analysis.info, shape), shape.aspect)
                  if captions else None)
        reel = render_reel(analysis.video, segments, out_dir / exports.REEL_NAME, analysis.info, cancel,
                           on_progress=lambda f: progress.update(f), shape=shape, crops=paths, captions=burned)
    files = exports.write_all(analysis, segments, out_dir, selection, reel, shape, captions)
    if reel is not None:
        files = {"mp4": reel, **files}
    progress.stage(1.0, 1.0, "Done")
    return HighlightResult(analysis, list(segments), reel, files, selection, shape)


def make_highlights(
    request: HighlightRequest,
    runtime: Runtime,
    out_dir,
    cancel: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
    cache: ScoreCache | None = None,
    transcript: Transcript | None = None,
) -> HighlightResult:
    """analyse -> choose -> finish."""
    cancel = cancel or threading.Event()
    analysis = analyse(request, runtime, cancel, on_progress, cache, transcript)
    segments = choose(analysis, request.selection)
    if cancel.is_set():
        raise GenerationCancelled("Stopped.")
    return finish(analysis, segments, out_dir, request.selection, request.shape, cancel, on_progress,
                  captions=request.caption_style if request.captions else None)


# =============================================================================================
# Progress
# =============================================================================================


class _Progress:
    """Maps each stage's own 0..1 onto its slice of the whole run, and words the ETA. The bar
    never moves back: a stage whose slice starts below what was reached (the criteria after a
    long transcription) starts where the bar is."""

    def __init__(self, callback: ProgressFn | None):
        self.callback = callback
        self.low, self.high, self.message = 0.0, 1.0, ""
        self.reached = 0.0

    def stage(self, low: float, high: float, message: str) -> None:
        self.low = max(low, self.reached)
        self.high, self.message = max(high, self.low), message
        self.update(0.0)

    def update(self, fraction: float, message: str | None = None) -> None:
        if self.callback is not None:
            fraction = min(1.0, max(0.0, fraction))
            self.reached = max(self.reached, self.low + (self.high - self.low) * fraction)
            self.callback(self.low + (self.high - self.low) * fraction, message or self.message)

    def counted(self, done: int, total: int, elapsed: float, what: str) -> None:
        left = elapsed / done * (total - done) if done else None
        eta = f" · about {clock(left)} left" if left is not None and done < total else ""
        self.update(done / total if total else 1.0, f"{what} {done}/{total}{eta}")
