"""Peak memory for a 64-frame video prompt (prefill + one token) on each SmolVLM2 size and PLM-1B.

Each case runs in its own child process so the peak belongs to that case alone: peak RSS on the
CPU (``VmHWM``, see ``peak_rss_bytes``), ``torch.cuda.max_memory_allocated`` on a GPU.
PerceptionLM takes its fixed 32 frames (64 x 256 tokens would not fit its 11,520-token context).
GPU targets: the model cards' figures (256M 1.38 GB, 500M 1.8 GB, 2.2B 5.2 GB).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .common import CACHE_DIR, Row, cached, stand_in

CARD_GB = {"256m": 1.38, "500m": 1.8, "2.2b": 5.2}
SIZES = ("256m", "500m", "2.2b", "plm-1b")


def video_64s():
    from tests.media_factory import make_video

    return cached(CACHE_DIR / "clip-64s.mp4", lambda out: make_video(out.with_suffix(".mp4"), seconds=64, fps=24,
                                                                      size=(640, 360)).rename(out))


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Linux: ``VmHWM`` of /proc/self/status, the high-water
    mark of THIS program's memory map. Not ``ru_maxrss``: Linux carries that across ``exec`` from
    the parent's memory map (subprocess forks with vfork), so a child started by a big parent
    reports at least the parent's size (both the 256M and the 500M case read 4.421 GB that way)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(model_dir: str, device: str, video: str) -> dict:
    """Runs in the child: load, build the prompt, prefill + one token, report the peak."""
    import torch

    from pipelines.chat import ChatRequest, prepare_chat
    from pipelines.generation import GenerationSettings, stream_generate
    from pipelines.messages import Attachment, Turn
    from pipelines.runtime import Runtime

    runtime = Runtime(device=device)
    request = ChatRequest(model_dir, (Turn("user", "Describe the video.", (Attachment("video", video),)),))
    prepared = prepare_chat(request, runtime)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in stream_generate(prepared.loaded, prepared.inputs, GenerationSettings(max_new_tokens=1, min_new_tokens=1)):
        pass
    peak_gb = (torch.cuda.max_memory_allocated() if device == "cuda" else peak_rss_bytes()) / 1e9
    return {"peak_gb": peak_gb, "prompt_tokens": prepared.prompt_tokens, "frames": len(prepared.frames_seen)}


def run(device: str = "cpu", quick: bool = False) -> list[Row]:
    video = str(video_64s())
    rows = []
    for size in ("256m",) if quick else SIZES:
        model_dir = str(stand_in(size, device))
        out = subprocess.run([sys.executable, "-m", "benchmarks.memory", model_dir, device, video],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        card = CARD_GB.get(size) if device == "cuda" else None
        what = "max_memory_allocated" if device == "cuda" else "peak RSS"
        rows.append(Row("memory", f"{size}: {result['frames']} frames, {result['prompt_tokens']} tokens ({what})",
                        result["peak_gb"], card, "GB", card / result["peak_gb"] if card else None,
                        "<= model card" if card else "reported", result["peak_gb"] <= card if card else None))
    return rows


if __name__ == "__main__":
    print(json.dumps(child(*sys.argv[1:4])))
