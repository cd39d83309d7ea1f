"""The Chat tab: streaming multimodal conversation with images, several images and video.

Callbacks are thin: Gradio values -> ChatRequest -> pipelines.chat -> chatbot/stats/frames.
"""

from __future__ import annotations

import copy

import gradio as gr
import numpy as np
from PIL import Image

from pipelines.chat import ChatRequest, start_chat
from pipelines.messages import Turn
from pipelines.registry import asr_enabled
from pipelines.timecode import clock

from .adapter import progress_callback, ui_errors
from .config import ASSETS_DIR, AppConfig
from .history import textbox_value, to_turns, user_message
from .pacing import paced
from .runs import ActiveRuns, session_key
from .widgets import (
    format_stats,
    generation_controls,
    model_picker,
    settings_from,
    stopped_stats,
    video_controls,
)

THUMBNAIL_PX = 224
THUMBNAIL_QUALITY = 85
CAPTION_CHARS = 80  # what is said beside a frame: a line or two under a thumbnail
# Tall enough to read, short enough that the message box stays on a 768 px laptop screen
# (the header above takes ~330 px); never under 300 px on a phone.
CHAT_HEIGHT = "max(300px, calc(100dvh - 330px))"
RUNS = ActiveRuns()

HOW_TO = (
    "Attach images or a video (📎 or drag and drop), type a question and press Enter. "
    "Follow-up questions keep the conversation; **Stop** ends the answer at once."
)


def build_chat_tab(config: AppConfig) -> None:
    limits = config.limits
    gr.Markdown(HOW_TO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            chatbot = gr.Chatbot(label="Conversation", height=CHAT_HEIGHT, buttons=["copy"], elem_id="chat-bot")
            textbox = gr.MultimodalTextbox(
                file_types=["image", "video"], file_count="multiple", sources=["upload"],
                placeholder="Ask about an image or a video…", label="Message", show_label=False,
                elem_id="chat-input",
            )
            with gr.Row():
                # A small min_width keeps the four buttons on one row on a phone.
                stop = gr.Button("Stop", variant="stop", elem_id="chat-stop", scale=1, min_width=60)
                retry = gr.Button("Retry", elem_id="chat-retry", scale=1, min_width=60)
                undo = gr.Button("Undo", elem_id="chat-undo", scale=1, min_width=60)
                clear = gr.Button("Clear", elem_id="chat-clear", scale=1, min_width=60)
            stats = gr.Markdown(elem_id="chat-stats")
            frames = gr.Gallery(label="What the model sees (frames of the last video, with timestamps)",
                                columns=8, height="auto", elem_id="chat-frames")
        with gr.Column(scale=1, min_width=260):
            model = model_picker(config.model, elem_id="chat-model", runtime=config.runtime)
            controls = generation_controls(limits)
            fps, max_frames = video_controls(limits)
            hear = gr.Checkbox(value=True, label="Hear the video (its transcript goes in the prompt)",
                               info="Only videos with speech; the line under the answer says what was added.",
                               visible=asr_enabled(config.asr_model), elem_id="chat-hear")

    # New inputs go at the END (with defaults), so API clients that pass fewer keep working.
    settings = [model, *controls.components(), fps, max_frames, hear]

    def respond(message, history, model, system_prompt, max_new_tokens, greedy, temperature, top_p,
                image_detail, video_fps, frames_limit, hear_video=True, progress=gr.Progress(),
                request: gr.Request = None):
        history = copy.deepcopy(history or [])
        with ui_errors():
            new_history = history + [user_message(message)]
            chat_request = ChatRequest(
                model=model,
                turns=to_turns(new_history),
                settings=settings_from(max_new_tokens, greedy, temperature, top_p),
                system_prompt=system_prompt or "",
                video_fps=float(video_fps) if video_fps else None,
                max_frames=int(frames_limit) if frames_limit else None,
                image_detail=image_detail or "auto",
                asr_model=config.asr_model if hear_video else None,
            )
        with RUNS.running(session_key(request, "chat")) as cancel:
            with ui_errors():
                # The first question about a video with speech waits for its transcription: shown.
                stream = start_chat(chat_request, config.runtime, cancel, progress_callback(progress))
            yield from _stream_reply(stream, new_history, cancel)

    def _stream_reply(stream, history, cancel):
        """The reply as it grows, at most UPDATES_PER_SECOND updates a second.

        Every client fetches every file of an output it receives (gradio_client on every update,
        a browser whenever a value changes), so the frames gallery goes out with the first update
        and with the last (an API client's result) only, as ``gr.skip()`` in between. The frames
        are written once, as files in Gradio's cache, so sending them twice re-encodes nothing. A
        heartbeat (nothing new yet) repeats the other values: Gradio sends an empty diff, and API
        clients always see a history. The textbox stays ``None`` throughout: an unchanged value is
        no update, so text typed meanwhile is kept.
        """
        prepared = stream.prepared
        history.append({"role": "assistant", "content": ""})
        seen = _gallery(prepared.frames_seen, prepared.frames_said)
        stats = format_stats(None, prepared)
        yield history, None, stats, seen
        with ui_errors():
            for chunks in paced(stream, cancel, name="vlms-ui-chat"):
                if chunks:  # an empty batch is a heartbeat: a chance for Gradio to close this generator
                    history[-1] = {"role": "assistant", "content": stream.text}
                    stats = format_stats(chunks[-1], prepared)
                yield history, None, stats, gr.skip()
        yield history, None, stats, seen

    def stop_run(request: gr.Request = None):
        return RUNS.cancel(session_key(request, "chat")) > 0

    def note_stopped(line, was_running):
        # `cancels` drops the stream's own last update, so the stats line is marked here.
        return stopped_stats(line) if was_running else gr.skip()

    def retry_last(history, model, system_prompt, max_new_tokens, greedy, temperature, top_p,
                   image_detail, video_fps, frames_limit, hear_video=True, progress=gr.Progress(),
                   request: gr.Request = None):
        history = copy.deepcopy(history or [])
        last_user = _last_user_index(history)
        if last_user is None:
            raise gr.Error("There is nothing to retry yet.")
        message = textbox_value(history[last_user])
        yield from respond(message, history[:last_user], model, system_prompt, max_new_tokens, greedy,
                           temperature, top_p, image_detail, video_fps, frames_limit, hear_video, progress=progress,
                           request=request)

    def undo_last(history):
        history = copy.deepcopy(history or [])
        last_user = _last_user_index(history)
        if last_user is None:
            return history, None
        return history[:last_user], textbox_value(history[last_user])

    outputs = [chatbot, textbox, stats, frames]
    submitted = textbox.submit(respond, [textbox, chatbot, *settings], outputs, api_name="chat",
                               concurrency_id="model", concurrency_limit=config.concurrency)
    retried = retry.click(retry_last, [chatbot, *settings], outputs, api_name="chat_retry",
                          concurrency_id="model", concurrency_limit=config.concurrency)
    stopped = gr.State(False)
    stop.click(stop_run, None, [stopped], cancels=[submitted, retried], api_name="chat_stop", queue=False).then(
        note_stopped, [stats, stopped], [stats], api_name=False, queue=False)
    undo.click(undo_last, [chatbot], [chatbot, textbox], api_name=False)
    clear.click(lambda: ([], None, "", []), None, outputs, api_name=False)
    _examples(textbox)


def _last_user_index(history: list[dict]) -> int | None:
    for index in range(len(history) - 1, -1, -1):
        if history[index].get("role") == "user":
            while index > 0 and history[index - 1].get("role") == "user":
                index -= 1  # one turn may span several user bubbles
            return index
    return None


def _gallery(frames_seen, frames_said=()) -> list:
    """Thumbnails captioned with their time and, when the video was heard, what is said then."""
    said = list(frames_said) or [""] * len(frames_seen)
    return [(_thumbnail(frame), _caption(seconds, text)) for (frame, seconds), text in zip(frames_seen, said)]


def _caption(seconds: float, said: str) -> str:
    time = clock(seconds, decimals=2)
    if not said:
        return time
    short = said if len(said) <= CAPTION_CHARS else said[:CAPTION_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return f"{time} · “{short}”"


def _thumbnail(frame: np.ndarray) -> Image.Image:
    image = Image.fromarray(frame)
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    return image


def _examples(textbox) -> None:
    candidates = [
        ("scene.jpg", "What is in this picture?"),
        ("chart.png", "What does this chart show?"),
        ("example.mp4", "Describe what happens in this video."),
    ]
    examples = [
        [{"text": prompt, "files": [str(ASSETS_DIR / name)]}]
        for name, prompt in candidates
        if (ASSETS_DIR / name).exists()
    ]
    if examples:
        gr.Examples(examples, [textbox], label="Examples")


__all__ = ["build_chat_tab", "Turn"]
