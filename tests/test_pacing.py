"""components.pacing: how often a streaming callback updates the page (UI logic, scripted sources)."""

from __future__ import annotations

import threading
import time

import pytest

from components.pacing import UPDATES_PER_SECOND, paced


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def _timed(source) -> list[tuple[float, list]]:
    started = time.monotonic()
    return [(time.monotonic() - started, batch) for batch in paced(source, threading.Event(), name="test-paced")]


def test_a_fast_stream_is_coalesced_to_the_update_rate_and_loses_nothing():
    def fast():
        for number in range(2000):
            if number % 100 == 0:
                time.sleep(0.02)  # 2000 items over ~0.4 s: far more than 20 a second
            yield number

    batches = _timed(fast())
    items = [item for _, batch in batches for item in batch]
    assert items == list(range(2000))
    content = [at for at, batch in batches if batch]
    span = content[-1] - content[0]
    assert len(content) <= UPDATES_PER_SECOND * span + 2
    gaps = [b - a for a, b in zip(content, content[1:-1])]  # the last batch goes out at once
    assert all(gap >= 1 / UPDATES_PER_SECOND - 0.005 for gap in gaps), gaps


def test_the_first_item_after_a_quiet_spell_is_not_held_back():
    def first_then_more():
        time.sleep(0.3)
        yield "first"
        time.sleep(0.03)  # within the interval: batching it with "first" would delay the first token
        yield "second"

    batches = [batch for _, batch in _timed(first_then_more()) if batch]
    assert batches[0] == ["first"]
    assert [item for batch in batches for item in batch] == ["first", "second"]


def test_heartbeats_while_nothing_arrives():
    def slow():
        time.sleep(1.1)
        yield "late"

    batches = _timed(slow())
    heartbeats = [at for at, batch in batches if not batch]
    assert len(heartbeats) >= 3  # every 0.25 s during the 1.1 s wait
    assert batches[-1][1] == ["late"]


def test_an_error_of_the_stream_comes_after_its_items():
    def failing():
        yield 1
        raise ValueError("broken stream")

    seen = []
    with pytest.raises(ValueError, match="broken stream"):
        for batch in paced(failing(), threading.Event(), name="test-paced"):
            seen.extend(batch)
    assert seen == [1]


def test_leaving_early_cancels_the_work_and_joins_the_worker():
    cancel = threading.Event()
    closed = threading.Event()

    def endless():
        try:
            while not cancel.is_set():
                time.sleep(0.01)
                yield "token"
        finally:
            closed.set()  # runs on the worker thread, where the generator lives

    stream = paced(endless(), cancel, name="test-paced-early")
    assert next(stream)
    stream.close()
    assert cancel.is_set() and closed.is_set()
    assert not _threads("test-paced-early")
