"""The language model's keys and values for the part of a scoring prompt that comes before the
question, kept in memory, so re-scoring a video with new criteria runs only the question's tokens.

A scoring row is ``[system prompt, the clip's frames (media tokens)] [what is said, the question,
the answer header]``. The first part depends on the clip's pixels and the model only, never on
the criteria; the language model's keys and values for it (its "prefix") are what a pass on the
whole row computes anyway. So a scan that passes ``use_cache=True`` keeps each row's prefix here
(sliced out of the batch, left padding dropped), and the next scan of the same windows with other
criteria runs the model on the rest of each row only, attending to the kept prefix: 74 of a
row's 317 tokens on SmolVLM2 with two frames (README "Highlights"); the vision encoder does not
run and no frame features are read.

Contract
--------
* ``PrefixCache(max_bytes)``: thread-safe, in host memory (the process's own: a re-score in the
  app or a CLI run of several criteria; moved to the model's device for each pass), least recently used entries dropped beyond ``max_bytes``
  (``VLMS_PREFIX_CACHE_MB``, default 1024; 0 turns it off). Keyed by the frames' identity (the
  feature store's folder and key: video content, model, dtype, processor settings, frame
  numbers) and the prefix's token ids (system prompt, timestamps, placeholders): a memory layer
  in front of the feature store, which a store in another folder does not see.
* ``rows(loaded, input_ids, attention_mask)`` -> per row its first real token and where its
  prefix ends (just after its last media token), or None when a row has no media token.
* ``keep(keys, spans, past_key_values)`` after a full pass; ``lookup(keys, prefix_ids)`` -> the
  rows' prefixes when EVERY row is kept (a batch is all or nothing: a partial hit takes the full
  pass, which is always right); ``suffix_pass(loaded, prefixes, suffixes, **kwargs)`` -> logits
  at each row's last token, equal to the full pass's (tests: within 1e-5, both tiny checkpoints,
  rows with different speech lines and criteria of different lengths).
* Local engine only: on ZeroGPU the pass runs in a forked worker, whose caches would have to be
  pickled back; a model server (vLLM) has its own prefix caching.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

DEFAULT_MAX_MB = 1024


def default_max_bytes() -> int:
    return int(float(os.environ.get("VLMS_PREFIX_CACHE_MB", DEFAULT_MAX_MB)) * (1 << 20))


@dataclass(frozen=True)
class Prefix:
    """One row's kept prefix: its token ids and, per layer, its (keys, values) of shape
    (1, kv heads, prefix length, head size)."""

    ids: torch.Tensor
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    @property
    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers)

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def rows(loaded, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[tuple[int, int]] | None:
    """Per row (first real token, end of the prefix = one past the row's last media token) of a
    LEFT-padded batch; None when some row has no media token (nothing to keep)."""
    media = torch.tensor(sorted(loaded.media_token_ids()), device=input_ids.device)
    spans = []
    for row in range(input_ids.shape[0]):
        where = torch.isin(input_ids[row], media).nonzero()
        if where.numel() == 0:
            return None
        spans.append((int((attention_mask[row] == 0).sum()), int(where.max()) + 1))
    return spans


def row_key(frames_key: str, prefix_ids: torch.Tensor) -> str:
    """A row's key: its frames' identity and the prefix's token ids."""
    digest = hashlib.sha256(prefix_ids.to("cpu", torch.int64).numpy().tobytes()).hexdigest()[:24]
    return f"{frames_key}:{digest}"


class PrefixCache:
    """Rows' prefixes in memory, bounded (module docstring)."""

    def __init__(self, max_bytes: int | None = None):
        self._max_bytes = max_bytes  # None: VLMS_PREFIX_CACHE_MB, read when used (nothing at import)
        self._entries: "OrderedDict[str, Prefix]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        return default_max_bytes() if self._max_bytes is None else int(self._max_bytes)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def lookup(self, keys: list[str]) -> list[Prefix] | None:
        """Every row's prefix (refreshed as recently used), or None if any is missing."""
        with self._lock:
            found = [self._entries.get(key) for key in keys]
            if any(prefix is None for prefix in found):
                return None
            for key in keys:
                self._entries.move_to_end(key)
            return found

    def keep(self, keys: list[str], input_ids: torch.Tensor, spans: list[tuple[int, int]], past_key_values) -> None:
        """Slice each row's prefix out of a full pass's cache and keep it in host memory (copies:
        the batch's tensors are freed, and a GPU keeps its memory for models); the least recently
        used go first when over the bound."""
        for row, (key, (start, end)) in enumerate(zip(keys, spans)):
            layers = tuple((_host_copy(layer.keys[row:row + 1, :, start:end]), _host_copy(layer.values[row:row + 1, :, start:end]))
                           for layer in past_key_values.layers)
            self._put(key, Prefix(_host_copy(input_ids[row, start:end]), layers))

    def _put(self, key: str, prefix: Prefix) -> None:
        size, bound = prefix.nbytes, self.max_bytes
        if size > bound:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = prefix
            self._bytes += size
            while self._bytes > bound:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes


def _host_copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to("cpu", copy=True)


def suffix_pass(loaded, prefixes: list[Prefix], suffixes: list[torch.Tensor], **forward_kwargs) -> torch.Tensor:
    """The model on each row's suffix tokens, attending to its kept prefix -> (rows, 1, vocab)
    logits at each row's last token. Prefixes are left-padded to one length and suffixes too,
    with the padding masked out and positions counted over real tokens only, so every row
    computes what its full pass did."""
    from transformers import DynamicCache

    device = loaded.device
    count, longest_prefix = len(prefixes), max(len(p) for p in prefixes)
    longest_suffix = max(int(s.shape[0]) for s in suffixes)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    ids = torch.full((count, longest_suffix), pad, dtype=torch.long, device=device)
    mask = torch.zeros((count, longest_prefix + longest_suffix), dtype=torch.long, device=device)
    positions = torch.zeros((count, longest_suffix), dtype=torch.long, device=device)
    for row, (prefix, suffix) in enumerate(zip(prefixes, suffixes)):
        size = int(suffix.shape[0])
        ids[row, longest_suffix - size:] = suffix.to(device)
        mask[row, longest_prefix - len(prefix):longest_prefix] = 1
        mask[row, longest_prefix + longest_suffix - size:] = 1
        positions[row, longest_suffix - size:] = len(prefix) + torch.arange(size, device=device)
    cache = DynamicCache(ddp_cache_data=_padded_layers(prefixes, longest_prefix, device),
                         config=loaded.model.config)
    with torch.inference_mode():
        output = loaded.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                              use_cache=True, logits_to_keep=1, **forward_kwargs)
    return output.logits


def _padded_layers(prefixes: list[Prefix], length: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the rows' keys and values left-padded (zeros, masked out) to ``length``."""
    layers = []
    for layer in range(len(prefixes[0].layers)):
        first_keys = prefixes[0].layers[layer][0]
        shape = (len(prefixes), first_keys.shape[1], length, first_keys.shape[3])
        keys = torch.zeros(shape, dtype=first_keys.dtype, device=device)
        values = torch.zeros(shape, dtype=first_keys.dtype, device=device)
        for row, prefix in enumerate(prefixes):
            row_keys, row_values = prefix.layers[layer]
            keys[row, :, length - len(prefix):] = row_keys[0].to(device)
            values[row, :, length - len(prefix):] = row_values[0].to(device)
        layers.append((keys, values))
    return layers


PREFIXES = PrefixCache()  # the process's own (the local engine's scorers share it)

__all__ = ["DEFAULT_MAX_MB", "PREFIXES", "Prefix", "PrefixCache", "default_max_bytes", "row_key", "rows", "suffix_pass"]
