"""A bounded, thread-safe memo: what a process remembers about files it has seen.

Contract: ``BoundedMemo(size)`` holds at most ``size`` entries; ``get`` returns the value or None
(and marks it recently used), ``put`` stores one and forgets the least recently used beyond
``size``. Safe to share between the server's threads. Values are never None (None means "not
remembered"). ``file_version(path)`` is the key for what is known about a file's CONTENT:
(absolute path, size, modification time), so a file replaced in place is a new version.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

Value = TypeVar("Value")


def file_version(path) -> tuple[str, int, int]:
    """(absolute path, size, mtime in ns); raises OSError when the file cannot be read."""
    status = os.stat(path)
    return os.path.abspath(path), status.st_size, status.st_mtime_ns


class BoundedMemo(Generic[Value]):
    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"a memo holds at least 1 entry, not {size}")
        self.size = size
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Value | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
