"""The Compare tab: several images in one question, and two models answering the same input.

Callbacks are thin: Gradio values -> pipelines.compare -> answer text and stats lines. The images
are shown with the captions the prompt gives them ("Image 1", ...), so answers can be followed.

API: ``/compare`` (images, question, model, settings...) -> (answer, stats) and
``/compare_models`` (model_a, model_b, question, images, video, sequential, settings...) ->
(answer A, stats A, answer B, stats B); ``/compare_stop`` stops both kinds of run. Every input
after the first ones a client naturally passes has a default, so clients may omit it. The stats
of ``/compare`` start with the image legend ("Image 1 = scene.jpg · ..."), the same names the
gallery captions show.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from pipelines import registry
from pipelines.compare import (
    DEFAULT_PURPOSE,
    PRESETS,
    image_labels,
    preset_prompt,
    side_by_side_requests,
    start_multi_image,
)
from pipelines.limits import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from pipelines.memory import format_bytes
from pipelines.side_by_side import PaneState, stream_side_by_side

from .adapter import ui_errors
from .config import ASSETS_DIR, AppConfig
from .pacing import paced
from .runs import ActiveRuns, session_key
from .widgets import (
    chunk_stats,
    finish_note,
    format_stats,
    generation_controls,
    model_picker,
    settings_from,
)

RUNS = ActiveRuns()
SCOPE = "compare"

HOW_TO = (
    "Upload **2 or more images** and ask about them together (**Ask**), or let **two models** answer the "
    "same question about your images or a video at the same time (**Compare two models**). Images are "
    "named to the model exactly as captioned below. **Stop** ends every answer of this tab."
)


def build_compare_tab(config: AppConfig) -> None:
    limits = config.limits
    most = int(limits.compare_images.value)
    gr.Markdown(HOW_TO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            images = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                             label=f"Images (up to {most}; Ask needs at least 2)",
                             elem_id="compare-images")
            gallery = gr.Gallery(label="How the model will name them", columns=4, height="auto",
                                 interactive=False, elem_id="compare-gallery")
            video = gr.Video(label="Or a video (two-model comparison only)", sources=["upload"],
                             elem_id="compare-video")
            question = gr.Textbox(label="Question", lines=2, placeholder="What differs between these images?",
                                  elem_id="compare-question")
            with gr.Row():
                presets = [gr.Button(name, size="sm") for name in PRESETS]
            purpose = gr.Textbox(label="Purpose (for ranking)", placeholder=DEFAULT_PURPOSE, elem_id="compare-purpose")
            with gr.Row():
                ask = gr.Button("Ask", variant="primary", elem_id="compare-ask")
                versus = gr.Button("Compare two models", variant="primary", elem_id="compare-models")
                stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
            answer = gr.Textbox(label="Answer", lines=6, interactive=False, buttons=["copy"], elem_id="compare-answer")
            stats = gr.Markdown(label="Stats", elem_id="compare-stats")
            with gr.Row(equal_height=False):
                with gr.Column(min_width=240):
                    answer_a = gr.Textbox(label="Answer A", lines=8, interactive=False, buttons=["copy"],
                                          elem_id="compare-answer-a")
                    stats_a = gr.Markdown(label="Stats A", elem_id="compare-stats-a")
                with gr.Column(min_width=240):
                    answer_b = gr.Textbox(label="Answer B", lines=8, interactive=False, buttons=["copy"],
                                          elem_id="compare-answer-b")
                    stats_b = gr.Markdown(label="Stats B", elem_id="compare-stats-b")
        with gr.Column(scale=1, min_width=260):
            model = model_picker(config.model, label="Model (Ask)", elem_id="compare-model", runtime=config.runtime)
            model_a = model_picker(config.model, label="Model A", elem_id="compare-model-a", runtime=config.runtime)
            model_b = model_picker(default_partner(config.model), label="Model B", elem_id="compare-model-b", runtime=config.runtime)
            sequential = gr.Checkbox(value=False, label="Run one after the other",
                                     info="Needs memory for one model at a time; otherwise both run at once, "
                                          "sharing the device token by token.", elem_id="compare-sequential")
            controls = generation_controls(limits)

    # Defaults on every parameter after the natural first ones: gradio_client may then omit them.
    def ask_about_images(files, question, model=config.model, system_prompt="", max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
                         greedy=True, temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P, image_detail="auto",
                         request: gr.Request = None):
        paths = file_paths(files)
        legend = image_legend(paths)
        with RUNS.running(session_key(request, SCOPE)) as cancel:
            with ui_errors():
                stream = start_multi_image(
                    model, paths, question, config.runtime, cancel,
                    settings=settings_from(max_new_tokens, greedy, temperature, top_p),
                    system_prompt=system_prompt or "", image_detail=image_detail or "auto",
                )
            outputs = ("", f"{legend}\n\n{format_stats(None, stream.prepared)}")
            yield outputs
            with ui_errors():
                for chunks in paced(stream, cancel, name="vlms-ui-compare"):
                    if chunks:  # an empty batch is a heartbeat: the same outputs, an empty diff
                        outputs = (stream.text, f"{legend}\n\n{format_stats(chunks[-1], stream.prepared)}")
                    yield outputs

    def compare_models(model_a, model_b, question, files=None, video=None, sequential=False, system_prompt="",
                       max_new_tokens=DEFAULT_MAX_NEW_TOKENS, greedy=True, temperature=DEFAULT_TEMPERATURE,
                       top_p=DEFAULT_TOP_P, image_detail="auto", request: gr.Request = None):
        with ui_errors():
            pair = side_by_side_requests(
                model_a, model_b, question, file_paths(files), video or None, limits,
                settings=settings_from(max_new_tokens, greedy, temperature, top_p),
                system_prompt=system_prompt or "", image_detail=image_detail or "auto",
            )
        with RUNS.running(session_key(request, SCOPE)) as cancel:
            with ui_errors():
                updates = stream_side_by_side(*pair, config.runtime, cancel, sequential=bool(sequential))
                outputs = pane_outputs((PaneState(model_a), PaneState(model_b)))  # "loading…" in both
                for batch in paced(updates, cancel, name="vlms-ui-compare-models"):
                    if batch:  # panes are live objects: the newest state of both
                        outputs = pane_outputs(batch[-1].panes)
                    yield outputs  # an empty batch is a heartbeat: the same outputs, an empty diff

    def stop_runs(request: gr.Request = None):
        RUNS.cancel(session_key(request, SCOPE))

    settings = controls.components()
    asked = ask.click(ask_about_images, [images, question, model, *settings], [answer, stats],
                      api_name="compare", concurrency_id="model", concurrency_limit=config.concurrency)
    compared = versus.click(compare_models, [model_a, model_b, question, images, video, sequential, *settings],
                            [answer_a, stats_a, answer_b, stats_b], api_name="compare_models",
                            concurrency_id="model", concurrency_limit=config.concurrency)
    stop.click(stop_runs, None, None, cancels=[asked, compared], api_name="compare_stop", queue=False)
    images.change(lambda files: labelled(file_paths(files)), images, gallery, api_name=False, queue=False)
    for button, name in zip(presets, PRESETS):
        button.click(lambda text, name=name: preset_prompt(name, text), purpose, question, api_name=False,
                     queue=False)
    _examples(images, question)


def default_partner(model: str) -> str:
    """Model B's first value: the smallest registry model of the OTHER family, so the default
    pair shows the two architectures side by side."""
    try:
        family = registry.resolve(model).family
    except Exception:  # an unknown name is the model picker's business, not this default's
        family = registry.REGISTRY[registry.DEFAULT_CPU_MODEL].family
    others = [spec for spec in registry.REGISTRY.values() if spec.family != family]
    return min(others, key=lambda spec: spec.params).key


def file_paths(files) -> list[str]:
    """gr.File(file_count="multiple") values (paths, or FileData-like objects) -> paths, in upload order."""
    paths = []
    for item in files or []:
        path = item if isinstance(item, str) else getattr(item, "path", None) or getattr(item, "name", None)
        if path:
            paths.append(str(path))
    return paths


def labelled(paths: list[str]) -> list[tuple[str, str]]:
    """Gallery items captioned exactly as the prompt names the images."""
    return list(zip(paths, image_labels(len(paths))))


def image_legend(paths: list[str]) -> str:
    """Which uploaded file each label stands for (file names only, never server paths)."""
    return " · ".join(f"{label} = {Path(path).name}" for path, label in labelled(paths))


def pane_outputs(panes: tuple[PaneState, PaneState]) -> tuple[str, str, str, str]:
    (a, b) = panes
    return a.answer, pane_stats(a), b.answer, pane_stats(b)


def pane_stats(pane: PaneState) -> str:
    """One pane's stats line: speed, token counts, memory, and what happened."""
    if pane.status == "failed":
        return f"⚠️ **{pane.model}**: {pane.error}"
    if pane.info is None:
        waiting = "stopped before it started" if pane.finished else "loading and preparing the input…"
        return f"**{pane.model}**: {waiting}"
    info = pane.info
    parts = [f"**{info.description}**", *chunk_stats(pane.last),
             f"{info.visual_tokens:,} visual of {info.prompt_tokens:,} prompt tokens",
             f"weights {format_bytes(info.weights_bytes)}"]
    if info.video_frames:
        parts.insert(-2, f"{info.video_frames} video frames")
    if pane.peak_memory is not None:
        parts.append(f"peak memory {format_bytes(pane.peak_memory)} ({pane.memory_note})")
    parts += finish_note(pane.last)
    notes = "".join(f"\n\n> {notice}" for notice in info.notices)
    return " · ".join(parts) + notes


def _examples(images, question) -> None:
    pair = [ASSETS_DIR / "scene.jpg", ASSETS_DIR / "scene_changed.jpg"]
    if all(path.exists() for path in pair):
        gr.Examples([[[str(path) for path in pair], PRESETS["What differs?"]]], [images, question], label="Example")
