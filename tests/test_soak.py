"""The short soak (benchmarks/soak.py): 8 users for ~25 s against the app in its own process.

The full run is ``python -m benchmarks.soak --minutes 5``; this one keeps CI honest about the same
checks: no server error, model work never concurrent, memory / fds / threads / children / temp dir
flat, no ffmpeg or generation left running, cancels end quickly, a full queue says so clearly.
"""

from __future__ import annotations

import pytest

from benchmarks import soak

pytestmark = pytest.mark.slow  # eight simulated users for ~25 s: not in the fast tier


def test_short_soak_stays_healthy_and_flat(tiny_smolvlm):
    report = soak.run(minutes=0.35, users=8, model=str(tiny_smolvlm), warmup_s=4, verbose=False)
    failed = [name for name, ok in report["checks"].items() if not ok]
    assert not failed, (failed, report)
    assert report["requests"] >= 8 and report["p95_s"] is not None
