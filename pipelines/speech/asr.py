"""Loading a Whisper checkpoint as transformers' automatic-speech-recognition pipeline, cached.

Contract: ``load_asr(name, device=None, dtype=None) -> LoadedAsr`` resolves ``name`` through the
registry's ASR table (``resolve_asr``: typed ModelUnavailableError for a bad name) and returns the
ready pipeline, its model in eval mode on the chosen device and dtype (``pipelines.devices``: the
same choice as the VLMs), guarded by the ONE device lock (so speech recognition and generation
interleave pass by pass, and a set cancel event stops it at its next pass). Loading is
safetensors-only and never runs remote code. This cache is SEPARATE from the VLM cache
(pipelines.loading): it holds the ``MAX_CACHED_ASR`` most recently used ASR pipelines, so loading
Whisper never evicts a chat model and the reverse. ``word_timestamps`` says whether the checkpoint
can time single words (its generation config names ``alignment_heads``); otherwise the
transcription gets segment times.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from .. import zerogpu
from ..devices import choose_device, choose_dtype, dtype_name, guard_model, on_fresh_thread
from ..errors import ModelUnavailableError
from ..loading import free_memory, hub_reachable, load_error_reason
from ..registry import AsrSpec, resolve_asr

log = logging.getLogger(__name__)

MAX_CACHED_ASR = 1  # Whisper base is 0.3 GB in fp32: one is enough, the chat models need the memory


@dataclass
class LoadedAsr:
    spec: AsrSpec
    pipeline: object  # transformers.AutomaticSpeechRecognitionPipeline
    device: str
    dtype: torch.dtype

    @property
    def model(self):
        return self.pipeline.model

    @property
    def word_timestamps(self) -> bool:
        return bool(getattr(self.model.generation_config, "alignment_heads", None))

    @property
    def identity(self) -> str:
        """What the transcript cache keys on: the checkpoint and the precision it ran in."""
        return f"{self.spec.source}|{dtype_name(self.dtype)}"

    @property
    def description(self) -> str:
        return f"{self.spec.label} on {self.device} ({dtype_name(self.dtype)})"


_cache: "OrderedDict[tuple, LoadedAsr]" = OrderedDict()
_cache_lock = threading.Lock()  # dictionary operations only
_load_lock = threading.Lock()  # one ASR load at a time


def placement(name: str, device: str | None = None, dtype: str | None = None) -> tuple[AsrSpec, str, torch.dtype]:
    """The spec, device and dtype ``load_asr`` would use, without loading anything."""
    spec = resolve_asr(name)
    if device in (None, "", "auto") and zerogpu.enabled():
        # A ZeroGPU Space has no GPU in this process (only inside spaces.GPU tasks, which the VLMs
        # use): Whisper runs on its CPU.
        device = "cpu"
    chosen = choose_device(device)
    # The VLMs' choice: bf16 on a GPU and on CPUs with native bf16 (measured on 2 idle cores with
    # AVX512-BF16: 6.0 s per audio minute for tiny against 8.2 s in fp32; base 8.7 s against
    # 14.7 s; benchmarks/speech.py), fp32 elsewhere.
    return spec, chosen, choose_dtype(chosen, dtype)


def load_asr(name: str, device: str | None = None, dtype: str | None = None) -> LoadedAsr:
    spec, chosen_device, chosen_dtype = placement(name, device, dtype)
    key = (spec.source, chosen_device, chosen_dtype)
    with _load_lock:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
            while len(_cache) >= MAX_CACHED_ASR:
                _, old = _cache.popitem(last=False)
                log.info("Unloading %s", old.description)
                del old
                free_memory()
        loaded = on_fresh_thread(_load_uncached, spec, chosen_device, chosen_dtype)
        with _cache_lock:
            _cache[key] = loaded
        return loaded


def is_asr_loaded(name: str, device: str | None = None, dtype: str | None = None) -> bool:
    spec, chosen_device, chosen_dtype = placement(name, device, dtype)
    with _cache_lock:
        return (spec.source, chosen_device, chosen_dtype) in _cache


def clear_asr_cache() -> None:
    with _cache_lock:
        _cache.clear()
    free_memory()


def _load_uncached(spec: AsrSpec, device: str, dtype: torch.dtype) -> LoadedAsr:
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    log.info("Loading %s from %s on %s (%s)", spec.label, spec.source, device, dtype_name(dtype))
    local_only = not spec.is_local and not hub_reachable()
    try:
        processor = AutoProcessor.from_pretrained(spec.source, trust_remote_code=False, local_files_only=local_only)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(
            spec.source, dtype=dtype, use_safetensors=True, trust_remote_code=False, local_files_only=local_only,
        )
    except (OSError, ValueError, ImportError, KeyError) as error:
        raise ModelUnavailableError(_unavailable_message(spec, error)) from error
    if getattr(model.config, "model_type", None) != "whisper":
        raise ModelUnavailableError(f"{spec.label} is not a Whisper checkpoint; speech recognition takes Whisper.")
    if getattr(model.generation_config, "alignment_heads", None):
        # Word timestamps read the cross-attention weights, which only the eager kernel returns.
        model.set_attn_implementation("eager")
    model.to(device).eval()
    guard_model(model)
    asr = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                   feature_extractor=processor.feature_extractor, device=torch.device(device))
    return LoadedAsr(spec, asr, device, dtype)


def _unavailable_message(spec: AsrSpec, error: Exception) -> str:
    reason = load_error_reason(error)
    if spec.is_local:
        return f"Could not load the speech recognition checkpoint in '{spec.source}': {reason}"
    return (
        f"Could not load the speech recognition model {spec.label} ({spec.source}): {reason}. If this machine has "
        f"no internet access, download it elsewhere (hf download {spec.source} --local-dir DIR), copy DIR here "
        f"and pass it as the ASR model: --asr DIR"
    )
