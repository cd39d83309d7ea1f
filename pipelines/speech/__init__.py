"""Speech: what is said in a video, for highlights that hear, captions and chat.

``transcript`` holds the values (pure); ``recognition`` makes them with Whisper (``transcribe``);
``asr`` loads and caches the speech-recognition pipeline. Importing this package loads no model
and does not import torch: the heavy modules load on first use of their names (PEP 562).
"""

from importlib import import_module

from .transcript import TRANSCRIPT_VERSION, Phrase, Transcript, Word, srt, webvtt

_LAZY = {"transcribe": "recognition", "recognize": "recognition", "TranscriptCache": "recognition",
         "load_asr": "asr", "LoadedAsr": "asr"}

__all__ = ["Phrase", "TRANSCRIPT_VERSION", "Transcript", "Word", "srt", "webvtt", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
