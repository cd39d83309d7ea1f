"""Video highlight generator: the moments that matter of a long video, as a reel and timestamps.

Public API (no gradio; the Highlights tab and ``python -m pipelines.highlights`` both use it):

* ``HighlightRequest`` -> ``analyse(request, runtime, cancel, on_progress, cache) -> Analysis``
  (every window's score; cached per video content, model, criteria and window settings);
* ``choose(analysis, target_seconds, threshold, padding_seconds) -> list[Segment]`` (pure);
* ``finish(analysis, segments, out_dir, ...) -> HighlightResult`` (reel MP4 + JSON, SRT, EDL,
  XSPF); ``make_highlights(request, runtime, out_dir, ...)`` runs all three;
* ``suggest_criteria(video, model, runtime)``: the model's own idea of what a highlight is;
* building blocks: ``make_windows``, ``select``, ``segments_from_rows``, ``render_reel``,
  ``exports``, ``ScoreCache``.

See pipeline.py for the stages and their contracts.
"""

from . import exports
from .cache import ScoreCache, file_sha256
from .pipeline import (
    DEFAULT_WINDOW_SECONDS,
    Analysis,
    HighlightRequest,
    HighlightResult,
    analyse,
    check_request,
    choose,
    default_frames_per_window,
    finish,
    make_highlights,
    scoring_question,
    suggest_criteria,
)
from .render import render_reel
from .selection import Segment, segments_from_rows, select, selected_flags, total_seconds
from .windows import Window, make_windows

__all__ = [
    "Analysis", "DEFAULT_WINDOW_SECONDS", "HighlightRequest", "HighlightResult", "ScoreCache", "Segment", "Window",
    "analyse", "check_request", "choose", "default_frames_per_window", "exports", "file_sha256", "finish",
    "make_highlights", "make_windows", "render_reel", "scoring_question", "segments_from_rows", "select",
    "selected_flags", "suggest_criteria", "total_seconds",
]
