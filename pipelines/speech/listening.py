"""The chat hears its video: the transcript for the prompt, a note for the stats line, and what is
said around each frame for the "What the model sees" gallery.

Contract: ``VideoListener(asr_model, runtime, count_tokens, cancel, progress)``; ``said(path)`` (the message
converter's ``hear`` hook, called once per video that reaches the model) transcribes the video
(pipelines.speech.transcribe: cached on disk by content, so each later turn of the chat costs a
file hash) and returns its text for the prompt, cut to the limits table's
``chat_speech_tokens`` (``transcript_prompt``), or "" when nothing was said. ``note`` then says
what happened, in the user's words: added (how many phrases, tokens, whether cut) or why not (no
soundtrack, no speech, the speech model could not be loaded: the chat still answers, from the
frames). ``progress(fraction, message)``, when given, hears how a transcription goes. ``captions(times)`` gives the text said around each frame. A cancel stops the
transcription (GenerationCancelled propagates); nothing else here raises for a video.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

from ..errors import ModelUnavailableError
from .prompt import said_at_frames, transcript_prompt
from .recognition import transcribe
from .transcript import Transcript


class VideoListener:
    def __init__(self, asr_model: str, runtime, count_tokens: Callable[[str], int],
                 cancel: threading.Event | None = None, progress: Callable[[float, str], None] | None = None):
        self.asr_model, self.runtime, self.count_tokens, self.cancel = asr_model, runtime, count_tokens, cancel
        self.progress = progress
        self.transcript: Transcript | None = None
        self.note = ""

    def said(self, path: str) -> str:
        try:
            self.transcript = transcribe(path, self.asr_model, self.runtime, progress=self.progress, cancel=self.cancel)
        except ModelUnavailableError as error:
            self.transcript, self.note = None, f"Transcript not added: {error}"
            return ""
        if self.transcript.empty:
            self.note = f"Transcript not added: {self.transcript.note or 'no speech was heard.'}"
            return ""
        spoken = transcript_prompt(self.transcript, self.count_tokens, int(self.runtime.limits.chat_speech_tokens.value))
        if not spoken.text:
            self.note = "Transcript not added: its first line alone is longer than the transcript token limit."
            return ""
        cut = ("" if not spoken.cut else f", cut to the first {spoken.lines} of {spoken.total} phrases by the token limit"
               if spoken.lines else ", cut inside its first phrase by the token limit")
        self.note = f"Transcript added to the prompt: {spoken.total} phrases said, {spoken.tokens:,} tokens{cut}."
        return spoken.text

    def captions(self, times: Sequence[float]) -> list[str]:
        if self.transcript is None or self.transcript.empty:
            return ["" for _ in times]
        return said_at_frames(self.transcript, times)
