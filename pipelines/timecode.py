"""The ONE way this app prints a time (a position in a video, a length, a time left).

Contract
--------
* ``clock(seconds, decimals=0)``: how a person reads a video player: ``"M:SS"`` under an hour,
  ``"H:MM:SS"`` from an hour on, with ``decimals`` digits of fractional seconds when asked
  (``"0:59.60"``). It FLOORS to the last unit shown, as players do: the frame shown at 59.6 s
  belongs to second 59, so "0:59" is where a person seeks to find it, and a printed start never
  lies after the real one. A microsecond of tolerance absorbs float error (``0.1 * 30`` prints
  "0:03", not "0:02").
* ``srt_time(seconds)``: SubRip's ``"HH:MM:SS,mmm"``, to the NEAREST millisecond (a machine-read
  cue time: a player rounds it anyway; flooring would shift every cue a little early).
* ``vtt_time(seconds)``: WebVTT's ``"HH:MM:SS.mmm"``, rounded the same way.
* All clamp a negative time to 0 (nothing here happens before a video starts; a tiny negative is
  float error from a subtraction) and raise ``ValueError`` for NaN or an infinity (a bug upstream:
  there is no honest way to print it).
"""

from __future__ import annotations

import math

# Float error from sums and products of frame times is far below this; a real time never is.
_TOLERANCE_S = 1e-6


def clock(seconds: float, decimals: int = 0) -> str:
    """``seconds`` as "M:SS" / "H:MM:SS" (plus ``decimals`` fractional digits), floored."""
    if decimals < 0:
        raise ValueError(f"decimals must be 0 or more, got {decimals}")
    scale = 10**decimals
    units = math.floor((_checked(seconds) + _TOLERANCE_S) * scale)
    whole, fraction = divmod(units, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{fraction:0{decimals}d}" if decimals else text


def srt_time(seconds: float) -> str:
    """``seconds`` as SubRip's "HH:MM:SS,mmm", rounded to the nearest millisecond."""
    millis = int(round(_checked(seconds) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def vtt_time(seconds: float) -> str:
    """``seconds`` as WebVTT's "HH:MM:SS.mmm", rounded to the nearest millisecond."""
    return srt_time(seconds).replace(",", ".")


def _checked(seconds: float) -> float:
    value = float(seconds)
    if not math.isfinite(value):
        raise ValueError(f"cannot print the time {seconds!r}")
    return max(0.0, value)
