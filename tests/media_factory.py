"""Deterministic generators for test and benchmark media, including broken and odd files.

Every generated video frame ENCODES ITS OWN FRAME INDEX as a row of ``CODE_BITS`` big
black/white blocks along the top edge (most significant bit first), above a colour gradient
that drifts with time. ``decode_frame_index(frame)`` reads the index back, so a test can
check that a reader returned exactly the frames it was asked for, whatever the codec did to
the pixels. The blocks are at least 8 px wide and survive yuv420p + x264 at default quality;
keep videos at least 128 px wide.

Nothing here downloads anything; everything is made with numpy, Pillow and PyAV.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

CODE_BITS = 16  # indices up to 65535: 36 minutes at 30 fps
_AUDIO_RATE = 44_100
_TONE_HZ = 440.0


# --------------------------------------------------------------------------------------------
# Frame index code
# --------------------------------------------------------------------------------------------


def _code_geometry(width: int, height: int) -> tuple[int, int]:
    """(block width, block height) of the index code for a frame of this size."""
    return width // CODE_BITS, max(8, height // 8)


def _gradient(width: int, height: int) -> np.ndarray:
    """A smooth colour field (uint8 RGB) that is cheap to roll sideways per frame."""
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    red = 255 * (0.5 + 0.5 * np.sin(2 * np.pi * x)) * np.ones_like(y)
    green = 255 * y * np.ones_like(x)
    blue = 255 * (0.5 + 0.5 * np.cos(2 * np.pi * (x + y)))
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def draw_frame(index: int, base: np.ndarray) -> np.ndarray:
    """Frame ``index``: the gradient shifted by the index, with the index code on top."""
    height, width, _ = base.shape
    frame = np.roll(base, shift=(index * 3) % width, axis=1)
    block_w, block_h = _code_geometry(width, height)
    for bit in range(CODE_BITS):
        on = (index >> (CODE_BITS - 1 - bit)) & 1
        frame[:block_h, bit * block_w : (bit + 1) * block_w] = 255 if on else 0
    return frame


def decode_frame_index(frame: np.ndarray) -> int:
    """Read back the index that ``draw_frame`` painted into an (H, W, 3) RGB frame."""
    height, width = frame.shape[:2]
    block_w, block_h = _code_geometry(width, height)
    gray = frame[:block_h, : block_w * CODE_BITS].astype(np.float32).mean(axis=-1)
    # Sample only the middle half of each block: edges bleed under chroma subsampling.
    top, bottom = block_h // 4, block_h - block_h // 4
    index = 0
    for bit in range(CODE_BITS):
        left = bit * block_w + block_w // 4
        right = (bit + 1) * block_w - block_w // 4
        index = (index << 1) | int(gray[top:bottom, left:right].mean() > 127.5)
    return index


# --------------------------------------------------------------------------------------------
# Videos
# --------------------------------------------------------------------------------------------


def _add_video_stream(container, codec: str, fps: float | Fraction, size, gop: int | None, bframes: int = 0):
    rate = Fraction(fps).limit_denominator(1001)
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.thread_count = 2
    if codec == "libx264":
        # A fixed GOP (no scene-cut keyframes) makes seek costs predictable for benchmarks.
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0" if gop else ""
        if bframes:  # ultrafast turns B-frames off; real camera/phone files usually have them
            params = ":".join(filter(None, [params, f"bframes={bframes}:b-adapt=0"]))
        stream.options = {"preset": "ultrafast", **({"x264-params": params} if params else {})}
    elif gop:
        stream.codec_context.gop_size = gop
    if codec.startswith("libvpx"):
        stream.options = {"deadline": "realtime", "cpu-used": "8", "b": "1M"}
    return stream


def _add_audio_stream(container):
    stream = container.add_stream("aac", rate=_AUDIO_RATE, layout="mono")
    return stream


def _tone_frames(seconds: float, start_sample: int = 0):
    """Yield 1024-sample float planar AAC frames of a quiet sine tone covering ``seconds``."""
    total = int(round(seconds * _AUDIO_RATE))
    for offset in range(0, total, 1024):
        n = min(1024, total - offset)
        t = (np.arange(n) + offset + start_sample) / _AUDIO_RATE
        samples = (0.2 * np.sin(2 * np.pi * _TONE_HZ * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = _AUDIO_RATE
        frame.pts = offset
        yield frame


def _mux(container, stream, item) -> None:
    for packet in stream.encode(item):
        container.mux(packet)


def make_video(
    path,
    seconds: float,
    fps: float = 30,
    size: tuple[int, int] = (320, 240),
    gop: int | None = None,
    audio: bool = False,
    codec: str = "libx264",
    rotation: int = 0,
    faststart: bool = False,
    bframes: int = 0,
) -> Path:
    """Write a video whose frame i shows index i (see ``decode_frame_index``).

    ``size`` is (width, height). ``gop``: keyframe interval in frames (None: encoder default).
    ``audio``: add a sine tone (AAC; Opus-free so it fits mp4/mkv). ``rotation``: clockwise
    degrees a player must turn the picture (written as a display matrix). ``faststart``: put
    the mp4 index first, so a truncated copy still opens. ``bframes``: x264 B-frames (display
    order differs from decode order). The container follows the suffix.
    """
    path = Path(path)
    frame_count = int(round(seconds * fps))
    base = _gradient(*size)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = _add_video_stream(container, codec, fps, size, gop, bframes)
        if rotation:
            video.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        sound = _add_audio_stream(container) if audio else None
        audio_frames = _tone_frames(seconds) if sound else iter(())
        audio_seconds_written = 0.0
        for index in range(frame_count):
            frame = av.VideoFrame.from_ndarray(draw_frame(index, base), format="rgb24")
            frame.pts = index
            _mux(container, video, frame)
            # Interleave audio roughly in step with video so muxers need not buffer it all.
            while sound and audio_seconds_written <= (index + 1) / fps:
                chunk = next(audio_frames, None)
                if chunk is None:
                    break
                _mux(container, sound, chunk)
                audio_seconds_written += chunk.samples / _AUDIO_RATE
        for chunk in audio_frames:
            _mux(container, sound, chunk)
        _mux(container, video, None)
        if sound:
            _mux(container, sound, None)
    return path


def make_still_video(path, seconds: float, fps: float = 10, size=(160, 120)) -> Path:
    """One unchanging picture (a slide, a locked-off camera on an empty scene), no sound: every
    decoded frame is the same, bit for bit."""
    path = Path(path)
    picture = av.VideoFrame.from_ndarray(_gradient(*size), format="rgb24")
    with av.open(str(path), "w") as container:
        video = _add_video_stream(container, "libx264", fps, size, None)
        for index in range(int(round(seconds * fps))):
            picture.pts = index
            _mux(container, video, picture)
        _mux(container, video, None)
    return path


def make_vfr_video(path, durations_ms=(20, 50, 33, 100), repeats: int = 20, size=(320, 240)) -> Path:
    """A variable-frame-rate mp4: frame display times cycle through ``durations_ms``.

    Returns the path; frame i starts at ``vfr_frame_times(durations_ms, repeats)[i]`` seconds.
    """
    path = Path(path)
    base = _gradient(*size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast"}
        for index, start in enumerate(vfr_frame_times(durations_ms, repeats)):
            frame = av.VideoFrame.from_ndarray(draw_frame(index, base), format="rgb24")
            frame.pts = int(round(start * 1000))
            frame.time_base = Fraction(1, 1000)
            _mux(container, stream, frame)
        _mux(container, stream, None)
    return path


def vfr_frame_times(durations_ms=(20, 50, 33, 100), repeats: int = 20) -> list[float]:
    """Start times (seconds) of the frames ``make_vfr_video`` writes."""
    starts, now = [], 0
    for _ in range(repeats):
        for duration in durations_ms:
            starts.append(now / 1000)
            now += duration
    return starts


def _write_av(path, seconds: float, fps: float, size, frame_at, samples_at=None) -> Path:
    """A video of ``frame_at(index) -> RGB uint8`` frames, with mono AAC from
    ``samples_at(first_sample, count) -> float32`` when given (interleaved roughly in step)."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        video = _add_video_stream(container, "libx264", fps, size, None)
        sound = _add_audio_stream(container) if samples_at else None
        written = 0
        for index in range(int(round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(frame_at(index), format="rgb24")
            frame.pts = index
            _mux(container, video, frame)
            while sound and written < min((index + 1) / fps, seconds) * _AUDIO_RATE:
                count = 1024
                chunk = av.AudioFrame.from_ndarray(samples_at(written, count).astype(np.float32)[None, :],
                                                   format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = _AUDIO_RATE, written
                _mux(container, sound, chunk)
                written += count
        _mux(container, video, None)
        if sound:
            _mux(container, sound, None)
    return path


def make_shots_video(path, seconds: float, cuts: tuple[float, ...], fps: float = 10, size=(160, 120),
                     audio: bool = True) -> Path:
    """Hard cuts at ``cuts`` (seconds, rounded to the frame grid): each shot its own colour
    field (drifting, with the index code on top), so a detector sees a change only at a cut."""
    palette = [_gradient(*size)[..., list(order)] for order in ((0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0), (0, 2, 1))]
    shades = [np.clip(p.astype(np.int16) // 3 + 40 * k, 0, 255).astype(np.uint8) for k, p in enumerate(palette)]
    starts = [round(c * fps) for c in cuts]

    def frame_at(index: int) -> np.ndarray:
        shot = sum(1 for s in starts if index >= s)
        return draw_frame(index, shades[shot % len(shades)])

    return _write_av(path, seconds, fps, size, frame_at, _tone_samples if audio else None)


def _tone_samples(first: int, count: int) -> np.ndarray:
    t = (np.arange(count) + first) / _AUDIO_RATE
    return 0.2 * np.sin(2 * np.pi * _TONE_HZ * t)


def make_burst_video(path, seconds: float, burst_at: float, burst_seconds: float = 1.0, fps: float = 10,
                     size=(160, 120)) -> Path:
    """Silence, except loud noise (a cheer, an impact) from ``burst_at`` for ``burst_seconds``;
    the picture is the usual index-coded drifting gradient."""
    base = _gradient(*size)
    noise = np.random.default_rng(0)
    first, last = int(burst_at * _AUDIO_RATE), int((burst_at + burst_seconds) * _AUDIO_RATE)

    def samples_at(start: int, count: int) -> np.ndarray:
        positions = np.arange(start, start + count)
        loud = (positions >= first) & (positions < last)
        return np.where(loud, 0.6 * noise.uniform(-1, 1, count), 0.0)

    return _write_av(path, seconds, fps, size, lambda i: draw_frame(i, base), samples_at)


def moving_object_x(seconds: float, width: int, span: float = 0.7, period: float = 8.0) -> float:
    """The centre (px) of ``make_moving_object_video``'s square at ``seconds``: it glides from
    one side to the other and back (a cosine), across ``span`` of the frame width."""
    return width / 2 - span * width / 2 * math.cos(2 * math.pi * seconds / period)


def make_moving_object_video(path, seconds: float, fps: float = 10, size=(320, 180), square: int = 24,
                             audio: bool = True) -> Path:
    """One white square gliding over a plain grey background (``moving_object_x``), a tone."""
    width, height = size

    def frame_at(index: int) -> np.ndarray:
        frame = np.full((height, width, 3), 90, dtype=np.uint8)
        centre = moving_object_x(index / fps, width)
        left = int(round(centre - square / 2))
        top = height // 2 - square // 2
        frame[top:top + square, max(0, left):max(0, left + square)] = 255
        return frame

    return _write_av(path, seconds, fps, size, frame_at, _tone_samples if audio else None)


_SPEECH_LEVEL = 1e-3  # samples quieter than this at a clip's ends are espeak-ng's padding, trimmed


def speak(text: str, words_per_minute: int = 175) -> np.ndarray:
    """``text`` spoken by Debian's espeak-ng (installed when missing: tests/espeak.py), as float32
    mono samples at the videos' audio rate, with the silence espeak-ng pads around it trimmed (so
    a clip placed at t starts sounding at t). Deterministic: same text, same samples."""
    import subprocess
    import tempfile
    import wave

    from tests.espeak import ensure_espeak

    with tempfile.TemporaryDirectory(prefix="vlms-speak-") as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run([ensure_espeak(), "-s", str(words_per_minute), "-w", str(wav), text], check=True,
                       capture_output=True, timeout=60)
        with wave.open(str(wav)) as stream:
            rate, raw = stream.getframerate(), stream.readframes(stream.getnframes())
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(samples) > _SPEECH_LEVEL)
    samples = samples[loud[0]:loud[-1] + 1] if len(loud) else samples[:0]
    times = np.arange(int(len(samples) * _AUDIO_RATE / rate)) / _AUDIO_RATE
    return np.interp(times, np.arange(len(samples)) / rate, samples).astype(np.float32)


def speech_spans(lines) -> list[tuple[float, float]]:
    """(start, end) seconds of each ``(start, text)`` line as ``make_speech_video`` places it."""
    return [(start, start + len(speak(text)) / _AUDIO_RATE) for start, text in lines]


def make_speech_video(path, seconds: float, lines, fps: float = 10, size=(160, 120)) -> Path:
    """Speech at KNOWN times and digital silence everywhere else: ``lines`` are ``(start, text)``
    pairs, each spoken by espeak-ng from ``start`` (see ``speech_spans`` for where each ends); the
    picture is the usual index-coded drifting gradient."""
    track = np.zeros(int(round(seconds * _AUDIO_RATE)) + 1024, dtype=np.float32)
    for start, text in lines:
        clip = speak(text)
        first = int(round(start * _AUDIO_RATE))
        if first + len(clip) > int(seconds * _AUDIO_RATE):
            raise ValueError(f"{text!r} from {start} s does not end before the video does ({seconds} s)")
        track[first:first + len(clip)] = 0.8 * clip
    base = _gradient(*size)
    return _write_av(path, seconds, fps, size, lambda i: draw_frame(i, base),
                     lambda first, count: track[first:first + count] if first + count <= len(track)
                     else np.pad(track[first:], (0, first + count - len(track))))


def make_silent_video(path, seconds: float, fps: float = 10, size=(160, 120)) -> Path:
    """A soundtrack that is all digital silence (a screen recording with the microphone off)."""
    base = _gradient(*size)
    return _write_av(path, seconds, fps, size, lambda i: draw_frame(i, base), lambda first, count: np.zeros(count))


def make_audio_only(path, seconds: float = 2.0) -> Path:
    """A file with a tone and no video stream: AAC in MP4 (.m4a style), or PCM for ``.wav``."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        with av.open(str(path), "w", format="wav") as container:
            stream = container.add_stream("pcm_s16le", rate=_AUDIO_RATE, layout="mono")
            for chunk in _tone_frames(seconds):
                pcm = av.AudioFrame.from_ndarray((chunk.to_ndarray() * 32767).astype(np.int16), format="s16", layout="mono")
                pcm.sample_rate, pcm.pts = _AUDIO_RATE, chunk.pts
                _mux(container, stream, pcm)
            _mux(container, stream, None)
        return path
    with av.open(str(path), "w", format="mp4") as container:
        stream = _add_audio_stream(container)
        for chunk in _tone_frames(seconds):
            _mux(container, stream, chunk)
        _mux(container, stream, None)
    return path


def make_animated_gif(path, frames: int = 10, size=(160, 120), frame_ms: int = 100) -> Path:
    """An animated GIF whose frames carry the index code (GIF keeps pure black/white exact)."""
    path = Path(path)
    base = _gradient(*size)
    images = [Image.fromarray(draw_frame(i, base)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _rgb_scene(size: tuple[int, int]) -> np.ndarray:
    """An asymmetric picture (red block top-left) so orientation mistakes are detectable."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[...] = _gradient(width, height)
    pixels[: max(1, height // 4), : max(1, width // 4)] = (255, 0, 0)
    return pixels


def make_image(path, mode: str = "RGB", size=(64, 48), fmt: str | None = None, exif_orientation=None) -> Path:
    """Write an image in ``mode`` (RGB, RGBA, LA, L, 1, P, P+transparency ("PT"), CMYK, I;16, I, F).

    Content is the asymmetric scene converted to the mode; 16-bit and 32-bit modes span the full
    range (a horizontal ramp 0..65535) so that clipping instead of scaling is detectable. RGBA/LA
    and "PT" make the left half fully transparent. ``exif_orientation`` (1-8) is written as EXIF.
    """
    path = Path(path)
    width, height = size
    rgb = Image.fromarray(_rgb_scene(size))
    ramp = np.tile(np.linspace(0, 65535, width).astype(np.uint16), (height, 1))
    alpha = np.full((height, width), 255, np.uint8)
    alpha[:, : width // 2] = 0
    if mode == "RGBA":
        image = rgb.copy()
        image.putalpha(Image.fromarray(alpha))
    elif mode == "LA":
        image = rgb.convert("L")
        image.putalpha(Image.fromarray(alpha))
    elif mode == "PT":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        pixels = np.array(image)
        pixels[:, : width // 2] = 15
        image = Image.frombytes("P", size, np.ascontiguousarray(pixels).tobytes())
        image.putpalette(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).getpalette())
        image.info["transparency"] = 15
    elif mode == "I;16":
        image = Image.fromarray(ramp)  # uint16 -> I;16
    elif mode == "I":
        image = Image.fromarray(ramp.astype(np.int32))  # -> I
    elif mode == "F":
        image = Image.fromarray(ramp.astype(np.float32) / 65535)  # -> F
    else:
        image = rgb.convert(mode)
    save_kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        save_kwargs["exif"] = exif
    if mode == "PT":
        save_kwargs["transparency"] = 15
    if fmt == "HEIF":  # HEIC, what phones save: Pillow writes it through the pillow-heif plugin
        from pillow_heif import register_heif_opener

        register_heif_opener()
    if fmt == "MPO":  # a real multi-picture file needs a second picture
        save_kwargs.update(save_all=True, append_images=[image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    image.save(path, format=fmt, **save_kwargs)
    return path


def make_noise_jpeg(path, size=(640, 480), seed: int = 0) -> Path:
    """A JPEG whose entropy-coded data is large compared with its header (noise compresses
    badly), so cutting it in half leaves a valid header and broken pixel data."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return Path(path)


def write_truncated(path_src, path_dst, fraction: float) -> Path:
    """Copy the first ``fraction`` of ``path_src``'s bytes to ``path_dst``."""
    data = Path(path_src).read_bytes()
    Path(path_dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(path_dst)


def write_undecodable(path_src, path_dst) -> Path:
    """``path_src`` (an MP4 with its index after the media data, as ``make_video`` writes it)
    with every byte of that data set to 0xFF: the headers still describe the video, but not one
    frame decodes. What a test uses to prove a check ran before any decoding."""
    data = bytearray(Path(path_src).read_bytes())
    box = data.index(b"mdat")
    size = int.from_bytes(data[box - 4:box], "big")
    data[box + 4:box - 4 + size] = b"\xff" * (size - 8)
    Path(path_dst).write_bytes(bytes(data))
    return Path(path_dst)


def make_png_renamed_mp4(path) -> Path:
    """A real PNG saved under a video name (PyAV opens it through its image demuxers)."""
    path = Path(path)
    Image.fromarray(_rgb_scene((64, 48))).save(path, format="PNG")
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_decompression_bomb_png(path, width: int = 60_000, height: int = 60_000) -> Path:
    """A ~100-byte PNG that declares ``width`` x ``height`` pixels (3.6 Gpx by default).

    The pixel data is a few compressed rows only: anything that tries to decode it either
    allocates gigabytes or fails; a safe reader rejects it from the header.
    """
    path = Path(path)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b""))
    return path


def make_random_bytes(path, size: int = 4096, seed: int = 0) -> Path:
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def make_text_file(path, kind: str = "svg") -> Path:
    """Markup (SVG or HTML) saved under whatever name the test chooses (e.g. ``x.jpg``)."""
    path = Path(path)
    if kind == "svg":
        text = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    else:
        text = "<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"
    path.write_text(text)
    return path


def png_bytes(mode: str = "RGB", size=(32, 24)) -> bytes:
    """PNG file bytes, for tests that need data rather than a file."""
    buffer = io.BytesIO()
    Image.fromarray(_rgb_scene(size)).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()
