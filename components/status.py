"""Start-up model status: the default model is loaded in the background so the page opens at
once; if it cannot be loaded the app still serves and shows a banner that says why and how to
point --model at a local checkpoint."""

from __future__ import annotations

import logging
import threading
import time

from pipelines.engines import SERVER_PREFIX
from pipelines.errors import VLMError
from pipelines.loading import needs_download

from .config import AppConfig

log = logging.getLogger("vlm_studio")


class ModelStatus:
    def __init__(self, config: AppConfig):
        self.config = config
        self.state = "idle"  # idle | loading | ready | failed
        self.message = ""
        self.downloading = False  # the default model is not in the local cache: it is fetched first
        self.started_at: float | None = None
        self._thread: threading.Thread | None = None

    def preload(self) -> None:
        if self._thread is None:
            self.state = "loading"
            self.downloading = needs_download(self.config.model)
            self.started_at = time.monotonic()
            self._thread = threading.Thread(target=self._load, name="vlms-preload", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _load(self) -> None:
        runtime, model = self.config.runtime, self.config.model
        try:
            if model.startswith(SERVER_PREFIX):  # nothing to load here: ask the server about it
                spec = runtime.spec(model)
                self.state, self.message = "ready", f"Ready: {spec.label} on {runtime.engine_url}"
                return
            loaded = runtime.load(model)
        except VLMError as error:
            self.state, self.message = "failed", str(error)
            log.error("Default model unavailable: %s", error)
        except Exception as error:  # never let a start-up failure take the server down
            log.exception("Default model failed to load")
            self.state, self.message = "failed", f"Could not load {self.config.model}: {type(error).__name__}: {error}"
        else:
            self.state, self.message = "ready", f"Ready: {loaded.description}"

    def banner(self) -> str:
        if self.state == "failed":
            return f"⚠️ **The default model could not be loaded.** {self.message}"
        if self.state == "loading":
            elapsed = int(time.monotonic() - (self.started_at or time.monotonic()))
            if self.downloading:
                return (f"⏳ Downloading and loading **{self.config.model}** … {elapsed} s (the first start "
                        "downloads the model; progress is shown in the terminal / server log). The first "
                        "answer starts when it is ready.")
            return f"⏳ Loading **{self.config.model}** … {elapsed} s. The first answer starts when it is ready."
        return ""
