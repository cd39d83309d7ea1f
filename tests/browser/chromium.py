"""Debian's chromium for the browser tests: found, or installed once when missing.

Contract: ``ensure_chromium(path)`` returns ``path`` when it is an executable. When it is missing,
it is the default ``/usr/bin/chromium``, the tests run as root and ``apt-get`` exists (a fresh
CI or developer machine), it installs Debian's ``chromium`` and ``fonts-noto-color-emoji``
(screenshots show emoji) with apt-get, logging to ``test-artifacts/apt-chromium.log``, and
returns it. Otherwise it raises ``ChromiumMissing`` with the command to run: the tests then fail,
never skip (a browser suite that silently skips proves nothing). No browser is ever downloaded
from anywhere but the distribution's package archive.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests import apt

DEFAULT = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "fonts-noto-color-emoji")
INSTALL_COMMAND = apt.install_command(PACKAGES)


class ChromiumMissing(RuntimeError):
    """No chromium, and this process may not (or could not) install it."""


def ensure_chromium(path: Path, log_dir: Path) -> Path:
    if _executable(path):
        return path
    if path != DEFAULT or not apt.can_install():
        raise ChromiumMissing(
            f"The browser tests need Debian's chromium at {path} (never a downloaded browser). "
            f"Install it as root with: {INSTALL_COMMAND}   (or set VLMS_CHROMIUM to a Chromium binary)"
        )
    log = log_dir / "apt-chromium.log"
    apt.install(PACKAGES, log, ChromiumMissing)
    if not _executable(path):
        raise ChromiumMissing(f"apt-get installed chromium but {path} is not there; see {log}.")
    return path


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
