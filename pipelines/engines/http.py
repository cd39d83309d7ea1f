"""A small client for an OpenAI-compatible server (vLLM), on the standard library's http.client.

Contract:
* ``OpenAIClient(url, api_key=None, timeout_s=...)``: ``url`` is the API base (``http://HOST:PORT/v1``).
  The key goes in the Authorization header only: never into a message, a log line or a repr.
* ``get_json(path)`` / ``post_json(path, body)`` -> the decoded JSON answer. Paths are relative
  to the API base, except ``ROOT_PATHS`` (vLLM serves /tokenize and /detokenize beside /v1).
* ``open_stream(path, body) -> EventStream``: iterate for the decoded ``data:`` events of a
  server-sent-events answer (``[DONE]`` ends it). ``abort()`` from ANY thread shuts the socket
  down: a read blocked on it returns at once, and the server sees the client leave (vLLM then
  aborts the request).
* Failures are typed and user-worded (pipelines.engines.errors): unreachable, timeout, model not
  served (404 naming the model), and the server's refusal with ITS message passed on.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from typing import Iterator
from urllib.parse import urlsplit

from .errors import (
    EngineRefusedError,
    EngineTimeoutError,
    EngineUnreachableError,
    ModelNotServedError,
)

DEFAULT_TIMEOUT_S = 300.0  # one request (a long video prefill on a busy server included)
CONNECT_TIMEOUT_S = 10.0
ROOT_PATHS = ("/tokenize", "/detokenize", "/health")


class OpenAIClient:
    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineUnreachableError(f"'{url}' is not a server address; use one like http://127.0.0.1:8000/v1.")
        self.url = url.rstrip("/")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._base = parts.path or ""
        self._root = self._base[:-3] if self._base.endswith("/v1") else self._base
        self._api_key = api_key
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never the key
        return f"OpenAIClient({self.url!r})"

    # -- requests -----------------------------------------------------------------------------

    def get_json(self, path: str, timeout_s: float | None = None) -> dict:
        connection, response = self._request("GET", path, None, timeout_s)
        try:
            return self._json(response)
        finally:
            connection.close()

    def post_json(self, path: str, body: dict, timeout_s: float | None = None) -> dict:
        connection, response = self._request("POST", path, body, timeout_s)
        try:
            return self._json(response)
        finally:
            connection.close()

    def open_stream(self, path: str, body: dict, timeout_s: float | None = None) -> "EventStream":
        connection, response = self._request("POST", path, body, timeout_s)
        return EventStream(connection, response, self.url)

    # -- plumbing -----------------------------------------------------------------------------

    def _full_path(self, path: str) -> str:
        return (self._root if path in ROOT_PATHS else self._base) + path

    def _connection(self, timeout_s: float):
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout_s,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)

    def _request(self, method: str, path: str, body: dict | None, timeout_s: float | None):
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        connection = self._connection(min(CONNECT_TIMEOUT_S, timeout_s))
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.connect()
            connection.sock.settimeout(timeout_s)
            connection.request(method, self._full_path(path), body=data, headers=headers)
            response = connection.getresponse()
        except (socket.timeout, TimeoutError):
            connection.close()
            raise EngineTimeoutError(f"The model server at {self.url} did not answer within {timeout_s:.0f} s. "
                                     "It may be overloaded; try again, or give it more time.") from None
        except OSError as error:
            connection.close()
            raise EngineUnreachableError(
                f"The model server at {self.url} cannot be reached ({_reason(error)}). Check that it is running "
                "(python -m pipelines.engines serve --model DIR) and that --engine-url is right."
            ) from None
        if response.status >= 400:
            try:
                raise self._refusal(response, body)
            finally:
                connection.close()
        return connection, response

    def _json(self, response) -> dict:
        try:
            return json.loads(response.read())
        except (socket.timeout, TimeoutError):
            raise EngineTimeoutError(f"The model server at {self.url} stopped answering mid-reply.") from None
        except ValueError:
            raise EngineRefusedError(f"The model server at {self.url} sent an answer that is not JSON.") from None

    def _refusal(self, response, body: dict | None):
        message = _server_message(response.read())
        model = (body or {}).get("model")
        if response.status == 404 and model and "model" in message.lower():
            return ModelNotServedError(f"The model server at {self.url} does not serve '{model}' ({message}). "
                                       "Pick one of the models it lists.")
        if response.status in (401, 403):
            return EngineRefusedError(f"The model server at {self.url} refused the API key ({message}). "
                                      "Set VLMS_ENGINE_API_KEY to the server's key.")
        return EngineRefusedError(f"The model server refused the request: {message}")


class EventStream:
    """Decoded ``data:`` events of one streamed answer; ``abort()`` works from any thread."""

    def __init__(self, connection, response, url: str):
        self._connection, self._response, self._url = connection, response, url
        self._aborted = threading.Event()

    def __iter__(self) -> Iterator[dict]:
        try:
            while True:
                line = self._response.readline()
                if not line:
                    return  # the server ended the answer
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    return
                event = json.loads(payload)
                if isinstance(event, dict) and event.get("error"):
                    raise EngineRefusedError(f"The model server stopped the answer: {_error_text(event['error'])}")
                yield event
        except (socket.timeout, TimeoutError):
            if self._aborted.is_set():
                return
            raise EngineTimeoutError(f"The model server at {self._url} stopped sending the answer.") from None
        except (OSError, ValueError, http.client.HTTPException):
            if self._aborted.is_set():
                return  # we closed it (Stop): not an error
            raise EngineUnreachableError(f"The connection to the model server at {self._url} broke off.") from None
        finally:
            self.close()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def abort(self) -> None:
        """Close the connection now, even while another thread is blocked reading it."""
        self._aborted.set()
        sock = self._connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def close(self) -> None:
        self._connection.close()


def _reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    return error.strerror or type(error).__name__


def _server_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()[:500] or "no reason given"
    if isinstance(data, dict):
        if "error" in data:
            return _error_text(data["error"])
        if "message" in data:
            return str(data["message"])[:500]
        if "detail" in data:
            return str(data["detail"])[:500]
    return str(data)[:500]


def _error_text(error) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error)[:500]
