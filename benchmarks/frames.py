"""Frame reading: the app's sampler vs decord get_batch, PyAV seek-then-decode and transformers'
load_video, on generated 10-minute 640x360 clips with GOP 60 and GOP 250.

Cases: 64 uniformly spaced frames (what a chat prompt needs) and a dense 1 fps scan (what the
highlight scan needs). Targets: sparse within 1.2x of the fastest method measured; the dense scan
at least 50x faster than real time.
"""

from __future__ import annotations

import statistics

from pathlib import Path

import av
import numpy as np

from pipelines import media

from .common import CACHE_DIR, Row, cached, median_time

SECONDS = 600


def clip(gop: int, seconds: int = SECONDS) -> Path:
    from tests.media_factory import make_video

    return cached(CACHE_DIR / f"clip-{seconds}s-gop{gop}.mp4",
                  lambda out: make_video(out.with_suffix(".mp4"), seconds=seconds, fps=30, size=(640, 360),
                                         gop=gop, audio=True).rename(out))


def decord_batch(path: Path, indices: list[int]) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    return reader.get_batch(indices).asnumpy()


def pyav_seek_then_decode(path: Path, indices: list[int]) -> np.ndarray:
    """The textbook PyAV approach: seek to the keyframe before each target, decode up to it."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate)
        for index in indices:
            target = int(index / rate / stream.time_base)
            container.seek(target, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts >= target:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    break
    return np.stack(frames)


def pyav_sequential(path: Path, indices: list[int]) -> np.ndarray:
    """Decode every frame in order and keep the wanted ones (the dense-scan reference)."""
    wanted, frames = set(indices), []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for number, frame in enumerate(container.decode(stream)):
            if number in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def transformers_load_video(path: Path, indices: list[int]) -> np.ndarray:
    from transformers.video_utils import load_video

    frames, _ = load_video(str(path), backend="pyav", sample_indices_fn=lambda metadata, **_: np.array(indices))
    return frames


def app_sparse(path: Path, indices: list[int], info: media.VideoInfo | None = None) -> np.ndarray:
    return media.read_frames(path, indices, info)


def app_dense(path: Path, indices: list[int]) -> int:
    return sum(1 for _ in media.iter_frames(path, indices))


def run(device: str = "cpu", quick: bool = False) -> list[Row]:
    rows = []
    for gop in (60, 250):
        path = clip(gop)
        info = media.probe_video(path)
        sparse = list(media.sample_indices(info, None, 64).indices)
        rows.append(_sparse_row(path, gop, sparse, quick, info))
        dense = list(range(0, info.frame_count, round(info.fps)))  # 1 fps
        rows.extend(_dense_rows(path, gop, dense, info.duration, quick))
    return rows


def _sparse_row(path: Path, gop: int, indices: list[int], quick: bool, info: media.VideoInfo) -> Row:
    """Every method gets the frame numbers computed beforehand, so none is timed probing the file
    (the app probes once per request to choose them; that time is printed in the note)."""
    repeats = 1 if quick else 3
    methods = {"decord get_batch": decord_batch, "PyAV seek+decode": pyav_seek_then_decode}
    if not quick:  # decodes the whole file: slow, and only there to show what the default costs
        methods["transformers load_video"] = transformers_load_video
    methods["ours"] = lambda p, i: app_sparse(p, i, info)
    times = interleaved_medians(methods, path, indices, repeats)
    ours = times.pop("ours")
    reference = times
    probe = median_time(lambda: media.probe_video(path), repeats)
    fastest_name = min(reference, key=reference.get)
    fastest = reference[fastest_name]
    note = "; ".join(f"{name} {t:.2f} s" for name, t in reference.items()) + f"; the app's probe {probe:.2f} s"
    return Row("frames", f"64 uniform frames, GOP {gop}", ours, fastest, "s", fastest / ours,
               "ours <= 1.2x fastest", ours <= 1.2 * fastest, f"fastest: {fastest_name}; {note}")


def interleaved_medians(methods: dict, path: Path, indices: list[int], repeats: int) -> dict[str, float]:
    """Median time per method, the methods taking turns in every round (after one warm-up round),
    so the page cache and any drift in machine load treat them alike."""
    import time

    rounds: dict[str, list[float]] = {name: [] for name in methods}
    for round_number in range(repeats + 1):
        for name, fn in methods.items():
            started = time.perf_counter()
            fn(path, indices)
            if round_number:
                rounds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in rounds.items()}


def _dense_rows(path: Path, gop: int, indices: list[int], duration: float, quick: bool) -> list[Row]:
    ours = median_time(lambda: app_dense(path, indices), 1, warmup=0 if quick else 1)
    reference = median_time(lambda: decord_batch(path, indices), 1, warmup=0)
    realtime = duration / ours
    return [
        Row("frames", f"1 fps scan ({len(indices)} frames), GOP {gop}", ours, reference, "s", reference / ours,
            ">= 50x real time", realtime >= 50, f"{realtime:.0f}x real time; reference: decord get_batch"),
    ]
