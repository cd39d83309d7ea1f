"""Stop, job.cancel and a dropped connection all end the generation thread within 2 s, leave no
thread, file descriptor, child process or memory behind, and never touch another user's stream.

Driven over HTTP against the real app (tiny SmolVLM2). A dropped connection is made with a raw
HTTP client that joins the queue, reads the event stream until tokens flow, then closes the socket
without cancelling: what a closed browser tab or a killed client process does.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import uuid

import httpx
import pytest
from gradio_client import Client, handle_file

from pipelines.devices import DEVICE_LOCK
from tests.app_server import serve

STOP_WITHIN_S = 2.0
# Worker pools grow and shrink on their own within a fixed bound (AnyIO's 40 server workers, the
# clients' executors): not leaks, so they are checked against their bound, not the baseline.
POOLS = ("AnyIO worker thread", "ThreadPoolExecutor-")
POOL_BOUND = 64
LONG = 2000  # new tokens: far more than any test waits for


@pytest.fixture(scope="module")
def app(tiny_smolvlm):
    with serve(tiny_smolvlm) as (url, demo):
        yield url, demo


def generate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vlms-generate"]


def wait_for_generation(seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not generate_threads():
        assert time.monotonic() < deadline, "generation never started"
        time.sleep(0.02)


def seconds_until_no_generation(limit: float = STOP_WITHIN_S + 3) -> float:
    started = time.monotonic()
    while generate_threads() and time.monotonic() - started < limit:
        time.sleep(0.02)
    assert not generate_threads(), f"the generation thread outlived the stop by {limit} s"
    return time.monotonic() - started


def start_chat(client, image=None, text="Tell a long story", **settings):
    files = [handle_file(str(image))] if image else []
    return client.submit({"text": text, "files": files}, [], max_new_tokens=settings.pop("max_new_tokens", LONG),
                         api_name="/chat", **settings)


def drop_connection_mid_stream(app, text="Tell a long story", wait_for_tokens=True, endpoint="chat", data=None) -> None:
    """Join the queue over raw HTTP, read the stream until generation runs, then hang up."""
    url, demo = app
    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == endpoint)
    session = uuid.uuid4().hex[:12]
    model = demo.vlm_status.config.model
    with httpx.Client(timeout=60) as http:
        # Raw HTTP sends every input (gradio_client fills the defaults in): the last is "Hear the video".
        data = data or [{"text": text, "files": []}, [], model, "", LONG, True, 0.7, 0.9, "auto", 1.0, 0, True]
        body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
        assert http.post(f"{url}/gradio_api/queue/join", json=body).status_code == 200
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as events:
            for line in events.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                assert message.get("msg") != "process_completed", message
                if generate_threads() and (not wait_for_tokens or message.get("msg") == "process_generating"):
                    break
    # leaving both blocks closes the socket: no /cancel is ever sent


# =============================================================================================


def test_dropped_connection_ends_the_generation_within_2_s(app):
    drop_connection_mid_stream(app)
    assert seconds_until_no_generation() < STOP_WITHIN_S


def test_dropped_connection_ends_a_compare_run_too(app, sample_image, second_image):
    url, demo = app
    with httpx.Client(timeout=60) as http:
        uploaded = http.post(f"{url}/gradio_api/upload", files=[("files", open(sample_image, "rb")),
                                                               ("files", open(second_image, "rb"))]).json()
    files = [{"path": path, "meta": {"_type": "gradio.FileData"}} for path in uploaded]
    data = [files, "Tell a long story about them.", demo.vlm_status.config.model, "", LONG, True, 0.7, 0.9, "auto"]
    drop_connection_mid_stream(app, endpoint="compare", data=data)
    assert seconds_until_no_generation() < STOP_WITHIN_S


def test_dropped_connection_while_waiting_for_the_device(app):
    """No token flows while another user's work holds the device; the hang-up must still count."""
    DEVICE_LOCK.acquire()
    try:
        drop_connection_mid_stream(app, wait_for_tokens=False)
        time.sleep(0.3)  # the request is now queued on the device lock
        assert seconds_until_no_generation() < STOP_WITHIN_S
    finally:
        DEVICE_LOCK.release()


def test_job_cancel_while_waiting_for_the_device(client):
    DEVICE_LOCK.acquire()
    try:
        job = start_chat(client)
        wait_for_generation()
        time.sleep(0.3)
        job.cancel()
        assert seconds_until_no_generation() < STOP_WITHIN_S
    finally:
        DEVICE_LOCK.release()


def test_double_cancel_is_harmless(client, sample_image):
    job = start_chat(client, sample_image)
    wait_for_generation()
    job.cancel()
    job.cancel()
    client.predict(api_name="/chat_stop")
    client.predict(api_name="/chat_stop")
    assert seconds_until_no_generation() < STOP_WITHIN_S
    history, _box, stats, _frames = client.predict({"text": "Describe", "files": [handle_file(str(sample_image))]}, [],
                                                   max_new_tokens=4, api_name="/chat")
    assert history[-1]["role"] == "assistant" and "stopped" not in stats


def test_two_streams_cancel_independently_and_completion_is_not_cancelled(app, sample_image):
    first, second = Client(app[0], verbose=False), Client(app[0], verbose=False)
    try:
        stopped = start_chat(first, sample_image)
        finishing = start_chat(second, sample_image, text="Describe", max_new_tokens=60)
        deadline = time.monotonic() + 60
        while len(generate_threads()) < 2 and not finishing.done():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first.predict(api_name="/chat_stop")  # Stop in one session ...
        history, _box, stats, _frames = finishing.result(timeout=120)  # ... the other runs to its end
        assert "new tokens" in stats and "stopped" not in stats
        stopped.cancel()
        assert seconds_until_no_generation() < STOP_WITHIN_S
    finally:
        first.close()
        second.close()


def test_fifty_stop_cycles_leave_nothing_behind(app, client, sample_image):
    ways = [lambda job: job.cancel(), lambda job: client.predict(api_name="/chat_stop"), None]

    def cycle(number: int) -> float:
        way = ways[number % len(ways)]
        if way is None:
            drop_connection_mid_stream(app)
        else:
            job = start_chat(client, sample_image if number % 2 else None)
            wait_for_generation()
            way(job)
        return seconds_until_no_generation()

    for number in range(6):  # warm-up: thread pools and caches reach their working size
        cycle(number)
    before = _resources()
    slowest = max(cycle(number) for number in range(50))
    after = _settled(before)
    assert slowest < STOP_WITHIN_S
    assert after["threads"] <= before["threads"], (before, after)
    assert after["pooled"] <= POOL_BOUND, (before, after)
    assert after["fds"] <= before["fds"] + 4, (before, after)
    assert after["children"] == before["children"] and after["zombies"] == 0, (before, after)
    assert after["rss"] - before["rss"] < 80 * 2**20, (before, after)
    assert DEVICE_LOCK.active == 0 and DEVICE_LOCK.max_active == 1


# =============================================================================================


def _resources() -> dict:
    gc.collect()
    pid = os.getpid()
    children, zombies = set(), 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children.update(open(f"/proc/{pid}/task/{task}/children").read().split())
        except OSError:
            pass
    for child in list(children):
        try:
            if open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                zombies += 1
                children.discard(child)
        except OSError:
            children.discard(child)
    names = [t.name for t in threading.enumerate()]
    pooled = sum(1 for name in names if name.startswith(POOLS))
    return {"threads": len(names) - pooled, "pooled": pooled, "names": sorted(names), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "children": sorted(children), "zombies": zombies,
            "rss": int(open(f"/proc/{pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")}


def _settled(before: dict, seconds: float = 5.0) -> dict:
    """Resources once the last cycle's short-lived helpers (HTTP workers) have wound down."""
    deadline = time.monotonic() + seconds
    while True:
        now = _resources()
        if (now["threads"] <= before["threads"] and now["fds"] <= before["fds"]) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)
