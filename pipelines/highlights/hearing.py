"""Highlights that hear: what was said in each window, as the line the model reads with its frames.

Contract
--------
* ``SPEECH_MODES``: "auto" (the default: speech is used when a transcript with speech exists),
  "on" (the same, but the request must name a speech model: asking to hear with nothing to
  listen with is a mistake) and "off" (windows are scored on their frames alone; a transcript,
  if made, still serves captions and exports).
* ``plan_hearing(mode, transcript, windows, limits) -> Hearing``: each window's text
  (``Transcript.text_between``: a word belongs to the one window holding its middle), whether
  scoring uses it, the token budget (``limits.speech_tokens``) and a note for the user when it
  is not used although asked for.
* ``Hearing.cache_part()``: what the score cache key gains when speech is used (the window
  texts and the budget: the prompt is a function of them and the model, already in the key);
  ``{}`` when it is not, so speech-off scores keep their old entries and never mix with heard ones.
* ``Hearing.lines(count_tokens)``: per window, the line put before the scoring question:
  ``Said in this part: "<text>"`` with the text cut at a word boundary to at most the budget in
  the model's tokens (counted as the prompt holds it, control tokens included: they are
  neutralised by the processor like any user text), ending with "…" when cut; windows where
  nothing is said get ``NOTHING_SAID`` (with speech on, silence is information too).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import BadInputError
from ..limits import LIMITS, Limits
from ..registry import asr_enabled
from ..speech.prompt import ELLIPSIS, longest_fitting

SPEECH_MODES = ("auto", "on", "off")
SAID = 'Said in this part: "{text}"'
NOTHING_SAID = "Nothing is said in this part."


@dataclass(frozen=True)
class Hearing:
    """What scoring hears: per window text (in window order), and whether it is used."""

    texts: tuple[str, ...] = ()
    used: bool = False
    max_tokens: int = int(LIMITS.speech_tokens.value)
    note: str = ""

    def cache_part(self) -> dict:
        if not self.used:
            return {}
        digest = hashlib.sha256(json.dumps(self.texts).encode()).hexdigest()
        return {"speech": digest, "speech_tokens": self.max_tokens}

    def lines(self, count_tokens: Callable[[str], int]) -> tuple[str, ...]:
        """The line before the question, per window (empty tuple when speech is not used)."""
        if not self.used:
            return ()
        return tuple(said_line(text, count_tokens, self.max_tokens) for text in self.texts)


def check_speech_mode(mode: str, asr_model: str | None, has_transcript: bool = False) -> None:
    if mode not in SPEECH_MODES:
        raise BadInputError(f"Speech must be one of {', '.join(SPEECH_MODES)}; got {mode!r}.")
    if mode == "on" and not asr_model and not has_transcript:
        raise BadInputError("Speech is on, but no speech model is chosen: choose one (--asr on the command line) or turn speech off.")


def speech_model(chosen: str | None, fallback: str | None, speech: str, captions: bool) -> str | None:
    """The speech model a highlights run transcribes with (the CLI's and the tab's one rule):
    ``chosen`` when one is (``"off"``: never); with none chosen (None), ``fallback`` (the default
    or the app's ``--asr``) only when captions or speech "on" ask for speech; else None, so a run
    without speech costs what it did before."""
    if chosen is not None:
        return chosen if asr_enabled(chosen) else None
    wanted = captions or speech == "on"
    return fallback if wanted and fallback and asr_enabled(fallback) else None


def plan_hearing(mode: str, transcript, windows: Sequence, limits: Limits = LIMITS) -> Hearing:
    """Each window's text and whether scoring uses it (see the module docstring)."""
    budget = int(limits.speech_tokens.value)
    if transcript is None:
        return Hearing(max_tokens=budget)
    texts = tuple(transcript.text_between(w.start, w.end) for w in windows)
    if mode == "off":
        return Hearing(texts, False, budget, "Speech is off: windows were scored on their frames alone.")
    if transcript.empty or not any(texts):
        why = transcript.note or "No speech was heard."
        return Hearing(texts, False, budget, f"{why} Windows were scored on their frames alone.")
    return Hearing(texts, True, budget)


def said_line(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    if not text.strip():
        return NOTHING_SAID
    cut = cut_to_tokens(text, count_tokens, max_tokens)
    return SAID.format(text=cut if cut == " ".join(text.split()) else f"{cut} {ELLIPSIS}".strip())


def cut_to_tokens(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    """The longest run of leading words of ``text`` that takes at most ``max_tokens`` tokens
    (whitespace collapsed; ~log2 counts, ``longest_fitting``). A first word longer than the
    budget (languages written without spaces) is cut by characters."""
    words = text.split()[:max_tokens]  # every word takes at least one token
    kept = longest_fitting(len(words), lambda n: count_tokens(" ".join(words[:n])) <= max_tokens)
    if kept or not words:
        return " ".join(words[:kept])
    letters = words[0][:max_tokens * 8]
    return letters[:longest_fitting(len(letters), lambda n: count_tokens(letters[:n]) <= max_tokens)]


__all__ = ["ELLIPSIS", "Hearing", "NOTHING_SAID", "SAID", "SPEECH_MODES", "check_speech_mode", "cut_to_tokens",
           "plan_hearing", "said_line", "speech_model"]
