"""Messages -> model inputs for a LOCAL model: the one processor call, exactly as the model card's
code does it, plus the real video metadata and control-token sanitising.

Used by the local engines (chat, scoring); a server engine sends messages instead
(pipelines.engines.server). ``encode`` is looked up on this module at call time, so a test can
watch what reaches the processor.
"""

from __future__ import annotations

from . import media
from .errors import BadInputError, OutOfMemoryError
from .loading import LoadedModel
from .memory import is_out_of_memory
from .messages import BuiltConversation
from .registry import PERCEPTION_LM, SMOLVLM


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
    except Exception as error:
        if not is_out_of_memory(error):
            raise
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
    """'auto' is high on a GPU and low on a CPU, where tiling costs ~17x the prefill (README "Chat")."""
    if detail in ("low", "high"):
        return detail
    return "high" if loaded.device.startswith("cuda") else "low"


def count_visual_tokens(loaded: LoadedModel, inputs: dict) -> int:
    ids = inputs["input_ids"]
    return int(sum((ids == token).sum().item() for token in loaded.media_token_ids()))
