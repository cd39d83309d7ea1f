"""Local engines: transformers in this process (the default), and the same on a ZeroGPU Space.

``LocalEngine`` is today's behaviour: models load through the shared cache (pipelines.loading),
generation streams on a worker thread (pipelines.generation), scoring is one batched forward pass
(pipelines.scoring), every forward pass under the device lock. A scorer given a video's frame
features (pipelines.features) encodes each frame once and scores on the kept features after.

``ZeroGPUEngine`` is the same, except that the model work itself, generation AND scoring, runs
under ``spaces.GPU`` with an estimated duration (pipelines.zerogpu): on a ZeroGPU Space the GPU
is only reachable from spaces' worker. ``local_engine()`` picks it when ``zerogpu.enabled()``.
"""

from __future__ import annotations

import threading
from typing import Sequence

from .. import encoding, memory, zerogpu
from ..features import VideoFeatures, encode_held, features_pass, with_kept_features
from ..generation import stream_generate
from ..prefix_cache import PREFIXES
from ..messages import BuiltConversation
from ..registry import PERCEPTION_LM
from ..scoring import Scorer, local_logits
from .base import Capabilities, PreparedChat, fit_to_context


class LocalEngine:
    kind = "local"
    # Scoring keeps rows' prefixes in this process (pipelines.prefix_cache): re-scores run only the
    # question. ZeroGPU's passes run in a forked worker, whose caches would have to travel back.
    keeps_prefixes = True

    def spec(self, model: str, runtime):
        return runtime.load(model).spec

    def capabilities(self, model: str, runtime) -> Capabilities:
        spec = self.spec(model, runtime)
        return Capabilities(images=True, video=True, max_images=None, context_length=spec.context_length,
                            local_only=spec.family == PERCEPTION_LM)

    def prepare(self, model: str, built: BuiltConversation, settings, detail: str, runtime,
                features: VideoFeatures | None = None) -> PreparedChat:
        """``features``: for a conversation with one video and no image, its frames go to the
        model as kept vision features (new ones encoded here and kept; pipelines.features)."""
        loaded = runtime.load(model)
        detail = encoding.resolve_detail(detail, loaded)
        inputs = encoding.encode(loaded, built, detail)  # looked up at call time (tests watch it)
        if features is not None and len(built.videos) == 1 and not built.images:
            inputs = with_kept_features(loaded, inputs, built.videos[0].sample.indices, features.for_model(loaded),
                                        self._encode)
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        settings = fit_to_context(settings, prompt_tokens, loaded.spec.context_length, built.notices)
        return PreparedChat(loaded, inputs, settings, prompt_tokens, encoding.count_visual_tokens(loaded, inputs),
                            detail, notices=built.notices, engine=self, model=model,
                            description=loaded.description, weights_bytes=memory.weights_bytes(loaded.model))

    def stream(self, prepared: PreparedChat, cancel: threading.Event, stall_s: float | None = None):
        return stream_generate(prepared.loaded, prepared.inputs, prepared.settings, cancel, stall_s=stall_s)

    def scorer(self, model: str, question: str, options: Sequence[str] = ("yes", "no"), system_prompt: str = "",
               runtime=None, features: VideoFeatures | None = None) -> Scorer:
        """``features``: the scanned video's frame-feature store (None: pixels every time)."""
        loaded = runtime.load(model)
        return Scorer(loaded, question, options, system_prompt, forward_logits=self._logits,
                      forward_features=self._features_pass,
                      frame_features=features.for_model(loaded) if features is not None else None,
                      prefix_cache=PREFIXES if self.keeps_prefixes else None)

    @staticmethod
    def _logits(loaded, inputs: dict, **forward_kwargs):
        return local_logits(loaded, inputs, **forward_kwargs)

    @staticmethod
    def _features_pass(loaded, text_inputs: dict, frames, **forward_kwargs):
        return features_pass(loaded, text_inputs, frames, **forward_kwargs)

    @staticmethod
    def _encode(loaded, pixels, masks=None):
        return encode_held(loaded, pixels, masks)


class ZeroGPUEngine(LocalEngine):
    """Generation and scoring under ``spaces.GPU`` (the parent process has no GPU)."""

    kind = "zerogpu"
    keeps_prefixes = False

    def stream(self, prepared: PreparedChat, cancel: threading.Event, stall_s: float | None = None):
        return zerogpu.stream_on_gpu(prepared.loaded, prepared.inputs, prepared.settings, cancel, stall_s=stall_s)

    @staticmethod
    def _logits(loaded, inputs: dict, **forward_kwargs):
        return zerogpu.forward_logits(loaded, inputs, **forward_kwargs)

    @staticmethod
    def _features_pass(loaded, text_inputs: dict, frames, **forward_kwargs):
        return zerogpu.features_pass(loaded, text_inputs, frames, **forward_kwargs)

    @staticmethod
    def _encode(loaded, pixels, masks=None):
        return zerogpu.encode_frames(loaded, pixels, masks)


LOCAL = LocalEngine()
ZEROGPU = ZeroGPUEngine()


def local_engine():
    """The engine of the models this process loads: ZeroGPU's on a ZeroGPU Space, else in-process."""
    return ZEROGPU if zerogpu.enabled() else LOCAL
