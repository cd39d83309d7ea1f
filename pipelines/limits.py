"""The ONE table of limits. Checks in the pipelines and the ranges of UI sliders both read it.

Every limit has a default, a lower and an upper bound, and is a typed attribute of ``Limits``
(``limits.max_frames.value``). ``LIMITS`` is the table as shipped; nothing here reads the
environment at import. The entry points (``app.py``, the highlights CLI) call
``Limits.from_env()``: deployers change a default with an environment variable ``VLMS_<NAME>``
(e.g. ``VLMS_MAX_IMAGES_PER_MESSAGE=4``), clamped to the limit's bounds so a typo cannot disable
a safety check. ``app.py --max-file-size`` sets ``max_upload_mb``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Mapping

from .errors import BadInputError


@dataclass(frozen=True)
class Limit:
    """One row of the table: the value in force and the range it may be set within."""

    name: str
    value: float
    minimum: float
    maximum: float
    unit: str
    description: str

    def check(self, requested: float, what: str | None = None) -> float:
        """Return ``requested`` if it lies within [minimum, value]; raise BadInputError otherwise."""
        label = what or self.description
        if requested < self.minimum or requested > self.value:
            raise BadInputError(
                f"{label} must be between {_fmt(self.minimum)} and {_fmt(self.value)} {self.unit}; "
                f"got {_fmt(requested)}."
            )
        return requested


def _fmt(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


@dataclass(frozen=True)
class Limits:
    """All limits in force, one ``Limit`` per attribute; ``Limits()`` is the table as shipped."""

    max_images_per_message: Limit = Limit("max_images_per_message", 8, 1, 16, "images", "Images per message")
    max_image_pixels: Limit = Limit("max_image_pixels", 40_000_000, 1_000_000, 100_000_000, "pixels", "Pixels per image")
    max_upload_mb: Limit = Limit("max_upload_mb", 200, 1, 4096, "MB", "Upload size")
    max_video_seconds: Limit = Limit("max_video_seconds", 4 * 3600, 1, 12 * 3600, "seconds", "Video length")
    max_video_pixels: Limit = Limit("max_video_pixels", 3840 * 2160, 64 * 64, 7680 * 4320, "pixels", "Video frame size")
    video_fps: Limit = Limit("video_fps", 4.0, 0.05, 8.0, "frames/s", "Frames per second sampled from a video")
    max_frames: Limit = Limit("max_frames", 64, 1, 128, "frames", "Frames sampled from a video")
    max_new_tokens: Limit = Limit("max_new_tokens", 2048, 1, 8192, "tokens", "New tokens")
    temperature: Limit = Limit("temperature", 2.0, 0.0, 2.0, "", "Temperature")
    top_p: Limit = Limit("top_p", 1.0, 0.05, 1.0, "", "Top-p")
    compare_images: Limit = Limit("compare_images", 8, 2, 16, "images", "Images in a comparison")
    window_seconds: Limit = Limit("window_seconds", 60, 2, 60, "seconds", "Highlight window length")
    frames_per_window: Limit = Limit("frames_per_window", 16, 1, 16, "frames", "Frames per highlight window")
    max_criteria_chars: Limit = Limit("max_criteria_chars", 1000, 10, 4000, "characters", "Highlight criteria length")
    # What was said in a highlight window, given to the model with its frames (a 30 s window of
    # speech is ~100 tokens; the bound keeps a window's prompt far inside every model's context).
    speech_tokens: Limit = Limit("speech_tokens", 160, 16, 1024, "tokens", "Speech given to the model per highlight window")
    # A chat video's transcript in the prompt: ~150 words a minute is ~200 tokens, so the default
    # carries about 5 minutes of talk next to 64 frames (~4.9k tokens) in SmolVLM2's 8k context.
    chat_speech_tokens: Limit = Limit("chat_speech_tokens", 1024, 64, 4096, "tokens",
                                      "Transcript given to the chat model with a video")
    decode_timeout_s: Limit = Limit("decode_timeout_s", 120, 5, 3600, "seconds", "Time allowed to decode a video's frames")
    decode_memory_mb: Limit = Limit("decode_memory_mb", 8192, 512, 65536, "MB",
                                    "Memory allowed to the process that decodes one video")
    generation_stall_s: Limit = Limit("generation_stall_s", 600, 1, 3600, "seconds",
                                      "Time a generation may go without producing a token")
    queue_size: Limit = Limit("queue_size", 16, 1, 256, "requests", "Waiting requests")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every limit's name, in table order (``VLMS_<NAME upper-cased>`` sets it)."""
        return tuple(field.name for field in fields(cls))

    def with_value(self, name: str, value: float) -> "Limits":
        """A copy with one limit's value replaced (clamped to its bounds)."""
        if name not in self.names():
            raise KeyError(name)
        row: Limit = getattr(self, name)
        clamped = min(max(value, row.minimum), row.maximum)
        return dataclasses.replace(self, **{name: dataclasses.replace(row, value=type(row.value)(clamped))})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        """The table with the deployer's ``VLMS_<NAME>`` settings applied (``os.environ`` unless
        ``environ`` is given). Raises BadInputError for a value that is not a number."""
        env = os.environ if environ is None else environ
        limits = cls()
        for name in cls.names():
            raw = env.get(f"VLMS_{name.upper()}")
            if raw:
                try:
                    limits = limits.with_value(name, float(raw))
                except ValueError:
                    raise BadInputError(f"VLMS_{name.upper()} must be a number, got {raw!r}.") from None
        return limits


# Defaults for per-request settings (what the UI shows first); ranges come from LIMITS.
DEFAULT_MAX_NEW_TOKENS = 512
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9

LIMITS = Limits()  # as shipped; entry points apply the environment with Limits.from_env()
