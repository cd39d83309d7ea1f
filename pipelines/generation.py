"""Streaming generation with real cancellation.

Contract: ``stream_generate(loaded, inputs, settings, cancel) -> Iterator[Chunk]``.
- A NEW streamer per call; ``model.generate`` runs in a worker thread.
- An exception in the worker reaches the reader (re-raised from the iterator; out-of-memory
  becomes ``OutOfMemoryError`` after freeing memory).
- ``cancel`` (a threading.Event) is checked by a StoppingCriteria after every step and by the
  device-lock hook before every forward pass; closing the iterator early (consumer gone, Stop,
  dropped connection) sets it too. The worker is always joined in ``finally``.
- Every chunk carries the new text, token counts and timings; the last has ``finish_reason``
  ("stop", "length" or "cancelled").
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from .devices import cancel_scope, wall_time
from .errors import GenerationCancelled, OutOfMemoryError
from .limits import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P

log = logging.getLogger(__name__)

# How long the reader waits for a token before re-checking the worker. Short, so a worker that
# died without signalling cannot hang a request.
_POLL_S = 0.1
JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    greedy: bool = True
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    min_new_tokens: int = 0  # benchmarks only: random weights may emit EOS at once

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
    """Receives token ids from ``generate`` in the worker and queues decoded text.

    Text is decoded from the tokens since the last newline, so the cost per token stays small and
    no partial UTF-8 character is ever emitted.
    """

    tokenizer: object
    out: "queue.Queue" = field(default_factory=queue.Queue)
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
            self.first_token_at = wall_time()
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
        self.out.put(("text", new_text, self.generated))

    def end(self) -> None:
        self.out.put(("end", "", self.generated))


def stream_generate(loaded, inputs: dict, settings: GenerationSettings, cancel: threading.Event | None = None):
    """Yield ``Chunk``s as the model generates; see the module docstring for the contract."""
    cancel = cancel or threading.Event()
    streamer = _TokenStreamer(loaded.tokenizer)
    failure: list[BaseException] = []
    prompt_tokens = int(inputs["input_ids"].shape[-1])
    started = wall_time()

    def work() -> None:
        try:
            with cancel_scope(cancel), torch.inference_mode():
                loaded.model.generate(
                    **inputs,
                    **settings.generate_kwargs(),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_CancelOnEvent(cancel)]),
                    pad_token_id=_pad_token_id(loaded),
                )
        except BaseException as error:  # handed to the reader, never lost in the thread
            failure.append(error)
        finally:
            streamer.end()

    worker = threading.Thread(target=work, name="vlms-generate", daemon=True)
    worker.start()

    def chunk(text: str, reason: str | None = None) -> Chunk:
        return Chunk(text, streamer.generated, prompt_tokens, started, streamer.first_token_at, wall_time(), reason)

    try:
        while True:
            try:
                kind, text, _ = streamer.out.get(timeout=_POLL_S)
            except queue.Empty:
                if not worker.is_alive() and streamer.out.empty():
                    break
                continue
            if kind == "end":
                break
            if text:
                yield chunk(text)
        worker.join()
        if failure:
            _raise_from_worker(failure[0], cancel)
        yield chunk("", _finish_reason(cancel, streamer.generated, settings))
    finally:
        cancel.set()  # no-op after a normal finish; stops the worker when the reader leaves early
        worker.join(JOIN_TIMEOUT_S)
        if worker.is_alive():
            log.error("Generation thread did not stop within %.0f s", JOIN_TIMEOUT_S)


def _finish_reason(cancel: threading.Event, generated: int, settings: GenerationSettings) -> str:
    if cancel.is_set():
        return "cancelled"
    return "length" if generated >= settings.max_new_tokens else "stop"


def _raise_from_worker(error: BaseException, cancel: threading.Event) -> None:
    if isinstance(error, GenerationCancelled):
        cancel.set()
        return  # the caller still gets the final chunk, marked cancelled
    if isinstance(error, torch.OutOfMemoryError):
        from .loading import free_memory

        free_memory()
        raise OutOfMemoryError(
            "The model ran out of memory on this input. Try fewer images or frames, a lower "
            "image detail, fewer new tokens, or a smaller model."
        ) from error
    raise error


def _pad_token_id(loaded) -> int | None:
    tokenizer = loaded.tokenizer
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
