"""The app launched in-process on 127.0.0.1 and driven over HTTP with gradio_client."""

from __future__ import annotations

import threading
import time

import pytest
from gradio_client import handle_file

from components.widgets import stopped_stats
from tests import media_factory
from tests.app_server import serve


@pytest.fixture(scope="module")
def app_url(tiny_model):
    """The app serving each tiny checkpoint in turn (SmolVLM2, then PerceptionLM)."""
    with serve(tiny_model) as (url, _demo):
        yield url


def _answer(history) -> str:
    content = history[-1]["content"]
    if isinstance(content, list):
        return "".join(item.get("text", "") for item in content if isinstance(item, dict))
    return content


def _resendable(history):
    """History as returned has plain server paths; files must be wrapped again to be sent back."""
    def item(content):
        if isinstance(content, dict) and content.get("type") == "file":
            return {"type": "file", "file": handle_file(content["file"]["path"] if isinstance(content["file"], dict)
                                                        else content["file"])}
        return content
    return [{**m, "content": [item(c) for c in m["content"]]} for m in history]


def _texts(history):
    return [(m["role"], [c.get("text") for c in m["content"]]) for m in history]


def _generate_threads():
    return [t for t in threading.enumerate() if t.name == "vlms-generate"]


def test_chat_with_an_image_streams_updates(client, sample_image):
    job = client.submit({"text": "Describe", "files": [handle_file(str(sample_image))]}, [],
                        max_new_tokens=24, api_name="/chat")
    updates = list(job)
    history, _textbox, stats, _frames = job.result()
    assert len(updates) >= 2
    assert history[-1]["role"] == "assistant" and _answer(history).strip()
    assert len({_answer(update[0]) for update in updates if update[0]}) >= 2  # the text grew
    assert "visual of" in stats and "new tokens" in stats


def test_chat_with_a_20_second_video(client, video_20s, tiny_model):
    history, _textbox, stats, frames = client.predict(
        {"text": "What happens in this video?", "files": [handle_file(str(video_20s))]}, [],
        max_new_tokens=12, api_name="/chat")
    assert _answer(history).strip()
    # SmolVLM2 samples 1 fps (one frame per second of the clip); PerceptionLM a fixed 32 frames.
    assert len(frames) == (20 if "smolvlm" in tiny_model.name else 32)
    assert frames[0]["caption"] == "0:00.00"


def test_broken_file_gives_a_clear_error_then_the_next_request_works(client, sample_image, tmp_path):
    broken = media_factory.make_random_bytes(tmp_path / "broken.mp4")
    with pytest.raises(Exception) as info:
        client.predict({"text": "What is this?", "files": [handle_file(str(broken))]}, [], api_name="/chat")
    message = str(info.value)
    assert "Traceback" not in message and ("video" in message.lower() or "image" in message.lower())
    history, *_ = client.predict({"text": "Describe", "files": [handle_file(str(sample_image))]}, [],
                                 max_new_tokens=8, api_name="/chat")
    assert _answer(history).strip()


@pytest.fixture(scope="module")
def endless(tiny_model, endless_pair) -> str:
    """The served family's checkpoint that never ends an answer by itself: a random model may
    end "Tell a long story" after a dozen tokens (the tiny PerceptionLM does), before a test can
    see its generation thread, let alone stop it."""
    return str(endless_pair[0] if "smolvlm" in tiny_model.name else endless_pair[1])


def test_job_cancel_stops_the_generation_thread(client, sample_image, endless):
    job = client.submit({"text": "Tell a long story", "files": [handle_file(str(sample_image))]}, [],
                        model=endless, max_new_tokens=2000, api_name="/chat")
    deadline = time.time() + 60
    while not _generate_threads() and time.time() < deadline:
        time.sleep(0.05)
    assert _generate_threads(), "generation never started"
    time.sleep(0.3)
    job.cancel()
    started = time.time()
    while _generate_threads() and time.time() - started < 2.0:
        time.sleep(0.05)
    assert not _generate_threads(), "the generation thread outlived job.cancel() by 2 s"


def test_stop_button_endpoint_stops_this_sessions_generation(client, sample_image, endless):
    job = client.submit({"text": "Tell a long story", "files": [handle_file(str(sample_image))]}, [],
                        model=endless, max_new_tokens=2000, api_name="/chat")
    deadline = time.time() + 60
    while not _generate_threads() and time.time() < deadline:
        time.sleep(0.05)
    assert _generate_threads(), "generation never started"
    client.predict(api_name="/chat_stop")
    started = time.time()
    while _generate_threads() and time.time() - started < 2.0:
        time.sleep(0.05)
    assert not _generate_threads(), "Stop did not end the generation thread within 2 s"
    job.cancel()


def test_retry_replaces_the_last_answer_and_keeps_earlier_turns(client, sample_image):
    first, *_ = client.predict({"text": "Describe", "files": [handle_file(str(sample_image))]}, [],
                               max_new_tokens=6, api_name="/chat")
    second, *_ = client.predict({"text": "And the colours?", "files": []}, _resendable(first), max_new_tokens=6,
                                api_name="/chat")
    retried, _textbox, stats, _frames = client.predict(_resendable(second), max_new_tokens=6,
                                                       api_name="/chat_retry")
    assert len(retried) == len(second)
    assert [m["role"] for m in retried] == [m["role"] for m in second]
    assert _texts(retried[: len(first)]) == _texts(second[: len(first)])  # earlier turns untouched
    assert sum(1 for m in retried for c in m["content"] if c.get("type") == "file") == 1  # image kept
    assert "And the colours?" in str(retried[-2]["content"]) and "new tokens" in stats


def test_a_stopped_reply_says_so_once_and_keeps_its_notices():
    line = "first token 0.10 s · 5 new tokens · 64 visual of 90 prompt tokens\n\n> Only the first 8 frames were used."
    stopped = stopped_stats(line)
    assert stopped.splitlines()[0].endswith(" · stopped")
    assert stopped.endswith("> Only the first 8 frames were used.")
    assert stopped_stats(stopped) == stopped  # a second Stop adds nothing
    assert stopped_stats("") == ""  # nothing was shown yet: nothing to mark
