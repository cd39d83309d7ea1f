"""Run every benchmark, print one table of measured ratios, write JSON under benchmarks/results/.

    python -m benchmarks.run --device cpu [--quick] [--only frames,chat,...]
    python -m benchmarks.run --device cuda   (chat, memory and the GPU-only figures)

Each benchmark generates its own media and builds the full-size random stand-ins it needs
(cached under ~/.cache/vlm-studio-bench, or $VLMS_BENCH_CACHE).
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .common import Row, print_table, write_results  # noqa: E402

# name -> module exposing run(device, quick) -> list[Row]
BENCHMARKS = {
    "frames": "benchmarks.frames",
    "chat": "benchmarks.chat_overhead",
    "boundary": "benchmarks.boundary",
    "browser": "benchmarks.browser_boundary",
    "highlights": "benchmarks.highlights_vs_reference",
    "render": "benchmarks.render",
    "memory": "benchmarks.memory",
    "gpu": "benchmarks.gpu",
    "engine": "benchmarks.engine",  # needs vLLM (.ci/install_vllm); not in the defaults
    "speech": "benchmarks.speech",
}
# What a plain run measures on each device: the CPU run compares against the reference
# approaches; the CUDA run adds the GPU-only figures (decode vs bandwidth, compile, 1-hour scan).
DEFAULTS = {"cpu": ("frames", "chat", "boundary", "browser", "highlights", "render", "memory", "speech"),
            "cuda": ("chat", "memory", "gpu", "speech")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and cases (a smoke run)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    names = [n for n in (args.only.split(",") if args.only else DEFAULTS[args.device]) if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    rows: list[Row] = []
    timings, failures = {}, {}
    for name in names:
        started = time.perf_counter()
        print(f"== {name} ...", flush=True)
        try:
            module = importlib.import_module(BENCHMARKS[name])
            new_rows = module.run(device=args.device, quick=args.quick)
        except Exception as error:  # one failing benchmark must not hide the others' figures
            traceback.print_exc()
            failures[name] = f"{type(error).__name__}: {error}"
            continue
        timings[name] = round(time.perf_counter() - started, 1)
        print_table(new_rows)
        rows.extend(new_rows)
    print("\n== summary")
    print_table(rows)
    for name, why in failures.items():
        print(f"FAILED {name}: {why}")
    path = write_results(rows, args.device, {"seconds_per_benchmark": timings, "failures": failures,
                                              "quick": args.quick})
    print(f"\nwrote {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
