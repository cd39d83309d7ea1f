"""Burned-in captions: what is said in the reel, readable on a phone.

Contract
--------
* ``CAPTION_STYLES``: "lines" (at most two lines per caption, a sentence or a breath at a time)
  and "words" (short groups of at most ``WORD_GROUP`` words, one line: the style of short-form
  video).
* ``timed_words(transcript) -> list[Word]`` (pure): every word with its time; a phrase without
  word times (segment-level timestamps) is split into its words, its time shared out by their
  length in characters.
* ``group_cues(words, style, max_chars) -> tuple[Cue, ...]`` (pure): consecutive words grouped
  into cues, each at most two lines (one for "words") of at most ``max_chars`` characters (a
  single longer word gets a line of its own). A new cue starts after a pause of ``PAUSE_S``
  (``WORD_PAUSE_S`` for words), after a sentence end, and before a cue would last over
  ``MAX_CUE_S``. A cue shows from its first word's start to its last word's end, held at least
  ``MIN_SHOW_S`` but never into the next cue. Two lines are balanced (the split that makes the
  longer line shortest).
* ``reel_captions(transcript, segments, style, size, aspect) -> Captions``: the transcript on
  the REEL's timeline (``Transcript.on_reel``), grouped into cues with lines as long as the
  reel's OUTPUT frame (``size``) allows, and their layout (``reel_cues`` does the grouping).
* ``CaptionLayout.for_frame(size, aspect)``: where and how large captions are drawn inside the
  OUTPUT frame: a font ``FONT_SHARE`` of the frame's shorter side (at least ``MIN_FONT_PX``),
  white with a black outline, lines centred, kept within ``WIDTH_SHARE`` of the width; the
  text's band sits ``BOTTOM_SHARE`` of the height above the bottom edge, or above the lower
  ``PORTRAIT_BOTTOM_SHARE`` on a 9:16 reel (where phone apps put their buttons and titles).
* ``caption_input(cues, layout, work, prefix, length) -> list[str]``: draws each cue once (Pillow,
  a band the frame's width, transparent around the text) and returns the ffmpeg input arguments
  of ONE stream that shows each band for its cue and a transparent band between cues (an
  ffconcat list of the PNGs with durations). render.py overlays it on the joined picture in the
  same single ffmpeg run: ``overlay_filter(layout)``; ``shifted`` puts a part's cues on its own
  timeline when a long reel is rendered in parts.

Limits: line breaking is by spaces, so text without them (Chinese, Japanese) makes one line per
caption, shrunk to fit; glyphs the font lacks show as boxes.

Fonts: DejaVu Sans Bold when the system has it (wide Unicode coverage), else the scalable font
built into Pillow (``ImageFont.load_default(size=...)``; needs FreeType, which Pillow's wheels
carry). Nothing is downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import BadInputError
from ..speech.transcript import Transcript, Word

CAPTION_STYLES = ("lines", "words")
WORD_GROUP = 3
PAUSE_S = 0.8
WORD_PAUSE_S = 0.4
MAX_CUE_S = 6.0
MIN_SHOW_S = {"lines": 1.0, "words": 0.4}
FONT_SHARE = 0.065  # 70 px on a 1080-wide phone reel: large, like the apps' own captions
MIN_FONT_PX = 12
WIDTH_SHARE = 0.9
BOTTOM_SHARE = 0.07
PORTRAIT_BOTTOM_SHARE = 0.25
LINE_SPACING = 1.2
_SENTENCE_END = re.compile(r"[.!?…]['\")\]]*$")
_FONT_FILES = ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@dataclass(frozen=True)
class Cue:
    """One caption: seconds on the reel's timeline, and its lines (one or two)."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


# =============================================================================================
# Grouping (pure)
# =============================================================================================


def timed_words(transcript: Transcript) -> list[Word]:
    words: list[Word] = []
    for phrase in transcript.phrases:
        if phrase.words:
            words.extend(w for w in phrase.words if w.text.strip())
        else:
            words.extend(_shared_out(phrase.start, phrase.end, phrase.text.split()))
    return words


def _shared_out(start: float, end: float, texts: list[str]) -> list[Word]:
    """A phrase's time shared among its words by their length (long words take longer to say)."""
    total = sum(len(t) for t in texts)
    words, at = [], start
    for text in texts:
        length = (end - start) * len(text) / total if total else 0.0
        words.append(Word(at, at + length, text))
        at += length
    return words


def group_cues(words: Sequence[Word], style: str = "lines", max_chars: int = 32) -> tuple[Cue, ...]:
    """Words -> cues (see the module docstring)."""
    if style not in CAPTION_STYLES:
        raise BadInputError(f"The caption style must be one of {', '.join(CAPTION_STYLES)}; got {style!r}.")
    groups: list[list[Word]] = []
    for word in (w for w in words if w.text.strip()):
        current = groups[-1] if groups else None
        if current is None or _starts_new(current, word, style, max_chars):
            groups.append([word])
        else:
            current.append(word)
    cues = [Cue(g[0].start, g[-1].end, _lines([w.text.strip() for w in g], style, max_chars)) for g in groups]
    return tuple(_held(cues, MIN_SHOW_S[style]))


def _starts_new(current: list[Word], word: Word, style: str, max_chars: int) -> bool:
    last = current[-1]
    pause = WORD_PAUSE_S if style == "words" else PAUSE_S
    if word.start - last.end > pause or _SENTENCE_END.search(last.text.strip()):
        return True
    if word.end - current[0].start > MAX_CUE_S:
        return True
    texts = [w.text.strip() for w in current] + [word.text.strip()]
    if style == "words":
        return len(texts) > WORD_GROUP or len(" ".join(texts)) > max_chars
    return len(_lines(texts, style, max_chars)) > 2


def _lines(texts: list[str], style: str, max_chars: int) -> tuple[str, ...]:
    """One line if it fits (always for "words"); else the most balanced split in two, or more
    lines when even that does not fit (the caller then starts a new cue)."""
    whole = " ".join(texts)
    if style == "words" or len(whole) <= max_chars or len(texts) == 1:
        return (whole,)
    splits = [(" ".join(texts[:k]), " ".join(texts[k:])) for k in range(1, len(texts))]
    best = min(splits, key=lambda pair: max(len(pair[0]), len(pair[1])))
    if max(len(best[0]), len(best[1])) <= max_chars:
        return best
    return _greedy(texts, max_chars)


def _greedy(texts: list[str], max_chars: int) -> tuple[str, ...]:
    lines: list[str] = []
    for text in texts:
        if lines and len(lines[-1]) + 1 + len(text) <= max_chars:
            lines[-1] += " " + text
        else:
            lines.append(text)
    return tuple(lines)


def _held(cues: list[Cue], least: float) -> list[Cue]:
    """Each cue shown at least ``least`` seconds, but never into the next one."""
    held = []
    for k, cue in enumerate(cues):
        limit = cues[k + 1].start if k + 1 < len(cues) else float("inf")
        held.append(Cue(cue.start, min(max(cue.end, cue.start + least), limit), cue.lines))
    return held


@dataclass(frozen=True)
class Captions:
    """What render.py burns into a reel: the cues (reel timeline) and where they go."""

    cues: tuple[Cue, ...]
    layout: "CaptionLayout"


def reel_cues(transcript: Transcript | None, segments: Sequence, style: str, max_chars: int) -> tuple[Cue, ...]:
    """The cues of the reel made of ``segments`` (reel timeline), lines of ``max_chars``."""
    if transcript is None:
        return ()
    on_reel = transcript.on_reel([(s.start, s.end) for s in segments])
    length = sum(s.end - s.start for s in segments)
    cues = group_cues(timed_words(on_reel), style, max_chars)
    return tuple(Cue(c.start, min(c.end, length), c.lines) for c in cues if c.start < length)


def reel_captions(transcript: Transcript | None, segments: Sequence, style: str, size: tuple[int, int],
                  aspect: str = "source") -> Captions:
    """Cues and layout for a reel whose OUTPUT frame is ``size`` (width, height)."""
    layout = CaptionLayout.for_frame(size, aspect)
    return Captions(reel_cues(transcript, segments, style, layout.max_chars), layout)


def shifted(cues: Sequence[Cue], offset: float, length: float) -> tuple[Cue, ...]:
    """The cues inside ``[offset, offset + length)`` of the reel, on a part's own timeline."""
    inside = []
    for cue in cues:
        start, end = max(cue.start - offset, 0.0), min(cue.end - offset, length)
        if end > start:
            inside.append(Cue(start, end, cue.lines))
    return tuple(inside)


# =============================================================================================
# Drawing
# =============================================================================================


@dataclass(frozen=True)
class CaptionLayout:
    """Where captions go in an output frame of ``width`` x ``height`` (module docstring)."""

    width: int
    height: int
    font_px: int
    band_top: int
    band_height: int

    @classmethod
    def for_frame(cls, size: tuple[int, int], aspect: str = "source") -> "CaptionLayout":
        width, height = size
        font_px = max(MIN_FONT_PX, round(min(width, height) * FONT_SHARE))
        band = int(round(2 * font_px * LINE_SPACING + 2 * _outline(font_px) + font_px * 0.4))
        band = min(band, height)
        bottom = PORTRAIT_BOTTOM_SHARE if aspect == "9:16" else BOTTOM_SHARE
        top = max(0, min(height - band, int(round(height * (1 - bottom))) - band))
        return cls(width, height, font_px, top, band)

    @property
    def max_width(self) -> int:
        return int(self.width * WIDTH_SHARE)

    @property
    def max_chars(self) -> int:
        """Characters per line, for grouping: a bold sans averages ~0.6 em per character."""
        return max(8, int(self.max_width / (0.6 * self.font_px)))


def _outline(font_px: int) -> int:
    return max(2, round(font_px / 12))


def caption_font(size_px: int):
    """A scalable bold font (see the module docstring)."""
    from PIL import ImageFont

    for name in _FONT_FILES:
        try:
            return ImageFont.truetype(name, size_px)
        except OSError:
            continue
    return ImageFont.load_default(size=size_px)


def draw_cue(cue: Cue | None, layout: CaptionLayout):
    """The caption band (RGBA, the frame's width): ``cue``'s lines centred, bottom-aligned,
    white with a black outline; fully transparent for None. A line wider than the band shrinks
    the font for this cue."""
    from PIL import Image, ImageDraw

    band = Image.new("RGBA", (layout.width, layout.band_height), (0, 0, 0, 0))
    if cue is None:
        return band
    font_px = layout.font_px
    font = caption_font(font_px)
    widest = max(font.getlength(line) for line in cue.lines)
    if widest > layout.max_width:
        font_px = max(MIN_FONT_PX // 2, int(font_px * layout.max_width / widest))
        font = caption_font(font_px)
    draw = ImageDraw.Draw(band)
    outline = _outline(font_px)
    step = int(round(font_px * LINE_SPACING))
    y = layout.band_height - outline - step * len(cue.lines)
    for line in cue.lines:
        x = (layout.width - font.getlength(line)) / 2
        draw.text((x, y), line, font=font, fill=(255, 255, 255, 255), stroke_width=outline,
                  stroke_fill=(0, 0, 0, 255))
        y += step
    return band


def caption_input(cues: Sequence[Cue], layout: CaptionLayout, work: Path, prefix: str, length: float) -> list[str]:
    """ffmpeg input arguments for ONE stream of caption bands over ``length`` seconds (module
    docstring). Files are written into ``work`` (where ffmpeg runs) and named without paths."""
    blank = f"{prefix}-blank.png"
    draw_cue(None, layout).save(work / blank)
    entries: list[tuple[str, float]] = []
    at = 0.0
    for k, cue in enumerate(cues):
        if cue.start > at:
            entries.append((blank, cue.start - at))
        name = f"{prefix}-cue{k:04d}.png"
        draw_cue(cue, layout).save(work / name)
        entries.append((name, cue.end - max(cue.start, at)))
        at = cue.end
    entries.append((blank, length - at))
    listing = ["ffconcat version 1.0"]
    for name, seconds in entries:
        if seconds > 0:
            listing += [f"file {name}", f"duration {seconds:.6f}"]
    # No frame may start at or after ``length``: the overlay would show it past the reel's last
    # picture (its main input is extended while the other has frames). After its last frame the
    # stream's last picture stays (eof_action=repeat) until the reel ends.
    script = f"{prefix}-captions.ffconcat"
    (work / script).write_text("\n".join(listing) + "\n")
    return ["-f", "concat", "-safe", "0", "-protocol_whitelist", "file", "-i", script]


def overlay_filter(layout: CaptionLayout) -> str:
    """The overlay that puts the caption stream's band in place (after the joined picture).

    ``format=yuv420``: blend in the reel's own pixel format. ``format=auto`` measured ~1.9x the
    CPU of a plain 9:16 render (six 10 s segments: 30.9 s vs 16.3 s; whole-frame conversions
    around the blend); yuv420 costs 18.4 s, +13 %."""
    return f"overlay=x=0:y={layout.band_top}:eof_action=repeat:format=yuv420"


__all__ = ["CAPTION_STYLES", "CaptionLayout", "Captions", "Cue", "reel_captions", "caption_font", "caption_input", "draw_cue", "group_cues",
           "overlay_filter", "reel_cues", "shifted", "timed_words"]
