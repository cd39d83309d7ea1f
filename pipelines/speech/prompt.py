"""A transcript as prompt text for the chat, and what is said around each frame. Pure.

Contract
--------
* ``transcript_lines(transcript)``: one line per spoken phrase, ``"[0:02-0:05] text"`` (times by
  ``pipelines.timecode.clock``, the app's one time format).
* ``transcript_prompt(transcript, count_tokens, max_tokens) -> SpokenText``: ``HEADER`` and the
  lines, in order, as many whole lines as fit in ``max_tokens`` tokens (``count_tokens(text)``:
  the chat model's own count); when even the first line does not fit, its leading words that do.
  A cut text ends with ``ELLIPSIS`` on a line of its own and says so (``cut``). Control tokens in
  the text are NOT removed here: the processor neutralises them like any user text
  (``sanitize_control_tokens``), so what was said cannot add images or turns.
* ``said_at_frames(transcript, times)``: per frame time (sorted seconds), what is said while that
  frame is the nearest one shown: the span from halfway to the previous frame to halfway to the
  next (the first from 0, the last to the end), so every word goes to exactly one frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..timecode import clock
from .transcript import Transcript

HEADER = "Said in the video (transcript, times in minutes:seconds):"
ELLIPSIS = "…"


@dataclass(frozen=True)
class SpokenText:
    text: str  # "" when nothing was said
    lines: int  # phrases included
    total: int  # phrases said
    tokens: int
    cut: bool


def transcript_lines(transcript: Transcript) -> list[str]:
    return [f"[{clock(p.start)}-{clock(p.end)}] {' '.join(p.text.split())}" for p in transcript.phrases if p.text.strip()]


def transcript_prompt(transcript: Transcript, count_tokens: Callable[[str], int], max_tokens: int) -> SpokenText:
    """The transcript as prompt text within ``max_tokens`` (module docstring)."""
    lines = transcript_lines(transcript)
    if not lines:
        return SpokenText("", 0, 0, 0, False)

    def text_of(count: int, cut: bool) -> str:
        return "\n".join([HEADER, *lines[:count], *([ELLIPSIS] if cut else [])])

    whole = text_of(len(lines), False)
    tokens = count_tokens(whole)
    if tokens <= max_tokens:
        return SpokenText(whole, len(lines), len(lines), tokens, False)
    count = longest_fitting(len(lines) - 1, lambda n: count_tokens(text_of(n, True)) <= max_tokens)
    if count:
        text = text_of(count, True)
        return SpokenText(text, count, len(lines), count_tokens(text), True)
    words = lines[0].split()
    first = longest_fitting(len(words) - 1, lambda n: count_tokens("\n".join([HEADER, " ".join(words[:n]), ELLIPSIS])) <= max_tokens)
    if not first:
        return SpokenText("", 0, len(lines), 0, True)
    text = "\n".join([HEADER, " ".join(words[:first]), ELLIPSIS])
    return SpokenText(text, 0, len(lines), count_tokens(text), True)


def said_at_frames(transcript: Transcript, times: Sequence[float]) -> list[str]:
    """What is said around each frame (module docstring); "" where nothing is."""
    times = list(times)
    said = []
    for index, seconds in enumerate(times):
        start = 0.0 if index == 0 else (times[index - 1] + seconds) / 2
        end = float("inf") if index == len(times) - 1 else (seconds + times[index + 1]) / 2
        said.append(transcript.text_between(start, end))
    return said


def longest_fitting(most: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [0, most] with ``fits(n)`` (``fits`` is monotonic; ``fits(0)`` assumed
    false only when nothing fits): a binary search, so a long text costs ~log2(n) token counts.
    The one way speech text is cut to a token budget (the chat's transcript, the highlights'
    window lines)."""
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low if low and fits(low) else 0
