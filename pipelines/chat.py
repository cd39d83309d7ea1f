"""Chat: a conversation with media in, a stream of text chunks out.

Contract: ``start_chat(request, runtime, cancel=None, on_progress=None) -> ChatStream``. All checks, media decoding
(once per request) and preprocessing happen in ``start_chat``, so bad input raises a typed error
before any generation starts. Videos are decoded in a child process bounded in time and memory
(pipelines.isolation), which ``cancel`` also stops. The model work goes to the model's engine
(``runtime.engine_for(model)``: local transformers, ZeroGPU, or a vLLM server; pipelines.engines),
which gets the SAME built messages and sampled frames whichever it is. Iterating the stream
yields ``generation.Chunk``s; ``stream.prepared`` tells what the model was given (token counts,
the video frames with their timestamps, notices).

A request with ``asr_model`` HEARS its video: the transcript (pipelines.speech, cached by content)
goes into the prompt through the message converter, cut to the ``chat_speech_tokens`` limit
counted by the chat model's tokenizer; a notice says whether it was added and why not;
``prepared.frames_said`` holds what is said around each frame of ``frames_seen``. The first
question about a video waits for its transcription: ``on_progress(fraction, message)`` hears how
it goes (the same messages as the highlights' transcription), from whichever thread does it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import isolation, media
from .devices import on_fresh_thread
from .encoding import count_visual_tokens, encode, encode_batch, resolve_detail, transformers_metadata  # noqa: F401
from .engines.base import PreparedChat, fit_to_context
from .errors import BadInputError
from .generation import Chunk, GenerationSettings
from .messages import IMAGE, VIDEO, BuiltConversation, Turn, build_messages
from .registry import ModelSpec, asr_enabled
from .runtime import Runtime

if TYPE_CHECKING:
    from .features import VideoFeatures

Detail = Literal["auto", "low", "high"]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    turns: tuple[Turn, ...]  # the last one is the new user turn
    settings: GenerationSettings = GenerationSettings()
    system_prompt: str = ""
    video_fps: float | None = None  # None: the model's default (SmolVLM2 1 fps; PerceptionLM fixed count)
    max_frames: int | None = None  # None: the model's default (SmolVLM2 64; PerceptionLM 32)
    image_detail: Detail = "auto"  # low: one tile per image (fast); high: the model's tiling
    asr_model: str | None = None  # hear the video with this speech model (None or "off": do not)
    # The video's frames by number instead of the sampler's choice (at most max_frames of them).
    video_frames: tuple[int, ...] | None = None
    # The video's kept vision features (pipelines.features): a local engine encodes only frames
    # not seen before and keeps the new ones (highlights' criteria share their frames with the scan).
    frame_features: "VideoFeatures | None" = None


class ChatStream:
    """The answer as a stream and as a result: iterate for ``Chunk``s; ``text`` is the answer so
    far and ``last`` the newest chunk, kept up to date as it is iterated (so no consumer rebuilds
    the text). ``cancel()`` from any thread stops the generation; ``close()`` also ends the stream
    and must be called on the thread that iterates it."""

    def __init__(self, prepared: PreparedChat, cancel: threading.Event, stall_s: float | None = None):
        self.prepared = prepared
        self.cancel_event = cancel
        self.text = ""
        self.last: Chunk | None = None
        self._chunks = prepared.engine.stream(prepared, cancel, stall_s)

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> Chunk:
        chunk = next(self._chunks)
        self.text += chunk.text
        self.last = chunk
        return chunk

    def cancel(self) -> None:
        self.cancel_event.set()

    def close(self) -> None:
        self.cancel_event.set()
        self._chunks.close()


def start_chat(request: ChatRequest, runtime: Runtime, cancel: threading.Event | None = None,
               on_progress=None) -> ChatStream:
    cancel = cancel or threading.Event()
    prepared = prepare_chat(request, runtime, cancel, on_progress)
    return ChatStream(prepared, cancel, float(runtime.limits.generation_stall_s.value))


def prepare_chat(request: ChatRequest, runtime: Runtime, cancel: threading.Event | None = None,
                 on_progress=None) -> PreparedChat:
    # The processor runs tensor ops: on a thread that ends with it (see pipelines.devices).
    return on_fresh_thread(_prepare_chat, request, runtime, cancel, on_progress)


def _prepare_chat(request: ChatRequest, runtime: Runtime, cancel: threading.Event | None,
                  on_progress=None) -> PreparedChat:
    _check_request(request, runtime)
    engine = runtime.engine_for(request.model)
    spec = engine.spec(request.model, runtime)  # a local model loads here: its errors come first
    fps, max_frames = video_sampling(spec, request, runtime)
    listener = _listener(request, engine, runtime, cancel, on_progress)
    built = build_messages(
        list(request.turns),
        spec.family,
        load_image=lambda path: media.open_image(path, runtime.limits),
        load_video=lambda path: _load_video_cached(path, fps, max_frames, runtime, cancel, request.video_frames),
        system_prompt=request.system_prompt,
        hear=listener.said if listener is not None else None,
    )
    prepared = engine.prepare(request.model, built, request.settings, request.image_detail, runtime,
                              features=request.frame_features)
    prepared.frames_seen = _frames_seen(built)
    if listener is not None and listener.note:
        prepared.notices.append(listener.note)
        prepared.frames_said = listener.captions([seconds for _, seconds in prepared.frames_seen])
    return prepared


def _listener(request: ChatRequest, engine, runtime: Runtime, cancel: threading.Event | None, on_progress=None):
    """The request's ear (pipelines.speech.listening), or None when it does not hear."""
    if not request.asr_model or not asr_enabled(request.asr_model):
        return None
    from .speech.listening import VideoListener  # loads the speech pipeline only for chats that hear

    return VideoListener(request.asr_model, runtime, _token_counter(engine, request.model, runtime), cancel,
                         on_progress)


def _token_counter(engine, model: str, runtime: Runtime):
    """Tokens a text takes in ``model``'s prompt (control tokens counted as the text they become)."""
    if getattr(engine, "kind", "local") == "server":
        # The server's tokenizer is remote: a bound instead (English text averages ~4 characters a
        # token in these tokenizers; 3 keeps the cut on the safe side).
        return lambda text: -(-len(text) // 3)
    tokenizer = runtime.load(model).tokenizer
    return lambda text: len(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def video_sampling(model, request: ChatRequest, runtime: Runtime) -> tuple[float | None, int]:
    """(fps, max frames) for the request's video; ``model``: a ModelSpec or a loaded model."""
    spec: ModelSpec = getattr(model, "spec", model)
    max_frames = int(request.max_frames or spec.video_max_frames)
    runtime.limits.max_frames.check(max_frames, "Frames per video")
    if spec.video_fps is None:  # PerceptionLM samples a fixed number of frames
        return None, max_frames
    fps = float(request.video_fps or spec.video_fps)
    runtime.limits.video_fps.check(fps, "Frames per second")
    return fps, max_frames


def _check_request(request: ChatRequest, runtime: Runtime) -> None:
    if not request.turns or request.turns[-1].role != "user":
        raise BadInputError("There is no new message to answer.")
    last = request.turns[-1]
    if not last.text.strip() and not last.attachments:
        raise BadInputError("Type a message or attach an image or video.")
    images = sum(1 for a in last.attachments if a.kind == IMAGE)
    if images:
        runtime.limits.max_images_per_message.check(images, "Images per message")
    videos = sum(1 for a in last.attachments if a.kind == VIDEO)
    if videos > 1:
        raise BadInputError("Attach one video per message.")
    runtime.limits.max_new_tokens.check(request.settings.max_new_tokens, "New tokens")
    if not request.settings.greedy:
        runtime.limits.temperature.check(request.settings.temperature, "Temperature")
        runtime.limits.top_p.check(request.settings.top_p, "Top-p")


def _frames_seen(built: BuiltConversation) -> list:
    if not built.videos:
        return []
    clip = built.videos[-1]
    return list(zip(clip.frames, clip.sample.timestamps))


_video_cache: "OrderedDict[tuple, media.VideoClip]" = OrderedDict()
_video_cache_lock = threading.Lock()
_VIDEO_CACHE_SIZE = 2


def _load_video_cached(path: str, fps: float | None, max_frames: int, runtime: Runtime,
                       cancel: threading.Event | None = None, frames: tuple[int, ...] | None = None) -> media.VideoClip:
    """History videos are re-sent every turn; decode each (file, sampling) once, not every turn.
    Uploaded videos are untrusted: they are decoded in a bounded child process. ``frames``: these
    frame numbers instead of the sampler's choice."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, fps, max_frames, frames)
    with _video_cache_lock:
        if key in _video_cache:
            _video_cache.move_to_end(key)
            return _video_cache[key]
    clip = isolation.load_video(path, fps, max_frames, runtime.limits, cancel, frames)
    with _video_cache_lock:
        _video_cache[key] = clip
        while len(_video_cache) > _VIDEO_CACHE_SIZE:
            _video_cache.popitem(last=False)
    return clip


__all__ = ["ChatRequest", "ChatStream", "Chunk", "PreparedChat", "fit_to_context", "start_chat", "prepare_chat", "encode",
           "encode_batch"]
