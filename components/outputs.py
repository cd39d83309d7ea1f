"""Files the UI writes for the page (frame thumbnails, highlight reels and exports).

They are written ONCE, inside Gradio's cache folder (``GRADIO_TEMP_DIR``): Gradio serves a file
there as it is, with no copy and no hashing, so sending the same outputs again costs nothing. A
PIL image handed to a Gradio component instead is re-encoded and rewritten on EVERY update of a
stream, while browsers may be downloading it (that was the 20x slower video chat of issue 12).

Each request gets a fresh folder under ``<GRADIO_TEMP_DIR>/<kind>/``; folders older than
``OUTPUT_MAX_AGE_S`` are removed when a new one is made, so the folder stays bounded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

OUTPUT_MAX_AGE_S = 2 * 3600  # pages only need the files while the request's answer is on screen


def request_folder(kind: str) -> Path:
    """A new, empty folder for one request's output files; stale folders of ``kind`` go."""
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / kind
    root.mkdir(parents=True, exist_ok=True)
    sweep(root, time.time() - OUTPUT_MAX_AGE_S)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))


def sweep(root: Path, older_than: float) -> None:
    """Remove the request folders under ``root`` last changed before ``older_than`` (epoch s)."""
    for folder in root.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < older_than:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # another request removed it first
            continue
