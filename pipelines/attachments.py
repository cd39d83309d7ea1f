"""Uploaded files -> attachments: what each file is, judged by its CONTENT, once per file version.

Contract
--------
* ``classify(path) -> Attachment``: an image or a video, by content (never by name). A file that
  is neither raises the user-worded reason (empty, audio only, damaged, not a supported format),
  naming the file by its basename only.
* ``kind_of(path)``: "image", "video" or None (not usable media; no reason is worked out).
* Both remember what they found by (absolute path, size, modification time), so a conversation
  rebuilt on every message (the chat history) probes each file once, not once per turn; a file
  replaced in place is looked at again. At most ``CACHE_SIZE`` files are remembered (the least
  recently used are forgotten first). Unusable files are not remembered: each attempt says why.
* Images are recognised in-process from their header (Pillow); containers (FFmpeg parsing
  untrusted bytes) are probed in a bounded child process (``pipelines.isolation``).
"""

from __future__ import annotations

from pathlib import Path

from . import isolation
from .errors import BadInputError
from .limits import LIMITS, Limits
from .media import IMAGE_FORMAT_NAMES, VIDEO_FORMAT_NAMES
from .memo import BoundedMemo, file_version
from .messages import Attachment

CACHE_SIZE = 512

_known: BoundedMemo[str] = BoundedMemo(CACHE_SIZE)


def classify(path, limits: Limits = LIMITS) -> Attachment:
    """The attachment ``path`` is; raises BadInputError/DecodeError saying why it cannot be used."""
    kind = kind_of(path, limits)
    if kind is None:
        specific = isolation.unreadable_reason(path, limits)  # empty, audio only, damaged...
        if specific is not None:
            raise specific
        raise BadInputError(
            f"'{Path(path).name}' is neither an image nor a video this app can read. "
            f"Use {IMAGE_FORMAT_NAMES} images, or {VIDEO_FORMAT_NAMES} videos."
        )
    return Attachment(kind, str(path))


def kind_of(path, limits: Limits = LIMITS) -> str | None:
    """"image", "video" or None, remembered per file version (module docstring)."""
    try:
        version = file_version(path)
    except OSError:
        return None
    kind = _known.get(version)
    if kind is None:
        kind = isolation.file_kind(path, limits)
        if kind is not None:
            _known.put(version, kind)
    return kind
