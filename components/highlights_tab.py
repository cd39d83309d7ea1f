"""The Highlights tab: a long video in, its best moments out (reel, timeline, table, exports).

Callbacks are thin: Gradio values -> HighlightRequest -> pipelines.highlights -> formatted
outputs. The analysis (every window's score) is kept in a gr.State, so editing the segment table
or changing the target re-renders from the scores with no model call; pressing "Find highlights"
again with the same video, model, criteria and window settings reads the score cache.
API endpoints: ``/highlights`` (analyse + select + render), ``/highlights_criteria`` (suggest
criteria), ``/highlights_rerender`` (render an edited table). Speech (issue 17) came last, so its
inputs are the LAST ones of ``/highlights`` (speech model, speech mode, captions, caption style),
``/highlights_criteria`` (speech model, speech mode, captions: the suggestion then reads what
is said) and ``/highlights_rerender`` (captions, caption style), each with a default: older
callers keep working. ``/highlights_criteria`` then takes the window settings (window, overlap,
frames), so the frames it shows the model are frames the scan scores (encoded once for both).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from pipelines.errors import BadInputError
from pipelines.highlights import (
    Analysis,
    HighlightRequest,
    HighlightResult,
    ReelShape,
    Selection,
    finish,
    make_highlights,
    segments_from_rows,
    suggest_criteria,
)
from pipelines.highlights import exports
from pipelines.highlights.captions import CAPTION_STYLES
from pipelines.highlights.hearing import SPEECH_MODES, speech_model
from pipelines.highlights.pipeline import WINDOW_MODES
from pipelines.highlights.preview import crop_preview
from pipelines.highlights.reframe import ASPECTS, REFRAMES
from pipelines.highlights.selection import SNAP_MODES, snapped_edges
from pipelines.registry import asr_choices, asr_enabled

from .adapter import progress_callback, ui_errors
from .config import ASSETS_DIR, AppConfig
from .highlights_plot import score_timeline_svg
from .outputs import request_folder
from .runs import ActiveRuns, session_key
from .widgets import model_picker

RUNS = ActiveRuns()
SCOPE = "highlights"
TARGET, THRESHOLD = "Target length", "Threshold"
TABLE_HEADERS = ["start (s)", "end (s)", "score", "keep", "on a shot cut"]
VIDEO_HEIGHT = 360
DEFAULT_TARGET_SECONDS = 60
ASR_OFF = "off"
# The request's own defaults (pipelines.highlights.HighlightRequest): the one place they are set;
# the widgets, the endpoints' optional inputs and _request read them from here.
DEFAULTS = HighlightRequest(video="", model="")

HOW_TO = (
    "Upload a long video, say what counts as a highlight (or let the model suggest it), and press "
    "**Find highlights**. The model scores every window in one pass; the reel keeps the best ones. "
    "Change the target or threshold and press **Find highlights** again, or edit the segment table "
    "(untick *keep*, change times, add rows) and press **Re-render**: both reuse the scores, with no "
    "model call. Edges snap to shot cuts; the sound can count in the score; the reel can be vertical "
    "(9:16) or square, with the crop following the action. With a speech model, windows are also judged by "
    "what is said in them, captions can be burned into the reel, and the transcript comes as subtitles."
)


def build_highlights_tab(config: AppConfig) -> None:
    limits = config.limits
    gr.Markdown(HOW_TO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            video = gr.Video(label="Video", sources=["upload"], height=VIDEO_HEIGHT, elem_id="hl-video")
            criteria = gr.Textbox(label="What counts as a highlight", lines=3, elem_id="hl-criteria",
                                  max_length=int(limits.max_criteria_chars.value),
                                  placeholder="e.g. goals, saves, celebrations — or leave empty and let the model suggest")
            with gr.Row():
                suggest = gr.Button("Suggest from the video", elem_id="hl-suggest", scale=1)
                run = gr.Button("Find highlights", variant="primary", elem_id="hl-run", scale=1)
                stop = gr.Button("Stop", variant="stop", elem_id="hl-stop", scale=1)
            summary = gr.Markdown(elem_id="hl-summary")
            timeline = gr.HTML(label="Score over time", elem_id="hl-timeline")
            table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["number", "number", "number", "bool", "str"],
                                 column_count=5, row_count=1, interactive=True, elem_id="hl-table",
                                 label="Segments: untick keep to drop, edit times, add rows; then Re-render")
            rerender = gr.Button("Re-render from the table", elem_id="hl-rerender")
            reel = gr.Video(label="Highlight reel", interactive=False, height=VIDEO_HEIGHT, elem_id="hl-reel")
            files = gr.File(label="Downloads (JSON, SRT chapters, EDL, XSPF; with speech: the transcript as SRT "
                                  "and WebVTT, of the video and of the reel)", file_count="multiple",
                            interactive=False, elem_id="hl-files")
            preview = gr.Gallery(label="Crop on a few frames of the reel", columns=4, height=200, object_fit="contain",
                                 elem_id="hl-crop-preview", interactive=False)
        with gr.Column(scale=1, min_width=260):
            model = model_picker(config.model, elem_id="hl-model", runtime=config.runtime)
            window = gr.Slider(limits.window_seconds.minimum, limits.window_seconds.value, value=DEFAULTS.window_seconds,
                               step=1, label="Window length (s)")
            overlap = gr.Slider(0, limits.window_seconds.value / 2, value=DEFAULTS.overlap_seconds, step=0.5, label="Window overlap (s)",
                                info="At most half a window.")
            frames = gr.Slider(0, int(limits.frames_per_window.value), value=0, step=1,
                               label="Frames per window (0 = model default)",
                               info="Default: one per 5 s of window on SmolVLM2, per 2.5 s on PerceptionLM; at least 2. "
                                    "More frames: more detail, slower.")
            select_by = gr.Radio([TARGET, THRESHOLD], value=TARGET, label="Select by")
            target = gr.Number(value=DEFAULT_TARGET_SECONDS, minimum=1, label="Target reel length (s)",
                               info="The best windows until the reel is this long.")
            threshold = gr.Slider(0, 1, value=0.5, step=0.01, label="Score threshold", visible=False,
                                  info="Every window the model scores at least this high.")
            padding = gr.Slider(0, 5, value=DEFAULTS.padding_seconds, step=0.5, label="Padding around each window (s)")
            snap = gr.Radio(list(SNAP_MODES), value=DEFAULTS.snap, label="Snap edges to shot cuts", elem_id="hl-snap",
                            info="shots: each edge moves to a cut within half a window.")
            windowing = gr.Radio(list(WINDOW_MODES), value=DEFAULTS.windows, label="Windows", elem_id="hl-windows",
                                 info="shots: score whole shots (long ones split at the window length).")
            audio_weight = gr.Slider(0, 1, value=DEFAULTS.audio_weight, step=0.05, label="Sound's share of the score",
                                     elem_id="hl-audio-weight",
                                     info="Loud moments and bursts (cheers, impacts) against the video's own level.")
            aspect = gr.Radio(list(ASPECTS), value=DEFAULTS.aspect, label="Reel shape", elem_id="hl-aspect",
                              info="9:16 is 1080x1920, 1:1 is 1080x1080, 16:9 is 1920x1080.")
            reframe = gr.Radio(list(REFRAMES), value=DEFAULTS.reframe, label="Crop", elem_id="hl-reframe",
                               info="follow: the crop glides along where things move.")
            asr = gr.Dropdown([("Off", ASR_OFF), *asr_choices()], value=ASR_OFF, label="Speech model",
                              allow_custom_value=True, elem_id="hl-asr",
                              info="Transcribes what is said, for scoring, captions and subtitles. Off: nothing is "
                                   "transcribed unless captions or speech 'on' ask for it (then the app's speech model).")
            speech = gr.Radio(list(SPEECH_MODES), value=DEFAULTS.speech, label="Score with what is said", elem_id="hl-speech",
                              info="auto: when speech is heard. Criteria can then be about speech.")
            captions = gr.Checkbox(DEFAULTS.captions, label="Burn captions into the reel", elem_id="hl-captions")
            caption_style = gr.Radio(list(CAPTION_STYLES), value=DEFAULTS.caption_style, label="Caption style", elem_id="hl-caption-style",
                                     info="lines: up to two lines; words: short word groups.")
    analysis_state = gr.State(None)

    def find(video, model, criteria, window, overlap, frames, select_by, target, threshold, padding, snap, windowing,
             audio_weight, aspect, reframe, asr=ASR_OFF, speech=DEFAULTS.speech, captions=DEFAULTS.captions,
             caption_style=DEFAULTS.caption_style,
             progress=gr.Progress(), request: gr.Request = None):
        with ui_errors():
            highlight_request = _request(video, model, criteria, window, overlap, frames, select_by, target,
                                         threshold, padding, snap, windowing, audio_weight, aspect, reframe,
                                         run_speech_model(asr, speech, captions, config), speech, captions, caption_style)
            with RUNS.running(session_key(request, SCOPE)) as cancel:
                result = make_highlights(highlight_request, config.runtime, request_folder("highlights"), cancel,
                                         progress_callback(progress))
            return (*_outputs(result), result.analysis.criteria)

    def suggest_fn(video, model, asr=ASR_OFF, speech=DEFAULTS.speech, captions=DEFAULTS.captions,
                   window=DEFAULTS.window_seconds, overlap=DEFAULTS.overlap_seconds, frames=0, progress=gr.Progress(),
                   request: gr.Request = None):
        with ui_errors():
            if not video:
                raise BadInputError("Upload a video first.")
            chosen = run_speech_model(asr, speech, captions, config) if speech != "off" else ASR_OFF
            with RUNS.running(session_key(request, SCOPE)) as cancel:
                # The scan's window settings: the frames shown for the criteria are frames it scores.
                return suggest_criteria(video, model, config.runtime, cancel, progress_callback(progress),
                                        asr_model=chosen if asr_enabled(chosen) else None,
                                        window_seconds=float(window or DEFAULTS.window_seconds),
                                        overlap_seconds=float(overlap or DEFAULTS.overlap_seconds), frames_per_window=int(frames) if frames else None)

    def rerender_fn(state, rows, aspect, reframe, captions=DEFAULTS.captions, caption_style=DEFAULTS.caption_style,
                    progress=gr.Progress(),
                    request: gr.Request = None):
        with ui_errors():
            if not state:
                raise BadInputError("Find highlights first; then edit the table and re-render.")
            analysis = Analysis.from_dict(state["analysis"])
            segments = segments_from_rows(_rows(rows), analysis.duration, analysis.fps)
            selection = Selection.from_dict(state["selection"]).as_edited()
            shape = ReelShape(aspect or DEFAULTS.aspect, reframe or DEFAULTS.reframe)
            with RUNS.running(session_key(request, SCOPE)) as cancel:
                if captions and analysis.transcript is None:
                    raise BadInputError("Captions need a transcript: press Find highlights with a speech model first.")
                burn = (caption_style or DEFAULTS.caption_style) if captions else None
                result = finish(analysis, segments, request_folder("highlights"), selection, shape, cancel,
                                progress_callback(progress), progress_from=0.0, captions=burn)
            return _outputs(result)

    def stop_run(request: gr.Request = None):
        RUNS.cancel(session_key(request, SCOPE))

    outputs = [summary, timeline, table, reel, files, preview, analysis_state]
    settings = [video, model, criteria, window, overlap, frames, select_by, target, threshold, padding, snap, windowing,
                audio_weight, aspect, reframe, asr, speech, captions, caption_style]
    found = run.click(find, settings, [*outputs, criteria], api_name="highlights",
                      concurrency_id="model", concurrency_limit=config.concurrency)
    suggested = suggest.click(suggest_fn, [video, model, asr, speech, captions, window, overlap, frames], [criteria], api_name="highlights_criteria",
                              concurrency_id="model", concurrency_limit=config.concurrency)
    rerendered = rerender.click(rerender_fn, [analysis_state, table, aspect, reframe, captions, caption_style], outputs,
                                api_name="highlights_rerender")
    select_by.change(lambda by: (gr.update(visible=by != THRESHOLD), gr.update(visible=by == THRESHOLD)),
                     select_by, [target, threshold], api_name=False, queue=False)
    # A new video makes the kept scores (and the table built from them) someone else's.
    video.change(lambda: None, None, [analysis_state], api_name=False, queue=False)
    stop.click(stop_run, None, None, cancels=[found, suggested, rerendered], api_name="highlights_stop", queue=False)
    _examples(video, criteria)


def _examples(video, criteria) -> None:
    example = ASSETS_DIR / "example.mp4"
    if example.exists():
        gr.Examples([[str(example), "a new scene starts, something moves across the picture"]], [video, criteria],
                    label="Example")


def run_speech_model(chosen, speech, captions, config: AppConfig) -> str:
    """The dropdown's choice through the one rule (hearing.speech_model): its default, Off, means
    none chosen, so captions or speech "on" still hear with the app's ``--asr``."""
    picked = None if chosen in (None, "", ASR_OFF) else chosen
    return speech_model(picked, config.asr_model, speech, captions) or ASR_OFF


def _request(video, model, criteria, window, overlap, frames, select_by, target, threshold, padding,
             snap=DEFAULTS.snap, windowing=DEFAULTS.windows, audio_weight=DEFAULTS.audio_weight, aspect=DEFAULTS.aspect,
             reframe=DEFAULTS.reframe, asr=ASR_OFF, speech=DEFAULTS.speech, captions=DEFAULTS.captions,
             caption_style=DEFAULTS.caption_style) -> HighlightRequest:
    if not video:
        raise BadInputError("Upload a video first.")
    by_target = (select_by or TARGET) == TARGET
    if by_target and (target is None or float(target) <= 0):
        raise BadInputError("Set a target reel length of at least 1 second.")
    return HighlightRequest(
        video=str(video),
        model=model,
        criteria=(criteria or "").strip(),
        auto_criteria=not (criteria or "").strip(),
        window_seconds=float(window),
        overlap_seconds=float(overlap or 0),
        frames_per_window=int(frames) if frames else None,
        target_seconds=float(target) if by_target else None,
        threshold=None if by_target else float(threshold),
        padding_seconds=float(padding or DEFAULTS.padding_seconds),
        snap=snap or DEFAULTS.snap,
        windows=windowing or DEFAULTS.windows,
        audio_weight=float(DEFAULTS.audio_weight if audio_weight is None else audio_weight),
        aspect=aspect or DEFAULTS.aspect,
        reframe=reframe or DEFAULTS.reframe,
        asr_model=asr if asr and asr_enabled(asr) else None,
        speech=speech or DEFAULTS.speech,
        captions=bool(captions),
        caption_style=caption_style or DEFAULTS.caption_style,
    )


def _outputs(result: HighlightResult) -> tuple:
    analysis = result.analysis
    line, label = _threshold_line(result)
    audio = [a.score for a in analysis.audio] if analysis.audio else None
    svg = score_timeline_svg(analysis.windows, analysis.duration, result.segments, line, label,
                             cuts=analysis.cuts, visual=analysis.visual, audio=audio)
    table = pd.DataFrame([[s.start, s.end, None if s.score is None else round(s.score, 3), True,
                           _on_cut(s, analysis.cuts)] for s in result.segments], columns=TABLE_HEADERS)
    downloads = [str(result.files[kind]) for kind in exports.DOWNLOADS if kind in result.files]
    state = {"analysis": analysis.to_dict(), "selection": result.selection.to_dict()}
    reel = str(result.reel) if result.reel else None
    frames = crop_preview(analysis, result.segments, result.shape) if result.reel else []
    return _summary(result), svg, table, reel, downloads, frames, state


def _on_cut(segment, cuts) -> str:
    """Which edges sit on a shot cut (snapped there, or placed there by hand)."""
    start, end = snapped_edges(segment, cuts)
    return ", ".join(edge for edge, on in (("start", start), ("end", end)) if on)


def _threshold_line(result: HighlightResult) -> tuple[float | None, str]:
    if result.selection.threshold is not None:
        return float(result.selection.threshold), "threshold"
    scores = [s.score for s in result.segments if s.score is not None]
    return (min(scores), "lowest kept") if scores else (None, "")


def _summary(result: HighlightResult) -> str:
    analysis = result.analysis
    source = "from the cache (no model call)" if analysis.from_cache else f"scored in {analysis.scoring_seconds:.1f} s"
    if not result.segments:
        head = "**No window was selected.** Lower the threshold or raise the target length."
    else:
        head = f"**{result.selected_seconds:.1f} s** reel · segments: {len(result.segments)}"
    kind = "shot windows of at most" if analysis.window_mode == "shots" else "windows of"
    return (f"{head} · {len(analysis.windows)} {kind} {analysis.window_seconds:g} s, "
            f"{analysis.frames_per_window} frames each, {source} · {analysis.model_label} ({analysis.dtype})"
            f"{_signals_line(result)}")


def _signals_line(result: HighlightResult) -> str:
    analysis, shape = result.analysis, result.shape
    if analysis.signals is None:
        return ""
    sound = (f"sound weighs {analysis.audio_weight:g}" if analysis.audio is not None
             else "no soundtrack: scored on the picture alone")
    size = f"{shape.output_size[0]}x{shape.output_size[1]} ({shape.aspect}, {shape.reframe})" if shape.output_size else "source shape"
    return f"  \n{len(analysis.cuts)} shot cuts · {sound} · reel {size}{_speech_line(analysis)}"


def _speech_line(analysis) -> str:
    if analysis.transcript is None:
        return ""
    if analysis.speech_used:
        return f" · scored with what is said ({analysis.transcript.model})"
    return f" · {analysis.speech_note}" if analysis.speech_note else ""


def _rows(value) -> list[list]:
    """The Dataframe's value (a DataFrame, or headers+data from the API) -> plain rows."""
    if value is None:
        return []
    if isinstance(value, pd.DataFrame):
        return value.astype(object).where(value.notna(), None).values.tolist()
    if isinstance(value, dict):
        return list(value.get("data") or [])
    return [list(row) for row in value]


__all__ = ["build_highlights_tab"]
