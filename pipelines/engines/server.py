"""The server engine: an OpenAI-compatible model server (vLLM) runs the model.

Users who outgrow one machine run vLLM (continuous batching, multi-GPU, multi-node) and point
the app and the CLI at it (``--engine-url http://HOST:PORT/v1``); nothing else changes.

Contract
--------
* Model names: ``server_model_key(id)`` = "server:<id>" for a model the server lists at
  ``/v1/models``. Its spec (family, context length, video defaults) comes from the server's
  answer: the family from the checkpoint it loaded (``root``: a local checkpoint directory or a
  registry hub id; else the name). SmolVLM2 only: PerceptionLM is not in vLLM, so it is said to
  be local-only (``LocalOnlyModelError``).
* Chat and Compare: ``prepare`` turns the SAME built messages the local engine gets into a
  chat-completions body; ``stream`` streams it (``stream: true``) into ``Chunk``s. Stop (``cancel``
  set) or closing the iterator shuts the connection down at once, even mid-prefill (vLLM then
  aborts the request); the last chunk says "cancelled". No token for ``stall_s`` seconds raises
  ``EngineTimeoutError``.
* Images go as PNG data URLs (lossless: the server's processor sees the pixels the local one
  would). A video goes as its SAMPLED frames, as image parts, wrapped in exactly the text the
  local SmolVLM2 processor writes around video frames (``video_parts``): "You are provided the
  following series of N frames from a H:MM:SS [H:MM:SS] video.", then "Frame from MM:SS:" and the
  frame, per frame. ``prepared.frames_seen`` holds those frames, so the UI shows them.
* Image detail: "low" = one tile per image (the server's processor told ``do_image_splitting:
  false`` per request); "high"/"auto" = the server's default tiling. vLLM refuses per-request
  processor options unless started with ``--trust-request-mm-kwargs``: then the server's own
  setting applies (start it with ``--mm-processor-kwargs '{"do_image_splitting": false}'``, as
  ``python -m pipelines.engines serve`` does, so video frames are never tiled).
* Scoring: one request per clip, ``max_tokens: 1``, with the logprobs of the answer ids
  (``logprob_token_ids``; servers without it: ``top_logprobs``, where an id not in the top list
  counts as impossible). The ids are ``scoring.answer_token_ids`` read through the server's own
  tokenizer (``/tokenize``, ``/detokenize``); P(yes) = sigmoid(logsumexp(yes) - logsumexp(no)),
  exactly as the local scorer computes it from logits (log-softmax only shifts both sides).
* Many requests in flight: every engine holds ONE pool of ``in_flight`` workers shared by all
  scans and videos of this process, so the server's batching sees up to ``in_flight`` windows
  at once; chat streams are not counted (each user has one).
"""

from __future__ import annotations

import base64
import io
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Iterator, Sequence

import numpy as np

from .. import media
from ..background import PENDING, Background
from ..errors import BadInputError, GenerationCancelled
from ..generation import Chunk, GenerationSettings
from ..limits import LIMITS
from ..messages import VIDEO, Attachment, BuiltConversation, Turn, build_messages
from ..registry import PERCEPTION_LM, REGISTRY, SMOLVLM, ModelSpec, resolve
from ..scoring import answer_token_ids, with_text
from .base import Capabilities, PreparedChat
from .errors import (
    EngineRefusedError,
    EngineTimeoutError,
    LocalOnlyModelError,
    ModelNotServedError,
)
from .http import DEFAULT_TIMEOUT_S, OpenAIClient

SERVER_PREFIX = "server:"
DEFAULT_IN_FLIGHT = 8
MODELS_TTL_S = 10.0  # how long a /v1/models answer is reused
_POLL_S = 0.1
_SMOLVLM_TEMPLATE = REGISTRY["smolvlm2-256m"]
# What the server's own tokenizer would read as media or turn markers; neutralised in user text,
# as the local processor's ``sanitize_control_tokens`` does.
_CONTROL = re.compile(r"<(?=(?:image|video|global-img|fake_token_around_image|end_of_utterance|row_\d+_col_\d+|\|[a-z_]+\|)>)")


def server_model_key(served_id: str) -> str:
    return SERVER_PREFIX + served_id


def is_server_model(name: str) -> bool:
    return isinstance(name, str) and name.startswith(SERVER_PREFIX)


@dataclass(frozen=True)
class ServedModel:
    """One entry of the server's /v1/models."""

    id: str
    root: str
    max_model_len: int | None

    @property
    def key(self) -> str:
        return server_model_key(self.id)

    @property
    def label(self) -> str:
        return f"{self.id} (server)"


class ServerEngine:
    kind = "server"

    def __init__(self, url: str, api_key: str | None = None, in_flight: int = DEFAULT_IN_FLIGHT,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        if in_flight < 1:
            raise BadInputError(f"Requests in flight must be at least 1; got {in_flight}.")
        self.client = OpenAIClient(url, api_key, timeout_s)
        self.url = self.client.url
        self.in_flight = in_flight
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="vlms-engine")
        self._models: tuple[float, list[ServedModel]] | None = None
        self._lock = threading.Lock()
        self._processor_options = True  # until the server refuses per-request processor options

    def __repr__(self) -> str:
        return f"ServerEngine({self.url!r}, in_flight={self.in_flight})"

    # -- what the server serves ---------------------------------------------------------------

    def served(self, fresh: bool = False) -> list[ServedModel]:
        with self._lock:
            if not fresh and self._models and time.monotonic() - self._models[0] < MODELS_TTL_S:
                return self._models[1]
        answer = self.client.get_json("/models", timeout_s=min(self.client.timeout_s, 10.0))
        models = [ServedModel(str(m["id"]), str(m.get("root") or m["id"]), m.get("max_model_len"))
                  for m in answer.get("data", [])]
        with self._lock:
            self._models = (time.monotonic(), models)
        return models

    def served_model(self, name: str) -> ServedModel:
        wanted = name[len(SERVER_PREFIX):] if is_server_model(name) else name
        for fresh in (False, True):
            for model in self.served(fresh):
                if model.id == wanted:
                    return model
        listed = ", ".join(m.id for m in self.served()) or "nothing"
        raise ModelNotServedError(f"The model server at {self.url} does not serve '{wanted}'; it serves: {listed}.")

    def spec(self, model: str, runtime=None) -> ModelSpec:
        served = self.served_model(model)
        check_servable(served)
        return replace(_SMOLVLM_TEMPLATE, key=served.key, source=served.root, label=served.label, params=0,
                       context_length=int(served.max_model_len or _SMOLVLM_TEMPLATE.context_length), is_local=False)

    def capabilities(self, model: str, runtime=None) -> Capabilities:
        spec = self.spec(model, runtime)
        return Capabilities(images=True, video=True, max_images=None, context_length=spec.context_length)

    # -- chat ---------------------------------------------------------------------------------

    def prepare(self, model: str, built: BuiltConversation, settings: GenerationSettings, detail: str,
                runtime=None, features=None) -> PreparedChat:
        """``features`` is not used: the server keeps what it encoded itself (vLLM's multimodal and
        prefix caches, README "Scaling out with vLLM")."""
        served = self.served_model(model)
        detail = "low" if detail == "low" else "high"
        body = {
            "model": served.id,
            "messages": openai_messages(built),
            "max_tokens": int(settings.max_new_tokens),
            "stream": True,
            "stream_options": {"include_usage": True},
            **_sampling(settings),
            **_processor_options(detail),
        }
        return PreparedChat(None, body, settings, 0, 0, detail, notices=built.notices, engine=self, model=model,
                            description=f"{served.id} on the model server {self.url}")

    def stream(self, prepared: PreparedChat, cancel: threading.Event, stall_s: float | None = None) -> Iterator[Chunk]:
        stall_s = float(LIMITS.generation_stall_s.value if stall_s is None else stall_s)
        return _stream(self, prepared.inputs, prepared.settings, cancel, stall_s)

    # -- scoring ------------------------------------------------------------------------------

    def scorer(self, model: str, question: str, options: Sequence[str] = ("yes", "no"), system_prompt: str = "",
               runtime=None, features=None) -> "ServerScorer":
        """``features`` is ignored: the server keeps its own multimodal cache (README "Engines")."""
        self.spec(model, runtime)  # served, and a family the server can run
        return ServerScorer(self, self.served_model(model), question, options, system_prompt)

    def post(self, body: dict) -> dict:
        """A chat completion (not streamed)."""
        return self._with_options(lambda b: self.client.post_json("/chat/completions", b), body)

    def open_stream(self, body: dict):
        return self._with_options(lambda b: self.client.open_stream("/chat/completions", b), body)

    def _with_options(self, send, body: dict):
        if not self._processor_options:
            body = {k: v for k, v in body.items() if k != "mm_processor_kwargs"}
        try:
            return send(body)
        except EngineRefusedError as error:
            if "mm_processor_kwargs" not in str(error) or "mm_processor_kwargs" not in body:
                raise
            self._processor_options = False  # the server's own processor settings apply from now on
            return send({k: v for k, v in body.items() if k != "mm_processor_kwargs"})

    def close(self) -> None:
        """Let the pool's idle workers go (requests not started yet are dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, function, *args):
        """Run ``function(*args)`` on the engine's pool (at most ``in_flight`` at once)."""
        return self._pool.submit(function, *args)


def check_servable(served: ServedModel) -> None:
    """Only SmolVLM2 runs on a server; PerceptionLM is not in vLLM (local-only)."""
    family = family_of(served)
    if family == PERCEPTION_LM:
        raise LocalOnlyModelError(
            f"'{served.id}' is a PerceptionLM model, which vLLM cannot serve: PerceptionLM runs only in this "
            "app's own process. Pick it from the local models (without the server).")
    if family != SMOLVLM:
        raise LocalOnlyModelError(f"'{served.id}' on the model server is not a SmolVLM2 model; this app can only "
                                  "use SmolVLM2 models from a server.")


def family_of(served: ServedModel) -> str | None:
    """The family of what the server loaded: its checkpoint (when this machine can read it or the
    registry knows it), else its name."""
    for candidate in (served.root, served.id):
        try:
            return resolve(candidate).family
        except Exception:  # not a registry name nor a checkpoint directory on this machine
            pass
    name = f"{served.root} {served.id}".lower()
    if "perception" in name or "plm" in name.split("/")[-1]:
        return PERCEPTION_LM
    if "smolvlm" in name or "idefics" in name:
        return SMOLVLM
    return None


def _sampling(settings: GenerationSettings) -> dict:
    options: dict = {}
    if settings.min_new_tokens:
        options["min_tokens"] = int(settings.min_new_tokens)
    if settings.greedy or settings.temperature <= 0:
        options["temperature"] = 0.0
    else:
        options.update(temperature=float(settings.temperature), top_p=float(settings.top_p))
    return options


def _processor_options(detail: str) -> dict:
    return {"mm_processor_kwargs": {"do_image_splitting": False}} if detail == "low" else {}


# =============================================================================================
# Messages: the local engine's built messages, as chat-completions content parts
# =============================================================================================


def openai_messages(built: BuiltConversation) -> list[dict]:
    """``build_messages``' output -> chat-completions messages (see the module docstring)."""
    videos = iter(built.videos)
    messages = []
    for message in built.messages:
        parts: list[dict] = []
        for item in message["content"]:
            if item["type"] == "text":
                text = item["text"] if message["role"] == "system" else _CONTROL.sub("\uff1c", item["text"])
                parts.append({"type": "text", "text": text})
            elif item["type"] == "image":
                parts.append(image_part(np.asarray(item["image"].convert("RGB"))))
            else:
                parts.extend(video_parts(next(videos)))
        messages.append({"role": message["role"], "content": _merge_texts(parts)})
    return messages


def video_parts(clip: media.VideoClip) -> list[dict]:
    """A video as the SmolVLM2 processor lays it out: intro, then "Frame from MM:SS:" + frame per
    sampled frame, then a blank line (transformers' SmolVLMProcessor.replace_video_token)."""
    from num2words import num2words

    duration = int(clip.info.duration) if clip.info.duration is not None else int(clip.sample.timestamps[-1])
    parts = [{"type": "text", "text": f"You are provided the following series of {num2words(len(clip.frames))} "
                                      f"frames from a {timedelta(seconds=duration)} [H:MM:SS] video.\n"}]
    for frame, second in zip(clip.frames, clip.sample.timestamps):
        parts.append({"type": "text", "text": f"\nFrame from {int(second // 60):02d}:{int(second % 60):02d}:"})
        parts.append(image_part(frame))
    parts.append({"type": "text", "text": "\n\n"})
    return parts


def image_part(pixels: np.ndarray) -> dict:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def _merge_texts(parts: list[dict]) -> list[dict]:
    """Adjacent text parts as one (templates concatenate them anyway; fewer parts, same prompt)."""
    merged: list[dict] = []
    for part in parts:
        if part["type"] == "text" and merged and merged[-1]["type"] == "text":
            merged[-1] = {"type": "text", "text": merged[-1]["text"] + part["text"]}
        else:
            merged.append(part)
    return merged


# =============================================================================================
# Streaming
# =============================================================================================


def _stream(engine: ServerEngine, body: dict, settings: GenerationSettings, cancel: threading.Event,
            stall_s: float) -> Iterator[Chunk]:
    started = time.perf_counter()
    counts = {"generated": 0, "prompt": 0, "first": None}
    if cancel.is_set():
        yield Chunk("", 0, 0, started, None, time.perf_counter(), "cancelled")
        return
    events = engine.open_stream(body)

    def chunk(text: str, reason: str | None = None) -> Chunk:
        return Chunk(text, counts["generated"], counts["prompt"], started, counts["first"], time.perf_counter(), reason)

    reason = None
    with Background(lambda stop: events, name="vlms-engine-stream", max_queued=4096) as incoming:
        try:
            last = time.perf_counter()
            while True:
                if cancel.is_set() and not events.aborted:
                    events.abort()  # the read in the worker returns at once; vLLM aborts the request
                try:
                    event = incoming.next_within(_POLL_S)
                except StopIteration:
                    break
                if event is PENDING:
                    if time.perf_counter() - last > stall_s:
                        raise EngineTimeoutError(f"The model server sent nothing for {stall_s:.0f} s, so this answer "
                                                 "was abandoned. It may be overloaded; try again.")
                    continue
                last = time.perf_counter()
                text, reason = _apply_event(event, counts, reason)
                if text:
                    yield chunk(text)
        finally:
            events.abort()  # first, so the worker's read returns and closing the Background joins at once
    if cancel.is_set() and reason in (None, "abort"):
        reason = "cancelled"
    elif reason not in ("stop", "length"):
        reason = "length" if counts["generated"] >= settings.max_new_tokens else "stop"
    yield chunk("", reason)


def _apply_event(event: dict, counts: dict, reason: str | None) -> tuple[str, str | None]:
    usage = event.get("usage")
    if usage:
        counts["prompt"] = int(usage.get("prompt_tokens") or counts["prompt"])
        counts["generated"] = int(usage.get("completion_tokens") or counts["generated"])
    text = ""
    for choice in event.get("choices") or []:
        text += (choice.get("delta") or {}).get("content") or ""
        reason = choice.get("finish_reason") or reason
    if text:
        if counts["first"] is None:
            counts["first"] = time.perf_counter()
        if not usage:
            counts["generated"] += 1  # vLLM streams one delta per token; the final usage corrects it
    return text, reason


# =============================================================================================
# Scoring
# =============================================================================================


class RemoteTokenizer:
    """The two tokenizer calls ``answer_token_ids`` makes, answered by the server's tokenizer."""

    def __init__(self, client: OpenAIClient, model: str):
        self.client, self.model = client, model

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        answer = self.client.post_json("/tokenize", {"model": self.model, "prompt": text,
                                                     "add_special_tokens": add_special_tokens}, timeout_s=30.0)
        return [int(t) for t in answer["tokens"]]

    def decode(self, ids: Sequence[int]) -> str:
        answer = self.client.post_json("/detokenize", {"model": self.model, "tokens": [int(i) for i in ids]},
                                       timeout_s=30.0)
        return str(answer["prompt"])


class ServerScorer:
    """``scoring.Scorer``'s contract, on the server: P(options[0]) per clip, many clips in flight."""

    def __init__(self, engine: ServerEngine, served: ServedModel, question: str, options: Sequence[str],
                 system_prompt: str = ""):
        if not question.strip():
            raise BadInputError("The scoring question is empty.")
        self.engine, self.served = engine, served
        self.question = question.strip()
        self.system_prompt = system_prompt
        self.tokenizer = RemoteTokenizer(engine.client, served.id)
        self.answers = answer_token_ids(self.tokenizer, options)
        self.ids = sorted(set(self.answers.positive) | set(self.answers.negative))
        self._use_ids = True  # logprob_token_ids until the server says it does not know it
        self.frame_features = None  # frames always travel as pixels; vLLM caches what it encoded

    def score_batch(self, clips: Sequence[media.VideoClip], cancel: threading.Event | None = None,
                    frames=None, decoded: bool = True, texts: Sequence[str] | None = None) -> list[float]:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Stopped.")
        texts = texts or [""] * len(clips)
        futures = [self.engine.submit(self.score_clip, clip, cancel, text) for clip, text in zip(clips, texts)]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()  # those not started yet (an error or Stop ended the batch)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the server's tokenizer (control tokens as the neutralised text)."""
        return len(self.tokenizer.encode(_CONTROL.sub("\uff1c", text)))

    def score_clip(self, clip: media.VideoClip, cancel: threading.Event | None = None, text: str = "") -> float:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Stopped.")
        turn = Turn("user", with_text(text, self.question), (Attachment(VIDEO, clip.info.path),))
        built = build_messages([turn], SMOLVLM, load_image=_no_images, load_video=lambda _path: clip,
                               system_prompt=self.system_prompt)
        body = {"model": self.served.id, "messages": openai_messages(built), "max_tokens": 1, "temperature": 0.0,
                "logprobs": True, "return_tokens_as_token_ids": True, **_processor_options("low")}
        return self._probability(self._first_token_logprobs(body))

    def _first_token_logprobs(self, body: dict) -> dict[int, float]:
        if self._use_ids:
            try:
                answer = self.engine.post({**body, "logprob_token_ids": self.ids})
                found = _logprobs_by_id(answer, self.ids)
                if len(found) == len(self.ids):  # a server that knows the field answers for every id
                    return found
            except EngineRefusedError as error:
                if "logprob_token_ids" not in str(error):
                    raise
            self._use_ids = False  # an older server: read the top list instead
        answer = self.engine.post({**body, "top_logprobs": 20})
        return _logprobs_by_id(answer, self.ids)

    def _probability(self, logprobs: dict[int, float]) -> float:
        positive = _logsumexp([logprobs[i] for i in self.answers.positive if i in logprobs])
        negative = _logsumexp([logprobs[i] for i in self.answers.negative if i in logprobs])
        if positive == negative == -math.inf:
            return 0.5  # neither answer among the server's top tokens: no preference either way
        return _sigmoid(positive - negative)


def _logprobs_by_id(answer: dict, ids: Sequence[int]) -> dict[int, float]:
    """{token id: logprob} of the first answer token, from either logprobs form vLLM returns."""
    choice = (answer.get("choices") or [{}])[0]
    content = ((choice.get("logprobs") or {}).get("content") or [])
    if not content:
        raise EngineRefusedError("The model server returned no logprobs for the answer; it must allow them "
                                 "(vLLM: --max-logprobs 20).")
    first = content[0]
    found: dict[int, float] = {}
    for entry in [first, *(first.get("top_logprobs") or [])]:
        token_id = _token_id(entry)
        if token_id is not None:
            found.setdefault(token_id, float(entry["logprob"]))
    return {i: found[i] for i in ids if i in found}


def _token_id(entry: dict) -> int | None:
    token = str(entry.get("token", ""))
    if token.startswith("token_id:"):  # asked for with return_tokens_as_token_ids
        return int(token.split(":", 1)[1])
    return None


def _logsumexp(values: list[float]) -> float:
    if not values:
        return -math.inf
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _no_images(path: str):
    raise BadInputError("Scoring takes video clips only.")
