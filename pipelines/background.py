"""ONE background-iterator primitive: a worker thread fills a bounded queue, the reader iterates.

Every stream of the app (generation, two models side by side, the highlights decoding pass, the
UI's paced updates) is built on ``Background``, so the thread rules live in one place.

Contract
--------
``Background(produce, name=..., max_queued=..., cancel=None)`` starts a daemon thread that runs
``for item in produce(stop): put(item)``.

- ``stop`` is a ``threading.Event`` the producer should check between items (and hand to the
  work it starts). It is set by ``close()``, and it reads as set whenever ``cancel`` is set.
- The queue holds at most ``max_queued`` items: a producer that runs ahead blocks (bounded
  memory), but never forever: a blocked put gives up once the reader has closed. A ``cancel``
  alone does not drop items: a producer may still report how it ended (e.g. a last chunk marked
  "cancelled"), and the reader still receives it.
- Iterating yields the items in order and ends when the producer ends. An exception raised by the
  producer is re-raised to the reader (after the items produced before it), never lost.
- ``next_within(seconds)`` is the same with a deadline: it returns ``PENDING`` when nothing came
  in time, so a reader can do timed work (heartbeats, a watchdog) without a thread of its own.
- What ``produce`` returned is closed on the worker when it ends or is abandoned (a generator
  must be closed on the thread that runs it; ``finally`` blocks of pipeline streams run there).
- ``close()`` sets ``stop``, drops what is queued and joins the worker (``join_timeout_s``);
  ``abandon()`` sets ``stop`` and does NOT wait: for a worker known to be hung. Leaving a ``with``
  block, or closing a generator that iterates it, closes it. Closing twice is harmless.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Generic, Iterable, Iterator, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
PENDING = type("Pending", (), {"__repr__": lambda self: "PENDING", "__bool__": lambda self: False})()
JOIN_TIMEOUT_S = 30.0
# How often a blocked put or get re-checks ``stop`` and the worker: short, so nothing waits long
# on a reader or a worker that has gone.
_RECHECK_S = 0.1
_END, _ITEM, _ERROR = "end", "item", "error"


def _close(items) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


class StopEvent(threading.Event):
    """Set on its own (``close``) or through a parent event (a user's Stop)."""

    def __init__(self, parent: threading.Event | None = None):
        super().__init__()
        self.parent = parent

    def is_set(self) -> bool:
        return super().is_set() or (self.parent is not None and self.parent.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        if self.parent is None:
            return super().wait(timeout)
        # Either event may be set: poll both (Event has no way to wait on two).
        step = _RECHECK_S if timeout is None else min(_RECHECK_S, max(timeout, 0.0))
        waited = 0.0
        while not self.is_set():
            if timeout is not None and waited >= timeout:
                return False
            super().wait(step)
            waited += step
        return True


class Background(Generic[T], Iterator[T]):
    """Iterate ``produce(stop)`` on a worker thread; see the module docstring."""

    def __init__(self, produce: Callable[[threading.Event], Iterable[T]], *, name: str,
                 max_queued: int = 64, cancel: threading.Event | None = None,
                 join_timeout_s: float = JOIN_TIMEOUT_S):
        self.stop = StopEvent(cancel)
        self.name = name
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(1, max_queued))
        self._join_timeout_s = join_timeout_s
        self._finished = False
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self._worker.start()

    @classmethod
    def from_callback(cls, run: Callable[[Callable[[T], bool], threading.Event], None], **options) -> "Background[T]":
        """For work that hands items to a callback instead of yielding them (transformers'
        streamer): ``run(emit, stop)`` runs on the worker; ``emit(item)`` queues one item (waiting
        while the queue is full) and returns False once the reader has closed. Same options and
        reader side as the constructor."""
        ready = threading.Event()
        box: list = []

        def produce(stop: threading.Event):
            ready.wait()  # the instance exists only once the constructor has returned
            run(box[0]._emit, stop)
            return ()

        background = cls(produce, **options)
        box.append(background)
        ready.set()
        return background

    # -- worker side --------------------------------------------------------------------------

    def _emit(self, item) -> bool:
        return self._put((_ITEM, item))

    def _run(self, produce) -> None:
        items = ()
        try:
            items = iter(produce(self.stop))  # may do the work itself (from_callback): inside the try
            for item in items:
                if not self._put((_ITEM, item)):
                    return
        except BaseException as error:  # handed to the reader, never lost in the thread
            self._put((_ERROR, error))
            return
        finally:
            _close(items)  # here, on the worker: a generator must be closed on the thread that runs it
        self._put((_END, None))

    def _put(self, entry) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(entry, timeout=_RECHECK_S)
                return True
            except queue.Full:
                continue
        return False  # the reader is gone: nothing more has anyone to reach

    # -- reader side --------------------------------------------------------------------------

    def __iter__(self) -> "Background[T]":
        return self

    def __next__(self) -> T:
        while True:
            item = self.next_within(_RECHECK_S)
            if item is not PENDING:
                return item

    def next_within(self, seconds: float):
        """The next item, or ``PENDING`` if none came within ``seconds``; StopIteration at the end."""
        if self._finished:
            raise StopIteration
        try:
            kind, payload = self._queue.get(timeout=max(0.0, seconds))
        except queue.Empty:
            if not self._worker.is_alive() and self._queue.empty():
                self._finished = True  # the worker died without a word (cannot happen, but never hang)
                raise RuntimeError(f"Background worker {self.name} ended without reporting its end.") from None
            return PENDING
        if kind == _ITEM:
            return payload
        self._finished = True
        if kind == _ERROR:
            raise payload
        raise StopIteration

    @property
    def alive(self) -> bool:
        return self._worker.is_alive()

    @property
    def thread(self) -> threading.Thread:
        """The worker (e.g. to hand back a lock it holds when it hung)."""
        return self._worker

    def close(self) -> None:
        """Stop the producer, drop what is queued and join the worker."""
        self._finished = True
        self._closed.set()
        self.stop.set()
        self._drain()
        self._worker.join(self._join_timeout_s)
        if self._worker.is_alive():
            log.error("Background worker %s did not stop within %.0f s", self.name, self._join_timeout_s)
        self._drain()

    def abandon(self) -> None:
        """Tell a hung producer to stop and leave it: nothing waits for it."""
        self._finished = True
        self._closed.set()
        self.stop.set()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __enter__(self) -> "Background[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
