"""Shared benchmark plumbing: timing with warm-up and medians, cached inputs, result files.

Contract: every benchmark module exposes ``run(device: str, quick: bool) -> list[Row]``. A Row is
one measured comparison (our figure, the reference figure, their ratio, the target) so that
``benchmarks.run`` can print one table and write one JSON file per run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
RESULTS_DIR = ROOT / "results"
CACHE_DIR = Path(os.environ.get("VLMS_BENCH_CACHE", Path.home() / ".cache" / "vlm-studio-bench"))


@dataclass
class Row:
    benchmark: str
    case: str
    ours: float
    reference: float | None
    unit: str
    ratio: float | None  # > 1 means we are better (faster / smaller), whatever the unit
    target: str
    met: bool | None
    note: str = ""


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cached(path: Path, build: Callable[[Path], Path]) -> Path:
    """Build an input once (videos, stand-in checkpoints) and reuse it across runs."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        build(tmp)
        tmp.rename(path)
    return path


def stand_in(size: str, device: str = "cpu") -> Path:
    """A full-size random checkpoint with the real architecture (tests/tiny_models.py)."""
    from tests.tiny_models import build_full_size

    return cached(CACHE_DIR / f"standin-{size}", lambda out: build_full_size(size, out, device=device))


def chatty(model_dir: Path) -> Path:
    """``model_dir`` that never ends an answer early (``tests.tiny_models.never_ending``: a
    random model otherwise often stops at once or "says" only tokens that decode to nothing,
    which leaves a client nothing to time), made once beside it."""
    from tests.tiny_models import never_ending

    out = Path(model_dir).with_name(Path(model_dir).name + "-chatty")
    if (out / "generation_config.json").exists():
        return out
    return never_ending(model_dir, out)


def cpu_description() -> str:
    """The CPU model and the matrix extensions that decide bf16 speed on it: the same 2-core
    setting ran bf16 prefill about twice as fast with AMX as with AVX512-BF16 alone."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    lines = text.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    extensions = [name for name in ("avx512_bf16", "amx_bf16") if name in flags]
    return f"{model} ({', '.join(extensions) or 'no bf16 matrix extensions'})"


def machine() -> dict:
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu": cpu_description(),
            "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def write_results(rows: list[Row], device: str, extra: dict | None = None) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{device}-{stamp}.json"
    payload = {"device": device, "date": stamp, "machine": machine(), "rows": [asdict(r) for r in rows],
               **(extra or {})}
    path.write_text(json.dumps(payload, indent=2))
    return path


def print_table(rows: list[Row]) -> None:
    header = f"{'benchmark':<12} {'case':<44} {'ours':>10} {'reference':>10} {'unit':<8} {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    for r in rows:
        ref = f"{r.reference:10.3f}" if r.reference is not None else " " * 10
        ratio = f"{r.ratio:6.2f}x" if r.ratio is not None else " " * 7
        mark = {True: "met", False: "MISSED", None: ""}[r.met]
        print(f"{r.benchmark:<12} {r.case:<44} {r.ours:10.3f} {ref} {r.unit:<8} {ratio}  {r.target} {mark}")
        if r.note:
            print(f"{'':<12} {r.note}")
