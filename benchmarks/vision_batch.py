"""Seconds per frame through the vision encoder at several frames per call (issue 16: "batch the
vision tower across windows at its most efficient batch size").

    python -m benchmarks.vision_batch [--stand-in 256m] [--batches 1,2,4,8,16] [--dtype bf16]

Runs the app's own encoder call (pipelines.features.encode_in_one_call: the tower and the
connector, as a scan runs them, with exactly the given frames in one call) on random 512 px frames of a full-size random stand-in, one warm-up call
per batch size, then enough calls for 16 frames, and prints seconds per frame for each batch
size and the best one, which is what ``features.VISION_FRAMES_PER_CALL`` holds per device kind
(a scan's frames arrive ``batch_size`` windows x frames per window at a time, 4 x 2 by default,
and are encoded that many at a time).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

FRAMES_PER_SIZE = 16


def seconds_per_frame(model_dir: Path, batches: list[int], dtype: str = "bf16", device: str = "cpu") -> dict[int, float]:
    """{frames per call: seconds per frame} through ``encode_in_one_call`` on the loaded model."""
    import torch

    from pipelines.features import encode_in_one_call
    from pipelines.runtime import Runtime

    loaded = Runtime(device, dtype).load(str(model_dir))
    edge = frame_edge(loaded)
    results = {}
    for size in batches:
        pixels = torch.randn(size, 3, edge, edge, dtype=loaded.dtype, device=loaded.device)
        masks = torch.ones(size, edge, edge, dtype=torch.bool, device=loaded.device)
        encode_in_one_call(loaded, pixels[:1], masks[:1])  # warm-up
        calls = max(1, FRAMES_PER_SIZE // size)
        started = time.perf_counter()
        for _ in range(calls):
            encode_in_one_call(loaded, pixels, masks)
        results[size] = (time.perf_counter() - started) / (calls * size)
    return results


def frame_edge(loaded) -> int:
    """The square edge the model's video processor gives a frame (SmolVLM2: 512; PerceptionLM: its tile)."""
    import numpy as np

    processed = loaded.processor.video_processor(videos=[np.zeros((1, 360, 640, 3), np.uint8)], return_tensors="pt")
    pixels = processed.get("pixel_values_videos", processed.get("pixel_values"))
    return int(pixels.shape[-1])


def main(argv: list[str] | None = None) -> int:
    from .common import cpu_description, stand_in

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stand-in", default="256m", help="full-size random stand-in (default 256m)")
    parser.add_argument("--model", type=Path, default=None, help="another checkpoint directory instead")
    parser.add_argument("--batches", default="1,2,4,8,16", help="frames per call, comma-separated")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = args.model or stand_in(args.stand_in, args.device)
    batches = [int(b) for b in args.batches.split(",")]
    results = seconds_per_frame(model, batches, args.dtype, args.device)
    print(f"{model.name} · {args.dtype} · {args.device} · {cpu_description()}")
    for size, seconds in results.items():
        print(f"  {size:3d} frames per call: {seconds:.3f} s per frame")
    best = min(results, key=results.get)
    print(f"fastest: {best} frames per call ({results[best]:.3f} s per frame; slowest "
          f"{max(results.values()) / results[best]:.2f}x of it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
