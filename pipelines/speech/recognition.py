"""Transcription: a video's soundtrack to a ``Transcript``, with Whisper, cached by content.

Contract
--------
``transcribe(video, asr_model, runtime=None, *, progress=None, cancel=None, cache_dir=None,
use_cache=True) -> Transcript``

* ``asr_model``: a registry ASR key, a Whisper hub id or a local Whisper checkpoint directory; a
  bad name raises ``ModelUnavailableError`` before any work. ``runtime`` (pipelines.runtime) gives
  the device, dtype and limits (None: the defaults).
* The soundtrack is decoded to 16 kHz mono float32 in the BOUNDED child process
  (``media.read_soundtrack`` through ``pipelines.isolation``): a file that is not a video raises
  BadInputError / DecodeError as every other reader does.
* No soundtrack, an empty or silent one, or a steady sound with no speech in it (a tone, a hum:
  the level never moves) gives an EMPTY transcript with a ``note`` in the user's words, never an
  error, and the model is not even loaded. (Whisper's own no-speech probability is computed by
  transformers only in its sequential long-form mode, not in the chunked pipeline used here, so
  the level checks below stand in for it; they also drop words heard only in digital silence,
  Whisper's best-known hallucination.)
* Whisper runs through transformers' automatic-speech-recognition pipeline, in ``CHUNK_S`` windows
  overlapping by ``STRIDE_S`` on each side (long audio), greedy decoding, with WORD timestamps when
  the checkpoint names alignment heads, else segment timestamps (also the fallback when
  transformers' word timing fails on a sequence). Words are grouped into phrases (a pause, a
  sentence end, or ``MAX_PHRASE_WORDS`` / ``MAX_PHRASE_S`` ends one). It uses torch's threads as
  set for the process (two threads measured 1.3-1.5x faster than one on an idle 2-core machine;
  one looked faster only while other work oversubscribed the cores).
* Times are in source seconds, monotonic (each word starts no earlier than the previous ended)
  and clamped inside ``[0, video duration]``.
* ``progress(fraction, message)`` is called as work advances (one call per 30 s window);
  ``cancel`` (threading.Event) stops it: the decoding child is killed, or Whisper stops at its
  next forward pass; either raises ``GenerationCancelled``.
* Results (empty ones too) are cached on disk by the video's CONTENT hash, the ASR model's
  identity and precision, and ``TRANSCRIPT_VERSION``, in a ``speech`` folder next to the
  highlights score cache (``VLMS_CACHE_DIR``): a second call returns without decoding or running
  the model. ``use_cache=False`` (or ``cache_dir=False``) neither reads nor writes it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import isolation, media
from ..devices import cancel_scope, on_fresh_thread
from ..errors import GenerationCancelled
from ..highlights.cache import ScoreCache, file_sha256
from ..limits import LIMITS, Limits
from ..media.files import require_non_empty
from .asr import LoadedAsr, load_asr, placement
from .transcript import TRANSCRIPT_VERSION, Phrase, Transcript, Word

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

CHUNK_S = 30.0  # Whisper hears 30 s at a time
STRIDE_S = 5.0  # each window overlaps its neighbours by this much on each side (the pipeline's default)
LEVEL_FRAME_S = 0.02  # loudness is measured per 20 ms
SILENCE_DB = -50.0  # quieter than this is silence (room noise of a real recording is louder)
WORD_MARGIN_S = 0.25  # a word counts as heard if there is sound within this much of it
STEADY_DB = 1.5  # a soundtrack whose level varies less than this (std, dB) is a tone or a hum
PHRASE_GAP_S = 0.8  # a pause this long ends a phrase
MAX_PHRASE_WORDS = 12  # two caption lines
MAX_PHRASE_S = 6.0
DECODE_PERIOD_S = 600.0  # the decode time limit applies per this many seconds of video

NO_SOUNDTRACK = "This video has no soundtrack."
SILENT = "No speech was heard: the soundtrack is silent."
STEADY = "No speech was heard: the soundtrack is a steady sound (a tone, hum or noise)."
NOTHING_SAID = "No speech was heard."


class TranscriptCache(ScoreCache):
    """The score cache's storage (atomic JSON documents, damage-tolerant), in its own folder."""

    def __init__(self, root=None, enabled: bool = True):
        super().__init__(root, enabled=enabled, features=False)

    @property
    def folder(self) -> Path:
        return self.root / "speech"


def transcribe(video, asr_model: str, runtime=None, *, progress: Progress | None = None,
               cancel: threading.Event | None = None, cache_dir=None, use_cache: bool = True) -> Transcript:
    """What is said in ``video`` (see the module docstring)."""
    report = progress or (lambda fraction, message: None)
    device, dtype = getattr(runtime, "device", None), getattr(runtime, "dtype", None)
    limits: Limits = getattr(runtime, "limits", None) or LIMITS
    spec, _, chosen_dtype = placement(asr_model, device, dtype)  # a bad name fails here, before any work
    require_non_empty(video)  # a missing or empty upload: the typed error every reader gives
    cache = TranscriptCache(cache_dir or None, enabled=use_cache and cache_dir is not False)
    key = cache.key("transcript", video=file_sha256(video), model=_model_identity(spec), dtype=str(chosen_dtype),
                    transcript=TRANSCRIPT_VERSION)
    cached = cache.load(key)
    if cached is not None:
        report(1.0, "Transcript from the cache")
        return Transcript.from_dict(cached)
    report(0.0, "Reading the soundtrack")
    soundtrack = read_soundtrack(video, limits, cancel)
    why_empty = soundtrack.note if soundtrack.samples is None else speechless_reason(soundtrack.samples, soundtrack.rate)
    if why_empty:
        transcript = Transcript(model=spec.key, note=why_empty)
    else:
        _check(cancel)
        report(0.05, f"Loading {spec.label}")
        asr = load_asr(asr_model, device, dtype)
        transcript = recognize(asr, soundtrack.samples, soundtrack.rate, soundtrack.info.duration,
                               progress=report, cancel=cancel)
        if soundtrack.note:  # part of the soundtrack could not be decoded: say so beside the text
            transcript = Transcript(transcript.phrases, transcript.model, transcript.language, soundtrack.note)
    cache.store(key, transcript.to_dict())
    report(1.0, "Transcribed" if not transcript.empty else transcript.note)
    return transcript


def _model_identity(spec) -> str:
    """The hub id; for a local directory also its files' sizes and times, so a checkpoint rebuilt
    or fine-tuned in place is not answered from transcripts of the old one."""
    if not spec.is_local:
        return spec.source
    files = sorted(Path(spec.source).glob("*.json")) + sorted(Path(spec.source).glob("*.safetensors"))
    return spec.source + "|" + ",".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def read_soundtrack(video, limits: Limits = LIMITS, cancel: threading.Event | None = None) -> media.Soundtrack:
    """``media.read_soundtrack`` at 16 kHz in the bounded child, with the decode time limit once
    per ``DECODE_PERIOD_S`` of video (as the signals pass): the length comes from a first, quick
    probe, also in a child (FFmpeg never parses the upload in this process)."""
    name, memory_mb = media.display_name(video), float(limits.decode_memory_mb.value)
    info = isolation.run(media.probe_video, str(video), limits, what=name, timeout_s=isolation.PROBE_TIMEOUT_S,
                         memory_mb=memory_mb, cancel=cancel)
    periods = max(1, math.ceil(info.duration / DECODE_PERIOD_S))
    return isolation.run(media.read_soundtrack, str(video), media.SPEECH_RATE, limits, what=name,
                         timeout_s=float(limits.decode_timeout_s.value) * periods, memory_mb=memory_mb, cancel=cancel)


# ------------------------------------------------------------------------------------------------
# Is there anything to hear? (pure)
# ------------------------------------------------------------------------------------------------


def levels_db(samples: np.ndarray, rate: int) -> np.ndarray:
    """Loudness (dBFS, floored at -120) of every ``LEVEL_FRAME_S`` frame of ``samples``."""
    size = max(1, int(round(LEVEL_FRAME_S * rate)))
    count = math.ceil(len(samples) / size)
    padded = np.zeros(count * size, dtype=np.float64)
    padded[:len(samples)] = samples
    power = (padded.reshape(count, size) ** 2).mean(axis=1)
    return np.maximum(-120.0, 10.0 * np.log10(np.maximum(power, 1e-12)))


def speechless_reason(samples: np.ndarray, rate: int) -> str:
    """Why nobody can be speaking in ``samples`` ("" when someone may be): empty, silent, or a
    sound whose level never moves (speech rises and falls with every syllable)."""
    if len(samples) == 0:
        return "The soundtrack is empty."
    levels = levels_db(samples, rate)
    sounding = levels[levels > SILENCE_DB]
    if len(sounding) == 0:
        return SILENT
    if len(sounding) > 0.9 * len(levels) and float(np.std(sounding)) < STEADY_DB:
        return STEADY
    return ""


def _heard(levels: np.ndarray, start: float, end: float) -> bool:
    first = max(0, int((start - WORD_MARGIN_S) / LEVEL_FRAME_S))
    last = min(len(levels), int(math.ceil((end + WORD_MARGIN_S) / LEVEL_FRAME_S)) + 1)
    return first < last and bool((levels[first:last] > SILENCE_DB).any())


# ------------------------------------------------------------------------------------------------
# Whisper
# ------------------------------------------------------------------------------------------------


def window_count(seconds: float, chunk_s: float = CHUNK_S, stride_s: float = STRIDE_S) -> int:
    """How many windows the pipeline's chunking makes of ``seconds`` of audio (for progress)."""
    step = chunk_s - 2 * stride_s
    count, start = 0, 0.0
    while True:
        count += 1
        if start + chunk_s >= seconds:
            return count
        start += step


def recognize(asr: LoadedAsr, samples: np.ndarray, rate: int, duration: float, *,
              progress: Progress | None = None, cancel: threading.Event | None = None,
              generate_kwargs: dict | None = None) -> Transcript:
    """Whisper on ``samples`` (``rate`` Hz mono float32) of a video ``duration`` s long: the
    transcript, its times sanitised (monotonic, inside the video, none in digital silence)."""
    if rate != media.SPEECH_RATE:
        raise ValueError(f"Whisper takes {media.SPEECH_RATE} Hz audio, not {rate} Hz")
    report = progress or (lambda fraction, message: None)
    windows = window_count(len(samples) / rate)
    words = asr.word_timestamps
    try:
        output = on_fresh_thread(_run_pipeline, asr, samples, windows, report, cancel, generate_kwargs or {}, words)
    except (IndexError, ValueError) as error:
        if not words:
            raise
        # transformers' word-time decoding can trip over an odd token sequence (an IndexError in
        # its _decode_asr seen here): the words are still worth having with segment times.
        log.warning("Word timestamps failed (%s: %s); transcribing again with segment times", type(error).__name__, error)
        words = False
        output = on_fresh_thread(_run_pipeline, asr, samples, windows, report, cancel, generate_kwargs or {}, words)
    chunks = output.get("chunks") or []
    language = _language(chunks)
    levels = levels_db(samples, rate)
    if words:
        phrases = _phrases_from_words(_words(chunks, duration, levels))
    else:
        phrases = _phrases_from_segments(chunks, duration, levels)
    note = "" if any(p.text for p in phrases) else NOTHING_SAID
    return Transcript(tuple(phrases), asr.spec.key, language, note)


def _run_pipeline(asr: LoadedAsr, samples, windows: int, report: Progress, cancel, generate_kwargs: dict,
                  words: bool) -> dict:
    worker, done = threading.get_ident(), [0]

    def window_heard(module, args, kwargs, output) -> None:
        # The encoder hears each 30 s window once by keyword (``input_features``); a multilingual
        # checkpoint runs it once more, positionally, to detect the language: not counted.
        if threading.get_ident() == worker and "input_features" in kwargs:
            done[0] += 1
            report(0.1 + 0.9 * min(done[0], windows) / windows, f"Transcribing: {min(done[0], windows)}/{windows} × 30 s")

    hook = asr.model.get_encoder().register_forward_hook(window_heard, with_kwargs=True)
    try:
        with cancel_scope(cancel):
            _check(cancel)
            report(0.1, f"Transcribing: 0/{windows} × 30 s")
            return asr.pipeline(
                samples.copy(), chunk_length_s=CHUNK_S, stride_length_s=STRIDE_S, ignore_warning=True,
                batch_size=8 if asr.device.startswith("cuda") else 1,
                return_timestamps="word" if words else True, return_language=True,
                # Greedy: the pipeline's default is 5 beams, five sequences decoded at every step.
                generate_kwargs={"num_beams": 1, "task": "transcribe", **generate_kwargs},
            )
    finally:
        hook.remove()


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("Transcription stopped.")


def _language(chunks: Sequence[dict]) -> str | None:
    named = Counter(c.get("language") for c in chunks if c.get("language"))
    return named.most_common(1)[0][0] if named else None


def _times(chunk: dict, cursor: float, duration: float) -> tuple[float, float]:
    """The chunk's (start, end) made monotonic (never before ``cursor``) and kept in the video."""
    start, end = (tuple(chunk.get("timestamp") or ()) + (None, None))[:2]
    start = min(duration, max(cursor, float(start) if start is not None else cursor))
    end = min(duration, max(start, float(end) if end is not None else duration))
    return start, end


def _words(chunks: Sequence[dict], duration: float, levels: np.ndarray) -> list[Word]:
    return [Word(start, end, text) for start, end, text in _heard_chunks(chunks, duration, levels)]


def _heard_chunks(chunks: Sequence[dict], duration: float, levels: np.ndarray):
    """(start, end, text) of each chunk with text that lies where there is sound, times made
    monotonic and kept inside the video."""
    cursor = 0.0
    for chunk in chunks:
        text = " ".join(str(chunk.get("text", "")).split())
        if not text:
            continue
        start, end = _times(chunk, cursor, duration)
        if _heard(levels, start, end):
            yield round(start, 3), round(end, 3), text
            cursor = end


def _phrases_from_words(words: Sequence[Word]) -> list[Phrase]:
    phrases, current = [], []
    for word in words:
        if current and _phrase_ends(current, word):
            phrases.append(_phrase(current))
            current = []
        current.append(word)
    if current:
        phrases.append(_phrase(current))
    return phrases


def _phrase_ends(current: list[Word], following: Word) -> bool:
    return (following.start - current[-1].end >= PHRASE_GAP_S or current[-1].text.endswith((".", "?", "!"))
            or len(current) >= MAX_PHRASE_WORDS or following.end - current[0].start > MAX_PHRASE_S)


def _phrase(words: Sequence[Word]) -> Phrase:
    return Phrase(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words))


def _phrases_from_segments(chunks: Sequence[dict], duration: float, levels: np.ndarray) -> list[Phrase]:
    return [Phrase(start, end, text) for start, end, text in _heard_chunks(chunks, duration, levels)]
