"""Tensor work leaves no OpenMP worker pool on the caller's thread (pipelines/devices.py).

libgomp keeps a pool for every thread that ran a parallel op, for as long as that thread lives;
surplus pools made decoding ~40% slower on 2 cores. A pool shows up as extra native (non-Python)
threads of the process, which is what these tests count, from a long-lived thread standing in
for the app server's worker pool.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from pipelines import devices
from pipelines.chat import ChatRequest, prepare_chat
from pipelines.messages import Attachment, Turn
from pipelines.runtime import Runtime

RUNTIME = Runtime(device="cpu", dtype="fp32")


def native_threads() -> int:
    return len(os.listdir("/proc/self/task")) - threading.active_count()


def settled_native_threads(timeout: float = 3.0) -> int:
    """The native thread count once earlier tests' threads have finished exiting."""
    deadline = time.monotonic() + timeout
    count = native_threads()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = native_threads()
        if now == count:
            break
        count = now
    return count


def pool_threads_left_by(work) -> int:
    """Run ``work`` on a thread that stays alive, and count the native threads it leaves."""
    done, release = threading.Event(), threading.Event()
    before = settled_native_threads()
    counted = []

    def caller() -> None:
        work()
        done.set()
        release.wait(30)

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    assert done.wait(120), "the work did not finish"
    deadline = time.monotonic() + 3.0  # threads of pools whose owner ended exit asynchronously
    counted.append(native_threads() - before)
    while counted[-1] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        counted.append(native_threads() - before)
    release.set()
    thread.join(30)
    return min(counted)


@pytest.fixture()
def two_intra_op_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # a pool exists only with 2+ threads; the same on any machine
    yield
    torch.set_num_threads(previous)


def _parallel_op() -> None:
    a = torch.randn(512, 512)
    for _ in range(3):
        a = torch.tanh(a @ a)


def test_a_parallel_op_on_a_long_lived_thread_keeps_a_pool(two_intra_op_threads):
    """The control: what the app must not do, detected by the count."""
    assert pool_threads_left_by(_parallel_op) >= 1


def test_the_same_op_on_a_fresh_thread_leaves_none(two_intra_op_threads):
    assert pool_threads_left_by(lambda: devices.on_fresh_thread(_parallel_op)) <= 0


def test_preparing_a_chat_leaves_no_pool_on_the_caller(two_intra_op_threads, tiny_smolvlm, sample_image):
    request = ChatRequest(str(tiny_smolvlm), (Turn("user", "What is this?", (Attachment("image", str(sample_image)),)),),
                          image_detail="high")
    prepare_chat(request, RUNTIME)  # loads the model once
    assert pool_threads_left_by(lambda: prepare_chat(request, RUNTIME)) <= 0


def test_fresh_thread_returns_the_result_and_re_raises_errors():
    assert devices.on_fresh_thread(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(ValueError, match="broken"):
        devices.on_fresh_thread(lambda: (_ for _ in ()).throw(ValueError("broken")))
