"""Soak: many users on one server for minutes; the server must stay healthy and flat.

    python -m benchmarks.soak --minutes 5            # the full run (8 users, ~5 min + setup)
    python -m benchmarks.soak --minutes 0.5 --users 8 --mix chat=3,stop=2,compare=1

The app runs in its OWN process (``python -m benchmarks.soak serve``), on 127.0.0.1 only, with the
tiny random SmolVLM2 checkpoint (built offline) unless ``--model`` names another. Every user is a
gradio_client ``Client`` in a thread of this process, looping until the time is up over a weighted
mix of actions:

* ``chat``: an image (or no file) and a short answer;
* ``stop``: a long answer stopped 0.2-1 s after it starts streaming, by ``job.cancel()`` or the
  Stop endpoint (``/chat_stop`` stops what RUNS; a request still waiting in the queue is withdrawn
  with ``job.cancel()``, which is what the browser's Stop button does through ``cancels=``);
* ``compare``: two images in one question (``/compare``), if the app has the Compare tab;
* ``highlights``: a highlight reel from a 10-second video (``/highlights``), if it has that tab;
* ``bad``: a broken upload, which must come back as a worded error (counted, not an error).

The server samples itself twice a second into a JSON lines file: resident memory, threads, open
file descriptors, child processes (ffmpeg apart), the size of its Gradio temp dir, and the
device lock's counters (``pipelines.devices.DEVICE_LOCK``: ``max_active`` must stay 1, i.e. model
work never ran twice at once). After the run, the queue is deliberately overfilled to check that a
full queue answers with a clear message, and the server is given a few seconds to settle.

``run(...)`` returns the report (a dict); the CLI prints it and exits 1 when a check fails.
A server error is any request that failed other than with a worded user error, or any traceback
in the server's log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from concurrent import futures
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIX = "chat=4,stop=2,compare=1,highlights=1,bad=1"
SAMPLE_S = 0.5
SETTLE_S = 6.0
# Growth allowed between the warm start and the settled end (a leak shows as steady growth).
FLAT_RSS_MB = 150
FLAT_FDS = 8
FLAT_THREADS = 4
CANCEL_P95_S = 6.0


# =============================================================================================
# Server side: ``python -m benchmarks.soak serve --model DIR --stats FILE``
# =============================================================================================


def serve(model: str, stats_path: Path, queue_size: int | None) -> None:
    """Launch the app on 127.0.0.1, print its URL, and sample this process until stdin closes."""
    sys.path.insert(0, str(ROOT))
    from app import launch
    from components.config import AppConfig
    from pipelines.limits import LIMITS

    limits = LIMITS if queue_size is None else LIMITS.with_value("queue_size", queue_size)
    config = AppConfig(model=model, device="cpu", dtype="fp32", host="127.0.0.1", limits=limits)
    demo = launch(config, prevent_thread_lock=True, quiet=True)
    demo.vlm_status.wait(300)
    endpoints = sorted(fn.api_name for fn in demo.fns.values() if isinstance(getattr(fn, "api_name", None), str))
    print(json.dumps({"url": demo.local_url.rstrip("/"), "endpoints": endpoints}), flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with open(stats_path, "a") as out:
        while not stop.wait(SAMPLE_S):
            out.write(json.dumps(sample_self()) + "\n")
            out.flush()
    demo.close()


def sample_self() -> dict:
    from pipelines.devices import DEVICE_LOCK

    pid = os.getpid()
    children = _children(pid)
    names = [_comm(child) for child in children]
    temp = Path(os.environ["GRADIO_TEMP_DIR"])
    return {
        "t": time.time(),
        "rss_mb": int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20,
        "threads": threading.active_count(),
        "pooled_threads": sum(1 for t in threading.enumerate() if t.name.startswith(("AnyIO worker", "ThreadPool"))),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "children": sum(1 for name in names if name != "ffmpeg"),
        "ffmpeg": sum(1 for name in names if name == "ffmpeg"),
        "zombies": sum(1 for child in children if _state(child) == "Z"),
        "temp_mb": _tree_bytes(temp) / 2**20,
        "lock_active": DEVICE_LOCK.active,
        "lock_max_active": DEVICE_LOCK.max_active,
        "lock_passes": DEVICE_LOCK.passes,
        "generating": sum(1 for t in threading.enumerate() if t.name == "vlms-generate"),
    }


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


# =============================================================================================
# Client side
# =============================================================================================


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    stop_seconds: list[float] = field(default_factory=list)
    user_errors: int = 0
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def took(self, action: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(action, []).append(seconds)


@dataclass
class Inputs:
    model: str
    image: Path
    image2: Path
    video: Path
    broken: Path


def make_inputs(work: Path, model: str | None) -> Inputs:
    sys.path.insert(0, str(ROOT))
    from tests import media_factory, tiny_models

    if model is None:
        model = str(tiny_models.build_tiny_smolvlm2(work / "tiny-smolvlm2"))
    return Inputs(
        model=model,
        image=media_factory.make_image(work / "scene.png", size=(96, 64), fmt="PNG"),
        image2=media_factory.make_image(work / "other.jpg", size=(64, 80), fmt="JPEG"),
        video=media_factory.make_video(work / "ten.mp4", seconds=10, fps=10, size=(128, 96), audio=True),
        broken=media_factory.make_random_bytes(work / "broken.mp4"),
    )


def user(url: str, inputs: Inputs, mix: list[tuple[str, int]], deadline: float, tally: Tally, seed: int) -> None:
    from gradio_client import Client

    rng = random.Random(seed)
    actions, weights = zip(*mix)
    client = Client(url, verbose=False)
    try:
        while time.monotonic() < deadline:
            action = rng.choices(actions, weights)[0]
            started = time.monotonic()
            try:
                ACTIONS[action](client, inputs, rng, tally)
            except Exception as error:  # noqa: BLE001 - classified below
                if _is_worded(error) and action == "bad":
                    tally.user_errors += 1
                else:
                    with tally.lock:
                        tally.server_errors.append(f"{action}: {type(error).__name__}: {str(error)[:200]}")
                continue
            tally.took(action, time.monotonic() - started)
    finally:
        client.close()


def _is_worded(error: Exception) -> bool:
    from components.adapter import GENERIC_MESSAGE

    text = str(error)
    return bool(text) and GENERIC_MESSAGE not in text and "Traceback" not in text and len(text) < 400


def do_chat(client, inputs: Inputs, rng: random.Random, tally: Tally) -> None:
    from gradio_client import handle_file

    files = [handle_file(str(inputs.image))] if rng.random() < 0.7 else []
    history, *_ = client.predict({"text": "Describe this.", "files": files}, [], max_new_tokens=rng.randint(8, 32),
                                 api_name="/chat")
    assert history and history[-1]["role"] == "assistant"


def do_stop(client, inputs: Inputs, rng: random.Random, tally: Tally) -> None:
    from gradio_client import handle_file

    job = client.submit({"text": "Tell a long story.", "files": [handle_file(str(inputs.image))]}, [],
                        max_new_tokens=2000, api_name="/chat")
    waited = time.monotonic()
    while not job.outputs() and not job.done() and time.monotonic() - waited < 120:
        time.sleep(0.05)  # a person presses Stop once the answer is streaming (queued: see below)
    time.sleep(rng.uniform(0.2, 1.0))
    stopped = time.monotonic()
    if rng.random() < 0.5:
        job.cancel()
        while not job.done() and time.monotonic() - stopped < 30:
            time.sleep(0.02)
        tally.stop_seconds.append(time.monotonic() - stopped)  # until the client sees the job end
    else:
        # The endpoint stops the generation at once (tests/test_cancellation.py times the thread);
        # the job it cancels through ``cancels=`` ends for gradio_client only later, so it is not timed.
        client.predict(api_name="/chat_stop")
        tally.took("stop_endpoint_call", time.monotonic() - stopped)
        job.cancel()


def do_compare(client, inputs: Inputs, rng: random.Random, tally: Tally) -> None:
    from gradio_client import handle_file

    answer, _stats = client.predict([handle_file(str(inputs.image)), handle_file(str(inputs.image2))], "What differs?",
                                    max_new_tokens=rng.randint(8, 24), api_name="/compare")
    assert isinstance(answer, str)


def do_highlights(client, inputs: Inputs, rng: random.Random, tally: Tally) -> None:
    from gradio_client import handle_file

    summary, *_ = client.predict(handle_file(str(inputs.video)), inputs.model, "anything moving", 4, 0, 2,
                                 "Target length", 4, 0.5, 0, api_name="/highlights")
    assert summary


def do_bad(client, inputs: Inputs, rng: random.Random, tally: Tally) -> None:
    from gradio_client import handle_file

    client.predict({"text": "What is this?", "files": [handle_file(str(inputs.broken))]}, [], api_name="/chat")
    raise AssertionError("a broken file was accepted")


ACTIONS = {"chat": do_chat, "stop": do_stop, "compare": do_compare, "highlights": do_highlights, "bad": do_bad}
ENDPOINT_OF = {"compare": "compare", "highlights": "highlights"}


def overfill_queue(url: str, inputs: Inputs, how_many: int) -> list[str]:
    """Submit far more long jobs than the queue holds; return the messages of the refused ones."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(4)]
    jobs = []
    try:
        for k in range(how_many):
            jobs.append(clients[k % 4].submit({"text": "Tell a long story.", "files": []}, [], max_new_tokens=2000,
                                              api_name="/chat"))
        futures.wait(jobs, timeout=5)  # refusals come back at once; accepted jobs run on
        refused = [str(job.exception()) for job in jobs
                   if job.done() and not job.cancelled() and job.exception() is not None
                   and "queue is full" in str(job.exception()).lower()]
        for job in jobs:
            job.cancel()
        for client in clients:
            client.predict(api_name="/chat_stop")
        return refused
    finally:
        for client in clients:
            client.close()


# =============================================================================================
# The run
# =============================================================================================


def run(minutes: float = 5.0, users: int = 8, mix: str = DEFAULT_MIX, model: str | None = None,
        warmup_s: float = 10.0, verbose: bool = True) -> dict:
    """The whole soak (see the module docstring); returns the report with its ``checks``."""
    say = print if verbose else (lambda *a, **k: None)
    work = Path(tempfile.mkdtemp(prefix="vlms-soak-"))
    server = None
    try:
        inputs = make_inputs(work, model)
        stats_path, log_path, temp_dir = work / "stats.jsonl", work / "server.log", work / "gradio-tmp"
        temp_dir.mkdir()
        env = {**os.environ, "GRADIO_TEMP_DIR": str(temp_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
        log = open(log_path, "w")
        server = subprocess.Popen([sys.executable, "-m", "benchmarks.soak", "serve", "--model", inputs.model,
                                   "--stats", str(stats_path)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=log, text=True)
        hello = json.loads(server.stdout.readline() or "{}")
        if "url" not in hello:
            raise RuntimeError(f"the server did not start; see {log_path}:\n{log_path.read_text()[-2000:]}")
        url, endpoints = hello["url"], set(hello["endpoints"])
        chosen = _parse_mix(mix)
        skipped = [a for a, _ in chosen if a in ENDPOINT_OF and ENDPOINT_OF[a] not in endpoints]
        chosen = [(a, w) for a, w in chosen if a not in skipped]
        say(f"server {url} (pid {server.pid}); mix {chosen}; skipped (no endpoint): {skipped or 'none'}")

        with _client_downloads_in(work / "client-tmp"):
            warm = Tally()
            _drive(url, inputs, chosen, users, warmup_s, warm)  # thread pools and caches reach working size
            start = _last_sample(stats_path)
            tally = Tally()
            began = time.monotonic()
            _drive(url, inputs, chosen, users, minutes * 60, tally)
            measured_s = time.monotonic() - began
            end_of_load = _last_sample(stats_path)
            refused = overfill_queue(url, inputs, how_many=40)
        time.sleep(SETTLE_S)
        settled = _last_sample(stats_path)
        samples = [json.loads(line) for line in stats_path.read_text().splitlines() if line.strip()]
        log.flush()
        server_log = log_path.read_text()
        # A LocalProtocolError is a file served while it was rewritten (issue 12): an error even
        # when uvicorn logs it without a traceback.
        tracebacks = server_log.count("Traceback (most recent call last)") + server_log.count("LocalProtocolError")
        report = _report(tally, warm, start, end_of_load, settled, samples, refused, tracebacks, measured_s,
                         users, chosen, skipped)
        say(json.dumps(report, indent=2))
        return report
    finally:
        if server is not None:
            try:
                server.stdin.close()
                server.wait(30)
            except Exception:  # noqa: BLE001 - fall through to kill
                pass
            if server.poll() is None:
                server.kill()
                server.wait()
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _client_downloads_in(path: Path):
    """Point this process's temp dir at ``path`` while the users run: gradio_client stages every
    file it downloads in a new directory under the temp dir and leaves it behind, empty."""
    path.mkdir(exist_ok=True)
    previous, tempfile.tempdir = tempfile.tempdir, str(path)
    try:
        yield
    finally:
        tempfile.tempdir = previous


def _drive(url, inputs, mix, users, seconds, tally) -> None:
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=user, args=(url, inputs, mix, deadline, tally, seed), name=f"soak-user-{seed}")
               for seed in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _parse_mix(text: str) -> list[tuple[str, int]]:
    mix = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in ACTIONS:
            raise SystemExit(f"unknown action {name!r}; use {', '.join(ACTIONS)}")
        mix.append((name.strip(), int(weight or 1)))
    return mix


def _last_sample(path: Path) -> dict:
    time.sleep(SAMPLE_S * 2.5)  # at least one fresh sample
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1])


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)


def _report(tally, warm, start, end_of_load, settled, samples, refused, tracebacks, measured_s, users, mix,
            skipped) -> dict:
    everything = [s for values in tally.latencies.values() for s in values]
    per_action = {a: {"n": len(v), "p50_s": _p(v, 0.5), "p95_s": _p(v, 0.95)} for a, v in sorted(tally.latencies.items())}
    peak = {key: max(s[key] for s in samples) for key in ("rss_mb", "fds", "threads", "children", "ffmpeg", "temp_mb")}
    figures = ("rss_mb", "threads", "pooled_threads", "fds", "children", "ffmpeg", "zombies", "temp_mb", "generating")
    report = {
        "users": users, "measured_s": round(measured_s, 1), "mix": dict(mix), "skipped": skipped,
        "requests": len(everything), "worded_user_errors": tally.user_errors,
        "server_errors": len(tally.server_errors) + tracebacks, "server_error_samples": tally.server_errors[:5],
        "server_tracebacks": tracebacks,
        "p50_s": _p(everything, 0.5), "p95_s": _p(everything, 0.95), "per_action": per_action,
        "cancel_to_done_p95_s": _p(tally.stop_seconds, 0.95), "cancel_to_done_max_s": _p(tally.stop_seconds, 1.0),
        "start": {k: round(start[k], 1) for k in figures}, "end_of_load": {k: round(end_of_load[k], 1) for k in figures},
        "settled": {k: round(settled[k], 1) for k in figures}, "peak": {k: round(v, 1) for k, v in peak.items()},
        "device_lock": {"max_active": settled["lock_max_active"], "passes": settled["lock_passes"] - start["lock_passes"],
                        "active_at_end": settled["lock_active"]},
        "queue_full_refusals": len(refused), "queue_full_message": refused[0] if refused else None,
    }
    report["checks"] = _checks(report)
    report["ok"] = all(report["checks"].values())
    return report


def _checks(r: dict) -> dict:
    start, settled = r["start"], r["settled"]
    return {
        "no_server_errors": r["server_errors"] == 0,
        "model_work_never_concurrent": r["device_lock"]["max_active"] == 1 and r["device_lock"]["active_at_end"] == 0,
        "memory_flat": settled["rss_mb"] - start["rss_mb"] < FLAT_RSS_MB,
        "fds_flat": settled["fds"] - start["fds"] <= FLAT_FDS,
        "threads_flat": settled["threads"] - settled["pooled_threads"] <= start["threads"] - start["pooled_threads"] + FLAT_THREADS,
        "children_flat": settled["children"] <= start["children"] and settled["zombies"] == 0,
        "no_ffmpeg_left": settled["ffmpeg"] == 0,
        "no_generation_left": settled["generating"] == 0,
        "temp_dir_bounded": settled["temp_mb"] - start["temp_mb"] < 50,
        # Seen by the client: its /cancel round trip under full load included. The 2 s bound on the
        # server's generation thread itself is tests/test_cancellation.py's.
        "cancels_end_promptly": (r["cancel_to_done_p95_s"] or 0) < CANCEL_P95_S,
        "queue_full_is_clear": r["queue_full_refusals"] > 0 and "queue is full" in (r["queue_full_message"] or "").lower(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="(internal) run the app and sample it")
    srv.add_argument("--model", required=True)
    srv.add_argument("--stats", required=True, type=Path)
    srv.add_argument("--queue-size", type=int)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"weighted actions (default {DEFAULT_MIX})")
    parser.add_argument("--model", default=None, help="checkpoint dir (default: a tiny random SmolVLM2 built now)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.model, args.stats, args.queue_size)
        return
    report = run(args.minutes, args.users, args.mix, args.model, args.warmup)
    failed = [name for name, ok in report["checks"].items() if not ok]
    print("OK" if not failed else f"FAILED: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
