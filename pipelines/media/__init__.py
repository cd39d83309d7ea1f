"""Media: safe image opening, cheap video probing, pure frame sampling, frame reading.

One module per job: ``images``, ``probing``, ``sampling``, ``reading`` (and ``files``, what they
all need about a file). The names below are the public surface; ``from pipelines import media;
media.X`` is how the rest of the app uses them.

Contract
--------
* ``open_image(path)`` -> a loaded RGB ``PIL.Image``. Formats are allow-listed by CONTENT
  (``IMAGE_FORMATS``: JPEG, PNG, WEBP, GIF, BMP, TIFF, MPO, and the HEIC/HEIF and AVIF photos
  phones save), the pixel count is checked from the header before any pixel is decoded, EXIF
  orientation is applied, animated images give their first frame, and every mode (alpha,
  palette, CMYK, 16/32-bit, float, 1-bit) becomes RGB. Pillow's own decompression-bomb guard
  is left as Pillow ships it (nothing process-wide is changed): the header check against
  ``max_image_pixels`` (at most 100 MP) fires first with the friendlier message.
* ``IMAGE_FORMAT_NAMES`` / ``VIDEO_FORMAT_NAMES``: the ONE list of upload formats that every
  message names.
* ``probe_video(path)`` -> ``VideoInfo`` from container headers plus ONE decoded frame (for the
  display rotation, and to prove the stream decodes). Length and frame size are checked against
  ``limits`` before that frame is decoded.
* ``sample_indices(metadata, fps, max_frames)`` is PURE and reproduces transformers' samplers
  exactly (SmolVLM's when ``fps`` is a number, the base uniform sampler when it is None).
  ``chosen_frames(metadata, frames)`` (pure too) takes a caller's own frame numbers instead
  (``load_video(..., frames=...)``): the highlights' criteria step shows the model frames of the
  scan's grid, so their vision features are computed once for both.
* ``read_frames(path, indices)`` -> (N, H, W, 3) uint8 RGB, one frame per requested index, in
  request order, upright (rotation applied). PyAV first (measured faster), decord as the fallback.
  ``iter_frames`` is one forward pass with PyAV that yields frames one by one, so long videos can
  be scanned densely in constant memory.
* ``read_soundtrack(path, rate)`` -> ``Soundtrack``: the first audio stream resampled to mono
  float32 (16 kHz for speech recognition); no audio is a note, not an error (``audio``).
* Every deliberate failure is a ``BadInputError`` / ``DecodeError`` whose message names the file
  by its basename only and says what to do.

Frame index semantics: index i is the frame shown at ``i / fps`` seconds after the stream start.
decord counts frames; the PyAV reader looks frames up by time. For constant-frame-rate video the
two agree exactly; for variable-frame-rate video the PyAV answer matches the timestamps that
``FrameSample`` reports, so ``read_frames`` uses PyAV for it (``VideoInfo.variable_rate``, found by
``probe_video`` from the container's sample index).

This package must not import torch, transformers or gradio: it runs in child processes
(pipelines.isolation).
"""

from __future__ import annotations

from .audio import SPEECH_RATE, Soundtrack, read_soundtrack
from .files import display_name
from .images import IMAGE_FORMAT_NAMES, IMAGE_FORMATS, image_kind, open_image
from .probing import VIDEO_CONTAINERS, VIDEO_FORMAT_NAMES, VideoInfo, file_kind, probe_video
from .reading import Backend, Cursor, Strategy, VideoClip, iter_frames, load_video, read_frames
from .sampling import FrameSample, chosen_frames, sample_indices

__all__ = [
    "Backend", "Cursor", "FrameSample", "IMAGE_FORMATS", "IMAGE_FORMAT_NAMES", "Strategy", "VIDEO_CONTAINERS",
    "VIDEO_FORMAT_NAMES", "VideoClip", "VideoInfo", "display_name", "file_kind", "image_kind", "iter_frames",
    "load_video", "open_image", "probe_video", "read_frames", "sample_indices", "chosen_frames",
    "SPEECH_RATE", "Soundtrack", "read_soundtrack",
]
