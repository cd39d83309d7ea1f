"""Typed, user-worded errors raised by the pipeline layer.

Contract: every exception a pipeline raises on purpose is a ``VLMError``. Its ``str()`` is a
short message written for the person using the app: what was wrong and what to do about it.
The UI adapter (components/adapter.py) is the ONLY place that turns these into ``gr.Error``; the
CLI prints them. Anything that is not a ``VLMError`` is a bug: it is logged with its traceback and
shown as a short generic message.
"""

from __future__ import annotations


class VLMError(Exception):
    """Base class: the message is safe and useful to show to a user as is."""

    title = "Error"


class BadInputError(VLMError):
    """The user's input (file, text, setting) cannot be used as given."""

    title = "Bad input"


class DecodeError(BadInputError):
    """A media file could not be decoded (damaged, truncated or not really media)."""

    title = "Cannot read file"


class InputTooLongError(BadInputError):
    """Prompt plus media is more tokens than the model's context window."""

    title = "Input too long"

    def __init__(self, tokens: int, limit: int, hint: str = ""):
        self.tokens = tokens
        self.limit = limit
        message = f"The input is {tokens:,} tokens, the limit for this model is {limit:,}."
        super().__init__(f"{message} {hint}".strip())


class ModelUnavailableError(VLMError):
    """A model could not be downloaded or loaded."""

    title = "Model unavailable"


class GenerationCancelled(VLMError):
    """The user (or a dropped connection) stopped the work."""

    title = "Stopped"


class ModelStalledError(VLMError):
    """A generation produced nothing for longer than the stall limit and was abandoned."""

    title = "Model not responding"


class OutOfMemoryError(VLMError):
    """The device ran out of memory; the work was abandoned and memory freed."""

    title = "Out of memory"


class NotEnoughMemoryError(VLMError):
    """Checked BEFORE loading: the models asked for do not fit in the memory that is free."""

    title = "Not enough memory"


class RenderError(VLMError):
    """ffmpeg failed while writing a video; no partial file was left behind."""

    title = "Rendering failed"
