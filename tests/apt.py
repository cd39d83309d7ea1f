"""Debian packages the tests need (chromium, espeak-ng), installed on a fresh machine when missing.

Contract: ``can_install()`` says whether this process may install (root, and apt-get exists).
``install(packages, log, missing)`` runs ``apt-get update`` then ``apt-get install -y PACKAGES``
with their output in ``log``; a failing step raises ``missing`` (the caller's error class) with
the log's path and the command to run by hand. Nothing is ever downloaded from anywhere but the
distribution's package archive. The callers (tests/espeak.py, tests/browser/chromium.py) fail,
never skip, when a package cannot be had: tests that silently skip prove nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

INSTALL_TIMEOUT_S = 900


def install_command(packages: Sequence[str]) -> str:
    return f"apt-get update && apt-get install -y {' '.join(packages)}"


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def install(packages: Sequence[str], log: Path, missing: type[Exception]) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("w") as output:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
            done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                  timeout=INSTALL_TIMEOUT_S, check=False)
            if done.returncode != 0:
                raise missing(f"Installing {', '.join(packages)} failed ({' '.join(command)}: exit "
                              f"{done.returncode}); see {log}. Install by hand with: {install_command(packages)}")
