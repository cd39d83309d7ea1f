"""The ONE table of limits. Checks in the pipelines and the ranges of UI sliders both read it.

Every limit has a default, a lower and an upper bound. Deployers change a default with an
environment variable ``VLMS_<NAME>`` (e.g. ``VLMS_MAX_IMAGES_PER_MESSAGE=4``); the value is
clamped to the limit's bounds so a typo cannot disable a safety check. ``app.py --max-file-size``
sets ``max_upload_mb``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
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


# name: (default, minimum, maximum, unit, description)
_TABLE: dict[str, tuple[float, float, float, str, str]] = {
    "max_images_per_message": (8, 1, 16, "images", "Images per message"),
    "max_image_pixels": (40_000_000, 1_000_000, 100_000_000, "pixels", "Pixels per image"),
    "max_gif_frames_read": (1, 1, 1, "frames", "Frames read from an animated image"),
    "max_upload_mb": (200, 1, 4096, "MB", "Upload size"),
    "max_video_seconds": (4 * 3600, 1, 12 * 3600, "seconds", "Video length"),
    "max_video_pixels": (3840 * 2160, 64 * 64, 7680 * 4320, "pixels", "Video frame size"),
    "video_fps": (4.0, 0.05, 8.0, "frames/s", "Frames per second sampled from a video"),
    "max_frames": (64, 1, 128, "frames", "Frames sampled from a video"),
    "max_new_tokens": (2048, 1, 8192, "tokens", "New tokens"),
    "temperature": (2.0, 0.0, 2.0, "", "Temperature"),
    "top_p": (1.0, 0.05, 1.0, "", "Top-p"),
    "compare_images": (8, 2, 16, "images", "Images in a comparison"),
    "window_seconds": (60, 2, 60, "seconds", "Highlight window length"),
    "frames_per_window": (16, 1, 16, "frames", "Frames per highlight window"),
    "max_criteria_chars": (1000, 10, 4000, "characters", "Highlight criteria length"),
    "decode_timeout_s": (120, 5, 3600, "seconds", "Time allowed to decode a video's frames"),
    "decode_memory_mb": (8192, 512, 65536, "MB", "Memory allowed to the process that decodes one video"),
    "generation_stall_s": (600, 1, 3600, "seconds", "Time a generation may go without producing a token"),
    "queue_size": (16, 1, 256, "requests", "Waiting requests"),
}


@dataclass(frozen=True)
class Limits:
    """All limits in force. Attribute access gives the ``Limit`` row (``LIMITS.max_frames.value``)."""

    rows: Mapping[str, Limit]

    def __getattr__(self, name: str) -> Limit:
        if name.startswith("__") or name == "rows":  # unpickling asks before ``rows`` exists
            raise AttributeError(name)
        try:
            return self.rows[name]
        except KeyError:
            raise AttributeError(name) from None

    def value(self, name: str) -> float:
        return self.rows[name].value

    def with_value(self, name: str, value: float) -> "Limits":
        """A copy with one limit's value replaced (clamped to its bounds)."""
        row = self.rows[name]
        clamped = min(max(value, row.minimum), row.maximum)
        return Limits({**self.rows, name: dataclasses.replace(row, value=type(row.value)(clamped))})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        env = os.environ if environ is None else environ
        limits = cls({name: Limit(name, *spec) for name, spec in _TABLE.items()})
        for name in _TABLE:
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

LIMITS = Limits.from_env()
