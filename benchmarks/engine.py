"""The engine boundary, measured against a real vLLM server (CPU build) on the tiny SmolVLM2:

1. P(yes) parity: the same windows and question scored by the local scorer and by the server
   engine; the largest difference is printed (target <= 0.01).
2. Highlight scoring throughput on the server with 1 vs 8 windows in flight (its continuous
   batching at work); the ratio is printed.
3. 8 simulated chat users through the app (gradio_client, the real HTTP API) with the local
   engine vs the vLLM engine: p50/p95 time to first token and tokens/s per user.
4. ``--rescore``: what vLLM's own caches give when highlights are re-scored with new criteria
   (the local engine's frame-feature store does not apply to a server): the same windows scored
   with one criteria text, then with another, on a server with its caches as they come (prefix
   caching and the multimodal processor cache) and on one with both turned off. Use
   ``--stand-in 256m`` for a full-size random SmolVLM2-256M (real vision tower and prompt sizes).

    python -m benchmarks.engine [--quick]          (or: python -m benchmarks.run --only engine)
    python -m benchmarks.engine --rescore [--stand-in 256m] [--windows N]

Needs vLLM (.ci/install_vllm). The tiny checkpoint makes these figures about overheads and
batching, not about a real model's speed: on a GPU with a real SmolVLM2 the server's share of the
work (and its batching gain) is far larger.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .common import Row, print_table, write_results  # noqa: E402

SERVED = "tiny-smolvlm2"
USERS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(device: str = "cpu", quick: bool = False) -> list[Row]:
    from pipelines.engines.vllm_server import VllmServer
    from tests import tiny_models

    work = Path(tempfile.mkdtemp(prefix="vlms-bench-engine-"))
    model = tiny_models.build_tiny_smolvlm2_vllm(work / "tiny")
    with VllmServer(model, _free_port(), name=SERVED, log_path=work / "vllm.log") as server:
        clips = _clips(work, 16 if quick else 32)
        rows = [_parity(model, server, clips)]
        rows.append(_throughput(server, clips, repeats=1 if quick else 3))
        rows += _chat_users(model, server, rounds=1 if quick else 3)
    return rows


# ------------------------------------------------------------------ scoring


def _clips(work: Path, windows: int, seconds_per_window: float = 2.0, frames: int = 2):
    from pipelines.highlights.pipeline import probe
    from pipelines.highlights.windows import iter_window_clips, make_windows
    from pipelines.limits import LIMITS
    from tests import media_factory

    video = media_factory.make_video(work / f"scan-{windows}x{seconds_per_window:g}.mp4",
                                     seconds=seconds_per_window * windows, fps=10, size=(320, 240))
    info = probe(str(video), LIMITS)
    return [clip for _, clip in iter_window_clips(video, info, make_windows(info.duration, seconds_per_window),
                                                  frames)]


def _question():
    from pipelines.highlights.pipeline import SCORING_SYSTEM_PROMPT, scoring_question

    return scoring_question("a goal or a bright flash"), SCORING_SYSTEM_PROMPT


def _parity(model: Path, server, clips) -> Row:
    from pipelines import engines
    from pipelines.runtime import Runtime

    runtime = Runtime("cpu", "fp32", engine_url=server.url)
    question, system = _question()
    local = engines.LOCAL.scorer(str(model), question, ("yes", "no"), system, runtime)
    remote = engines.server_engine(runtime).scorer(engines.server_model_key(SERVED), question, ("yes", "no"), system,
                                                   runtime)
    ours, theirs = local.score_batch(clips), remote.score_batch(clips)
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    print(f"P(yes) parity over {len(clips)} windows: max |local - vLLM| = {worst:.2e}", flush=True)
    return Row("engine", f"P(yes) parity, {len(clips)} windows (tiny, fp32)", worst, None, "max |dP|", None,
               "<= 0.01", worst <= 0.01)


def _throughput(server, clips, repeats: int) -> Row:
    from pipelines.engines import server_model_key
    from pipelines.engines.server import ServerEngine

    question, system = _question()
    rates = {}
    for in_flight in (1, 8):
        engine = ServerEngine(server.url, in_flight=in_flight)
        scorer = engine.scorer(server_model_key(SERVED), question, ("yes", "no"), system)
        scorer.score_batch(clips[:in_flight])  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            scorer.score_batch(clips)
            times.append(time.perf_counter() - started)
        engine.close()
        rates[in_flight] = len(clips) / statistics.median(times)
        print(f"scoring on vLLM, {in_flight} in flight: {rates[in_flight]:.1f} windows/s", flush=True)
    ratio = rates[8] / rates[1]
    return Row("engine", f"scoring throughput on vLLM, 8 vs 1 windows in flight ({len(clips)} windows)",
               rates[8], rates[1], "windows/s", ratio, "> 1 (batching)", ratio > 1,
               note=f"1 in flight: {rates[1]:.1f}/s, 8 in flight: {rates[8]:.1f}/s")


# ------------------------------------------------------------------ re-score with new criteria

READY_TIMEOUT_S = 1200  # a full-size stand-in compiles for minutes on 2 shared cores
CACHES_OFF = ("--no-enable-prefix-caching", "--mm-processor-cache-gb", "0")
CRITERIA = ("a goal or a bright flash", "people cheering or a close-up of a face")


def rescore(model: Path, work: Path, windows: int, name: str = SERVED) -> list[Row]:
    """First scan and re-scan (other criteria) of the same windows, caches on vs off."""
    from pipelines.highlights.pipeline import default_frames_per_window

    # One more window than timed: the first warms each server up (its first request pays for
    # compilation) with yet other criteria, and is left out of the timed scans.
    warmup, *clips = _clips(work, windows + 1, seconds_per_window=5.0,
                            frames=default_frames_per_window("smolvlm", 5.0))
    times = {}
    from pipelines.engines.vllm_server import VllmServer

    for label, extra in (("caches on", ()), ("caches off", CACHES_OFF)):
        # As many images per prompt as a window has: vLLM profiles its encoder with that many at
        # start-up (64 took minutes for a full-size model on 2 cores).
        server = VllmServer(model, _free_port(), name=name, log_path=work / f"vllm-{label[-3:].strip()}.log",
                            max_images=len(warmup.frames), extra_args=extra).start()
        try:
            server.wait_ready(READY_TIMEOUT_S)
            _scan_seconds(server, name, "anything at all", [warmup])
            first, again = (_scan_seconds(server, name, criteria, clips) for criteria in CRITERIA)
        finally:
            server.stop()
        times[label] = (first, again)
        print(f"vLLM, {label}: first scan {first:.1f} s, re-score with new criteria {again:.1f} s "
              f"({again / first:.0%} of the first)", flush=True)
    (first_on, again_on), (first_off, again_off) = times["caches on"], times["caches off"]
    case = f"re-score with new criteria on vLLM ({len(clips)} windows x {len(clips[0].frames)} frames)"
    return [
        Row("engine", case + ": caches on, vs its first scan", again_on, first_on, "s", first_on / again_on,
            "report", None, note=f"caches off: {again_off:.1f} s vs {first_off:.1f} s"),
        Row("engine", case + ": caches on vs caches off", again_on, again_off, "s", again_off / again_on,
            "report", None),
    ]


def _scan_seconds(server, name: str, criteria: str, clips) -> float:
    from pipelines.engines import server_model_key
    from pipelines.engines.server import ServerEngine
    from pipelines.highlights.pipeline import SCORING_SYSTEM_PROMPT, scoring_question

    engine = ServerEngine(server.url, in_flight=4)
    try:
        scorer = engine.scorer(server_model_key(name), scoring_question(criteria), ("yes", "no"),
                               SCORING_SYSTEM_PROMPT)
        started = time.perf_counter()
        scorer.score_batch(clips)
        return time.perf_counter() - started
    finally:
        engine.close()


# ------------------------------------------------------------------ 8 chat users through the app


def _chat_users(model: Path, server, rounds: int) -> list[Row]:
    from pipelines.engines import server_model_key
    from tests.app_server import serve

    rows, results = [], {}
    with serve(model, engine_url=server.url, concurrency=USERS) as (url, _demo):
        for label, name in (("local", str(model)), ("vLLM", server_model_key(SERVED))):
            _users(url, name, 1)  # warm-up: the model loads, the server compiles
            samples = [sample for _ in range(rounds) for sample in _users(url, name, USERS)]
            results[label] = samples
            ttft = sorted(s[0] for s in samples)
            speeds = sorted(s[1] for s in samples if s[1])
            print(f"{USERS} chat users, {label} engine: TTFT p50 {_pct(ttft, 50):.2f} s, p95 {_pct(ttft, 95):.2f} s; "
                  f"{statistics.median(speeds) if speeds else 0:.1f} tok/s per user", flush=True)
    for pct in (50, 95):
        ours = _pct(sorted(s[0] for s in results["vLLM"]), pct)
        reference = _pct(sorted(s[0] for s in results["local"]), pct)
        rows.append(Row("engine", f"{USERS} chat users via the app: TTFT p{pct}, vLLM vs local", ours, reference, "s",
                        reference / ours if ours else None, "report", None))
    speed = {k: statistics.median([s[1] for s in v if s[1]] or [0.0]) for k, v in results.items()}
    rows.append(Row("engine", f"{USERS} chat users via the app: tokens/s per user, vLLM vs local", speed["vLLM"],
                    speed["local"], "tok/s", speed["vLLM"] / speed["local"] if speed["local"] else None, "report",
                    None))
    return rows


def _users(url: str, model: str, count: int) -> list[tuple[float, float | None]]:
    """``count`` users asking at once; each: (seconds to the first text, tokens/s after it)."""
    results: list = [None] * count
    threads = [threading.Thread(target=_one_user, args=(url, model, results, k)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise failed[0]
    return results


def _one_user(url: str, model: str, results: list, slot: int) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    try:
        started = time.perf_counter()
        first = last = None
        job = client.submit({"text": "Tell me a story about a goal.", "files": []}, [], model=model,
                            max_new_tokens=48, api_name="/chat")
        for history, *_ in job:
            if history and history[-1]["role"] == "assistant" and _text(history[-1]).strip():
                last = time.perf_counter()
                first = first or last
        stats = job.result()[2]
        tokens = int(stats.split(" new tokens")[0].rsplit(" ", 1)[-1]) if " new tokens" in stats else 0
        speed = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else None
        results[slot] = ((first or time.perf_counter()) - started, speed)
    except Exception as error:  # reported by the caller
        results[slot] = error
    finally:
        client.close()


def _text(message) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))


def _pct(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, round(pct / 100 * (len(values) - 1))))
    return values[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rescore", action="store_true", help="only the re-score rows (vLLM caches on vs off)")
    parser.add_argument("--stand-in", default=None, help="a full-size random checkpoint for --rescore (e.g. 256m)")
    parser.add_argument("--windows", type=int, default=16)
    args = parser.parse_args(argv)
    if args.rescore:
        from tests import tiny_models

        from .common import stand_in

        work = Path(tempfile.mkdtemp(prefix="vlms-bench-rescore-"))
        model = stand_in(args.stand_in) if args.stand_in else tiny_models.build_tiny_smolvlm2_vllm(work / "tiny")
        rows = rescore(model, work, args.windows, name=f"smolvlm2-{args.stand_in or 'tiny'}")
        print_table(rows)
        print(f"results: {write_results(rows, 'engine_rescore-cpu')}")
        return 0
    print_table(run("cpu", args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
