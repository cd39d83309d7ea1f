"""What was said in a video, as values: phrases with times, optional word times, and the two
subtitle formats. Pure: no model, no decoding (``pipelines.speech.transcribe`` makes these).

Contract
--------
* ``Word(start, end, text)`` and ``Phrase(start, end, text, words)``: seconds in SOURCE time,
  ``start <= end``; a phrase's ``words`` (possibly empty: segment-level timestamps only) lie
  inside it, in order. Phrases of a ``Transcript`` are sorted and do not overlap.
* ``Transcript(phrases, model, language, note)``: ``note`` says why it is empty ("This video has
  no soundtrack.", "No speech was heard.") and is shown to the user instead of an error.
* ``text_between(start, end)``: what was said in ``[start, end)``: the words whose middle lies
  inside (a word is never split between two windows, and never given to both), or, for phrases
  without word times, the phrases that overlap the span by more than half of the shorter of the
  two. Joined with single spaces; "" when nothing was said.
* ``on_reel(spans)``: the transcript on a REEL's timeline: ``spans`` are the source
  ``(start, end)`` of each reel segment in reel order; the reel plays them back to back. A phrase
  is cut to the parts inside spans (keeping only its words inside, when it has word times) and
  re-timed; what lies outside every span is dropped.
* ``srt(transcript)`` / ``webvtt(transcript)``: one cue per phrase, times rounded to the
  millisecond (pipelines.timecode), empty phrases skipped; a "-->" inside text cannot end a cue
  line early (it is written "->").
* ``to_dict()`` / ``Transcript.from_dict()``: JSON-ready, round-trips exactly (the cache and the
  highlights JSON use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..timecode import srt_time, vtt_time

TRANSCRIPT_VERSION = 1


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Phrase:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class Transcript:
    phrases: tuple[Phrase, ...] = ()
    model: str = ""
    language: str | None = None
    note: str = ""
    version: int = field(default=TRANSCRIPT_VERSION, compare=False)

    @property
    def empty(self) -> bool:
        return not any(phrase.text.strip() for phrase in self.phrases)

    @property
    def text(self) -> str:
        return _joined(phrase.text for phrase in self.phrases)

    def text_between(self, start: float, end: float) -> str:
        """What was said in ``[start, end)`` (see the module docstring)."""
        parts = []
        for phrase in self.phrases:
            if phrase.end < start or phrase.start >= end:
                continue
            if phrase.words:
                parts.extend(w.text for w in phrase.words if start <= (w.start + w.end) / 2 < end)
            elif _overlap(phrase.start, phrase.end, start, end) > 0.5 * min(phrase.end - phrase.start, end - start):
                parts.append(phrase.text)
        return _joined(parts)

    def on_reel(self, spans: Sequence[tuple[float, float]]) -> "Transcript":
        """This transcript on the timeline of a reel made of ``spans`` played back to back."""
        phrases: list[Phrase] = []
        offset = 0.0
        for span_start, span_end in spans:
            for phrase in self.phrases:
                cut = _cut(phrase, span_start, span_end, offset - span_start)
                if cut is not None:
                    phrases.append(cut)
            offset += span_end - span_start
        return Transcript(tuple(phrases), self.model, self.language, self.note)

    def to_dict(self) -> dict:
        return {
            "version": self.version, "model": self.model, "language": self.language, "note": self.note,
            "phrases": [{"start": p.start, "end": p.end, "text": p.text,
                         "words": [[w.start, w.end, w.text] for w in p.words]} for p in self.phrases],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Transcript":
        phrases = tuple(
            Phrase(float(p["start"]), float(p["end"]), str(p["text"]),
                   tuple(Word(float(s), float(e), str(t)) for s, e, t in p.get("words", ())))
            for p in data.get("phrases", ()))
        return cls(phrases, str(data.get("model", "")), data.get("language"), str(data.get("note", "")),
                   int(data.get("version", TRANSCRIPT_VERSION)))


def srt(transcript: Transcript) -> str:
    cues = [f"{number}\n{srt_time(p.start)} --> {srt_time(p.end)}\n{_cue_text(p.text)}\n"
            for number, p in enumerate(_spoken(transcript), start=1)]
    return "\n".join(cues)


def webvtt(transcript: Transcript) -> str:
    cues = [f"{vtt_time(p.start)} --> {vtt_time(p.end)}\n{_cue_text(p.text)}\n" for p in _spoken(transcript)]
    return "\n".join(["WEBVTT\n", *cues])


def _spoken(transcript: Transcript) -> list[Phrase]:
    return [p for p in transcript.phrases if p.text.strip()]


def _cue_text(text: str) -> str:
    # A blank line ends a cue and "-->" starts a timing line: neither may come from speech.
    lines = [line.strip() for line in text.replace("-->", "->").splitlines()]
    return "\n".join(line for line in lines if line) or "…"


def _cut(phrase: Phrase, start: float, end: float, shift: float) -> Phrase | None:
    if phrase.end <= start or phrase.start >= end:
        return None
    if phrase.words:
        words = tuple(Word(max(w.start, start) + shift, min(w.end, end) + shift, w.text)
                      for w in phrase.words if start <= (w.start + w.end) / 2 < end)
        if not words:
            return None
        return Phrase(words[0].start, words[-1].end, _joined(w.text for w in words), words)
    return Phrase(max(phrase.start, start) + shift, min(phrase.end, end) + shift, phrase.text)


def _overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def _joined(parts: Iterable[str]) -> str:
    return " ".join(" ".join(part.split()) for part in parts if part and part.strip())
