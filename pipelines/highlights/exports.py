"""Exports beside the reel: JSON (everything), SRT chapters, a CMX 3600 EDL, an XSPF playlist, and
(with a transcript) what is said as subtitles.

Contract: every writer takes the analysis and the chosen segments, writes one UTF-8 file
atomically (temporary file + rename) and returns its path.

* JSON: the video (name, content hash, length, fps), the model, the criteria, the window and
  selection settings, the reel's shape, the shot cuts (``shots``), EVERY window with start, end,
  score (the mix), ``visual`` (the model's P(yes)), its audio signal (``audio``,
  ``loudness_db``, ``burst_db``; absent without a soundtrack, with ``audio_note`` saying so)
  and selected, the segments (with which edges sit on a shot cut), and their total
  (``selected_seconds``, which the reel's length equals).
* SRT: one cue per segment on the REEL's timeline ("Highlight 2 · source 01:10-01:20 · score
  0.91"), so a player that opens highlights.mp4 shows where each part came from.
* EDL: CMX 3600, one event per segment (source timecode in, out; record timecode in, out), for
  editors such as DaVinci Resolve or Premiere. Timecode is non-drop at the nearest whole frame
  rate (29.97 fps counts as 30), the usual convention for NTSC material in a non-drop EDL.
* XSPF: a VLC playlist that plays the segments from the ORIGINAL video (what the reference
  generator exported), with start/stop times in seconds.
* Speech (when the analysis has a transcript, even an empty one): ``transcript.srt`` and
  ``transcript.vtt``, what is said in the WHOLE video on the source's timeline (one cue per
  phrase), and ``reel-transcript.srt`` / ``reel-transcript.vtt``, what is said in the reel on
  the REEL's timeline (``Transcript.on_reel``: cut at the segments' edges, so a player showing
  highlights.mp4 with them shows the words as they are heard). The JSON then adds ``speech``
  (the speech model, language, whether scoring heard the windows' text, the note when it did
  not or when nothing was heard, and the caption style burned into the reel or null),
  ``transcript`` (every phrase with its words) and each window's ``text`` (what was said in it).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape

from ..timecode import clock, srt_time
from .selection import Segment, selected_flags, snapped_edges, total_seconds

JSON_NAME, SRT_NAME, EDL_NAME, XSPF_NAME, REEL_NAME = (
    "highlights.json", "highlights.srt", "highlights.edl", "highlights.xspf", "highlights.mp4")
TRANSCRIPT_SRT, TRANSCRIPT_VTT, REEL_TRANSCRIPT_SRT, REEL_TRANSCRIPT_VTT = (
    "transcript.srt", "transcript.vtt", "reel-transcript.srt", "reel-transcript.vtt")
# The kinds a user downloads, in the order the Highlights tab lists them.
DOWNLOADS = ("json", "srt", "edl", "xspf", "transcript_srt", "transcript_vtt", "reel_transcript_srt",
             "reel_transcript_vtt")


def write_all(analysis, segments: Sequence[Segment], out_dir, selection=None, reel: Path | None = None,
              shape=None, captions: str | None = None) -> dict[str, Path]:
    """JSON, SRT, EDL and XSPF (and the transcript's subtitles) into ``out_dir``; returns {kind: path}."""
    out_dir = Path(out_dir)
    files = {
        "json": write_json(out_dir / JSON_NAME, analysis, segments, selection, reel, shape, captions),
        "srt": write_srt(out_dir / SRT_NAME, segments),
        "edl": write_edl(out_dir / EDL_NAME, segments, analysis.fps, Path(analysis.video).name),
        "xspf": write_xspf(out_dir / XSPF_NAME, segments, Path(analysis.video).name),
    }
    transcript = getattr(analysis, "transcript", None)
    if transcript is not None:
        files.update(write_transcripts(out_dir, transcript, segments))
    return files


def write_transcripts(out_dir, transcript, segments: Sequence[Segment]) -> dict[str, Path]:
    """The transcript as SRT and WebVTT, in source time and on the reel's timeline."""
    from ..speech.transcript import srt, webvtt

    on_reel = transcript.on_reel([(s.start, s.end) for s in segments])
    out_dir = Path(out_dir)
    return {
        "transcript_srt": _write(out_dir / TRANSCRIPT_SRT, srt(transcript)),
        "transcript_vtt": _write(out_dir / TRANSCRIPT_VTT, webvtt(transcript)),
        "reel_transcript_srt": _write(out_dir / REEL_TRANSCRIPT_SRT, srt(on_reel)),
        "reel_transcript_vtt": _write(out_dir / REEL_TRANSCRIPT_VTT, webvtt(on_reel)),
    }


def report(analysis, segments: Sequence[Segment], selection=None, reel: Path | None = None, shape=None,
           captions: str | None = None) -> dict:
    """The JSON document as a dict. ``selection`` and ``shape``: the dataclasses, or plain dicts."""
    flags = selected_flags(analysis.windows, segments)
    cuts = tuple(getattr(analysis, "cuts", ()))
    document = {
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
        "selection": _plain(selection),
        "selected_seconds": round(total_seconds(segments), 6),
        "reel": reel.name if reel else None,
        "segments": [{"start": s.start, "end": s.end, "score": _rounded(s.score),
                      **dict(zip(("start_on_cut", "end_on_cut"), snapped_edges(s, cuts)))} for s in segments],
        "windows": [
            {"index": w.index, "start": w.start, "end": w.end, "score": _rounded(w.score), "selected": flag}
            for w, flag in zip(analysis.windows, flags)
        ],
    }
    if getattr(analysis, "signals", None) is not None:
        document.update(_signals(analysis, shape))
        _window_signals(analysis, document)
    if getattr(analysis, "transcript", None) is not None:
        document.update(_speech(analysis, captions, reel))
        for row, text in zip(document["windows"], analysis.said or ()):
            row["text"] = text
    return document


def _speech(analysis, captions: str | None, reel: Path | None) -> dict:
    transcript = analysis.transcript
    speech = {"model": transcript.model, "language": transcript.language, "used_in_scoring": analysis.speech_used,
              "captions": captions if reel is not None else None}
    if analysis.speech_note:
        speech["note"] = analysis.speech_note
    return {"speech": speech, "transcript": transcript.to_dict()}


def _signals(analysis, shape) -> dict:
    """Shots, the shape, the windowing and the audio weight (and why there is no audio signal)."""
    extra = {"shots": list(analysis.cuts), "window_mode": analysis.window_mode, "audio_weight": analysis.audio_weight,
             "shape": {**_plain(shape), "size": list(shape.output_size) if shape and shape.output_size else None}}
    if analysis.signals.note:
        extra["signals_note"] = analysis.signals.note
    if analysis.audio is None:
        extra["audio_note"] = ("The video has no soundtrack: windows are scored on the picture alone."
                               if not analysis.has_audio else "No audio signal: windows are scored on the picture alone.")
    return extra


def _window_signals(analysis, document: dict) -> None:
    for index, row in enumerate(document["windows"]):
        if analysis.visual is not None:
            row["visual"] = _rounded(analysis.visual[index])
        if analysis.audio is not None:
            feature = analysis.audio[index]
            row.update(audio=feature.score, loudness_db=feature.loudness_db, burst_db=feature.burst_db)


def _plain(value) -> dict:
    if value is None:
        return {}
    return value if isinstance(value, dict) else value.to_dict() if hasattr(value, "to_dict") else dict(vars(value))


def write_json(path, analysis, segments, selection=None, reel=None, shape=None, captions=None) -> Path:
    return _write(path, json.dumps(report(analysis, segments, selection, reel, shape, captions), indent=2) + "\n")


def write_srt(path, segments: Sequence[Segment]) -> Path:
    cues, position = [], 0.0
    for number, segment in enumerate(segments, start=1):
        end = position + segment.duration
        score = "" if segment.score is None else f" · score {segment.score:.2f}"
        text = f"Highlight {number} · source {clock(segment.start)}-{clock(segment.end)}{score}"
        cues.append(f"{number}\n{srt_time(position)} --> {srt_time(end)}\n{text}\n")
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
            f"      <title>Highlight {number + 1} ({clock(segment.start)}-{clock(segment.end)})</title>\n"
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


def _timecode(frames: int, base: int) -> str:
    seconds, frame = divmod(frames, base)
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}:{frame:02d}"


def _edl_safe(text: str) -> str:
    """EDL lines are plain ASCII without line breaks."""
    return "".join(c if 32 <= ord(c) < 127 else "_" for c in text)[:120]
