"""Images: open an upload safely (allow-listed by content, pixel cap from the header, EXIF
orientation, any mode -> RGB) and tell whether a file is one. See the package docstring."""

from __future__ import annotations

import functools
import logging
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadInputError, DecodeError
from ..limits import LIMITS, Limits
from .files import display_name, first_bytes, require_non_empty

log = logging.getLogger(__name__)

# Pillow format ids accepted as images. HEIF (HEIC) comes from the pillow-heif plugin, AVIF is
# Pillow's own (11.3+).
IMAGE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
# What to pass to Image.open: MPO (multi-picture JPEG) has no opener of its own; JPEG's finds it.
_PIL_OPENERS = tuple(f for f in IMAGE_FORMATS if f != "MPO")
IMAGE_FORMAT_NAMES = "JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIC or AVIF"
# Magic bytes of the allowed image formats: a file that starts like one but does not open is
# damaged (DecodeError), anything else is simply not a supported image (BadInputError).
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
# ISO-BMFF brands (bytes 8-12, after "ftyp") of still images; MP4/MOV share the box, not these.
_STILL_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


def open_image(path, limits: Limits = LIMITS) -> Image.Image:
    """Open an uploaded image safely and return it loaded, upright and RGB; the file is closed.

    Raises BadInputError (not an allowed format, too many pixels) or DecodeError (damaged or
    truncated). The pixel cap is checked from the header, before pixel data is decoded.
    """
    name = display_name(path)
    require_non_empty(path)
    try:
        with open_header(path) as image:
            _check_image_pixels(image.size, name, limits)
            try:
                image.load()  # first frame only: animated formats stay on frame 0
                rgb = _to_rgb(_exif_upright(image))
                rgb.load()
            except MemoryError:
                raise
            except Exception as exc:  # third-party decoders raise many types on bad input
                raise DecodeError(f"Could not decode {name}: the image may be damaged or truncated. Re-save or re-export it and try again.") from exc
    except (OSError, Image.DecompressionBombError) as exc:
        raise _image_open_error(path, exc) from exc
    return rgb


def image_kind(path) -> Literal["image", "video"] | None:
    """``file_kind`` for what Pillow can open from ``IMAGE_FORMATS`` (an animated GIF is "video");
    None for anything else. Reads the header only, so it is safe to run in the app's process."""
    try:
        with open_header(path) as image:
            if image.format == "GIF" and getattr(image, "is_animated", False):
                return "video"
            return "image"
    except Image.DecompressionBombError:
        return "image"  # an image all right; open_image will refuse it with a clear message
    except Exception:  # PIL raises many types on non-images
        return None


def _exif_upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; broken EXIF must not cost the user a good picture."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:
        log.debug("ignoring unreadable EXIF orientation: %s", exc)
        return image


def open_header(path) -> Image.Image:
    """Image.open restricted to the allow-list (``IMAGE_FORMATS``); Pillow only reads the header
    here, pixels are decoded on ``load()``."""
    _register_heif()
    return Image.open(path, formats=_PIL_OPENERS)


@functools.cache
def _register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF (pillow-heif), once, on the first image opened rather than
    at import. Registering an opener is Pillow's only extension point, so it is process-wide; it
    adds a format and changes nothing about the others."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def _image_open_error(path, exc: Exception) -> BadInputError:
    name = display_name(path)
    if isinstance(exc, Image.DecompressionBombError):
        return BadInputError(f"{name} is far too large in pixels to process safely. Resize it and try again.")
    if _looks_like_image(path):  # e.g. a JPEG cut off inside its header
        return DecodeError(f"Could not decode {name}: the image may be damaged or truncated. Re-save or re-export it and try again.")
    if isinstance(exc, UnidentifiedImageError):
        return BadInputError(f"{name} is not a supported image. Use {IMAGE_FORMAT_NAMES}.")
    return DecodeError(f"Could not read {name}. Upload the file again.")


def is_still_image_box(path) -> bool:
    """An ISO-BMFF file (the MP4 family) whose brand says still image: HEIC, HEIF or AVIF."""
    head = first_bytes(path)
    return head[4:8] == b"ftyp" and head[8:12] in _STILL_IMAGE_BRANDS


def _looks_like_image(path) -> bool:
    head = first_bytes(path)
    return (head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or is_still_image_box(path))


def _check_image_pixels(size: tuple[int, int], name: str, limits: Limits) -> None:
    width, height = size
    cap = int(limits.max_image_pixels.value)
    if width * height > cap:
        raise BadInputError(
            f"{name} is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); the limit is "
            f"{cap / 1e6:g} megapixels. Resize it and try again."
        )
    if width < 1 or height < 1:
        raise DecodeError(f"{name} has no pixels. Upload a different image.")


_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Transparency is composited on white (models were trained on photos and
    documents, where 'nothing' is white, and transparent pixels often hold black garbage)."""
    if image.mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_to_8bit(np.asarray(image), image.mode)).convert("RGB")  # 2-D uint8: L
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")  # CMYK, YCbCr, P, L, 1, RGB (a copy: independent of the file)


def _to_8bit(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Scale deep pixels into 0..255 by their NOMINAL range (16-bit: /257), not by clipping
    (PIL's convert("L") clips 16-bit values to 255, turning most pictures white)."""
    values = pixels.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if mode.startswith("I;16"):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif mode == "I" and low >= 0 and high <= 255:  # 8-bit data stored in 32-bit ints (some TIFFs)
        scaled = values
    elif mode == "I" and low >= 0 and high <= 65535:
        scaled = values / 257.0
    else:  # unknown range (signed or float data): stretch what is there
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
