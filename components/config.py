"""AppConfig: everything app.py decides from flags and environment, handed to build_app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelines.engines import DEFAULT_IN_FLIGHT
from pipelines.limits import LIMITS, Limits
from pipelines.registry import DEFAULT_ASR_MODEL
from pipelines.runtime import Runtime

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class AppConfig:
    model: str  # registry key, hub id or local checkpoint directory
    device: str | None = None
    dtype: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    share: bool = False
    limits: Limits = field(default_factory=lambda: LIMITS)
    preload: bool = True  # load the default model in the background at start-up
    # Model events running at once. They interleave per forward pass on the one device lock
    # (pipelines.devices), so >1 means fair turns and a responsive Stop, not parallel compute.
    concurrency: int = 2
    # A model server (vLLM) beside the local models: its models appear in every model picker.
    engine_url: str | None = None
    engine_api_key: str | None = field(default=None, repr=False)  # never shown or logged
    engine_in_flight: int = DEFAULT_IN_FLIGHT
    # Speech recognition (Whisper): a registry ASR key, hub id or local dir; "off" hears nothing.
    asr_model: str = DEFAULT_ASR_MODEL

    @property
    def runtime(self) -> Runtime:
        return Runtime(self.device, self.dtype, self.limits, self.engine_url, self.engine_api_key, self.engine_in_flight)

    @property
    def max_file_size(self) -> str:
        return f"{int(self.limits.max_upload_mb.value)}mb"
