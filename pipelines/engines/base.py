"""The engine boundary: what the chat, compare and highlights pipelines ask of whoever runs a model.

Pipelines prepare requests (messages with their images and sampled video frames, questions about
clips); an ``Engine`` does the model work:

* ``spec(model, runtime) -> ModelSpec``: the model's family, context length and video defaults
  (what the prompt is built for). A local engine loads the model here, so a model that cannot be
  loaded fails before any media is decoded; a server engine asks the server.
* ``capabilities(model, runtime) -> Capabilities``: what the model can take.
* ``prepare(model, built, settings, detail, runtime) -> PreparedChat``: the conversation in the
  engine's own form (model inputs, or a chat-completions body), with its token counts.
* ``stream(prepared, cancel, stall_s) -> Iterator[Chunk]``: the answer, chunk by chunk; the last
  chunk has ``finish_reason`` "stop", "length" or "cancelled" (Stop = ``cancel`` set).
* ``scorer(model, question, options, system_prompt, runtime, features=None) -> ClipScorer``:
  P(options[0]) for a batch of clips from the first answer token (see pipelines/scoring.py).
  ``features`` (pipelines.features.VideoFeatures) lets a local engine keep each frame's vision
  features; its scorer's ``frame_features`` is then set, and ``score_batch(clips, cancel,
  frames)`` with each clip's source frame numbers encodes only frames not seen before. A server
  engine ignores it (``frame_features`` None).

Errors are the typed, user-worded ``VLMError``s of pipelines.errors (plus the server's in
pipelines.engines.server). Engines hold no UI timing: consumers pace their own updates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Iterator, Protocol, Sequence

from .. import media
from ..errors import InputTooLongError
from ..generation import Chunk, GenerationSettings
from ..messages import BuiltConversation
from ..registry import ModelSpec


@dataclass(frozen=True)
class Capabilities:
    """What a model takes, as its engine serves it."""

    images: bool
    video: bool  # as a video (local) or as its sampled frames (a server)
    max_images: int | None  # per request; None: only the app's own limits apply
    context_length: int
    local_only: bool = False  # e.g. PerceptionLM: no server engine can run it


@dataclass
class PreparedChat:
    """A conversation ready for its engine. ``loaded``/``inputs``: the local model and its inputs
    (None/the chat-completions body on a server). ``frames_seen``: [(HxWx3 array, seconds)] of the
    newest video, exactly the frames the model gets (the UI shows them)."""

    loaded: object | None
    inputs: dict
    settings: GenerationSettings
    prompt_tokens: int  # 0 when the engine only counts them while answering (a server)
    visual_tokens: int
    image_detail: str
    frames_seen: list = field(default_factory=list)
    frames_said: list[str] = field(default_factory=list)  # what is said around each frame seen (speech)
    notices: list[str] = field(default_factory=list)
    engine: "Engine | None" = None
    model: str = ""
    description: str = ""  # "SmolVLM2 256M on cpu (bf16)", "smolvlm2-tiny on http://host:8000/v1"
    weights_bytes: int = 0  # in this process; 0 when the weights live elsewhere


class ClipScorer(Protocol):
    frame_features: object | None  # pipelines.features.FrameFeatures, when the engine keeps them

    def score_batch(self, clips: Sequence[media.VideoClip], cancel: threading.Event | None = None,
                    frames: Sequence[Sequence[int]] | None = None, decoded: bool = True,
                    texts: Sequence[str] | None = None) -> list[float]:
        """P(options[0]) per clip, in order (``frames``: each clip's source frame numbers;
        ``decoded=False``: placeholder frames, only for a scorer with ``frame_features``;
        ``texts``: per clip, a line said before the question)."""

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's prompt."""


class Engine(Protocol):
    kind: str  # "local", "zerogpu" or "server"

    def spec(self, model: str, runtime) -> ModelSpec: ...

    def capabilities(self, model: str, runtime) -> Capabilities: ...

    def prepare(self, model: str, built: BuiltConversation, settings: GenerationSettings, detail: str,
                runtime, features=None) -> PreparedChat:
        """``features``: the video's kept vision features (pipelines.features.VideoFeatures), which
        an engine that keeps them uses for a one-video conversation; others ignore it."""

    def stream(self, prepared: PreparedChat, cancel: threading.Event, stall_s: float | None = None) -> Iterator[Chunk]: ...

    def scorer(self, model: str, question: str, options: Sequence[str], system_prompt: str, runtime,
               features=None) -> ClipScorer: ...


def fit_to_context(settings: GenerationSettings, prompt_tokens: int, context: int, notices: list[str]) -> GenerationSettings:
    """New tokens cut to what the context leaves (with a notice); too little room raises."""
    room = context - prompt_tokens
    if room < 16:
        raise InputTooLongError(
            prompt_tokens, context,
            "Use fewer images or frames, a lower image detail, shorter text, or start a new chat.",
        )
    if settings.max_new_tokens > room:
        notices.append(f"New tokens limited to {room} so the answer fits the {context:,}-token context.")
        return replace(settings, max_new_tokens=room)
    return settings
