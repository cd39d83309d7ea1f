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
- ``heartbeat_s``: when set, an EMPTY chunk is yielded whenever no token came for that long. A
  consumer that can only act between items (Gradio closes a generator on Stop or on a dropped
  connection, but never while it is blocked inside ``next``) then gets that chance during a long
  prefill or while another request holds the device.
- Watchdog: no token for ``stall_s`` seconds (the ``generation_stall_s`` limit) means the worker
  hung: it is abandoned (cancel set, the device lock handed back if it holds it, never joined)
  and ``ModelStalledError`` is raised, so the next request is served.
- Out of memory (``torch.OutOfMemoryError``, the CPU allocator's RuntimeError, ``MemoryError``)
  becomes ``OutOfMemoryError`` after the worker has ended and memory was freed.
- On a ZeroGPU Space (``zerogpu.enabled()``) the same chunks come from ``spaces``' GPU worker
  process (``zerogpu.stream_on_gpu``); ``stream_here`` is the in-process implementation.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from . import zerogpu
from .devices import DEVICE_LOCK, cancel_scope, wall_time
from .errors import GenerationCancelled, ModelStalledError, OutOfMemoryError
from .limits import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, LIMITS

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


def stream_generate(loaded, inputs: dict, settings: GenerationSettings, cancel: threading.Event | None = None,
                    *, heartbeat_s: float | None = None, stall_s: float | None = None):
    """Yield ``Chunk``s as the model generates; see the module docstring for the contract."""
    if zerogpu.enabled():  # a ZeroGPU Space: the GPU is only reachable from spaces' worker process
        return zerogpu.stream_on_gpu(loaded, inputs, settings, cancel, heartbeat_s=heartbeat_s, stall_s=stall_s)
    return stream_here(loaded, inputs, settings, cancel, heartbeat_s=heartbeat_s, stall_s=stall_s)


def stream_here(loaded, inputs: dict, settings: GenerationSettings, cancel: threading.Event | None = None,
                *, heartbeat_s: float | None = None, stall_s: float | None = None):
    """``stream_generate`` in this process (everywhere but in ZeroGPU's parent process)."""
    cancel = cancel or threading.Event()
    stall_s = float(LIMITS.generation_stall_s.value if stall_s is None else stall_s)
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

    abandoned = False
    try:
        last_token = last_item = wall_time()
        while True:
            try:
                kind, text, _ = streamer.out.get(timeout=_POLL_S)
            except queue.Empty:
                if not worker.is_alive() and streamer.out.empty():
                    break
                now = wall_time()
                if now - last_token > stall_s:
                    abandoned = True
                    _abandon(worker, cancel, stall_s)
                if heartbeat_s is not None and now - last_item >= heartbeat_s:
                    last_item = now
                    yield chunk("")
                continue
            last_token = last_item = wall_time()
            if kind == "end":
                break
            if text:
                yield chunk(text)
        worker.join()
        if failure:
            _raise_from_worker(failure.pop(), cancel)
        yield chunk("", _finish_reason(cancel, streamer.generated, settings))
    finally:
        cancel.set()  # no-op after a normal finish; stops the worker when the reader leaves early
        worker.join(0 if abandoned else JOIN_TIMEOUT_S)
        if worker.is_alive() and not abandoned:
            log.error("Generation thread did not stop within %.0f s", JOIN_TIMEOUT_S)


def _abandon(worker: threading.Thread, cancel: threading.Event, stall_s: float) -> None:
    """The worker produced nothing for ``stall_s``: give up on it so the app keeps serving."""
    cancel.set()  # if it ever wakes up, its next step or forward pass stops it
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


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises torch.OutOfMemoryError; the CPU allocator a RuntimeError; numpy MemoryError."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


def _pad_token_id(loaded) -> int | None:
    tokenizer = loaded.tokenizer
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
