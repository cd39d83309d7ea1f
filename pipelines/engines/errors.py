"""The model server's failures, worded for users (pipelines.errors holds the others)."""

from __future__ import annotations

from ..errors import BadInputError, ModelUnavailableError, VLMError


class EngineError(VLMError):
    """Something between this app and its model server went wrong."""

    title = "Model server"


class EngineUnreachableError(EngineError):
    """No connection (refused, unknown host, broken off)."""


class EngineTimeoutError(EngineError):
    """The server took longer than the request's time limit."""


class EngineRefusedError(EngineError):
    """The server answered with an error; its own message is passed on."""


class ModelNotServedError(EngineError, ModelUnavailableError):
    """The server does not serve the model asked for."""


class LocalOnlyModelError(BadInputError):
    """The model family cannot run on a server engine (PerceptionLM is not in vLLM)."""
