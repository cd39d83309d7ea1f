"""Compare: several images in one question, and two models answering the same input side by side.

Contract
--------
* ``start_multi_image(model, images, question, runtime, cancel=None, **options)`` -> the
  ``chat.ChatStream`` of ONE user turn holding 2..N images (N = ``limits.compare_images``), each
  introduced to the model as ``messages.image_label(k)`` ("Image 1:", "Image 2:", ...).
  ``image_labels(n)`` returns the same names for the screen, so answers can be followed. Image
  count, file kinds and the question are checked before any model is loaded. ``options`` are
  other ``ChatRequest`` fields (settings, system_prompt, image_detail).
* ``side_by_side_requests(model_a, model_b, question, images=(), video=None, ...)`` -> two
  ``ChatRequest``s with the same input: text plus 0..N labelled images, or one video. Each model
  samples the video with its own family defaults (SmolVLM2 1 fps / max 64, PerceptionLM 32).
* Running the two requests side by side is ``pipelines.side_by_side``; the memory check before
  loading two models is ``memory.plan_memory``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from . import attachments, media
from .chat import ChatRequest, ChatStream, start_chat
from .errors import BadInputError
from .limits import LIMITS, Limits
from .messages import IMAGE, VIDEO, Attachment, Turn, image_label
from .runtime import Runtime

log = logging.getLogger(__name__)

PANES = ("A", "B")
# Pane events queued ahead of the reader: chunks of two answers; bounded, never reached in practice.
_MAX_QUEUED_EVENTS = 8192
DEFAULT_PURPOSE = "a presentation slide"

PRESETS: dict[str, str] = {
    "What differs?": "What are the differences between these images? Refer to each image by its label.",
    "What do they have in common?": "What do these images have in common? Refer to each image by its label.",
    "Rank them for a purpose": "Rank these images from best to worst for {purpose}. Answer with a numbered "
                               "list of image labels, each with a short reason.",
    "Describe each": "Describe each image in one or two sentences. Start each description with the "
                     "image's label.",
}


def preset_prompt(name: str, purpose: str = "") -> str:
    """The question of a preset; the ranking preset names the user's purpose."""
    try:
        template = PRESETS[name]
    except KeyError:
        raise BadInputError(f"Unknown preset '{name}'. Use one of: {', '.join(PRESETS)}.") from None
    return template.format(purpose=(purpose or "").strip() or DEFAULT_PURPOSE)


def image_labels(count: int) -> list[str]:
    """The on-screen names of ``count`` images: exactly what the prompt calls them."""
    return [image_label(number) for number in range(1, count + 1)]


# =============================================================================================
# Building and checking the input (no model work)
# =============================================================================================


def multi_image_turn(question: str, images: Sequence[str], limits: Limits = LIMITS) -> Turn:
    """One labelled user turn for a several-images question; counts are checked here."""
    _check_image_count(len(images), limits, at_least=int(limits.compare_images.minimum))
    return _compare_turn(question, images, None)


def side_by_side_turn(question: str, images: Sequence[str] = (), video: str | None = None,
                      limits: Limits = LIMITS) -> Turn:
    """The one turn both models answer: text plus 0..N labelled images, or one video."""
    if images and video:
        raise BadInputError("Give the two models either images or a video, not both: SmolVLM2 cannot "
                            "take both in one question.")
    _check_image_count(len(images), limits, at_least=0)  # one image, or none, is a fair model test
    return _compare_turn(question, images, video)


def _check_image_count(count: int, limits: Limits, at_least: int) -> None:
    row = limits.compare_images
    if count < at_least:
        raise BadInputError(f"Upload at least {at_least} images to compare; got {count}.")
    if count > row.value:
        raise BadInputError(f"At most {row.value:g} images can be compared at once; got {count}. "
                            "Remove some and try again.")


def _compare_turn(question: str, images: Sequence[str], video: str | None) -> Turn:
    question = (question or "").strip()
    if not question:
        raise BadInputError("Type a question (or pick a preset) first.")
    attachments = [Attachment(IMAGE, _checked_kind(path, IMAGE)) for path in images]
    if video:
        attachments.append(Attachment(VIDEO, _checked_kind(video, VIDEO)))
    return Turn("user", question, tuple(attachments), label_images=True)


def _checked_kind(path: str, wanted: str) -> str:
    """Refuse a file in the wrong box before any model loads; judged by content, not by name."""
    kind = attachments.kind_of(path)  # FFmpeg parses the untrusted container in a bounded child
    if kind == wanted:
        return path
    name = Path(path).name
    if wanted == IMAGE:
        raise BadInputError(f"'{name}' is not a still image this app can read. Use {media.IMAGE_FORMAT_NAMES} "
                            "images (videos go in the video box).")
    raise BadInputError(f"'{name}' is not a video this app can read. Use {media.VIDEO_FORMAT_NAMES}.")


def multi_image_request(model: str, images: Sequence[str], question: str, limits: Limits = LIMITS,
                        **options) -> ChatRequest:
    return ChatRequest(model=model, turns=(multi_image_turn(question, images, limits),), **options)


def side_by_side_requests(model_a: str, model_b: str, question: str, images: Sequence[str] = (),
                          video: str | None = None, limits: Limits = LIMITS,
                          **options) -> tuple[ChatRequest, ChatRequest]:
    """Two requests with the same turn. Video sampling is left to each model's family defaults."""
    turn = side_by_side_turn(question, images, video, limits)
    return (ChatRequest(model=model_a, turns=(turn,), **options),
            ChatRequest(model=model_b, turns=(turn,), **options))


def start_multi_image(model: str, images: Sequence[str], question: str, runtime: Runtime,
                      cancel: threading.Event | None = None, **options) -> ChatStream:
    request = multi_image_request(model, images, question, runtime.limits, **options)
    return start_chat(request, compare_runtime(runtime), cancel)


def compare_runtime(runtime: Runtime) -> Runtime:
    """Chat checks images per message; a comparison is governed by its own, separate limit."""
    limits = runtime.limits
    allowed = max(limits.max_images_per_message.value, limits.compare_images.value)
    return replace(runtime, limits=limits.with_value("max_images_per_message", allowed))
