"""How much should the sound count? The measurement behind the highlights' default audio weight.

    python -m benchmarks.audio_weight [--model DIR]

On generated videos (tests/media_factory: a silent minute with a loud 1 s burst at 41.3 s, a
minute with a steady tone, a minute of hard cuts with a tone), 5 s windows, scored once by the
model (tiny SmolVLM2 built offline unless --model is given), then mixed at each weight W in
``WEIGHTS``: ``score = (1 - W) * picture + W * sound``. For each video and W it prints the best
window and whether the ranking of all windows equals the picture's own ranking. A good default
puts the burst first and leaves steady-sound videos ranked as by the picture alone.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WEIGHTS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def measure(model: Path | None = None) -> list[dict]:
    from pipelines.highlights import HighlightRequest, ScoreCache, analyse
    from pipelines.runtime import Runtime
    from tests import media_factory, tiny_models

    work = Path(tempfile.mkdtemp(prefix="audio-weight-"))
    model = model or tiny_models.build_tiny_smolvlm2(work / "model")
    runtime, cache = Runtime("cpu", "fp32"), ScoreCache(work / "cache")
    videos = {
        "burst at 41.3 s": media_factory.make_burst_video(work / "burst.mp4", 60, burst_at=41.3),
        "steady tone": media_factory.make_video(work / "tone.mp4", seconds=60, fps=10, size=(160, 120), audio=True),
        "cuts and a tone": media_factory.make_shots_video(work / "cuts.mp4", 60, (7.7, 23.1, 38.4, 51.9)),
    }
    rows = []
    for name, video in videos.items():
        def scored(weight: float):
            request = HighlightRequest(str(video), str(model), "anything", window_seconds=5, target_seconds=10,
                                       audio_weight=weight)
            return analyse(request, runtime, cache=cache)  # the model scores once; the mix is applied after

        picture = scored(0.0)
        ranking = _ranking([w.score for w in picture.windows])
        spread = max(picture.visual) - min(picture.visual)
        for weight in WEIGHTS:
            windows = scored(weight).windows
            best = max(windows, key=lambda w: w.score)
            rows.append({"video": name, "weight": weight, "picture_spread": spread, "best": (best.start, best.end),
                         "ranked_as_picture": _ranking([w.score for w in windows]) == ranking})
    return rows


def _ranking(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint directory (default: tiny, built offline)")
    args = parser.parse_args(argv)
    for row in measure(args.model):
        print(f"{row['video']:16} W={row['weight']:<4} picture spread {row['picture_spread']:.4f} · best window "
              f"{row['best'][0]:g}-{row['best'][1]:g} s · ranked as the picture alone: {row['ranked_as_picture']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
