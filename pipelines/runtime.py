"""Runtime settings shared by every tab and the CLI: device/dtype, limits, and the model server.

Contract: a ``Runtime`` is immutable; ``runtime.load(name)`` goes through the shared model cache
(pipelines.loading), so every tab reuses the same loaded models. ``runtime.engine_for(name)`` is
the engine that runs a model (pipelines.engines): a name the server serves
(``engines.server_model_key``) goes to the OpenAI-compatible server at ``engine_url``, every
other name to the local engine (ZeroGPU's on a ZeroGPU Space). ``engine_api_key`` is never shown
(not in repr, not logged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import engines
from .limits import LIMITS, Limits
from .loading import LoadedModel, load_model
from .registry import ModelSpec


@dataclass(frozen=True)
class Runtime:
    device: str | None = None  # None/"auto": CUDA if present, else CPU
    dtype: str | None = None  # None/"auto": bf16 on CUDA and bf16-capable CPUs, else fp32
    limits: Limits = field(default_factory=lambda: LIMITS)
    engine_url: str | None = None  # an OpenAI-compatible server (vLLM), e.g. http://127.0.0.1:8000/v1
    engine_api_key: str | None = field(default=None, repr=False)
    engine_in_flight: int = engines.DEFAULT_IN_FLIGHT  # requests this process keeps open on the server

    def load(self, name: str) -> LoadedModel:
        return load_model(name, self.device, self.dtype)

    def engine_for(self, name: str):
        return engines.engine_for(name, self)

    def spec(self, name: str) -> ModelSpec:
        """The model's spec without loading a local model (a server model: asked of the server)."""
        return engines.spec_for(name, self)
