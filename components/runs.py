"""Cancel events of the runs in flight, keyed by browser session, so Stop reaches the
generation thread itself (not only the UI stream)."""

from __future__ import annotations

import threading
from collections import defaultdict
from contextlib import contextmanager


class ActiveRuns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, set[threading.Event]] = defaultdict(set)

    def start(self, key: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._runs[key].add(event)
        return event

    def finish(self, key: str, event: threading.Event) -> None:
        with self._lock:
            self._runs[key].discard(event)
            if not self._runs[key]:
                del self._runs[key]

    @contextmanager
    def running(self, key: str):
        """``start`` on entry and ``finish`` on exit, however the run ends; yields the cancel event."""
        event = self.start(key)
        try:
            yield event
        finally:
            self.finish(key, event)

    def cancel(self, key: str) -> int:
        """Set every cancel event of ``key``; returns how many runs were told to stop."""
        with self._lock:
            events = list(self._runs.get(key, ()))
        for event in events:
            event.set()
        return len(events)

    def count(self) -> int:
        with self._lock:
            return sum(len(events) for events in self._runs.values())


def session_key(request, scope: str) -> str:
    """One key per browser session and tab, so Stop in Chat does not stop a Compare run."""
    session = getattr(request, "session_hash", None) or "anonymous"
    return f"{scope}:{session}"
