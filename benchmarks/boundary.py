"""At the user's boundary: what a client of the running app gets vs bare ``model.generate``.

The app runs as users run it (``python app.py --model STAND_IN`` in its own process, see
tests/app_process.py) and is driven over HTTP with gradio_client; the reference is a bare
``generate`` in this process on the same full-size random checkpoint and the same inputs.

- Time to first token. App: from submitting the request (the upload included) to the first
  update holding answer text, timed by the client. Bare: preparing the same input in-process
  (decoding + processor, ``pipelines.chat.prepare_chat``) plus ``generate``'s first token.
- Tokens/s. App: (tokens - 1) / (arrival of the last text update - arrival of the first), timed by
  the client; the token count is the stats line's. Bare: from ``generate``'s token timestamps.
- The client is ``Client(url, download_files=False)``, as the README advises for streaming: by
  default gradio_client downloads every file of every update it receives, the images and videos
  of the conversation included, which on 2 shared cores halves decoding. One reported row
  measures that default client for the one-image chat.

Rows: chat with one image, an 8-frame and a 64-frame video (target: both ratios >= 0.95x);
multi-image Compare and a two-model Compare (each pane vs that model alone), and the Highlights
endpoint vs ``make_highlights`` called directly: reported, not targeted. Rounds alternate which
side goes first; a ratio is the median of the rounds' paired ratios (see chat_overhead.py).

    python -m benchmarks.run --only boundary [--quick]
    python -m benchmarks.boundary --table      (the issue-12 table: tiny model, image vs 20 s video)
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .chat_overhead import _bare, paired_ratios
from .common import CACHE_DIR, Row, cached, chatty, stand_in

NEW_TOKENS = 48
TARGET = 0.95


@dataclass(frozen=True)
class Timing:
    ttft_s: float
    tokens_per_s: float
    tokens: int
    updates: int
    chars_per_s: float = float("nan")  # answer characters after the first update, per second


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def _image(name: str = "photo-512.png", seed: int = 0, size: tuple[int, int] = (512, 512)) -> Path:
    from tests.media_factory import make_noise_jpeg

    return cached(CACHE_DIR / name.replace(".png", ".jpg"),
                  lambda out: make_noise_jpeg(out.with_suffix(".jpg"), size=size, seed=seed).rename(out))


def _video(seconds: int) -> Path:
    from tests.media_factory import make_video

    return cached(CACHE_DIR / f"clip-{seconds}s-1fps.mp4",
                  lambda out: make_video(out.with_suffix(".mp4"), seconds=seconds, fps=24, size=(640, 360),
                                         audio=True).rename(out))


# ------------------------------------------------------------------------------------------------
# The app side (HTTP)
# ------------------------------------------------------------------------------------------------


def _tokens(stats: str) -> int:
    match = re.search(r"(\d+) new tokens", stats or "")
    return int(match.group(1)) if match else 0


def _answer(history) -> str:
    if not history:
        return ""
    content = history[-1].get("content")
    if isinstance(content, list):
        return "".join(item.get("text", "") for item in content if isinstance(item, dict))
    return content or ""


def timed_updates(job, text_of) -> tuple[list[tuple[float, str]], object]:
    """(arrival time, answer text) of every update of a gradio_client job, and its result."""
    started = time.perf_counter()
    arrivals = [(time.perf_counter() - started, text_of(update)) for update in job]
    return arrivals, job.result()


def stream_timing(arrivals: list[tuple[float, str]], tokens: int) -> Timing:
    """TTFT and decode speed as the client saw them, from the updates' arrival times."""
    texts = [(at, text) for at, text in arrivals if text]
    if not texts:
        raise RuntimeError("the app's answer stayed empty: no timing can be read")
    first = texts[0][0]
    changes = [(at, text) for (at, text), (_, before) in zip(texts, [(0, "")] + texts) if text != before]
    span = changes[-1][0] - first
    speed = (tokens - 1) / span if tokens > 1 and span > 0 else float("nan")
    chars = (len(changes[-1][1]) - len(texts[0][1])) / span if span > 0 else float("nan")
    return Timing(first, speed, tokens, len(arrivals), chars)


def app_chat(client, files: list[Path], max_new_tokens: int = NEW_TOKENS, question: str = "Describe this.") -> Timing:
    from gradio_client import handle_file

    job = client.submit({"text": question, "files": [handle_file(str(f)) for f in files]}, [],
                        max_new_tokens=max_new_tokens, api_name="/chat")
    arrivals, (history, _textbox, stats, _frames) = timed_updates(job, lambda update: _answer(update[0]))
    return stream_timing(arrivals, _tokens(stats))


def app_compare(client, images: list[Path], question: str) -> Timing:
    from gradio_client import handle_file

    job = client.submit([handle_file(str(p)) for p in images], question, max_new_tokens=NEW_TOKENS,
                        api_name="/compare")
    arrivals, (_answer_text, stats) = timed_updates(job, lambda update: update[0])
    return stream_timing(arrivals, _tokens(stats))


def app_two_models(client, model_a: str, model_b: str, image: Path, question: str) -> tuple[Timing, Timing]:
    from gradio_client import handle_file

    job = client.submit(model_a, model_b, question, [handle_file(str(image))], None, False,
                        max_new_tokens=NEW_TOKENS, api_name="/compare_models")
    started = time.perf_counter()
    arrivals = [(time.perf_counter() - started, update) for update in job]
    answer_a, stats_a, answer_b, stats_b = job.result()
    return (stream_timing([(at, u[0]) for at, u in arrivals], _tokens(stats_a)),
            stream_timing([(at, u[2]) for at, u in arrivals], _tokens(stats_b)))


# ------------------------------------------------------------------------------------------------
# The bare side (this process)
# ------------------------------------------------------------------------------------------------


class Bare:
    """Bare ``generate`` on the same checkpoint and inputs, preparation timed in."""

    def __init__(self, model_dir: Path, dtype: str, device: str = "cpu"):
        from pipelines.runtime import Runtime

        self.model_dir, self.runtime = str(model_dir), Runtime(device=device, dtype=dtype)

    def chat(self, files: list[Path], question: str = "Describe this.") -> Timing:
        from pipelines.chat import ChatRequest
        from pipelines.messages import Attachment, Turn

        attachments = tuple(Attachment("video" if f.suffix == ".mp4" else "image", str(f)) for f in files)
        return self._run(ChatRequest(self.model_dir, (Turn("user", question, attachments),)))

    def compare(self, images: list[Path], question: str) -> Timing:
        from pipelines.compare import multi_image_request

        return self._run(multi_image_request(self.model_dir, [str(p) for p in images], question),
                         compare=True)

    def _run(self, request, compare: bool = False) -> Timing:
        from pipelines import chat
        from pipelines.chat import prepare_chat
        from pipelines.compare import compare_runtime

        runtime = compare_runtime(self.runtime) if compare else self.runtime
        chat._video_cache.clear()  # every upload to the app is a new file, decoded anew: so here too
        started = time.perf_counter()
        prepared = prepare_chat(request, runtime)
        prepare_s = time.perf_counter() - started
        ttft, speed = _bare(prepared.loaded.model, prepared.inputs, NEW_TOKENS)
        return Timing(prepare_s + ttft, speed, NEW_TOKENS, 0)


# ------------------------------------------------------------------------------------------------
# Rows
# ------------------------------------------------------------------------------------------------


def paired(rounds: int, ours, bare) -> tuple[list[Timing], list[Timing]]:
    """One warm-up of each, then ``rounds`` rounds taking turns at going first."""
    ours(), bare()
    mine, theirs = [], []
    for number in range(rounds):
        order = [(mine, ours), (theirs, bare)]
        for results, run_once in order[::-1] if number % 2 else order:
            results.append(run_once())
    return mine, theirs


def ratio_rows(case: str, mine: list[Timing], theirs: list[Timing], targeted: bool) -> list[Row]:
    rows = []
    for unit, pick, higher in (("s", lambda t: t.ttft_s, False), ("tok/s", lambda t: t.tokens_per_s, True)):
        ratios = paired_ratios([pick(t) for t in mine], [pick(t) for t in theirs], higher_is_better=higher)
        ratio = statistics.median(ratios)
        what = "TTFT" if unit == "s" else "decode"
        note = (f"{len(ratios)} paired rounds, ratios {min(ratios):.2f}-{max(ratios):.2f}; "
                f"{statistics.median(t.updates for t in mine):.0f} updates, {mine[-1].tokens} tokens")
        rows.append(Row("boundary", f"{what} {case}", statistics.median(pick(t) for t in mine),
                        statistics.median(pick(t) for t in theirs), unit, ratio,
                        f">= {TARGET}x of bare" if targeted else "reported",
                        ratio >= TARGET if targeted else None, note))
    return rows


def chat_rows(client, bare: Bare, rounds: int, quick: bool) -> list[Row]:
    from gradio_client import Client

    cases = [("chat, 1 image", [_image()]), ("chat, 8-frame video", [_video(8)])]
    if not quick:
        cases.append(("chat, 64-frame video", [_video(64)]))
    rows = []
    for case, files in cases:
        mine, theirs = paired(rounds, lambda: app_chat(client, files), lambda: bare.chat(files))
        rows += ratio_rows(case, mine, theirs, targeted=True)
    downloading = Client(client.src, verbose=False)  # gradio_client's default: downloads every file
    mine, theirs = paired(rounds, lambda: app_chat(downloading, cases[0][1]), lambda: bare.chat(cases[0][1]))
    rows += ratio_rows("chat, 1 image, default gradio_client", mine, theirs, targeted=False)
    downloading.close()
    images = [_image(), _image("photo-512-b.png", 1), _image("photo-512-c.png", 2)]
    question = "What differs between these images?"
    mine, theirs = paired(rounds, lambda: app_compare(client, images, question),
                          lambda: bare.compare(images, question))
    return rows + ratio_rows("Compare, 3 images", mine, theirs, targeted=False)


def two_model_rows(client, bares: dict[str, Bare], rounds: int) -> list[Row]:
    (name_a, bare_a), (name_b, bare_b) = bares.items()
    image = _image()
    app_pairs = [app_two_models(client, name_a, name_b, image, "Describe this.") for _ in range(rounds)]
    alone_a = [bare_a.chat([image]) for _ in range(rounds)]
    alone_b = [bare_b.chat([image]) for _ in range(rounds)]
    return (ratio_rows("two-model Compare, pane A vs A alone", [p[0] for p in app_pairs], alone_a, False)
            + ratio_rows("two-model Compare, pane B vs B alone", [p[1] for p in app_pairs], alone_b, False))


def highlights_row(client, model_dir: Path, dtype: str, device: str) -> Row:
    """The /highlights endpoint vs ``make_highlights`` in-process; both score (no cache hit)."""
    from gradio_client import handle_file

    from pipelines.highlights import HighlightRequest, make_highlights
    from pipelines.highlights.cache import ScoreCache
    from pipelines.runtime import Runtime

    video = _video(64)
    criteria = ["goals and celebrations", "a new scene starts"]  # a new criteria each side: no cache hit
    started = time.perf_counter()
    client.predict(handle_file(str(video)), str(model_dir), criteria[0], 8, 0, 2, "Target length", 16, 0.5, 0,
                   api_name="/highlights")
    app_s = time.perf_counter() - started
    request = HighlightRequest(video=str(video), model=str(model_dir), criteria=criteria[1], window_seconds=8,
                               frames_per_window=2, target_seconds=16)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        make_highlights(request, Runtime(device=device, dtype=dtype), Path(out), cache=ScoreCache(enabled=False))
        direct_s = time.perf_counter() - started
    return Row("boundary", "Highlights endpoint vs pipeline, 64 s video", app_s, direct_s, "s", direct_s / app_s,
               "reported", None, "8 windows of 8 s, 2 frames each, scored and rendered on both sides")


def run(device: str = "cpu", quick: bool = False, model_dir: Path | None = None, dtype: str = "bf16") -> list[Row]:
    """The rows above on the 256M stand-in (``model_dir``: another checkpoint, e.g. a smoke run)."""
    from gradio_client import Client

    from tests.app_process import app_process

    model_dir = chatty(Path(model_dir) if model_dir else stand_in("256m", device))
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "app.log"
        env = {"GRADIO_TEMP_DIR": str(Path(work) / "gradio"), "VLMS_CACHE_DIR": str(Path(work) / "cache")}
        with app_process(model_dir, log, device=device, dtype=dtype, env=env) as url:
            client = Client(url, verbose=False, download_files=False)  # see the module docstring
            bare = Bare(model_dir, dtype, device)
            rows = chat_rows(client, bare, rounds, quick)
            if not quick:
                second = chatty(stand_in("500m", device))
                rows += two_model_rows(client, {str(model_dir): bare, str(second): Bare(second, dtype, device)}, rounds)
            rows.append(highlights_row(client, model_dir, dtype, device))
            client.close()
        _check_log(log.read_text())
    return rows


def _check_log(text: str) -> None:
    """A benchmark of a broken app measures nothing: a traceback in its log fails the run."""
    for marker in ("Traceback", "LocalProtocolError"):
        if marker in text:
            raise RuntimeError(f"the app's log has a {marker}:\n{text[text.index(marker) - 300:][:3000]}")


# ------------------------------------------------------------------------------------------------
# The issue-12 table: tiny model, one image vs a 20 s video, per token as the client sees it
# ------------------------------------------------------------------------------------------------


def issue_table(max_new_tokens: int = 128) -> None:
    from gradio_client import Client

    from tests import media_factory, tiny_models
    from tests.app_process import app_process

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        tiny = tiny_models.build_tiny_smolvlm2(work / "tiny")
        image = media_factory.make_noise_jpeg(work / "photo.jpg", size=(640, 480))
        video = media_factory.make_video(work / "twenty.mp4", seconds=20, fps=15, size=(128, 96), audio=True)
        env = {"GRADIO_TEMP_DIR": str(work / "gradio")}
        with app_process(tiny, work / "app.log", env=env) as url:
            client = Client(url, verbose=False, download_files=str(work / "downloads"))
            app_chat(client, [image], max_new_tokens)  # warm-up
            print("| request | updates | first update | total | per token after the first |")
            print("|---|---|---|---|---|")
            per_token = {}
            for name, files in (("one 640x480 image", [image]), ("a 20 s video (20 frames)", [video])):
                started = time.perf_counter()
                timing = app_chat(client, files, max_new_tokens)
                total = time.perf_counter() - started
                per_token[name] = (total - timing.ttft_s) / max(1, timing.tokens - 1)
                print(f"| {name}, {timing.tokens} tokens | {timing.updates} | {timing.ttft_s:.2f} s | {total:.2f} s "
                      f"| {per_token[name] * 1000:.0f} ms |")
            client.close()
        _check_log((work / "app.log").read_text())
    image_ms, video_ms = per_token.values()
    print(f"video / image per token: {video_ms / image_ms:.2f}x (done when <= 1.5x)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="store_true", help="print the issue-12 table (tiny model)")
    parser.add_argument("--model", help="a checkpoint dir instead of the 256M stand-in (a smoke run)")
    parser.add_argument("--dtype", default="bf16")
    args = parser.parse_args(argv)
    if args.table:
        issue_table()
    else:
        from .common import print_table

        print_table(run(quick=True, model_dir=args.model, dtype=args.dtype))


if __name__ == "__main__":
    main()
