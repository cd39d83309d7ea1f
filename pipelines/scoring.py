"""Batched yes/no scoring: how likely the model is to answer "yes", from ONE forward pass.

Contract: ``Scorer(loaded, question, options=("yes", "no")).score_batch(clips, cancel)`` returns
one probability in [0, 1] per clip of the batch, in order: the model's probability of answering with
``options[0]`` rather than ``options[1]``, read from the logits of the FIRST answer token. Nothing
is generated and no text is searched (the reference highlight generator generated an answer and
looked for "yes" in it, which also matched "eyes").

* Each clip is a ``media.VideoClip`` sent as a short video, exactly like a chat video (the same
  message converter and processor call: pipelines.messages.build_messages and
  pipelines.encoding.encode_batch), so SmolVLM sees "Frame from MM:SS" lines with the clip's own
  timestamps and PerceptionLM gets ``num_frames`` = the clip's frame count.
* Rows of a batch are LEFT-padded, so position -1 of every row is that row's last prompt token;
  ``logits_to_keep=1`` skips the vocabulary projection of every other position. Position ids are
  passed explicitly (count of real tokens so far), so a padded row computes what it would alone:
  batch scores equal one-by-one scores (fp32: within 1e-6 on both families).
* Answer tokens: ``answer_token_ids`` takes the FIRST token of each spelling of each option
  ("yes", " yes", "Yes", " Yes", "YES", " YES"; the leading-space forms are what SmolVLM writes
  after "Assistant:", the bare forms what PerceptionLM writes after its header). Ids that decode
  to whitespace only or that start both options are dropped. The probability of an option is
  the softmax mass of its ids, normalised over the ids of both options.
* Forward passes run through the model's device-lock hooks (pipelines.devices) inside
  ``cancel_scope(cancel)``: Stop ends a scan at its next batch, and a chat and a scan share the
  device fairly. Where the pass runs is the engine's choice (``Scorer(forward_logits=...)``):
  here (``local_logits``), or in ZeroGPU's GPU worker (pipelines.zerogpu.forward_logits).
* Frame features (pipelines.features): a Scorer given ``frame_features`` and, per clip, the
  clip's frame numbers in the source video (``score_batch(clips, cancel, frames)``) feeds the
  vision encoder only the frames it has not seen before and stores what it makes of them; known
  frames go to the language model as features (``forward_features``: here, or in ZeroGPU's
  worker). A clip whose frames are all known needs no real pixels (placeholders of any size
  give the same prompt: ``decoded=False``; if a frame's features went missing meanwhile,
  ``features.FeaturesMissing`` is raised and the caller decodes it). A decoded frame whose
  processed pixels equal the previous frame's, bit for bit (within a batch, or the last frame
  of the previous batch), reuses its features. Scores equal the pixel pass within 1e-4 (fp32,
  both families).
* Kept prefixes (pipelines.prefix_cache): a Scorer given ``prefix_cache`` (and frame features)
  keeps, from each full pass, the language model's keys and values for every row's prefix
  (system prompt + frames); a batch whose rows' prefixes are ALL kept (the same windows scored
  again with other criteria) runs only the tokens after them. Scores equal the full pass's
  (within 1e-5 fp32, both families).
* Per-clip text (``score_batch(..., texts=[...])``): a line said before the question for each clip
  (highlights that hear: "Said in this part: ..."), user text like the question, so control
  tokens in it are neutralised by the processor (``sanitize_control_tokens``). ``count_tokens``
  measures such text as the prompt will hold it (control tokens split like plain text).
* A server engine reads the same probabilities from the logprobs of the first answer token
  (pipelines.engines.server); ``answer_token_ids`` and ``option_probability`` are shared.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from . import features as frame_features_module
from . import prefix_cache as prefix_cache_module
from . import media
from .encoding import encode_batch
from .devices import cancel_scope, on_fresh_thread
from .errors import BadInputError, GenerationCancelled, InputTooLongError, OutOfMemoryError
from .loading import LoadedModel
from .memory import is_out_of_memory
from .messages import VIDEO, Attachment, BuiltConversation, Turn, build_messages

DEFAULT_BATCH_SIZE = 4
_SPELLINGS = ("{}", " {}", "{}", " {}", "{}", " {}")
_CASES = (str.lower, str.lower, str.capitalize, str.capitalize, str.upper, str.upper)


@dataclass(frozen=True)
class AnswerTokens:
    """First-token ids of each option (``positive`` = options[0], ``negative`` = options[1])."""

    positive: tuple[int, ...]
    negative: tuple[int, ...]


def answer_token_ids(tokenizer, options: Sequence[str] = ("yes", "no")) -> AnswerTokens:
    """The first-token ids that start each option, robust to spacing and case (module doc)."""
    if len(options) != 2 or not all(isinstance(o, str) and o.strip() for o in options):
        raise BadInputError("Scoring needs exactly two non-empty answer options, such as yes and no.")
    firsts = [_first_tokens(tokenizer, option.strip()) for option in options]
    shared = firsts[0] & firsts[1]
    positive, negative = (tuple(sorted(ids - shared)) for ids in firsts)
    if not positive or not negative:
        raise BadInputError(f"The model's tokenizer cannot tell '{options[0]}' from '{options[1]}' by their first token.")
    return AnswerTokens(positive, negative)


def _first_tokens(tokenizer, word: str) -> set[int]:
    ids = set()
    for spelling, case in zip(_SPELLINGS, _CASES):
        encoded = tokenizer.encode(spelling.format(case(word)), add_special_tokens=False)
        if encoded and tokenizer.decode(encoded[:1]).strip():
            ids.add(int(encoded[0]))
    return ids


def option_probability(logits: torch.Tensor, answers: AnswerTokens) -> torch.Tensor:
    """(rows, vocab) first-answer-token logits -> (rows,) probability of the positive option."""
    logits = logits.float()
    positive = torch.logsumexp(logits[:, list(answers.positive)], dim=-1)
    negative = torch.logsumexp(logits[:, list(answers.negative)], dim=-1)
    return torch.sigmoid(positive - negative)  # = softmax over the two options' masses


class Scorer:
    """One question, many batches: the prompt parts and answer ids are worked out once."""

    def __init__(self, loaded: LoadedModel, question: str, options: Sequence[str] = ("yes", "no"), system_prompt: str = "",
                 *, forward_logits: Callable[..., torch.Tensor] | None = None,
                 forward_features: Callable[..., tuple] | None = None,
                 frame_features: "frame_features_module.FrameFeatures | None" = None,
                 prefix_cache: "prefix_cache_module.PrefixCache | None" = None):
        """``forward_logits(loaded, inputs, **kwargs)`` -> the model's logits; ``local_logits``
        (this process) unless an engine runs the pass elsewhere. ``forward_features(loaded,
        text_inputs, frame_inputs, **kwargs)`` -> (logits, new features): the same pass fed with
        cached frame features (``features.features_pass`` here). ``frame_features``: the video's
        frame features for this model (None: every pass takes pixels, as before). ``prefix_cache``:
        where rows' prefixes (system prompt + frames) are kept, with ``frame_features`` (None: off;
        pipelines.prefix_cache)."""
        if not question.strip():
            raise BadInputError("The scoring question is empty.")
        self.loaded = loaded
        self.question = question.strip()
        self.system_prompt = system_prompt
        self.answers = answer_token_ids(loaded.tokenizer, options)
        self.forward_logits = forward_logits or local_logits
        self.forward_features = forward_features or frame_features_module.features_pass
        self.frame_features = frame_features
        use_prefixes = prefix_cache is not None and prefix_cache.enabled and frame_features is not None
        self.prefix_cache = prefix_cache if use_prefixes else None
        self._previous: tuple | None = None  # (pixels, masks, features) of the last decoded frame scored

    def score_batch(self, clips: Sequence[media.VideoClip], cancel: threading.Event | None = None,
                    frames: Sequence[Sequence[int]] | None = None, decoded: bool = True,
                    texts: Sequence[str] | None = None) -> list[float]:
        """ONE forward pass for all ``clips`` (caller keeps them to one frame count), on a thread
        that ends with it (see pipelines.devices). ``frames``: each clip's frame numbers in the
        source video, so cached frame features are used and new ones kept; ``decoded=False``:
        the clips' frames are placeholders (module docstring); ``texts``: per clip, a line put
        before the question ("" or None: the question alone)."""
        return on_fresh_thread(self._score_batch, clips, cancel, frames, decoded, texts)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (control tokens counted as the plain text they become)."""
        return len(self.loaded.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def _score_batch(self, clips: Sequence[media.VideoClip], cancel: threading.Event | None,
                     frames: Sequence[Sequence[int]] | None = None, decoded: bool = True,
                     texts: Sequence[str] | None = None) -> list[float]:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Stopped.")
        texts = texts or [""] * len(clips)
        inputs = encode_batch(self.loaded, [self._conversation(clip, text) for clip, text in zip(clips, texts)], "low")
        self._check_context(inputs)
        if self.frame_features is None or frames is None:
            logits = self._forward(inputs, cancel)
        else:
            logits = self._forward_with_features(inputs, frames, cancel, decoded)
        return [float(p) for p in option_probability(logits, self.answers)]

    def _forward_with_features(self, inputs, frames: Sequence[Sequence[int]], cancel: threading.Event | None,
                               decoded: bool = True) -> torch.Tensor:
        """The pass on cached features; the vision encoder sees only frames not seen before. With
        every row's prefix kept (a re-score), only the rows' suffixes run."""
        prefixes = self._prefix_rows(inputs, frames)
        if prefixes is not None:
            kept = self.prefix_cache.lookup(prefixes[0])
            if kept is not None:
                self._previous = None
                return self._on_kept_prefixes(inputs, kept, prefixes[1], cancel)
        indices = frame_features_module.flatten_frames(frames)
        text, pixels, masks = frame_features_module.split_pixels(self.loaded, inputs)
        if pixels.shape[0] != len(indices):
            raise BadInputError(f"{len(indices)} frame numbers were given for {pixels.shape[0]} frames.")
        known = [self.frame_features.get(index) for index in indices]
        if not decoded and any(features is None for features in known):
            raise frame_features_module.FeaturesMissing(indices)
        if decoded:
            self._reuse_previous(known, pixels, masks)
        request = frame_features_module.frame_inputs(known, pixels, masks)
        caches: list = []
        keeping = {"use_cache": True, "keep": caches.append} if prefixes is not None else {}
        logits, new = self._guarded(
            lambda kwargs: self.forward_features(self.loaded, text, request, **{**kwargs, **keeping}),
            inputs["attention_mask"], cancel)
        if caches:
            self.prefix_cache.keep(prefixes[0], inputs["input_ids"], prefixes[1], caches[0])
        fresh = dict(zip(request.missing, new)) if new is not None else {}
        self.frame_features.put_many({indices[k]: features for k, features in fresh.items()})
        if decoded:
            last = len(indices) - 1
            self._previous = (pixels[last:], masks[last:] if masks is not None else None, fresh.get(last, known[last]))
        return logits[:, -1, :]

    def _prefix_rows(self, inputs, frames: Sequence[Sequence[int]]) -> tuple[list[str], list] | None:
        """(each row's prefix key, each row's (first real token, end of prefix)), or None when
        prefixes are not kept (pipelines.prefix_cache)."""
        if self.prefix_cache is None:
            return None
        ids = inputs["input_ids"]
        spans = prefix_cache_module.rows(self.loaded, ids, inputs["attention_mask"])
        if spans is None:
            return None
        # Kept prefixes are a memory layer in front of the feature store: another store (folder)
        # does not see them, so a scan with a fresh cache does the full work.
        store = f"{self.frame_features.store.folder}:{self.frame_features.prefix}"
        keys = [prefix_cache_module.row_key(f"{store}:{','.join(map(str, clip))}", ids[row, start:end])
                for row, (clip, (start, end)) in enumerate(zip(frames, spans))]
        return keys, spans

    def _on_kept_prefixes(self, inputs, kept: list, spans: list, cancel: threading.Event | None) -> torch.Tensor:
        """Each row's tokens after its kept prefix, through the language model only."""
        ids = inputs["input_ids"]
        suffixes = [ids[row, end:] for row, (_start, end) in enumerate(spans)]
        logits = self._guarded(lambda _kwargs: prefix_cache_module.suffix_pass(self.loaded, kept, suffixes),
                               inputs["attention_mask"], cancel)
        return logits[:, -1, :]

    def _reuse_previous(self, known: list, pixels: torch.Tensor, masks: torch.Tensor | None) -> None:
        """Leading frames equal to the previous batch's last frame take its features (a static
        shot across a batch boundary); placeholder batches never set it (their pixels are fake)."""
        if self._previous is None:
            return
        last_pixels, last_masks, last_features = self._previous
        for k in range(len(known)):
            if not frame_features_module.same_frame(pixels, masks, k, last_pixels, last_masks, 0):
                return
            if known[k] is None:
                known[k] = last_features

    def _conversation(self, clip: media.VideoClip, text: str = "") -> BuiltConversation:
        turn = Turn("user", with_text(text, self.question), (Attachment(VIDEO, clip.info.path),))
        return build_messages([turn], self.loaded.spec.family, load_image=_no_images,
                              load_video=lambda _path: clip, system_prompt=self.system_prompt)

    def _check_context(self, inputs) -> None:
        longest = int(inputs["attention_mask"].sum(dim=-1).max())
        limit = self.loaded.spec.context_length
        if longest >= limit:
            raise InputTooLongError(longest, limit, "Use fewer frames per window or shorter highlight criteria.")

    def _forward(self, inputs, cancel: threading.Event | None) -> torch.Tensor:
        logits = self._guarded(lambda kwargs: self.forward_logits(self.loaded, inputs, **kwargs),
                               inputs["attention_mask"], cancel)
        return logits[:, -1, :]

    def _guarded(self, forward: Callable[[dict], object], mask: torch.Tensor, cancel: threading.Event | None):
        """``forward(forward_kwargs)`` under the cancel scope, with out-of-memory worded."""
        # Each row counts positions from its own first real token, as it would alone.
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        try:
            with cancel_scope(cancel):
                return forward(dict(position_ids=positions, logits_to_keep=1, use_cache=False))
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            from .loading import free_memory

            free_memory()
            raise OutOfMemoryError(
                "The model ran out of memory while scoring. Use a smaller batch, fewer frames per "
                "window, or a smaller model."
            ) from error


def with_text(text: str, question: str) -> str:
    """A clip's own line, then the question (the question alone when there is no line)."""
    return f"{text.strip()}\n{question}" if text and text.strip() else question


def local_logits(loaded: LoadedModel, inputs: dict, **forward_kwargs) -> torch.Tensor:
    """One forward pass in this process (through the model's device-lock hooks)."""
    with torch.inference_mode():
        return loaded.model(**inputs, **forward_kwargs).logits


def _no_images(path: str):
    raise BadInputError("Scoring takes video clips only.")


__all__ = ["AnswerTokens", "Scorer", "answer_token_ids", "local_logits", "option_probability", "with_text",
           "DEFAULT_BATCH_SIZE"]
