"""Streaming generation with real cancellation (the in-process half of the local engines).

Contract: ``stream_generate(loaded, inputs, settings, cancel, stall_s=None) -> Iterator[Chunk]``.
- A NEW streamer per call; ``model.generate`` runs on a worker thread of ONE
  ``background.Background`` (bounded queue, error forwarding, always joined).
- An exception in the worker reaches the reader (re-raised from the iterator; out-of-memory
  becomes ``OutOfMemoryError`` after the worker has ended and memory was freed).
- ``cancel`` (a threading.Event) is checked by a StoppingCriteria after every step and by the
  device-lock hook before every forward pass; closing the iterator early (consumer gone, Stop,
  dropped connection) stops the worker too (its own stop event) and joins it.
- Every chunk carries the new text, token counts and timings; the last has ``finish_reason``
  ("stop", "length" or "cancelled").
- Chunks come only when there is news: UI pacing (heartbeats) is the consumer's business
  (components/), done with ``Background.next_within``.
- Watchdog: no token for ``stall_s`` seconds (the ``generation_stall_s`` limit) means the worker
  hung: it is abandoned (stop set, the device lock handed back if it holds it, never joined)
  and ``ModelStalledError`` is raised, so the next request is served.
- ``inputs`` may carry a video's kept vision features in place of its pixels
  (pipelines.features.with_kept_features): they reach ``generate`` as ``mm_encoder_outputs``.
- Which process or machine runs the model is the engine's choice (pipelines.engines): this
  module always generates here; ZeroGPU's GPU worker calls it too (pipelines.zerogpu).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from .background import PENDING, Background
from .devices import DEVICE_LOCK, cancel_scope
from .errors import GenerationCancelled, ModelStalledError, OutOfMemoryError
from .features import generate_inputs
from .limits import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, LIMITS
from .memory import is_out_of_memory

log = logging.getLogger(__name__)

# How long the reader waits for a token before re-checking the watchdog.
_POLL_S = 0.1
# Tokens queued ahead of a slow reader; far more than any answer, but bounded.
_MAX_QUEUED_TOKENS = 4096


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    greedy: bool = True
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    # At least this many tokens before an end-of-sequence counts. The UI never sets it; benchmarks
    # and tests do, since random weights may end an answer at once.
    min_new_tokens: int = 0

    def generate_kwargs(self) -> dict:
        kwargs = {"max_new_tokens": self.max_new_tokens, "min_new_tokens": self.min_new_tokens}
        if self.greedy or self.temperature <= 0:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=None)
        return kwargs


@dataclass(frozen=True)
class Chunk:
    text: str  # text added since the previous chunk
    generated_tokens: int
    prompt_tokens: int
    started_at: float
    first_token_at: float | None
    now: float
    finish_reason: str | None = None

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started_at

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed after the first token (the prefill is TTFT's business)."""
        if self.first_token_at is None or self.generated_tokens < 2:
            return None
        span = self.now - self.first_token_at
        return (self.generated_tokens - 1) / span if span > 0 else None


class _CancelOnEvent(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@dataclass
class _TokenStreamer(BaseStreamer):
    """Receives token ids from ``generate`` in the worker and emits decoded text.

    Text is decoded from the tokens since the last newline, so the cost per token stays small and
    no partial UTF-8 character is ever emitted.
    """

    tokenizer: object
    emit: Callable[[str], bool] = lambda text: True
    generated: int = 0
    first_token_at: float | None = None
    _prompt_seen: bool = False
    _pending: list = field(default_factory=list)
    _emitted_chars: int = 0

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.generated += len(ids)
        self._pending.extend(ids)
        text = self.tokenizer.decode(self._pending, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if text.endswith("\ufffd"):
            return
        new_text = text[self._emitted_chars:]
        if text.endswith("\n"):
            self._pending, self._emitted_chars = [], 0
        else:
            self._emitted_chars = len(text)
        self.emit(new_text)  # False once the reader left: its stop event ends generate at the next step

    def end(self) -> None:
        pass  # the worker's end is the Background's end


def stream_generate(loaded, inputs: dict, settings: GenerationSettings, cancel: threading.Event | None = None,
                    *, stall_s: float | None = None):
    """Yield ``Chunk``s as the model generates, in this process; see the module docstring."""
    cancel = cancel or threading.Event()
    stall_s = float(LIMITS.generation_stall_s.value if stall_s is None else stall_s)
    streamer = _TokenStreamer(loaded.tokenizer)
    prompt_tokens = int(inputs["input_ids"].shape[-1])
    started = time.perf_counter()

    def run(emit, stop: threading.Event) -> None:
        streamer.emit = emit
        with cancel_scope(stop), torch.inference_mode():
            loaded.model.generate(
                **generate_inputs(loaded, inputs),
                **settings.generate_kwargs(),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_CancelOnEvent(stop)]),
                pad_token_id=_pad_token_id(loaded),
            )

    tokens = Background.from_callback(run, name="vlms-generate", max_queued=_MAX_QUEUED_TOKENS, cancel=cancel)

    def chunk(text: str, reason: str | None = None) -> Chunk:
        return Chunk(text, streamer.generated, prompt_tokens, started, streamer.first_token_at, time.perf_counter(), reason)

    abandoned = False
    try:
        last_token = time.perf_counter()
        while True:
            try:
                text = tokens.next_within(_POLL_S)
            except StopIteration:
                break
            except BaseException as error:  # the worker's: raised once it has ended
                tokens.close()
                _raise_from_worker(error, cancel)
                break  # cancelled inside a forward pass: the final chunk says so
            if text is PENDING:
                if time.perf_counter() - last_token > stall_s:
                    abandoned = True
                    tokens.abandon()
                    _abandon(tokens.thread, stall_s)
                continue
            last_token = time.perf_counter()
            if text:
                yield chunk(text)
        yield chunk("", _finish_reason(cancel, streamer.generated, settings))
    finally:
        if not abandoned:
            tokens.close()  # stops the worker when the reader leaves early; joins it


# The in-process stream under its former name (ZeroGPU's worker, benchmarks).
stream_here = stream_generate


def _abandon(worker: threading.Thread, stall_s: float) -> None:
    """The worker produced nothing for ``stall_s``: give up on it so the app keeps serving.
    (Its stop event is already set: if it ever wakes up, its next step or forward pass stops.)"""
    if DEVICE_LOCK.forfeit(worker):
        log.error("A generation hung inside a forward pass for %.0f s; the device lock was taken back", stall_s)
    else:
        log.error("A generation produced nothing for %.0f s and was abandoned", stall_s)
    raise ModelStalledError(
        f"The model stopped responding (nothing for {stall_s:.0f} s), so this answer was abandoned. "
        "Please try again; if it happens again, try a smaller input or another model."
    )


def _finish_reason(cancel: threading.Event, generated: int, settings: GenerationSettings) -> str:
    if cancel.is_set():
        return "cancelled"
    return "length" if generated >= settings.max_new_tokens else "stop"


def _raise_from_worker(error: BaseException, cancel: threading.Event) -> None:
    if isinstance(error, GenerationCancelled):
        cancel.set()
        return  # the caller still gets the final chunk, marked cancelled
    if is_out_of_memory(error):
        from .loading import free_memory

        log.warning("Out of memory during generation: %s", error)
        error.__traceback__ = None  # its frames hold the tensors of the failed step: let them go
        del error
        free_memory()
        raise OutOfMemoryError(
            "The model ran out of memory on this input. Try fewer images or frames, a lower "
            "image detail, fewer new tokens, or a smaller model."
        ) from None
    raise error


def _pad_token_id(loaded) -> int | None:
    tokenizer = loaded.tokenizer
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
