"""Exports beside the reel: JSON (everything), SRT chapters, a CMX 3600 EDL and an XSPF playlist.

Contract: every writer takes the analysis and the chosen segments, writes one UTF-8 file
atomically (temporary file + rename) and returns its path.

* JSON: the video (name, content hash, length, fps), the model, the criteria, the window and
  selection settings, EVERY window with start, end, score and selected, the segments, and their
  total (``selected_seconds``, which the reel's length equals).
* SRT: one cue per segment on the REEL's timeline ("Highlight 2 · source 01:10-01:20 · score
  0.91"), so a player that opens highlights.mp4 shows where each part came from.
* EDL: CMX 3600, one event per segment (source timecode in, out; record timecode in, out), for
  editors such as DaVinci Resolve or Premiere. Timecode is non-drop at the nearest whole frame
  rate (29.97 fps counts as 30), the usual convention for NTSC material in a non-drop EDL.
* XSPF: a VLC playlist that plays the segments from the ORIGINAL video (what the reference
  generator exported), with start/stop times in seconds.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape

from .selection import Segment, selected_flags, total_seconds

JSON_NAME, SRT_NAME, EDL_NAME, XSPF_NAME, REEL_NAME = (
    "highlights.json", "highlights.srt", "highlights.edl", "highlights.xspf", "highlights.mp4")


def write_all(analysis, segments: Sequence[Segment], out_dir, selection: dict | None = None,
              reel: Path | None = None) -> dict[str, Path]:
    """JSON, SRT, EDL and XSPF into ``out_dir``; returns {kind: path}."""
    out_dir = Path(out_dir)
    return {
        "json": write_json(out_dir / JSON_NAME, analysis, segments, selection, reel),
        "srt": write_srt(out_dir / SRT_NAME, segments),
        "edl": write_edl(out_dir / EDL_NAME, segments, analysis.fps, Path(analysis.video).name),
        "xspf": write_xspf(out_dir / XSPF_NAME, segments, Path(analysis.video).name),
    }


def report(analysis, segments: Sequence[Segment], selection: dict | None = None, reel: Path | None = None) -> dict:
    """The JSON document as a dict (also what the UI keeps between calls)."""
    flags = selected_flags(analysis.windows, segments)
    return {
        "video": Path(analysis.video).name,
        "video_sha256": analysis.video_hash,
        "duration": round(analysis.duration, 6),
        "fps": analysis.fps,
        "has_audio": analysis.has_audio,
        "model": analysis.model,
        "model_label": analysis.model_label,
        "criteria": analysis.criteria,
        "window_seconds": analysis.window_seconds,
        "overlap_seconds": analysis.overlap_seconds,
        "frames_per_window": analysis.frames_per_window,
        "selection": selection or {},
        "selected_seconds": round(total_seconds(segments), 6),
        "reel": reel.name if reel else None,
        "segments": [{"start": s.start, "end": s.end, "score": _rounded(s.score)} for s in segments],
        "windows": [
            {"index": w.index, "start": w.start, "end": w.end, "score": _rounded(w.score), "selected": flag}
            for w, flag in zip(analysis.windows, flags)
        ],
    }


def write_json(path, analysis, segments, selection=None, reel=None) -> Path:
    return _write(path, json.dumps(report(analysis, segments, selection, reel), indent=2) + "\n")


def write_srt(path, segments: Sequence[Segment]) -> Path:
    cues, position = [], 0.0
    for number, segment in enumerate(segments, start=1):
        end = position + segment.duration
        score = "" if segment.score is None else f" · score {segment.score:.2f}"
        text = f"Highlight {number} · source {_clock(segment.start)}-{_clock(segment.end)}{score}"
        cues.append(f"{number}\n{_srt_time(position)} --> {_srt_time(end)}\n{text}\n")
        position = end
    return _write(path, "\n".join(cues))


def write_edl(path, segments: Sequence[Segment], fps: float, source_name: str, title: str = "Highlights") -> Path:
    base = max(1, int(round(fps)))
    lines = [f"TITLE: {_edl_safe(title)}", "FCM: NON-DROP FRAME", ""]
    record = 0
    for number, segment in enumerate(segments, start=1):
        first, count = int(round(segment.start * fps)), int(round(segment.duration * fps))
        lines.append(
            f"{number:03d}  AX       AA/V  C        {_timecode(first, base)} {_timecode(first + count, base)} "
            f"{_timecode(record, base)} {_timecode(record + count, base)}"
        )
        lines.append(f"* FROM CLIP NAME: {_edl_safe(source_name)}")
        lines.append("")
        record += count
    return _write(path, "\n".join(lines))


def write_xspf(path, segments: Sequence[Segment], source_name: str) -> Path:
    tracks = []
    for number, segment in enumerate(segments):
        tracks.append(
            "    <track>\n"
            f"      <location>{escape(quote(Path(source_name).name))}</location>\n"
            f"      <title>Highlight {number + 1} ({_clock(segment.start)}-{_clock(segment.end)})</title>\n"
            '      <extension application="http://www.videolan.org/vlc/playlist/0">\n'
            f"        <vlc:id>{number}</vlc:id>\n"
            f"        <vlc:option>start-time={segment.start:.3f}</vlc:option>\n"
            f"        <vlc:option>stop-time={segment.end:.3f}</vlc:option>\n"
            "      </extension>\n"
            "    </track>\n"
        )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<playlist version="1" xmlns="http://xspf.org/ns/0/" xmlns:vlc="http://www.videolan.org/vlc/playlist/0/">\n'
        f"  <title>{escape(Path(source_name).name)} - Highlights</title>\n"
        "  <trackList>\n" + "".join(tracks) + "  </trackList>\n</playlist>\n"
    )
    return _write(path, text)


def _write(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; these are ordinary shareable files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(float(score), 6)


def _clock(seconds: float) -> str:
    whole = int(math.floor(seconds + 1e-6))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def _srt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def _timecode(frames: int, base: int) -> str:
    seconds, frame = divmod(frames, base)
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}:{frame:02d}"


def _edl_safe(text: str) -> str:
    """EDL lines are plain ASCII without line breaks."""
    return "".join(c if 32 <= ord(c) < 127 else "_" for c in text)[:120]
