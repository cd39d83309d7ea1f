"""Chat: a conversation with media in, a stream of text chunks out.

Contract: ``start_chat(request, runtime, cancel=None, heartbeat_s=None) -> ChatStream``. All checks,
media decoding (once per request) and preprocessing happen in ``start_chat``, so bad input raises a
typed error before any generation starts. Videos are decoded in a child process bounded in time and
memory (pipelines.isolation), which ``cancel`` also stops; ``heartbeat_s`` is passed to
``generation.stream_generate``. Iterating the stream yields ``generation.Chunk``s; ``stream.prepared``
tells what the model was given (token counts, the video frames with their timestamps, notices).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import isolation, media
from .devices import on_fresh_thread
from .errors import BadInputError, InputTooLongError, OutOfMemoryError
from .generation import Chunk, GenerationSettings, stream_generate
from .loading import LoadedModel
from .messages import IMAGE, VIDEO, BuiltConversation, Turn, build_messages
from .registry import PERCEPTION_LM, SMOLVLM
from .runtime import Runtime

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


@dataclass
class PreparedChat:
    loaded: LoadedModel
    inputs: dict
    settings: GenerationSettings
    prompt_tokens: int
    visual_tokens: int
    image_detail: str
    frames_seen: list = field(default_factory=list)  # [(ndarray HxWx3, seconds)] of the newest video
    notices: list[str] = field(default_factory=list)


class ChatStream:
    """Iterate for chunks; ``cancel()`` from any thread stops the generation thread."""

    def __init__(self, prepared: PreparedChat, cancel: threading.Event, heartbeat_s: float | None = None,
                 stall_s: float | None = None):
        self.prepared = prepared
        self.cancel_event = cancel
        self._chunks = stream_generate(prepared.loaded, prepared.inputs, prepared.settings, cancel,
                                       heartbeat_s=heartbeat_s, stall_s=stall_s)

    def __iter__(self):
        return self._chunks

    def cancel(self) -> None:
        self.cancel_event.set()

    def close(self) -> None:
        self.cancel_event.set()
        self._chunks.close()


def start_chat(request: ChatRequest, runtime: Runtime, cancel: threading.Event | None = None,
               heartbeat_s: float | None = None) -> ChatStream:
    cancel = cancel or threading.Event()
    prepared = prepare_chat(request, runtime, cancel)
    return ChatStream(prepared, cancel, heartbeat_s, float(runtime.limits.generation_stall_s.value))


def prepare_chat(request: ChatRequest, runtime: Runtime, cancel: threading.Event | None = None) -> PreparedChat:
    # The processor runs tensor ops: on a thread that ends with it (see pipelines.devices).
    return on_fresh_thread(_prepare_chat, request, runtime, cancel)


def _prepare_chat(request: ChatRequest, runtime: Runtime, cancel: threading.Event | None) -> PreparedChat:
    _check_request(request, runtime)
    loaded = runtime.load(request.model)
    fps, max_frames = video_sampling(loaded, request, runtime)
    built = build_messages(
        list(request.turns),
        loaded.spec.family,
        load_image=lambda path: media.open_image(path, runtime.limits),
        load_video=lambda path: _load_video_cached(path, fps, max_frames, runtime, cancel),
        system_prompt=request.system_prompt,
    )
    detail = resolve_detail(request.image_detail, loaded)
    inputs = encode(loaded, built, detail)
    prompt_tokens = int(inputs["input_ids"].shape[-1])
    settings = _fit_to_context(request.settings, prompt_tokens, loaded, built.notices)
    visual = count_visual_tokens(loaded, inputs)
    frames = _frames_seen(built)
    return PreparedChat(loaded, inputs, settings, prompt_tokens, visual, detail, frames, built.notices)


def encode(loaded: LoadedModel, built: BuiltConversation, detail: str) -> dict:
    """Messages -> model inputs on the model's device, exactly as the model card's code does it,
    plus the real video metadata and control-token sanitising."""
    return _apply_template(loaded, built.messages, _processor_kwargs(loaded, built, detail))


def encode_batch(loaded: LoadedModel, builts: list[BuiltConversation], detail: str) -> dict:
    """Several conversations -> ONE padded batch of model inputs (for batched scoring).

    Rows are LEFT-padded, so the last position of every row is its own last prompt token: the
    logits there are each row's first answer token (see pipelines/scoring.py). Every
    conversation must hold the same kinds of media; on PerceptionLM, videos must have the same
    number of frames (its processor takes one ``num_frames`` for the whole call).
    """
    if not builts:
        raise BadInputError("Nothing to encode.")
    kwargs = _processor_kwargs(loaded, builts[0], detail)
    if builts[0].videos:
        kwargs["video_metadata"] = [transformers_metadata(clip) for built in builts for clip in built.videos]
        counts = {len(built.videos[-1].sample.indices) for built in builts}
        if loaded.spec.family == PERCEPTION_LM and len(counts) > 1:
            raise BadInputError("Every video in one PerceptionLM batch needs the same number of frames.")
    kwargs.update(padding=True, padding_side="left")
    return _apply_template(loaded, [built.messages for built in builts], kwargs)


def _apply_template(loaded: LoadedModel, conversations: list, processor_kwargs: dict) -> dict:
    """The one processor call behind ``encode`` and ``encode_batch``, with its errors worded."""
    try:
        inputs = loaded.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            sanitize_control_tokens=True,
            processor_kwargs=processor_kwargs,
        )
    except (ValueError, TypeError) as error:
        raise BadInputError(f"The model's processor could not prepare this input: {error}") from error
    except MemoryError:
        raise OutOfMemoryError("Preparing this input for the model ran out of memory. Use fewer or smaller "
                               "images, fewer frames or a lower image detail.") from None
    return inputs.to(loaded.device, dtype=loaded.dtype)


def _processor_kwargs(loaded: LoadedModel, built: BuiltConversation, detail: str) -> dict:
    kwargs: dict = {}
    if built.videos:
        kwargs["video_metadata"] = [transformers_metadata(clip) for clip in built.videos]
        kwargs["do_sample_frames"] = False
        if loaded.spec.family == PERCEPTION_LM:
            kwargs["num_frames"] = len(built.videos[-1].sample.indices)
    if built.images and detail == "low":
        if loaded.spec.family == SMOLVLM:
            kwargs["do_image_splitting"] = False
        else:
            kwargs["max_num_tiles"] = 1
    return kwargs


def transformers_metadata(clip: media.VideoClip):
    """Our probe + sample -> transformers' VideoMetadata, so the prompt shows real timestamps."""
    from transformers.video_utils import VideoMetadata

    info = clip.info
    return VideoMetadata(
        total_num_frames=info.frame_count,
        fps=info.fps,
        width=info.width,
        height=info.height,
        duration=info.duration,
        video_backend="vlm-studio",
        frames_indices=list(clip.sample.indices),
    )


def resolve_detail(detail: str, loaded: LoadedModel) -> str:
    """'auto' is high on a GPU and low on a CPU, where tiling costs ~17x the prefill (NOTES.md)."""
    if detail in ("low", "high"):
        return detail
    return "high" if loaded.device.startswith("cuda") else "low"


def video_sampling(loaded: LoadedModel, request: ChatRequest, runtime: Runtime) -> tuple[float | None, int]:
    spec = loaded.spec
    max_frames = int(request.max_frames or spec.video_max_frames)
    runtime.limits.max_frames.check(max_frames, "Frames per video")
    if spec.video_fps is None:  # PerceptionLM samples a fixed number of frames
        return None, max_frames
    fps = float(request.video_fps or spec.video_fps)
    runtime.limits.video_fps.check(fps, "Frames per second")
    return fps, max_frames


def count_visual_tokens(loaded: LoadedModel, inputs: dict) -> int:
    ids = inputs["input_ids"]
    return int(sum((ids == token).sum().item() for token in loaded.media_token_ids()))


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


def _fit_to_context(settings: GenerationSettings, prompt_tokens: int, loaded: LoadedModel, notices: list[str]):
    context = loaded.spec.context_length
    room = context - prompt_tokens
    if room < 16:
        raise InputTooLongError(
            prompt_tokens, context,
            "Use fewer images or frames, a lower image detail, shorter text, or start a new chat.",
        )
    if settings.max_new_tokens > room:
        notices.append(f"New tokens limited to {room} so the answer fits the {context:,}-token context.")
        from dataclasses import replace

        return replace(settings, max_new_tokens=room)
    return settings


def _frames_seen(built: BuiltConversation) -> list:
    if not built.videos:
        return []
    clip = built.videos[-1]
    return list(zip(clip.frames, clip.sample.timestamps))


_video_cache: "OrderedDict[tuple, media.VideoClip]" = OrderedDict()
_video_cache_lock = threading.Lock()
_VIDEO_CACHE_SIZE = 2


def _load_video_cached(path: str, fps: float | None, max_frames: int, runtime: Runtime,
                       cancel: threading.Event | None = None) -> media.VideoClip:
    """History videos are re-sent every turn; decode each (file, sampling) once, not every turn.
    Uploaded videos are untrusted: they are decoded in a bounded child process."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, fps, max_frames)
    with _video_cache_lock:
        if key in _video_cache:
            _video_cache.move_to_end(key)
            return _video_cache[key]
    clip = isolation.load_video(path, fps, max_frames, runtime.limits, cancel)
    with _video_cache_lock:
        _video_cache[key] = clip
        while len(_video_cache) > _VIDEO_CACHE_SIZE:
            _video_cache.popitem(last=False)
    return clip


__all__ = ["ChatRequest", "ChatStream", "Chunk", "PreparedChat", "start_chat", "prepare_chat", "encode", "encode_batch"]
