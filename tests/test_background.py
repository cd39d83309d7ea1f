"""pipelines.background: the one worker-thread + bounded-queue primitive every stream is built on."""

from __future__ import annotations

import threading
import time

import pytest

from pipelines.background import PENDING, Background, StopEvent


def _alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_items_arrive_in_order_and_the_worker_ends():
    with Background(lambda stop: iter(range(100)), name="bg-order", max_queued=4) as items:
        assert list(items) == list(range(100))
    assert not _alive("bg-order")


def test_an_error_reaches_the_reader_after_the_items_before_it():
    def produce(stop):
        yield 1
        yield 2
        raise ValueError("broken")

    seen = []
    with pytest.raises(ValueError, match="broken"), Background(produce, name="bg-error") as items:
        for item in items:
            seen.append(item)
    assert seen == [1, 2]


def test_next_within_says_pending_while_nothing_comes():
    release = threading.Event()

    def produce(stop):
        release.wait(5)
        yield "late"

    with Background(produce, name="bg-pending") as items:
        started = time.perf_counter()
        assert items.next_within(0.05) is PENDING
        assert time.perf_counter() - started < 1.0
        release.set()
        assert items.next_within(5) == "late"
        with pytest.raises(StopIteration):
            items.next_within(5)


def test_close_stops_a_producer_that_checks_stop_and_joins_it():
    def endless(stop):
        n = 0
        while not stop.is_set():
            n += 1
            yield n

    items = Background(endless, name="bg-close", max_queued=2)
    assert next(items) == 1
    items.close()
    assert not _alive("bg-close")
    items.close()  # twice is harmless


def test_cancel_stops_the_producer_but_its_last_word_still_arrives():
    cancel = threading.Event()

    def produce(stop):
        while not stop.is_set():
            yield "token"
            time.sleep(0.01)
        yield "cancelled"

    with Background(produce, name="bg-cancel", cancel=cancel) as items:
        assert next(items) == "token"
        cancel.set()
        rest = list(items)
    assert rest[-1] == "cancelled"


def test_from_callback_queues_what_a_callback_api_hands_over():
    def run(emit, stop):
        for word in ("a", "b", "c"):
            assert emit(word)

    with Background.from_callback(run, name="bg-callback") as items:
        assert list(items) == ["a", "b", "c"]


def test_abandon_does_not_wait_for_a_hung_producer():
    hang = threading.Event()

    def hung(stop):
        hang.wait(10)
        yield "never read"

    items = Background(hung, name="bg-hung")
    started = time.perf_counter()
    items.abandon()
    assert time.perf_counter() - started < 0.5 and items.stop.is_set()
    hang.set()


def test_stop_event_reads_its_parent():
    parent = threading.Event()
    child = StopEvent(parent)
    assert not child.is_set()
    parent.set()
    assert child.is_set() and child.wait(0)
