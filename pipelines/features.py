"""Vision features per video frame, computed once and kept on disk, so re-scoring a video with new
criteria is language-model work only.

What the vision encoder makes of a frame (SmolVLM: vision tower + connector; PerceptionLM: vision
tower + projector) depends on the frame's pixels and the model, never on the question asked about
it. So a scan keeps every frame's features, and the next scan of the same video content (other
criteria, a second criteria list, another threshold) feeds them to the language model through
transformers' ``mm_encoder_outputs`` instead of pixels: the vision encoder does not run and the
video is not decoded again.

Contract
--------
* ``FeatureStore(folder, max_bytes)`` keeps one safetensors file per frame under ``folder``, keyed
  by (video CONTENT hash, model source, dtype, the video processor's settings (frame size,
  normalisation, padding), frame index, ``FEATURES_VERSION``). ``for_video(hash)`` binds a video;
  ``VideoFeatures.for_model(loaded)`` binds the model: ``FrameFeatures.has_all``, ``get``,
  ``put_many``. Files are written atomically; an unreadable one is a miss, never an error. The
  folder is kept under ``max_bytes`` (default ``VLMS_FEATURE_CACHE_MB``, else 2 GiB): after each
  write the least recently USED files (a read refreshes the time) are deleted first.
* ``split_pixels``, ``encode_frames``, ``features_pass``: the model side, run where the engine
  runs the model (this process, or ZeroGPU's worker). ``features_pass(loaded, text_inputs,
  frames, **forward_kwargs)`` encodes only the frames whose features are not known, merges them
  with the known ones in prompt order, and runs ONE language-model forward pass with them. A
  frame identical (processed pixels, bit for bit) to the frame before it is not encoded again
  (``encode_distinct``): static shots cost one encoding; the scores are the same.
  Features are kept in the model's dtype, so a cached pass computes what the pixel pass does
  (tests: within 1e-4 on both tiny checkpoints).
* Generation reads them too: ``with_kept_features(loaded, inputs, indices, frames)`` puts a
  one-video prompt's frames as features (kept ones read, new ones encoded and kept) in place of
  its pixels; ``generate_inputs`` hands them to ``model.generate`` (transformers encodes pixels
  in generate's own ``mm_encoder_outputs`` step, which pre-encoded features skip). The
  highlights' criteria step shows the model frames of the scan's grid this way, so those frames
  are encoded once for both (pipelines.highlights.pipeline ``criteria_frames``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from .registry import PERCEPTION_LM, SMOLVLM

log = logging.getLogger(__name__)

FEATURES_VERSION = 1
DEFAULT_MAX_MB = 2048
# Where each family's processor puts video frames, and the mm_encoder_outputs slot it reads back.
_PIXELS = {SMOLVLM: "pixel_values", PERCEPTION_LM: "pixel_values_videos"}
_SLOT = {SMOLVLM: "image", PERCEPTION_LM: "video"}
_MASK = "pixel_attention_mask"  # SmolVLM only: which pixels of a padded frame are real


def default_max_bytes() -> int:
    return int(float(os.environ.get("VLMS_FEATURE_CACHE_MB", DEFAULT_MAX_MB)) * (1 << 20))


# =============================================================================================
# On disk
# =============================================================================================


class FeatureStore:
    """Per-frame features on disk, bounded in size (module docstring)."""

    def __init__(self, folder, max_bytes: int | None = None, enabled: bool = True):
        self.folder = Path(folder)
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self.enabled = enabled
        self._trim_lock = threading.Lock()
        self._estimate: int | None = None  # bytes in the folder as last listed, plus writes since

    def for_video(self, video_hash: str) -> "VideoFeatures | None":
        """None when the store is disabled (then scoring takes the pixel path, as before)."""
        return VideoFeatures(self, video_hash) if self.enabled else None

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def trim(self, added: int = 0) -> None:
        """Delete the least recently used files until the folder holds at most ``max_bytes``.

        ``added``: bytes just written. The folder is listed only when the running estimate of
        its size passes the bound (listing tens of thousands of files for every batch would
        cost seconds per scan); other processes' writes are seen at the next listing."""
        with self._trim_lock:
            if self._estimate is not None:
                self._estimate += added
                if self._estimate <= self.max_bytes:
                    return
            files = sorted(self._entries())  # oldest use first
            total = sum(size for _, size, _ in files)
            for _, size, entry in files:
                if total <= self.max_bytes:
                    break
                entry.unlink(missing_ok=True)
                total -= size
            self._estimate = total

    def _entries(self) -> list[tuple[int, int, Path]]:
        """(last use in ns, bytes, path) of every file; one that vanished meanwhile is left out."""
        entries = []
        for entry in self.folder.glob("*.safetensors"):
            try:
                status = entry.stat()
            except OSError:  # removed by another scan's trim
                continue
            entries.append((status.st_mtime_ns, status.st_size, entry))
        return entries


@dataclass(frozen=True)
class VideoFeatures:
    """The store, bound to one video's content."""

    store: FeatureStore
    video_hash: str

    def for_model(self, loaded) -> "FrameFeatures":
        return FrameFeatures(self.store, _prefix(self.video_hash, loaded))


def _prefix(video_hash: str, loaded) -> str:
    """Everything but the frame index that changes a frame's features."""
    from .devices import dtype_name

    processor = getattr(loaded.processor, "video_processor", None)
    settings = processor.to_dict() if processor is not None else {}
    parts = dict(version=FEATURES_VERSION, video=video_hash, model=loaded.spec.source, dtype=dtype_name(loaded.dtype),
                 processor=settings)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FrameFeatures:
    """One video's frames as one model sees them: ``(tokens, hidden)`` tensors by frame index."""

    store: FeatureStore
    prefix: str

    def path(self, index: int) -> Path:
        return self.store.path(f"{self.prefix}-{int(index)}")

    def has_all(self, indices: Iterable[int]) -> bool:
        return all(self.path(i).is_file() for i in indices)

    def get(self, index: int) -> torch.Tensor | None:
        """The frame's features, or None (missing or unreadable: it is then encoded again)."""
        from safetensors.torch import load_file

        path = self.path(index)
        try:
            tensor = load_file(str(path))["features"]
            os.utime(path)  # recently used: trimmed last
            return tensor
        except FileNotFoundError:
            return None
        except Exception as error:  # a damaged entry costs one encoding, never the request
            log.warning("Ignoring unreadable frame features %s: %s", path.name, error)
            return None

    def put_many(self, features: dict[int, torch.Tensor]) -> None:
        """Store each frame's features (atomically), then keep the folder within its bound."""
        if not features:
            return
        written = 0
        try:
            self.store.folder.mkdir(parents=True, exist_ok=True)
            for index, tensor in features.items():
                written += self._write(index, tensor)
        except OSError as error:  # a read-only or full disk costs speed later, not this result
            log.warning("Could not write frame features in %s: %s", self.store.folder, error)
            return
        self.store.trim(written)

    def _write(self, index: int, tensor: torch.Tensor) -> int:
        """Write one frame's features atomically; returns the file's size."""
        from safetensors.torch import save_file

        handle, temporary = tempfile.mkstemp(prefix=".features.", dir=self.store.folder)
        os.close(handle)
        try:
            save_file({"features": tensor.detach().to("cpu").contiguous()}, temporary)
            size = os.path.getsize(temporary)
            os.replace(temporary, self.path(index))
        finally:
            Path(temporary).unlink(missing_ok=True)
        return size


# =============================================================================================
# Model side (runs where the engine runs the model)
# =============================================================================================


@dataclass
class FrameInputs:
    """The frames of one scoring batch, in prompt order: ``known[k]`` is frame k's cached features
    or None; the pixels (and SmolVLM's pixel masks) of the None ones, in order, are ``pixels``."""

    known: list[torch.Tensor | None]
    pixels: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    @property
    def missing(self) -> list[int]:
        return [k for k, features in enumerate(self.known) if features is None]


def split_pixels(loaded, inputs: dict) -> tuple[dict, torch.Tensor, torch.Tensor | None]:
    """Processor output -> (inputs without pixels, pixels per frame (N, C, H, W), masks (N, H, W)
    or None). Frames are flattened row by row: the order of the image placeholders in the batch."""
    text = dict(inputs)
    pixels = text.pop(_PIXELS[loaded.spec.family])
    masks = text.pop(_MASK, None)
    return text, pixels.flatten(0, 1), masks.flatten(0, 1) if masks is not None else None


def frame_inputs(known: list[torch.Tensor | None], pixels: torch.Tensor, masks: torch.Tensor | None) -> FrameInputs:
    """Only the pixels of the frames still to encode travel on (to ZeroGPU's worker: less to pickle)."""
    missing = FrameInputs(known).missing
    if not missing:
        return FrameInputs(known)
    return FrameInputs(known, pixels[missing], masks[missing] if masks is not None else None)


# Frames per vision-encoder call, by device kind, chosen by measurement (benchmarks/vision_batch.py,
# full-size SmolVLM2-256M in bf16 on the 2-core AMD EPYC with AVX512-BF16): 0.58 s a frame one at a
# time, 0.61-0.62 s at 2-4 a call, 0.65 s at 8 (a scan's 4 windows x 2 frames), 0.67 s at 16: on a
# CPU a bigger batch only spills the activations out of the cache. A GPU is fastest with the whole
# batch at once (not measured here: no GPU was lent), so it gets everything in one call.
VISION_FRAMES_PER_CALL = {"cpu": 1}


def encode_frames(loaded, pixels: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C, H, W) frames -> (N, tokens, hidden) features, exactly as the model's own forward
    pass makes them (its ``get_image_features``), in the model's dtype; ``VISION_FRAMES_PER_CALL``
    frames at a time (each frame is encoded on its own either way)."""
    step = VISION_FRAMES_PER_CALL.get(str(loaded.device).split(":")[0], pixels.shape[0])
    parts = [encode_in_one_call(loaded, pixels[k:k + step], masks[k:k + step] if masks is not None else None)
             for k in range(0, pixels.shape[0], step)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def encode_in_one_call(loaded, pixels: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """``encode_frames`` in ONE encoder call, whatever the device (benchmarks/vision_batch.py)."""
    model = loaded.model.model
    with torch.inference_mode():
        if loaded.spec.family == SMOLVLM:
            batch_masks = masks[None] if masks is not None else None
            output = model.get_image_features(pixels[None], batch_masks, return_dict=True)
            flat = torch.cat(list(output.pooler_output))
        else:
            flat = model.get_image_features(pixel_values=pixels[None], return_dict=True).pooler_output
    return flat.reshape(pixels.shape[0], -1, flat.shape[-1]).to(loaded.dtype)


def encode_distinct(loaded, pixels: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """``encode_frames``, but a frame whose processed pixels equal the previous frame's, bit for
    bit (a static shot: slides, a paused or locked-off camera), reuses its features instead of
    being encoded again. Equal inputs give equal features, so the scores do not move."""
    repeats = [False] + [same_frame(pixels, masks, k - 1, pixels, masks, k) for k in range(1, pixels.shape[0])]
    distinct = [k for k, repeat in enumerate(repeats) if not repeat]
    encoded = encode_frames(loaded, pixels[distinct], masks[distinct] if masks is not None else None)
    owner = torch.cumsum(torch.tensor([not repeat for repeat in repeats]), 0) - 1  # last distinct frame so far
    return encoded[owner.to(encoded.device)]


def same_frame(pixels_a: torch.Tensor, masks_a: torch.Tensor | None, a: int,
               pixels_b: torch.Tensor, masks_b: torch.Tensor | None, b: int) -> bool:
    """Frame ``a`` of one batch and frame ``b`` of another hold the same processed pixels."""
    if not torch.equal(pixels_a[a], pixels_b[b]):
        return False
    return masks_a is None or masks_b is None or torch.equal(masks_a[a], masks_b[b])


class FeaturesMissing(Exception):
    """Internal: a frame scored without pixels (a placeholder) has no kept features any more
    (evicted or damaged since it was checked); the caller decodes that window instead."""


def features_pass(loaded, text_inputs: dict, frames: FrameInputs, *, keep: Callable | None = None,
                  **forward_kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ONE forward pass on known + newly encoded features -> (logits, the new features (M, tokens,
    hidden) in ``frames.missing`` order, or None when every frame was known). ``keep``: called with
    the pass's key/value cache (pass ``use_cache=True``; pipelines.prefix_cache keeps prefixes)."""
    from .devices import DEVICE_LOCK, current_cancel_event
    from .errors import GenerationCancelled

    cancel = current_cancel_event()
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("Stopped.")
    # The encoder runs outside the model's top-level forward (whose hooks take the device lock):
    # hold the lock around both, as one pass. It is re-entrant, and refuses a stopped request.
    with DEVICE_LOCK.held(cancel):
        return _features_pass(loaded, text_inputs, frames, keep, **forward_kwargs)


def _features_pass(loaded, text_inputs: dict, frames: FrameInputs, keep: Callable | None = None, **forward_kwargs):
    device = loaded.device
    new = None
    if frames.pixels is not None:
        new = encode_distinct(loaded, frames.pixels.to(device), _on(frames.masks, device))
    merged = merge_features(loaded, frames.known, new)
    inputs = {name: _on(value, device) for name, value in text_inputs.items()}
    with torch.inference_mode():
        output = loaded.model(**inputs, mm_encoder_outputs=encoder_outputs(loaded, merged), **forward_kwargs)
    if keep is not None and output.past_key_values is not None:
        keep(output.past_key_values)
    return output.logits, new


def merge_features(loaded, known: Sequence[torch.Tensor | None], new: torch.Tensor | None) -> torch.Tensor:
    """(N, tokens, hidden) on the model's device and dtype, in prompt order: each known frame's
    features, and the newly encoded ones (``new``, in order) where ``known`` has None."""
    fresh = iter(new) if new is not None else iter(())
    return torch.stack([(f if f is not None else next(fresh)).to(loaded.device, loaded.dtype) for f in known])


def encoder_outputs(loaded, merged: torch.Tensor) -> dict:
    """Per-frame features -> transformers' ``mm_encoder_outputs`` (the slot this family reads)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    pooled = merged.reshape(-1, merged.shape[-1]) if loaded.spec.family == SMOLVLM else merged
    return {_SLOT[loaded.spec.family]: BaseModelOutputWithPooling(pooler_output=pooled)}


# --------------------------------------------------------------------------------------------
# Generation on kept features (a one-video chat prompt: the highlights' criteria step)
# --------------------------------------------------------------------------------------------

# The key under which a prompt's inputs carry its video's frame features in place of its pixels:
# a plain tensor, so the engines move it like any input (ZeroGPU pickles inputs to its worker).
FEATURES_INPUT = "frame_features"


def encode_held(loaded, pixels: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
    """``encode_distinct`` on the model's device under the device lock (the encoder runs outside
    the model's top-level forward, whose hooks take the lock); features on the CPU."""
    from .devices import DEVICE_LOCK, current_cancel_event

    with DEVICE_LOCK.held(current_cancel_event()):
        return encode_distinct(loaded, pixels.to(loaded.device), _on(masks, loaded.device)).cpu()


def with_kept_features(loaded, inputs: dict, indices: Sequence[int], frames: "FrameFeatures",
                       encode: Callable = encode_held) -> dict:
    """A one-video prompt's inputs with its frames as vision features instead of pixels: the kept
    ones read from ``frames``, the others encoded by ``encode(loaded, pixels, masks)`` (where the
    engine runs the model) and kept for the next user of this video's frames (the scan).
    ``indices``: the frames' numbers in the video, in prompt order. ``generate_inputs`` turns
    the result into what ``model.generate`` takes; the answer equals the pixel prompt's."""
    text, pixels, masks = split_pixels(loaded, inputs)
    if pixels.shape[0] != len(indices):
        raise ValueError(f"{len(indices)} frame numbers were given for {pixels.shape[0]} frames")
    known = [frames.get(int(index)) for index in indices]
    request = frame_inputs(known, pixels, masks)
    new = encode(loaded, request.pixels, request.masks) if request.missing else None
    if new is not None:
        frames.put_many({int(indices[k]): features for k, features in zip(request.missing, new)})
    return {**text, FEATURES_INPUT: merge_features(loaded, known, new)}


def generate_inputs(loaded, inputs: dict) -> dict:
    """Inputs for ``model.generate``: kept frame features (``with_kept_features``) go in the
    ``mm_encoder_outputs`` slot; any other inputs are returned as they are."""
    if FEATURES_INPUT not in inputs:
        return inputs
    rest = dict(inputs)
    merged = rest.pop(FEATURES_INPUT).to(loaded.device, loaded.dtype)
    return {**rest, "mm_encoder_outputs": encoder_outputs(loaded, merged)}


def _on(value, device):
    return value.to(device) if hasattr(value, "to") else value


def flatten_frames(frames: Sequence[Sequence[int]]) -> list[int]:
    return [int(i) for clip in frames for i in clip]


__all__ = ["FEATURES_INPUT", "FEATURES_VERSION", "FeatureStore", "FeaturesMissing", "FrameFeatures", "FrameInputs",
           "VISION_FRAMES_PER_CALL", "VideoFeatures", "encode_distinct", "encode_frames", "encode_held",
           "encode_in_one_call", "encoder_outputs", "features_pass", "frame_inputs", "generate_inputs", "merge_features",
           "same_frame", "split_pixels", "with_kept_features"]
