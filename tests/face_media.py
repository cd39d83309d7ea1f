"""Generated media with a face in it: a drawn frontal face (which OpenCV's bundled frontal Haar
cascade detects: tests/test_highlights_signals.py checks that on a still first) gliding across
a static background while a distractor (a block of fresh noise every frame, far more change
than the face makes) moves elsewhere, so steering by motion alone would follow the distractor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests import media_factory

SKIN_RGB = (225, 180, 150)  # no other pixel of these videos comes near it (background, noise, mouth)


def draw_face(picture: np.ndarray, centre_x: int, centre_y: int, width: int) -> np.ndarray:
    """Draw a frontal face ``width`` px wide (RGB, in place): skin oval, hair, eyes with brows,
    nose, mouth. Returns ``picture``."""
    import cv2

    height = int(width * 1.3)
    cv2.ellipse(picture, (centre_x, centre_y), (width // 2, height // 2), 0, 0, 360, SKIN_RGB, -1)
    cv2.ellipse(picture, (centre_x, centre_y - height // 2 + width // 10), (width // 2, width // 4), 0, 180, 360,
                (40, 30, 30), -1)
    eyes_y = centre_y - width // 8
    for dx in (-width // 5, width // 5):
        cv2.ellipse(picture, (centre_x + dx, eyes_y), (width // 9, width // 16), 0, 0, 360, (40, 40, 40), -1)
        cv2.line(picture, (centre_x + dx - width // 8, eyes_y - width // 8), (centre_x + dx + width // 8, eyes_y - width // 8),
                 (30, 30, 30), max(1, width // 25))
    cv2.line(picture, (centre_x, eyes_y + width // 12), (centre_x - width // 20, centre_y + width // 8), (190, 140, 110),
             max(1, width // 30))
    cv2.ellipse(picture, (centre_x, centre_y + width // 4), (width // 6, width // 18), 0, 0, 360, (150, 60, 60), -1)
    return picture


def background(width: int, height: int) -> np.ndarray:
    """A static, textured, bluish-grey background (vertical bands)."""
    bands = (60 + 40 * ((np.arange(width) // 16) % 2)).astype(np.uint8)
    picture = np.empty((height, width, 3), np.uint8)
    picture[..., 0], picture[..., 1], picture[..., 2] = bands, bands, bands + 30
    return picture


def face_x(seconds: float, width: int) -> float:
    """The face's centre (px) at ``seconds``: media_factory.moving_object_x's glide."""
    return media_factory.moving_object_x(seconds, width)


def make_face_video(path, seconds: float, fps: float = 10, size=(320, 180), face_width: int = 52,
                    distractor: tuple[int, int] = (48, 36)) -> Path:
    """The face glides across (``face_x``) at 42% of the height; the distractor, fresh noise
    every frame, sits at the mirrored x along the bottom. A tone as the soundtrack."""
    width, height = size
    still = background(width, height)
    noise = np.random.default_rng(0)
    block_w, block_h = distractor

    def frame_at(index: int) -> np.ndarray:
        frame = still.copy()
        centre = face_x(index / fps, width)
        draw_face(frame, int(round(centre)), int(height * 0.42), face_width)
        left = int(round(width - centre - block_w / 2))
        block = noise.integers(0, 256, (block_h, block_w, 3), dtype=np.uint8)
        block[..., 0] //= 3  # never skin-coloured
        left, right = max(0, left), min(width, left + block_w)
        frame[height - block_h - 2:height - 2, left:right] = block[:, :right - left]
        return frame

    return media_factory._write_av(path, seconds, fps, size, frame_at, media_factory._tone_samples)


def skin_columns(frame: np.ndarray) -> float:
    """The centre column of the face's skin in an RGB frame (-1 when none shows)."""
    skin = (np.abs(frame.astype(np.int16) - np.array(SKIN_RGB, np.int16)) <= 24).all(axis=2)
    columns = skin.sum(axis=0)
    return float(columns @ np.arange(len(columns)) / columns.sum()) if columns.sum() else -1.0
