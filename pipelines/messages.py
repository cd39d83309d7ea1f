"""The ONE message converter: a conversation of turns -> the model family's chat messages.

Contract: ``build_messages(turns, family, ...)`` returns messages in the Hugging Face multimodal
chat format with the media objects embedded (PIL images, decoded video frames), plus the list
of videos in prompt order (their metadata goes to the processor so the prompt carries real
timestamps) and notices for the user. Every turn is rebuilt on every request, so media from
earlier turns is sent again in the same place: what the model sees of the history is what the
user sees in the chat.

Media policy (documented in the README):
- At most ``MAX_VIDEOS`` video is sent per request (64 frames is already most of a small model's
  context); earlier videos are replaced by a short note in their turn.
- SmolVLM's processor cannot take images and a video in one call. When a conversation holds
  both, the kind of the newest attachment wins and the other kind is replaced by a note.
  PerceptionLM takes both.
- User text is passed as text only. Paths or URLs in it are never opened (media comes only from
  attachments), and chat-template/media tokens in it are neutralised by the processor's
  ``sanitize_control_tokens`` (see chat.py), so text cannot add images or turns.
- ``hear(path) -> str`` (optional): what is said in a video that reaches the model (its
  transcript with times, pipelines.speech.listening). A non-empty answer goes in the turn's text
  item, before the user's words, so it is neutralised exactly like user text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from .registry import SMOLVLM

IMAGE, VIDEO = "image", "video"
MAX_VIDEOS = 1


@dataclass(frozen=True)
class Attachment:
    kind: Literal["image", "video"]
    path: str


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str
    attachments: tuple[Attachment, ...] = ()
    label_images: bool = False  # prefix each image with "Image N:" (Compare tab)


@dataclass
class BuiltConversation:
    messages: list[dict]
    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)  # VideoClip objects, prompt order
    notices: list[str] = field(default_factory=list)


def image_label(number: int) -> str:
    """How an image is named to the model and on screen; one function so both always agree."""
    return f"Image {number}"


def build_messages(
    turns: list[Turn],
    family: str,
    load_image: Callable[[str], object],
    load_video: Callable[[str], object],
    system_prompt: str = "",
    hear: Callable[[str], str] | None = None,
) -> BuiltConversation:
    kept = _attachments_to_send(turns, family)
    built = BuiltConversation(messages=[])
    if system_prompt.strip():
        built.messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt.strip()}]})
    for index, turn in enumerate(turns):
        built.messages.append(_convert_turn(index, turn, kept, load_image, load_video, built, hear))
    dropped = sum(len(t.attachments) for t in turns) - len(kept)
    if dropped:
        built.notices.append(_dropped_notice(dropped, family))
    return built


def _attachments_to_send(turns: list[Turn], family: str) -> set[tuple[int, int]]:
    """Decide which attachments reach the model (identity = (turn index, position))."""
    everything = [(t, p, a) for t, turn in enumerate(turns) for p, a in enumerate(turn.attachments)]
    if not everything:
        return set()
    kinds = {a.kind for _, _, a in everything}
    if family == SMOLVLM and kinds == {IMAGE, VIDEO}:
        winner = everything[-1][2].kind
        everything = [item for item in everything if item[2].kind == winner]
    videos = [item for item in everything if item[2].kind == VIDEO]
    for stale in videos[:-MAX_VIDEOS]:
        everything.remove(stale)
    return {(t, p) for t, p, _ in everything}


def _convert_turn(turn_index, turn, kept, load_image, load_video, built: BuiltConversation, hear=None) -> dict:
    content: list[dict] = []
    said: list[str] = []
    for position, attachment in enumerate(turn.attachments):
        if (turn_index, position) not in kept:
            content.append({"type": "text", "text": f"[{attachment.kind} not shown to the model]\n"})
        elif attachment.kind == IMAGE:
            built.images.append(load_image(attachment.path))
            if turn.label_images:
                content.append({"type": "text", "text": f"{image_label(len(built.images))}:"})
            content.append({"type": "image", "image": built.images[-1]})
        else:
            clip = load_video(attachment.path)
            built.videos.append(clip)
            content.append({"type": "video", "video": clip.frames})
            said.append(hear(attachment.path) if hear is not None else "")
    # What was said goes before the turn's own words in ONE text item: PerceptionLM's template
    # trims and concatenates a turn's text items, which would glue two items together.
    text = "\n\n".join(part for part in [*said, turn.text] if part)
    if text or not content:
        content.append({"type": "text", "text": text})
    return {"role": turn.role, "content": content}


def _dropped_notice(count: int, family: str) -> str:
    why = (
        "SmolVLM sees either images or one video per request"
        if family == SMOLVLM
        else f"at most {MAX_VIDEOS} video is sent per request"
    )
    noun = "attachment" if count == 1 else "attachments"
    return f"{count} earlier {noun} not shown to the model ({why}); start a new chat to use them."
