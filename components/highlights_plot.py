"""The score timeline of the Highlights tab as a small inline SVG (no plotting dependency).

Pure function, no gradio: ``score_timeline_svg(windows, duration, segments, threshold, ...)``
draws the score of every window over time (a step line), the selected segments shaded, and the
threshold (or, in target-length mode, the lowest score that made the cut) as a dashed line.
With ``cuts`` the shot cuts are thin vertical ticks; with ``visual`` and ``audio`` (per window)
the two signals the score mixes are drawn as fainter step lines (picture: grey, sound: green).
Every window carries a tooltip with its times and score (and both signals when given).
"""

from __future__ import annotations

from html import escape
from typing import Sequence

from pipelines.timecode import clock

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 30
MAX_TOOLTIPS = 2000  # beyond this the page gets heavy; the line alone still shows everything


def score_timeline_svg(windows: Sequence, duration: float, segments: Sequence = (), threshold: float | None = None,
                       threshold_label: str = "threshold", cuts: Sequence[float] = (),
                       visual: Sequence[float] | None = None, audio: Sequence[float] | None = None) -> str:
    """``windows``: objects with start, end, score; ``segments``: objects with start, end;
    ``cuts``: seconds; ``visual``/``audio``: one value per window, or None."""
    if duration <= 0 or not windows:
        return ""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: float) -> float:
        return LEFT + plot_w * max(0.0, min(seconds, duration)) / duration

    def y(score: float) -> float:
        return TOP + plot_h * (1.0 - max(0.0, min(score, 1.0)))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
             f'role="img" aria-label="Highlight score over time" style="max-width:{WIDTH}px;font:11px sans-serif">']
    parts += [f'<rect class="selected" x="{x(s.start):.1f}" y="{TOP}" width="{max(1.0, x(s.end) - x(s.start)):.1f}" '
              f'height="{plot_h}" fill="#f59e0b" fill-opacity="0.25"/>' for s in segments]
    parts += _axes(x, y, duration, plot_w, plot_h)
    parts += [f'<line class="cut" x1="{x(c):.1f}" x2="{x(c):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#7c3aed" '
              f'stroke-opacity="0.6" stroke-width="1"><title>shot cut at {clock(c, 1)}</title></line>' for c in cuts]
    for values, name, colour in ((visual, "visual", "#6b7280"), (audio, "audio", "#16a34a")):
        if values is not None:
            parts.append(_signal_line(windows, values, x, y, name, colour))
    parts.append(_score_line(windows, x, y))
    if threshold is not None:
        parts.append(f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(threshold):.1f}" '
                     f'y2="{y(threshold):.1f}" stroke="#dc2626" stroke-dasharray="5 4"/>')
        parts.append(f'<text x="{LEFT + plot_w - 4}" y="{y(threshold) - 4:.1f}" text-anchor="end" fill="#dc2626">'
                     f'{escape(threshold_label)} {threshold:.2f}</text>')
    if len(windows) <= MAX_TOOLTIPS:
        parts += [_tooltip(w, x, TOP, plot_h, _signals_text(k, visual, audio))
                  for k, w in enumerate(windows) if w.score is not None]
    parts.append("</svg>")
    return "".join(parts)


def _axes(x, y, duration: float, plot_w: float, plot_h: float) -> list[str]:
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9ca3af"/>']
    for value in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#6b7280">{value:g}</text>')
    for tick in _time_ticks(duration):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" stroke="#9ca3af"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" fill="#6b7280">{clock(tick)}</text>')
    return parts


def _score_line(windows, x, y) -> str:
    points = []
    for window in windows:
        if window.score is None:
            continue
        points += [f"{x(window.start):.1f},{y(window.score):.1f}", f"{x(window.end):.1f},{y(window.score):.1f}"]
    return f'<polyline class="score" points="{" ".join(points)}" fill="none" stroke="#2563eb" stroke-width="1.5"/>'


def _signal_line(windows, values, x, y, name: str, colour: str) -> str:
    points = []
    for window, value in zip(windows, values):
        points += [f"{x(window.start):.1f},{y(value):.1f}", f"{x(window.end):.1f},{y(value):.1f}"]
    return (f'<polyline class="{name}" points="{" ".join(points)}" fill="none" stroke="{colour}" '
            f'stroke-opacity="0.7" stroke-width="1" stroke-dasharray="3 2"/>')


def _signals_text(index: int, visual, audio) -> str:
    parts = [f"{name} {values[index]:.2f}" for name, values in (("picture", visual), ("sound", audio)) if values is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _tooltip(window, x, top: float, height: float, extra: str = "") -> str:
    return (f'<rect x="{x(window.start):.1f}" y="{top}" width="{max(1.0, x(window.end) - x(window.start)):.1f}" '
            f'height="{height}" fill="transparent"><title>{clock(window.start)}-{clock(window.end)}: '
            f'score {window.score:.2f}{extra}</title></rect>')


def _time_ticks(duration: float, wanted: int = 6) -> list[float]:
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    step = next((s for s in steps if duration / s <= wanted), steps[-1])
    return [i * step for i in range(int(duration // step) + 1)]
