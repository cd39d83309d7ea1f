"""On-disk cache of window scores (and proposed criteria), so re-selecting costs no model call.

Contract: ``ScoreCache(root)`` stores small JSON documents under ``root`` (default: the
``VLMS_CACHE_DIR`` environment variable, else ``~/.cache/vlm-studio``; always in a ``highlights``
sub-folder). ``key(**parts)`` hashes everything that changes a score: the video's CONTENT hash
(``file_sha256``: renaming or re-uploading the same file still hits), the model source and
dtype, the criteria text, the window settings, and ``SCORING_VERSION`` (bumped whenever the
prompt or the scoring method changes, which silently invalidates old entries). ``load`` returns
None for a miss or an unreadable entry (a damaged cache never breaks a request); ``store``
writes atomically. ``ScoreCache(None, enabled=False)`` is a cache that never hits.

Next to it, in a ``features`` sub-folder, ``frame_features`` keeps what the vision encoder made of
each frame (pipelines.features; bounded in size), so other criteria re-score the same video
without decoding it or running the encoder. ``features=False`` (or a disabled cache) turns that
off: every scan then encodes pixels, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from ..features import FeatureStore
from ..memo import BoundedMemo, file_version

log = logging.getLogger(__name__)

SCORING_VERSION = 1
_HASH_CHUNK = 4 << 20
# Files hashed by this process: the 256 most recently used are remembered.
_hash_memo: BoundedMemo[str] = BoundedMemo(256)


def default_cache_dir() -> Path:
    configured = os.environ.get("VLMS_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "vlm-studio"


def file_sha256(path) -> str:
    """SHA-256 of the file's bytes; remembered per file version for this process (a bounded memo)."""
    version = file_version(path)
    known = _hash_memo.get(version)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(block)
    value = digest.hexdigest()
    _hash_memo.put(version, value)
    return value


class ScoreCache:
    def __init__(self, root=None, enabled: bool = True, features: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.frame_features = FeatureStore(self.root / "features", enabled=enabled and features)

    @property
    def folder(self) -> Path:
        return self.root / "highlights"

    @staticmethod
    def key(kind: str, **parts) -> str:
        """A stable hash of ``parts`` (JSON-able values) for entries of one ``kind``."""
        payload = json.dumps({"kind": kind, "version": SCORING_VERSION, **parts}, sort_keys=True)
        return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:40]}"

    def load(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        try:
            return json.loads((self.folder / f"{key}.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:  # damaged or unreadable: recompute, never fail
            log.warning("Ignoring unreadable cache entry %s: %s", key, error)
            return None

    def store(self, key: str, document: dict) -> None:
        if not self.enabled:
            return
        temporary = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{key}.", dir=self.folder)
            with os.fdopen(handle, "w") as stream:
                json.dump(document, stream)
            os.replace(temporary, self.folder / f"{key}.json")
        except OSError as error:  # a read-only or full disk costs speed later, not this result
            log.warning("Could not write the score cache in %s: %s", self.folder, error)
            if temporary:
                Path(temporary).unlink(missing_ok=True)
