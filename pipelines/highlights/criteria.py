"""Highlight criteria proposed by the model itself, for people who do not want to write them.

Contract: ``propose_criteria(video, model, runtime, ...) -> str``. The model watches
``frames`` frames spread over the WHOLE video, through the chat pipeline
(pipelines.chat.start_chat: its frame sampler, video decoding, checks and Stop), then says in one
answer what kind of video it is and what would count as a highlight. One generate call (the
reference made three: a description, then two lists). The answer is tidied (whitespace
collapsed, cut to the criteria length limit) and shown to the user, who can edit it before
scoring. An empty answer raises BadInputError asking the user to type criteria instead.
With ``heard`` (the video's transcript text) the prompt also gives what is said, cut to
``HEARD_CHARS`` characters (user text: control tokens in it are neutralised like any chat text),
so criteria can be about speech ("when the guest explains the method").
With ``frame_numbers`` (frames of the scan's grid, pipelines.highlights.pipeline.criteria_frames)
and ``features`` (the video's frame-feature store), the model is shown those frames as kept
vision features: each is encoded once, for this answer and for the scan after it, on the local
and ZeroGPU engines (a model server keeps its own caches).
"""

from __future__ import annotations

import re
import threading
from typing import Callable, Sequence

from ..chat import ChatRequest, start_chat
from ..errors import BadInputError, GenerationCancelled
from ..features import VideoFeatures
from ..generation import GenerationSettings
from ..limits import LIMITS
from ..messages import VIDEO, Attachment, Turn
from ..runtime import Runtime

CRITERIA_FRAMES = 16
CRITERIA_SETTINGS = GenerationSettings(max_new_tokens=160)
SYSTEM_PROMPT = "You are a video editor who cuts highlight reels."
PROMPT = (
    "What kind of video is this? Answer in one sentence. Then list the kinds of moments that would "
    "be highlights of this video, separated by semicolons. Use this format:\n"
    "Video: <one sentence>\nHighlights: <moment>; <moment>; <moment>"
)
HEARD = "What is said in the video (transcript): \"{text}\"\n"
HEARD_CHARS = 1500  # ~400 tokens: the gist of a long talk, leaving the frames most of the context


def propose_criteria(
    video: str,
    model: str,
    runtime: Runtime,
    cancel: threading.Event | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    settings: GenerationSettings = CRITERIA_SETTINGS,
    frames: int = CRITERIA_FRAMES,
    heard: str = "",
    frame_numbers: Sequence[int] | None = None,
    features: VideoFeatures | None = None,
) -> str:
    """The model's own highlight criteria for ``video``; see the module docstring.
    ``frame_numbers``: show these frames (at most ``frames``) instead of the sampler's choice;
    ``features``: the video's kept vision features, read and added to (see the module docstring)."""
    request = ChatRequest(
        model=model,
        turns=(Turn("user", heard_prompt(heard), (Attachment(VIDEO, str(video)),)),),
        settings=settings,
        system_prompt=SYSTEM_PROMPT,
        max_frames=frames,
        video_frames=tuple(int(i) for i in frame_numbers) if frame_numbers else None,
        frame_features=features,
    )
    # The chat's own close() sets its cancel event (to stop its worker); the run's Stop must
    # reach the chat, but the chat's end must not stop the run's later stages.
    stream = start_chat(request, runtime, _Inner(cancel or threading.Event()))
    try:
        for chunk in stream:
            if on_progress and settings.max_new_tokens:
                on_progress(min(1.0, chunk.generated_tokens / settings.max_new_tokens), "Watching the video for criteria")
    finally:
        stream.close()
    if stream.last is not None and stream.last.finish_reason == "cancelled":
        raise GenerationCancelled("Stopped.")
    return tidy_criteria(stream.text)


class _Inner(threading.Event):
    """Set when ``outer`` is, or by itself; setting it leaves ``outer`` alone (only ``set`` and
    ``is_set`` are used on a chat's cancel event)."""

    def __init__(self, outer: threading.Event):
        super().__init__()
        self.outer = outer

    def is_set(self) -> bool:
        return super().is_set() or self.outer.is_set()


def heard_prompt(heard: str) -> str:
    """The criteria prompt, preceded by what is said in the video when there is a transcript."""
    text = " ".join(heard.split())
    if not text:
        return PROMPT
    if len(text) > HEARD_CHARS:
        text = text[:HEARD_CHARS].rsplit(" ", 1)[0] + " …"
    return HEARD.format(text=text) + PROMPT


def tidy_criteria(text: str, limit: int | None = None) -> str:
    """One block of plain text, at most ``limit`` characters (the criteria limit by default)."""
    limit = int(limit or LIMITS.max_criteria_chars.value)
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]
    tidy = "\n".join(line for line in lines if line)
    if not tidy:
        raise BadInputError("The model did not suggest any criteria for this video. Type what counts as a highlight instead.")
    return tidy[:limit].rstrip()
