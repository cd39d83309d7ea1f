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
import shutil
import subprocess
from pathlib import Path

DEFAULT = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "fonts-noto-color-emoji")
INSTALL_COMMAND = f"apt-get update && apt-get install -y {' '.join(PACKAGES)}"
INSTALL_TIMEOUT_S = 900


class ChromiumMissing(RuntimeError):
    """No chromium, and this process may not (or could not) install it."""


def ensure_chromium(path: Path, log_dir: Path) -> Path:
    if _executable(path):
        return path
    if path != DEFAULT or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ChromiumMissing(
            f"The browser tests need Debian's chromium at {path} (never a downloaded browser). "
            f"Install it as root with: {INSTALL_COMMAND}   (or set VLMS_CHROMIUM to a Chromium binary)"
        )
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "apt-chromium.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("w") as output:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
            done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                  timeout=INSTALL_TIMEOUT_S, check=False)
            if done.returncode != 0:
                raise ChromiumMissing(f"Installing chromium failed ({' '.join(command)}: exit {done.returncode}); "
                                      f"see {log}. Install it by hand with: {INSTALL_COMMAND}")
    if not _executable(path):
        raise ChromiumMissing(f"apt-get installed chromium but {path} is not there; see {log}.")
    return path


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
