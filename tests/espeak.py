"""Debian's espeak-ng for the speech tests: found, or installed once when missing.

Contract: ``ensure_espeak(binary="espeak-ng")`` returns the path of that binary on PATH. When it
is missing, it is the default ``espeak-ng``, the tests run as root and ``apt-get`` exists (a fresh CI or developer machine), it installs
Debian's ``espeak-ng`` with apt-get, logging to ``test-artifacts/apt-espeak-ng.log``, and returns
it. Otherwise it raises ``EspeakMissing`` with the command to run: the tests then fail, never skip
(speech tests that silently skip prove nothing). Nothing is downloaded from anywhere but the
distribution's package archive. Same pattern as ``tests/browser/chromium.py``.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from tests import apt

BINARY = "espeak-ng"
PACKAGES = ("espeak-ng",)
INSTALL_COMMAND = apt.install_command(PACKAGES)
LOG_DIR = Path(__file__).resolve().parents[1] / "test-artifacts"


class EspeakMissing(RuntimeError):
    """No espeak-ng, and this process may not (or could not) install it."""


@functools.cache
def ensure_espeak(binary: str = BINARY, log_dir: Path = LOG_DIR) -> str:
    found = shutil.which(binary)
    if found:
        return found
    if binary != BINARY or not apt.can_install():
        raise EspeakMissing(f"The speech tests make their speech with Debian's {BINARY} ({binary} is missing). "
                            f"Install it as root with: {INSTALL_COMMAND}")
    log = log_dir / "apt-espeak-ng.log"
    apt.install(PACKAGES, log, EspeakMissing)
    found = shutil.which(BINARY)
    if not found:
        raise EspeakMissing(f"apt-get installed {BINARY} but it is not on PATH; see {log}.")
    return found
