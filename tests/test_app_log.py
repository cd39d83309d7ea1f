"""The served app, used for real over HTTP, streams only what changed and keeps a clean log.

``python app.py`` runs in its own process (tests/app_process.py) with its output in a file: a
video chat, a Stop, a Compare, a Highlights run and Suggest-then-Find must leave no traceback and no
``LocalProtocolError`` (a file served while it is being rewritten) in that log.
"""

from __future__ import annotations

import time

import pytest
from gradio_client import Client, handle_file

from components.pacing import UPDATES_PER_SECOND
from tests.app_process import app_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tiny_smolvlm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-log")
    log = folder / "app.log"
    env = {"GRADIO_TEMP_DIR": str(folder / "gradio"), "VLMS_CACHE_DIR": str(folder / "cache")}
    with app_process(tiny_smolvlm, log, env=env) as url:
        client = Client(url, verbose=False, download_files=str(folder / "downloads"))
        try:
            yield client, log
        finally:
            client.close()


def _is_gallery(value) -> bool:
    return isinstance(value, list)


def test_a_video_chat_sends_the_frames_once_and_paces_its_updates(served, video_20s):
    client, _log = served
    started = time.monotonic()
    job = client.submit({"text": "What happens in this video?", "files": [handle_file(str(video_20s))]}, [],
                        max_new_tokens=96, api_name="/chat")
    updates = list(job)
    elapsed = time.monotonic() - started
    history, _textbox, stats, frames = job.result()
    assert len(frames) == 20 and frames[0]["caption"] == "0:00.00"  # 1 fps over 20 s, with timestamps
    # The gallery travels with the first update and the last (the API result), never per chunk.
    galleries = [update[3] for update in updates if _is_gallery(update[3])]
    assert len(galleries) == 2, f"the frames were sent {len(galleries)} times"
    assert len(updates) <= UPDATES_PER_SECOND * elapsed + 3, f"{len(updates)} updates in {elapsed:.1f} s"
    assert history[-1]["role"] == "assistant" and "new tokens" in stats


def test_stop_compare_and_highlights_leave_a_clean_log(served, sample_image, second_image, short_video, video_20s):
    client, log = served
    job = client.submit({"text": "Tell a long story", "files": [handle_file(str(video_20s))]}, [],
                        max_new_tokens=2000, api_name="/chat")
    deadline = time.monotonic() + 120
    while job.status().code.name not in ("ITERATING", "FINISHED") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    client.predict(api_name="/chat_stop")
    _wait_done(job)

    answer, stats = client.predict([handle_file(str(sample_image)), handle_file(str(second_image))],
                                   "What differs?", max_new_tokens=8, api_name="/compare")
    assert "Image 1 = " in stats

    summary, *_ = client.predict(handle_file(str(short_video)), criteria="anything moving", window=2,
                                 target=3, api_name="/highlights")
    assert "reel" in summary.lower() or "selected" in summary.lower()
    # Suggest with the scan's window settings (the frames it shows are kept), then Find with them.
    suggested = client.predict(handle_file(str(video_20s)), window=4, frames=2, api_name="/highlights_criteria")
    summary, *_ = client.predict(handle_file(str(video_20s)), criteria=suggested, window=4, frames=2, target=4,
                                 api_name="/highlights")
    assert suggested.strip() and "5 windows of 4 s" in summary

    text = log.read_text()
    assert "LocalProtocolError" not in text
    assert "Traceback" not in text, text[text.index("Traceback") - 500:][:4000]


def _wait_done(job, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.done(), "the stopped chat never finished"
