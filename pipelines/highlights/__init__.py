"""Video highlight generator: the moments that matter of a long video, as a reel and timestamps.

Public API (no gradio; the Highlights tab and ``python -m pipelines.highlights`` both use it):

* ``HighlightRequest`` -> ``analyse(request, runtime, cancel, on_progress, cache) -> Analysis``
  (every window's score; cached per video content, model, criteria and window settings);
* ``plan_scan(request, runtime) -> ScanPlan``: the one planning step (checks, probe, model, dtype);
* ``choose(analysis, selection) -> list[Segment]`` (pure; ``Selection``: target or threshold,
  padding, snapping to shot cuts);
* ``finish(analysis, segments, out_dir, selection, shape, ...) -> HighlightResult`` (reel MP4 in
  a ``ReelShape`` + JSON, SRT, EDL, XSPF); ``make_highlights(request, runtime, out_dir, ...)``
  runs all three;
* ``suggest_criteria(video, model, runtime)``: the model's own idea of what a highlight is;
* speech (issue 17): ``HighlightRequest(asr_model=..., speech="auto"|"on"|"off", captions=...,
  caption_style="lines"|"words")``; windows are scored with what is said in them (hearing.py),
  captions are burned into the reel (captions.py), the transcript is exported as SRT and WebVTT;
* building blocks: ``make_windows``, ``select``, ``Selection``, ``segments_from_rows``,
  ``render_reel``, ``ReelShape``, ``exports``, ``signals``, ``ScoreCache``.

See pipeline.py for the stages and their contracts.
"""

from importlib import import_module

# Names are imported on first use (PEP 562), not here: the decoding child imports
# pipelines.highlights.signals, and must not pull in torch through pipeline.py.
_HOMES = {
    "exports": None, "signals": None,
    "ScoreCache": "cache", "file_sha256": "cache",
    "DEFAULT_WINDOW_SECONDS": "pipeline", "Analysis": "pipeline", "HighlightRequest": "pipeline",
    "HighlightResult": "pipeline", "ScanPlan": "pipeline", "analyse": "pipeline", "check_request": "pipeline",
    "choose": "pipeline", "default_frames_per_window": "pipeline", "finish": "pipeline",
    "make_highlights": "pipeline", "plan_scan": "pipeline", "scoring_question": "pipeline",
    "suggest_criteria": "pipeline",
    "ReelShape": "reframe", "ASPECTS": "reframe", "REFRAMES": "reframe",
    "render_reel": "render",
    "Segment": "selection", "Selection": "selection", "segments_from_rows": "selection", "select": "selection",
    "selected_flags": "selection", "total_seconds": "selection",
    "Window": "windows", "make_windows": "windows",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _HOMES[name]
    value = import_module(f"{__name__}.{home or name}")
    return value if home is None else getattr(value, name)
