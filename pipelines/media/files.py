"""What every media module needs about an uploaded file: the name to show, that it is not
empty, its first bytes. Messages name files by their basename only (never a server path)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BadInputError, DecodeError


def display_name(path) -> str:
    """The basename: messages must never reveal server paths."""
    return Path(path).name or "the file"


def require_non_empty(path) -> None:
    """Raise BadInputError when ``path`` cannot be opened, DecodeError when it is 0 bytes."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise BadInputError(f"Could not open {display_name(path)}. Upload the file again.") from exc
    if size == 0:
        raise DecodeError(f"{display_name(path)} is empty (0 bytes). Upload the file again.")


def first_bytes(path) -> bytes:
    """The first 16 bytes (enough for every magic number checked here); b"" when unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read(16)
    except OSError:
        return b""
