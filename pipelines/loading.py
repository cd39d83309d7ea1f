"""Model loading with a small cache.

Contract: ``load_model(name, device=None, dtype=None) -> LoadedModel`` returns the processor and
model for a registry key, hub id or local checkpoint directory, on the chosen device and dtype,
ready for inference (eval mode, guarded by the device lock). Loading is safetensors-only and never
runs remote code. The cache keeps the most recently used ``MAX_CACHED_MODELS`` models (two, so
Compare can hold a pair); a failure raises ``ModelUnavailableError`` naming the model and saying
how to use a local path instead.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlparse

import torch

from .devices import choose_device, choose_dtype, dtype_name, guard_model, on_fresh_thread
from .errors import ModelUnavailableError
from .registry import ModelSpec, resolve

log = logging.getLogger(__name__)

MAX_CACHED_MODELS = 2
HUB_PROBE_TIMEOUT_S = 3.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass
class LoadedModel:
    spec: ModelSpec
    processor: object
    model: torch.nn.Module
    device: str
    dtype: torch.dtype
    param_count: int = field(default=0)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def description(self) -> str:
        return f"{self.spec.label} on {self.device} ({dtype_name(self.dtype)})"

    def media_token_ids(self) -> set[int]:
        """Ids of the placeholder tokens that stand for image/video features in input_ids."""
        config = self.model.config
        ids = {getattr(config, name, None) for name in ("image_token_id", "video_token_id", "image_token_index")}
        return {i for i in ids if isinstance(i, int) and i >= 0}


_cache: "OrderedDict[tuple, LoadedModel]" = OrderedDict()
# Held for dictionary operations only, never during a load (minutes): is_loaded stays instant.
_cache_lock = threading.Lock()
# One load at a time: two at once would need the memory of both while either is half-built.
_load_lock = threading.Lock()


def load_model(name: str, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    spec, chosen_device, chosen_dtype = resolve_placement(name, device, dtype)
    key = (spec.source, chosen_device, chosen_dtype)
    cached = _cached(key)
    if cached is not None:  # no wait for a load of another model
        return cached
    with _load_lock:
        cached = _cached(key)  # the thread we waited for may have loaded this very model
        if cached is not None:
            return cached
        with _cache_lock:
            while len(_cache) >= MAX_CACHED_MODELS:
                _evict_oldest()
        loaded = on_fresh_thread(_load_uncached, spec, chosen_device, chosen_dtype)  # see pipelines.devices
        with _cache_lock:
            _cache[key] = loaded
        return loaded


def _cached(key: tuple) -> LoadedModel | None:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    return None


def resolve_placement(name: str, device: str | None = None, dtype: str | None = None) -> tuple[ModelSpec, str, torch.dtype]:
    """The spec, device and dtype ``load_model`` would use, without loading anything."""
    spec = resolve(name)
    chosen_device = choose_device(device)
    return spec, chosen_device, choose_dtype(chosen_device, dtype)


def is_loaded(name: str, device: str | None = None, dtype: str | None = None) -> bool:
    spec, chosen_device, chosen_dtype = resolve_placement(name, device, dtype)
    with _cache_lock:
        return (spec.source, chosen_device, chosen_dtype) in _cache


def unload_model(name: str, device: str | None = None, dtype: str | None = None) -> bool:
    """Drop one model from the cache and free its memory (once no running request holds it).

    Compare's one-after-the-other mode calls this between its two runs when both models do not
    fit at once. Returns whether the model was cached.
    """
    spec, chosen_device, chosen_dtype = resolve_placement(name, device, dtype)
    with _cache_lock:
        loaded = _cache.pop((spec.source, chosen_device, chosen_dtype), None)
    if loaded is None:
        return False
    log.info("Unloading %s", loaded.description)
    del loaded
    free_memory()
    return True


def needs_download(name: str) -> bool:
    """True when ``name`` is a hub model whose files are not in the local Hugging Face cache yet:
    loading it downloads it first (huggingface_hub shows progress bars in the terminal)."""
    try:
        spec = resolve(name)
    except ModelUnavailableError:
        return False
    if spec.is_local:
        return False
    from huggingface_hub import try_to_load_from_cache

    return not isinstance(try_to_load_from_cache(spec.source, "config.json"), str)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds.

    Asked before loading a hub model, because with no network the hub client retries every file
    with back-off: minutes of "downloading" before a failure, or before a cached model loads.
    False in offline mode (HF_HUB_OFFLINE); True behind a proxy (only the proxy knows the way).
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError as error:
        log.warning("The model hub (%s) cannot be reached: %s", url.hostname, error)
        return False
    return True


def cached_models() -> list[LoadedModel]:
    with _cache_lock:
        return list(_cache.values())


def clear_cache() -> None:
    with _cache_lock:
        while _cache:
            _evict_oldest()


def _evict_oldest() -> None:
    _, loaded = _cache.popitem(last=False)
    log.info("Unloading %s", loaded.description)
    del loaded
    free_memory()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _load_uncached(spec: ModelSpec, device: str, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    log.info("Loading %s from %s on %s (%s)", spec.label, spec.source, device, dtype_name(dtype))
    local_only = not spec.is_local and not hub_reachable()
    if local_only and needs_download(spec.source):
        raise ModelUnavailableError(_unavailable_message(spec, OSError("the model hub cannot be reached")))
    try:
        processor = AutoProcessor.from_pretrained(spec.source, trust_remote_code=False, local_files_only=local_only)
        model = AutoModelForImageTextToText.from_pretrained(
            spec.source, dtype=dtype, use_safetensors=True, trust_remote_code=False, local_files_only=local_only
        )
    except (OSError, ValueError, ImportError, KeyError) as error:
        raise ModelUnavailableError(_unavailable_message(spec, error)) from error
    model.to(device).eval()
    guard_model(model)
    count = sum(p.numel() for p in model.parameters())
    return LoadedModel(spec, processor, model, device, dtype, count)


def load_error_reason(error: Exception) -> str:
    """A loading error's first line (at most 200 characters), for a user-worded message: the
    hub's and transformers' errors run to many lines."""
    text = str(error).strip()
    return text.splitlines()[0][:200].rstrip(". ") if text else type(error).__name__


def _unavailable_message(spec: ModelSpec, error: Exception) -> str:
    reason = load_error_reason(error)
    if spec.is_local:
        return f"Could not load the checkpoint in '{spec.source}': {reason}"
    return (
        f"Could not load {spec.label} ({spec.source}): {reason}. If this machine has no internet "
        f"access, download the model elsewhere (hf download {spec.source} --local-dir DIR), "
        f"copy DIR here and start the app with: python app.py --model DIR"
    )
