"""Untrusted media work in a child process, bounded in time and memory.

Contract
--------
``run(function, *args, what, timeout_s, memory_mb, cancel=None)`` calls ``function(*args)`` in a
fresh child process and returns its result. ``function`` must be importable by name (a
module-level function of ``pipelines.media``, say); ``what`` is the file's basename, for messages.

* Children are forked from a small fork server that has only ``pipelines.media`` (PyAV, decord,
  numpy, Pillow) loaded: no torch, no gradio, no threads of the app, ~40 ms per call once warm.
  Nothing happens at import: the first ``run`` configures multiprocessing's fork server (its
  preload list is process-wide) and installs one filter on ``multiprocessing.spawn``'s
  preparation data, which applies only to processes named ``vlms-decode`` (``_child_context``).
* The child's address space is capped at ``memory_mb`` (RLIMIT_AS): a file that needs more fails
  in the child (DecodeError here) instead of exhausting the server's memory.
* ``timeout_s`` caps the wall time. The child is killed (SIGKILL) when it passes, when ``cancel``
  is set (GenerationCancelled), or when the caller leaves for any other reason, and it is always
  reaped: no zombie, no orphaned decoder.
* A crash of the child (a segfault in a decoder, the kernel's OOM killer) raises DecodeError;
  the server keeps serving.
* A ``VLMError`` raised in the child is raised here with the same type and message. Any other
  exception there is a decoder failing on bad data: DecodeError naming the file (logged).
* numpy arrays in the result travel as raw bytes received straight into their final buffers
  (pickle protocol 5), not as one more pickled copy.

``file_kind(path)`` is ``media.file_kind`` with the container probe (FFmpeg parsing untrusted
bytes) moved into a child; the image check (Pillow reads a header) stays in-process, so images,
the common case, cost nothing extra.

This module must not import torch, transformers or gradio (the fork server imports it).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import pickle
import resource
import threading
import time
from multiprocessing import spawn
from multiprocessing.connection import wait
from typing import Callable, Sequence

from . import errors, media
from .errors import DecodeError, GenerationCancelled, VLMError
from .limits import LIMITS, Limits

log = logging.getLogger(__name__)

# How often the parent re-checks the cancel event and the deadline while the child works.
_POLL_S = 0.05
# Probing a container (file_kind) reads headers and at most a few packets: seconds, not minutes.
PROBE_TIMEOUT_S = 15.0

_CHILD_NAME = "vlms-decode"
_PRELOAD = ["pipelines.media", "decord"]  # a missing decord is skipped by the fork server


@functools.cache
def _child_context():
    """The fork-server context our children come from, set up once, on first use."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    _skip_main_for_our_children()
    return context


def _skip_main_for_our_children() -> None:
    """multiprocessing makes every child re-import the parent's ``__main__`` (``app.py``, which
    pulls in torch: seconds and hundreds of MB per child). Our children run media code only, so
    they skip it; every other process is prepared exactly as the standard library does. The
    standard library has no option for this, so its function is wrapped (once)."""
    standard = spawn.get_preparation_data
    if getattr(standard, "_vlms_filter", False):
        return

    def preparation_data(name: str) -> dict:
        data = standard(name)
        if name == _CHILD_NAME:
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    preparation_data._vlms_filter = True
    spawn.get_preparation_data = preparation_data


def run(function: Callable, *args, what: str, timeout_s: float, memory_mb: float,
        cancel: threading.Event | None = None):
    """``function(*args)`` in a bounded child process; see the module docstring."""
    context = _child_context()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, int(memory_mb * 2**20), function, args),
                            name=_CHILD_NAME, daemon=True)
    try:
        child.start()
        sender.close()  # ours; the child has its own copy, so EOF means the child is gone
        return _receive(receiver, child, what, time.monotonic() + timeout_s, timeout_s, memory_mb, cancel)
    finally:
        receiver.close()
        _reap(child)


def load_video(path, fps: float | None, max_frames: int, limits: Limits = LIMITS,
               cancel: threading.Event | None = None, frames: Sequence[int] | None = None) -> media.VideoClip:
    """``media.load_video`` in a child bounded by the ``decode_timeout_s`` and
    ``decode_memory_mb`` limits."""
    chosen = tuple(int(i) for i in frames) if frames is not None else None
    return run(media.load_video, str(path), fps, max_frames, limits, chosen, what=media.display_name(path),
               timeout_s=float(limits.decode_timeout_s.value), memory_mb=float(limits.decode_memory_mb.value),
               cancel=cancel)


def file_kind(path, limits: Limits = LIMITS) -> str | None:
    """"image", "video" or None by content, as ``media.file_kind``; the video probe runs isolated."""
    try:
        if os.path.getsize(path) == 0:
            return None
    except OSError:
        return None
    kind = media.image_kind(path)  # Pillow reads the header only: safe in-process
    if kind is not None:
        return kind
    try:
        return run(media.file_kind, str(path), what=media.display_name(path), timeout_s=PROBE_TIMEOUT_S,
                   memory_mb=float(limits.decode_memory_mb.value))
    except DecodeError:  # crashed, hung or ran out of memory while probing: not usable media
        return None


def unreadable_reason(path, limits: Limits = LIMITS) -> VLMError | None:
    """Why ``file_kind`` found no media in ``path``, in the user's words (empty, audio only,
    damaged...): the error probing it as a video gives (in a child). None if nothing specific."""
    try:
        run(media.probe_video, str(path), limits, what=media.display_name(path), timeout_s=PROBE_TIMEOUT_S,
            memory_mb=float(limits.decode_memory_mb.value))
    except VLMError as error:
        return None if "not a video in a supported format" in str(error) else error
    return None


# =============================================================================================
# Parent side
# =============================================================================================


def _receive(receiver, child, what: str, deadline: float, timeout_s: float, memory_mb: float, cancel):
    while True:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Stopped while reading the video.")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DecodeError(f"Reading {what} took longer than {timeout_s:g} s, so it was stopped. "
                              "The file may be damaged; try a shorter or re-exported video.")
        ready = wait([receiver, child.sentinel], timeout=min(_POLL_S, remaining))
        if receiver in ready:
            return _read_result(receiver, child, what, memory_mb)
        if child.sentinel in ready:  # exited without a word (the pipe would be ready otherwise)
            raise _crashed(what, child)


def _read_result(receiver, child, what: str, memory_mb: float):
    try:
        header = receiver.recv()
        if header[0] == "error":
            raise _rebuild_error(*header[1:], what=what, memory_mb=memory_mb)
        _, sizes = header
        payload = receiver.recv_bytes()
        buffers = [bytearray(size) for size in sizes]
        for buffer in buffers:
            receiver.recv_bytes_into(buffer)
    except (EOFError, OSError) as exc:  # the child died (before or while sending)
        raise _crashed(what, child) from exc
    return pickle.loads(payload, buffers=buffers)


def _rebuild_error(kind: str, class_name: str, message: str, *, what: str, memory_mb: float) -> VLMError:
    if kind == "memory":
        return DecodeError(f"Reading {what} needed more than the {memory_mb:,.0f} MB this server allows for one "
                           "video. Use a shorter or smaller video, or fewer frames.")
    if kind == "vlm":
        cls = getattr(errors, class_name, None)
        if isinstance(cls, type) and issubclass(cls, VLMError):
            error = cls.__new__(cls)
            error.args = (message,)
            return error
    log.warning("Decoding %s failed in the child: %s: %s", what, class_name, message)
    return DecodeError(f"Could not decode {what}: the file may be damaged or truncated. Re-export it and try again.")


def _crashed(what: str, child) -> DecodeError:
    child.join(1.0)
    log.warning("The decoder process for %s ended with exit code %s", what, child.exitcode)
    return DecodeError(f"The decoder crashed while reading {what}: the file is probably damaged. "
                       "Re-export it and try again.")


def _reap(child) -> None:
    """Kill the child if it is still running and wait for it, so no zombie remains."""
    if child.pid is None:
        return  # never started
    if child.is_alive():
        child.kill()
    child.join(5.0)
    if child.exitcode is not None:
        child.close()


# =============================================================================================
# Child side
# =============================================================================================


def _child_main(sender, memory_bytes: int, function: Callable, args: tuple) -> None:
    """Runs in the child: cap memory, call, send the result (or the error) and exit."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing decoder must not write core files
    try:
        result = function(*args)
    except MemoryError:
        sender.send(("error", "memory", "MemoryError", ""))
        return
    except VLMError as error:
        sender.send(("error", "vlm", type(error).__name__, str(error)))
        return
    except Exception as error:  # decoders raise many types on bad data; the parent words it
        sender.send(("error", "other", type(error).__name__, str(error)[:500]))
        return
    _send_result(sender, result)


def _send_result(sender, result) -> None:
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    sender.send(("ok", [view.nbytes for view in views]))
    sender.send_bytes(payload)
    for view in views:
        sender.send_bytes(view)
