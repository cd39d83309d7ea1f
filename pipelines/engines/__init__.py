"""Engines: who runs a model. See base.py for the interface every engine implements.

* ``engine_for(name, runtime)``: names made by ``server_model_key`` ("server:<served id>") go to
  the OpenAI-compatible server at ``runtime.engine_url`` (vLLM); every other name (registry key,
  hub id, local directory) to the local engine (transformers here, or under ``spaces.GPU`` on a
  ZeroGPU Space).
* ``spec_for(name, runtime)``: the model's ModelSpec without loading a local model.
* ``model_choices(runtime)``: (label, name) pairs for a model picker: the registry's models, then
  what the server serves (``/v1/models``); a server that does not answer is left out, with a
  warning in the log.
"""

from __future__ import annotations

import logging
import threading

from ..registry import ModelSpec, choices, resolve
from .base import Capabilities, ClipScorer, Engine, PreparedChat, fit_to_context
from .local import LOCAL, ZEROGPU, LocalEngine, ZeroGPUEngine, local_engine
from .server import (
    DEFAULT_IN_FLIGHT,
    SERVER_PREFIX,
    ServerEngine,
    is_server_model,
    server_model_key,
)

log = logging.getLogger(__name__)

_servers: dict[tuple, ServerEngine] = {}
_servers_lock = threading.Lock()


def server_engine(runtime) -> ServerEngine:
    """The (shared) engine of ``runtime.engine_url``; one per URL, key and in-flight setting, so
    every tab and every video of a batch shares one bound on open requests."""
    from ..errors import ModelUnavailableError

    if not runtime.engine_url:
        raise ModelUnavailableError("This model runs on a model server, but none is configured. Start the app "
                                    "with --engine-url http://HOST:PORT/v1 (or set VLMS_ENGINE_URL).")
    key = (runtime.engine_url, runtime.engine_api_key, int(runtime.engine_in_flight))
    with _servers_lock:
        if key not in _servers:
            _servers[key] = ServerEngine(runtime.engine_url, runtime.engine_api_key, int(runtime.engine_in_flight))
        return _servers[key]


def engine_for(name: str, runtime) -> Engine:
    return server_engine(runtime) if is_server_model(name) else local_engine()


def spec_for(name: str, runtime) -> ModelSpec:
    return server_engine(runtime).spec(name, runtime) if is_server_model(name) else resolve(name)


def model_choices(runtime) -> list[tuple[str, str]]:
    """Local models, then the server's (when one is configured and answers)."""
    local = choices()
    if not runtime.engine_url:
        return local
    try:
        served = server_engine(runtime).served()
    except Exception as error:  # the picker still offers the local models; the log says why
        log.warning("The model server lists no models: %s", error)
        return local
    return local + [(model.label, model.key) for model in served]


__all__ = [
    "Capabilities", "ClipScorer", "DEFAULT_IN_FLIGHT", "Engine", "LOCAL", "LocalEngine", "PreparedChat", "SERVER_PREFIX",
    "ServerEngine", "ZEROGPU", "ZeroGPUEngine", "engine_for", "fit_to_context", "is_server_model", "local_engine",
    "model_choices", "server_engine", "server_model_key", "spec_for",
]
