"""The ONE place where pipeline errors become ``gr.Error`` and pipeline progress becomes
``gr.Progress``.

Contract: wrap every callback body in ``ui_errors()``. A ``VLMError`` is shown as is (it is
written for users); anything else is logged with its traceback and shown as a short generic
message, so no traceback ever reaches a browser and the server keeps serving.
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager

import gradio as gr

from pipelines.errors import VLMError

log = logging.getLogger("vlm_studio")

GENERIC_MESSAGE = "Something went wrong while handling this request. It has been logged; please try again."


@contextmanager
def ui_errors():
    try:
        yield
    except gr.Error:
        raise
    except VLMError as error:
        raise gr.Error(str(error), title=error.title, print_exception=False) from None
    except Exception:
        log.exception("Unexpected error in a UI callback")
        raise gr.Error(GENERIC_MESSAGE, title="Error", print_exception=False) from None


def progress_callback(progress: gr.Progress):
    """Adapt a pipeline ``on_progress(fraction, message)`` callback to a ``gr.Progress``, callable
    from ANY thread: gr.Progress finds its event through context variables, which a worker thread
    does not inherit, so each call runs in a copy of the handler's context."""
    context = contextvars.copy_context()

    def on_progress(fraction: float, message: str = "") -> None:
        context.copy().run(progress, max(0.0, min(1.0, fraction)), desc=message)

    return on_progress
