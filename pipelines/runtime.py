"""Runtime settings shared by every tab and the CLI: which device/dtype to load on, and limits.

Contract: a ``Runtime`` is immutable; ``runtime.load(name)`` goes through the shared model cache
(pipelines.loading), so every tab reuses the same loaded models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .limits import LIMITS, Limits
from .loading import LoadedModel, load_model


@dataclass(frozen=True)
class Runtime:
    device: str | None = None  # None/"auto": CUDA if present, else CPU
    dtype: str | None = None  # None/"auto": bf16 on CUDA and bf16-capable CPUs, else fp32
    limits: Limits = field(default_factory=lambda: LIMITS)

    def load(self, name: str) -> LoadedModel:
        return load_model(name, self.device, self.dtype)
