"""Fidelity: what our pipeline hands the model equals what the model card's own code gives.

For images the reference is ``processor.apply_chat_template(messages, add_generation_prompt=True,
tokenize=True, return_dict=True, return_tensors="pt")`` with the image given by path, as on the
model cards. For video the reference is the processor's OWN frame sampling, run on every frame of
the clip decoded independently: our sampler + reader must pick and decode the same frames, so
the inputs are identical too.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from pipelines import media
from pipelines.chat import ChatRequest, prepare_chat
from pipelines.messages import Attachment, Turn
from pipelines.registry import SMOLVLM
from pipelines.runtime import Runtime
from tests.media_factory import decode_frame_index

RUNTIME = Runtime(device="cpu", dtype="fp32")
PROMPT = "Can you describe this image?"


def _ours(model_dir, text, attachments, **kwargs):
    request = ChatRequest(model=str(model_dir), turns=(Turn("user", text, tuple(attachments)),), **kwargs)
    return prepare_chat(request, RUNTIME)


def _reference(processor, content, **processor_kwargs):
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt", **processor_kwargs)


def _assert_same_inputs(ours: dict, reference: dict) -> None:
    assert torch.equal(ours["input_ids"].cpu(), reference["input_ids"])
    for key, value in reference.items():
        if key.startswith("pixel_values"):
            assert torch.equal(ours[key].cpu().to(value.dtype), value), key


@pytest.mark.parametrize("count", [1, 2])
def test_image_inputs_equal_the_model_card_code(tiny_model, sample_image, second_image, count):
    paths = [sample_image, second_image][:count]
    prepared = _ours(tiny_model, PROMPT, [Attachment("image", str(p)) for p in paths], image_detail="high")
    content = [{"type": "image", "path": str(p)} for p in paths] + [{"type": "text", "text": PROMPT}]
    _assert_same_inputs(prepared.inputs, _reference(prepared.loaded.processor, content))


def test_video_frames_and_inputs_equal_the_processors_own_sampling(tiny_model, short_video):
    prepared = _ours(tiny_model, "What happens?", [Attachment("video", str(short_video))])
    loaded = prepared.loaded
    every_frame = _decode_every_frame(short_video)
    info = media.probe_video(short_video)
    metadata = {"total_num_frames": len(every_frame), "fps": info.fps, "duration": info.duration,
                "width": info.width, "height": info.height}
    spec = loaded.spec
    sampling = {"fps": spec.video_fps, "num_frames": spec.video_max_frames} if spec.family == SMOLVLM \
        else {"num_frames": spec.video_max_frames}
    reference_indices = loaded.processor.video_processor.sample_frames(
        _metadata_object(metadata), **sampling).tolist()
    ours_indices = [decode_frame_index(frame) for frame, _ in prepared.frames_seen]
    assert ours_indices == reference_indices

    reference = _reference(
        loaded.processor,
        [{"type": "video", "video": every_frame}, {"type": "text", "text": "What happens?"}],
        processor_kwargs={"video_metadata": [metadata], "do_sample_frames": True, **sampling},
    )
    _assert_same_inputs(prepared.inputs, reference)


def _metadata_object(metadata: dict):
    from transformers.video_utils import VideoMetadata

    return VideoMetadata(**metadata)


def _decode_every_frame(path) -> np.ndarray:
    """An independent reader (plain PyAV, every frame) so the reference shares no code with ours."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
