"""Reel rendering: pipelines.highlights.render_reel vs moviepy ``concatenate_videoclips`` on the
same segments of the same generated 10-minute 640x360 clip (with audio).

The reference is moviepy as a user calls it (``write_videofile`` with its defaults: libx264
"medium", AAC); the note also gives moviepy with our x264 preset, so the codec choice and the
method can be told apart. Target: at least 5x faster, with both reels' durations within one frame
of the segments' sum. The SSIM between the two reels (same frames, two encoders) is printed as a
check that both cut the same frames at a comparable quality.

Shapes (issue 15: "reframing adds at most 30% to the render"): the same five segments rendered in
the source shape, as a 9:16 reel with a fixed centre crop and as a 9:16 reel whose crop pans all
the time (a sine across the frame at the glide limit: the most a follow crop ever moves), in CPU
time of the ffmpeg process (median of the repeats; the machine is shared), on the 640x360 clip and
on a generated 1920x1080 one. Three ratios each: follow vs centre (what FOLLOWING costs, same
output size), centre vs source (what the standard 1080x1920 size costs) and follow vs source.

    python -m benchmarks.render          # these shape rows only (all rows: python -m benchmarks.run --only render)
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from pathlib import Path

import av

from pipelines import media
from pipelines.highlights import Segment, render_reel
from pipelines.highlights.render import VIDEO_CODEC

from .common import CACHE_DIR, Row, cached, median_time
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


SHAPE_SEGMENTS = [Segment(1.0 + 6 * k, 5.0 + 6 * k) for k in range(5)]  # inside the 30 s clips
REFRAME_BUDGET = 0.30


def full_hd_clip() -> Path:
    from tests.media_factory import make_video

    return cached(CACHE_DIR / "clip-30s-1920x1080.mp4",
                  lambda out: make_video(out.with_suffix(".mp4"), seconds=30, fps=30, size=(1920, 1080),
                                         audio=True).rename(out))


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def shape_costs(source: Path, repeats: int = 3) -> dict[str, float]:
    """Median ffmpeg CPU seconds of the SHAPE_SEGMENTS reel as "source", "center" (9:16) and
    "follow" (9:16, the crop panning all the time)."""
    from pipelines.highlights.reframe import ReelShape, crop_paths
    from pipelines.highlights.signals import TRACK_S, Signals

    info = media.probe_video(source)
    steps = int(info.duration / TRACK_S) + 1
    panning = Signals((), None, tuple((0.5 + 0.45 * math.sin(k * TRACK_S), 0.5, 0.01) for k in range(steps)))
    shapes = {"source": ReelShape(), "center": ReelShape("9:16", "center"), "follow": ReelShape("9:16", "follow")}
    seconds: dict[str, list[float]] = {name: [] for name in shapes}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(repeats):  # interleaved, so a busy spell on the machine hits all three
            for name, shape in shapes.items():
                crops = crop_paths(shape, SHAPE_SEGMENTS, info, panning)
                before = _children_cpu()
                render_reel(source, SHAPE_SEGMENTS, Path(work) / f"{name}.mp4", info, shape=shape, crops=crops)
                seconds[name].append(_children_cpu() - before)
    return {name: statistics.median(values) for name, values in seconds.items()}


def shape_rows(quick: bool = False) -> list[Row]:
    """Follow vs centre, centre vs source and follow vs source, on a 640x360 and a 1080p source."""
    rows = []
    for label, source in (("640x360", clip(60, seconds=30)), ("1920x1080", full_hd_clip())):
        cpu = shape_costs(source, 1 if quick else 3)
        following, size, reframe = cpu["follow"] / cpu["center"] - 1, cpu["center"] / cpu["source"] - 1, cpu["follow"] / cpu["source"] - 1
        rows += [
            Row("render", f"  9:16 follow vs 9:16 centre, {label} source", cpu["follow"], cpu["center"], "s CPU", None,
                f"<= +{REFRAME_BUDGET:.0%}", following <= REFRAME_BUDGET, f"{following:+.1%}: what following costs"),
            Row("render", f"  9:16 centre vs source shape, {label} source", cpu["center"], cpu["source"], "s CPU", None,
                "reported", None, f"{size:+.0%}: what the 1080x1920 output size costs"),
            Row("render", f"  9:16 follow vs source shape, {label} source", cpu["follow"], cpu["source"], "s CPU", None,
                f"<= +{REFRAME_BUDGET:.0%}", reframe <= REFRAME_BUDGET, f"{reframe:+.0%}: reframing in all"),
        ]
    return rows


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
                f"SSIM ours vs moviepy {similarity:.4f}"), *shape_rows(quick)]


if __name__ == "__main__":
    from .common import print_table

    print_table(shape_rows())
