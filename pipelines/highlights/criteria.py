"""Highlight criteria proposed by the model itself, for people who do not want to write them.

Contract: ``propose_criteria(video, model, runtime, ...) -> str``. The model watches
``frames`` frames spread over the WHOLE video, through the chat pipeline
(pipelines.chat.start_chat: its frame sampler, video decoding, checks and Stop), then says in one
answer what kind of video it is and what would count as a highlight. One generate call (the
reference made three: a description, then two lists). The answer is tidied (whitespace
collapsed, cut to the criteria length limit) and shown to the user, who can edit it before
scoring. An empty answer raises BadInputError asking the user to type criteria instead.
"""

from __future__ import annotations

import re
import threading
from typing import Callable

from ..chat import ChatRequest, start_chat
from ..errors import BadInputError, GenerationCancelled
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


def propose_criteria(
    video: str,
    model: str,
    runtime: Runtime,
    cancel: threading.Event | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    settings: GenerationSettings = CRITERIA_SETTINGS,
    frames: int = CRITERIA_FRAMES,
) -> str:
    """The model's own highlight criteria for ``video``; see the module docstring."""
    request = ChatRequest(
        model=model,
        turns=(Turn("user", PROMPT, (Attachment(VIDEO, str(video)),)),),
        settings=settings,
        system_prompt=SYSTEM_PROMPT,
        max_frames=frames,
    )
    stream = start_chat(request, runtime, cancel or threading.Event())
    try:
        for chunk in stream:
            if on_progress and settings.max_new_tokens:
                on_progress(min(1.0, chunk.generated_tokens / settings.max_new_tokens), "Watching the video for criteria")
    finally:
        stream.close()
    if stream.last is not None and stream.last.finish_reason == "cancelled":
        raise GenerationCancelled("Stopped.")
    return tidy_criteria(stream.text)


def tidy_criteria(text: str, limit: int | None = None) -> str:
    """One block of plain text, at most ``limit`` characters (the criteria limit by default)."""
    limit = int(limit or LIMITS.max_criteria_chars.value)
    lines = [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]
    tidy = "\n".join(line for line in lines if line)
    if not tidy:
        raise BadInputError("The model did not suggest any criteria for this video. Type what counts as a highlight instead.")
    return tidy[:limit].rstrip()
