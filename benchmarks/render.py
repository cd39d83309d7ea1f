"""Reel rendering: pipelines.highlights.render_reel vs moviepy ``concatenate_videoclips`` on the
same segments of the same generated 10-minute 640x360 clip (with audio).

The reference is moviepy as a user calls it (``write_videofile`` with its defaults: libx264
"medium", AAC); the note also gives moviepy with our x264 preset, so the codec choice and the
method can be told apart. Target: at least 5x faster, with both reels' durations within one frame
of the segments' sum. The SSIM between the two reels (same frames, two encoders) is printed as a
check that both cut the same frames at a comparable quality.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av

from pipelines import media
from pipelines.highlights import Segment, render_reel
from pipelines.highlights.render import VIDEO_CODEC

from .common import Row, median_time
from .frames import clip

OUR_PRESET = VIDEO_CODEC[VIDEO_CODEC.index("-preset") + 1]
SEGMENTS = [Segment(31.0, 35.0), Segment(122.5, 126.5), Segment(250.0, 254.0), Segment(401.2, 405.2),
            Segment(555.0, 559.0)]


def render_moviepy(source: Path, segments, out: Path, preset: str | None = None) -> None:
    from moviepy import VideoFileClip, concatenate_videoclips

    options = {"preset": preset} if preset else {}
    with VideoFileClip(str(source)) as video:  # `with`: each clip holds ffmpeg children
        parts = [video.subclipped(s.start, s.end) for s in segments]
        reel = concatenate_videoclips(parts)
        reel.write_videofile(str(out), codec="libx264", audio_codec="aac", logger=None, **options)
        reel.close()


def ssim(first: Path, second: Path) -> float:
    """FFmpeg's mean SSIM between two videos of the same frames (1.0 = identical)."""
    import re
    import subprocess

    from pipelines.highlights.render import ffmpeg_exe

    graph = "[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[a][b]ssim"
    result = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-i", str(first), "-i", str(second),
                             "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True, check=True)
    return float(re.findall(r"All:([0-9.]+)", result.stderr)[-1])


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6


def run(device: str = "cpu", quick: bool = False) -> list[Row]:
    source = clip(60)
    info = media.probe_video(source)
    expected = sum(s.duration for s in SEGMENTS)
    frame = 1 / info.fps
    with tempfile.TemporaryDirectory() as work:
        ours_path, ref_path = Path(work) / "ours.mp4", Path(work) / "moviepy.mp4"
        repeats = 1 if quick else 3
        same_preset_path = Path(work) / "moviepy-same-preset.mp4"
        ours = median_time(lambda: render_reel(source, SEGMENTS, ours_path, info), repeats)
        reference = median_time(lambda: render_moviepy(source, SEGMENTS, ref_path), repeats, warmup=0)
        same_preset = median_time(lambda: render_moviepy(source, SEGMENTS, same_preset_path, OUR_PRESET), repeats,
                                  warmup=0)
        ours_len, ref_len = duration(ours_path), duration(ref_path)
        similarity = ssim(ours_path, ref_path)
    accurate = abs(ours_len - expected) <= frame and abs(ref_len - expected) <= frame
    return [Row("render", f"reel of {len(SEGMENTS)} x 4 s segments", ours, reference, "s", reference / ours,
                ">= 5x, durations within 1 frame", reference / ours >= 5 and accurate,
                f"moviepy defaults; moviepy with preset {OUR_PRESET}: {same_preset:.2f} s ({same_preset / ours:.1f}x); "
                f"durations: ours {ours_len:.3f} s, moviepy {ref_len:.3f} s, segments {expected:.3f} s; "
                f"SSIM ours vs moviepy {similarity:.4f}")]
