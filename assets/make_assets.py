"""Generate the app's example media: everything here is drawn by this script (no third-party
media, so the licence is the project's own).

    python assets/make_assets.py            # writes into assets/ next to this file
    python assets/make_assets.py --out DIR

Writes:
    scene.jpg          a drawn street scene (house, tree, sun, clouds, a red car, a dog)
    scene_changed.jpg  the same scene with ONE difference (the car is blue): for "what differs?"
    chart.png          a bar chart with a title, axis labels and values: for chart questions
    example.mp4        12 s, 480x270, 24 fps, H.264 + AAC tone: three 4 s scenes (bouncing ball
                       by day, a car crossing at sunset, fireworks at night) for video chat
                       and the highlight generator

Output is deterministic for a given Pillow / PyAV build (fixed seeds, single-threaded x264,
no creation timestamps). Every image stays under 100 KB and the video under 1 MB.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SCENE_SIZE = (640, 400)
VIDEO_SIZE = (480, 270)
VIDEO_FPS = 24
VIDEO_SECONDS = 12
AUDIO_RATE = 44_100


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


# --------------------------------------------------------------------------------------------
# Still images
# --------------------------------------------------------------------------------------------


def _sky(size, top, bottom) -> Image.Image:
    width, height = size
    mix = np.linspace(0.0, 1.0, height)[:, None, None]
    rows = (1 - mix) * np.array(top) + mix * np.array(bottom)
    return Image.fromarray(np.repeat(rows, width, axis=1).astype(np.uint8))


def draw_scene(car_colour=(200, 30, 30)) -> Image.Image:
    """The example scene; ``car_colour`` is the one thing the variant changes."""
    width, height = SCENE_SIZE
    image = _sky(SCENE_SIZE, (70, 130, 210), (190, 220, 245))
    draw = ImageDraw.Draw(image)
    horizon = 260
    draw.rectangle((0, horizon, width, height), fill=(80, 160, 70))  # grass
    draw.rectangle((0, 330, width, 370), fill=(90, 90, 95))  # road
    for x in range(10, width, 60):
        draw.rectangle((x, 348, x + 30, 352), fill=(240, 240, 240))  # lane marks
    draw.ellipse((520, 30, 590, 100), fill=(255, 215, 60))  # sun
    for cx, cy in ((120, 60), (330, 90)):
        for dx, dy, r in ((0, 0, 28), (30, -12, 32), (62, 0, 26)):
            draw.ellipse((cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r), fill=(250, 250, 252))
    # house
    draw.rectangle((90, 170, 250, 300), fill=(225, 200, 150), outline=(90, 60, 40), width=2)
    draw.polygon([(75, 172), (170, 105), (265, 172)], fill=(150, 50, 40))
    draw.rectangle((150, 230, 190, 300), fill=(110, 70, 40))  # door
    for x in (105, 205):
        draw.rectangle((x, 190, x + 32, 220), fill=(170, 210, 240), outline=(255, 255, 255), width=3)
    # tree
    draw.rectangle((390, 200, 410, 300), fill=(110, 75, 40))
    draw.ellipse((350, 120, 450, 220), fill=(40, 120, 50))
    # car
    draw.rounded_rectangle((430, 300, 590, 340), radius=10, fill=car_colour)
    draw.polygon([(460, 300), (480, 275), (545, 275), (565, 300)], fill=car_colour)
    draw.polygon([(470, 299), (485, 281), (510, 281), (510, 299)], fill=(200, 230, 250))
    draw.polygon([(516, 299), (516, 281), (540, 281), (555, 299)], fill=(200, 230, 250))
    for cx in (470, 555):
        draw.ellipse((cx - 16, 325, cx + 16, 357), fill=(30, 30, 30))
        draw.ellipse((cx - 7, 334, cx + 7, 348), fill=(180, 180, 180))
    # dog
    draw.ellipse((280, 285, 330, 310), fill=(150, 100, 60))  # body
    draw.ellipse((320, 270, 345, 292), fill=(150, 100, 60))  # head
    draw.polygon([(322, 274), (326, 262), (332, 273)], fill=(110, 70, 40))  # ear
    for x in (285, 295, 312, 322):
        draw.rectangle((x, 305, x + 5, 320), fill=(150, 100, 60))
    draw.line((282, 292, 268, 280), fill=(150, 100, 60), width=4)  # tail
    return image


def draw_chart() -> Image.Image:
    """A bar chart of made-up monthly visitor numbers."""
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
    values = [120, 135, 160, 150, 210, 245]
    colours = [(66, 133, 244)] * 5 + [(234, 67, 53)]  # the record month stands out
    width, height = 640, 420
    left, right, top, bottom = 80, 610, 70, 360
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 30), "Visitors per month (thousands)", fill="black", font=_font(24), anchor="mm")
    scale = (bottom - top) / 250
    for tick in range(0, 251, 50):
        y = bottom - tick * scale
        draw.line((left, y, right, y), fill=(225, 225, 225))
        draw.text((left - 10, y), str(tick), fill="black", font=_font(14), anchor="rm")
    draw.line((left, top, left, bottom), fill="black", width=2)
    draw.line((left, bottom, right, bottom), fill="black", width=2)
    slot = (right - left) / len(months)
    for k, (month, value, colour) in enumerate(zip(months, values, colours)):
        x0 = left + k * slot + slot * 0.2
        x1 = left + (k + 1) * slot - slot * 0.2
        draw.rectangle((x0, bottom - value * scale, x1, bottom), fill=colour)
        draw.text(((x0 + x1) / 2, bottom - value * scale - 12), str(value), fill="black", font=_font(16), anchor="mm")
        draw.text(((x0 + x1) / 2, bottom + 18), month, fill="black", font=_font(16), anchor="mm")
    draw.text((width // 2, height - 20), "2025", fill="black", font=_font(16), anchor="mm")
    return image


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------

_SCENE_SECONDS = VIDEO_SECONDS / 3


def _video_frame(index: int, stars: np.ndarray) -> Image.Image:
    t = index / VIDEO_FPS
    scene, local = int(t // _SCENE_SECONDS), (t % _SCENE_SECONDS) / _SCENE_SECONDS
    width, height = VIDEO_SIZE
    if scene == 0:
        return _bouncing_ball(local, width, height)
    if scene == 1:
        return _car_at_sunset(local, width, height)
    return _fireworks(local, width, height, stars)


def _caption(image: Image.Image, text: str) -> None:
    ImageDraw.Draw(image).text((12, 10), text, fill="white", font=_font(18), stroke_width=2, stroke_fill="black")


def _bouncing_ball(local: float, width: int, height: int) -> Image.Image:
    image = _sky((width, height), (90, 160, 230), (200, 230, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 200, width, height), fill=(80, 160, 70))
    x = 40 + local * (width - 80)
    bounce = abs(math.sin(local * 3 * math.pi))  # three bounces
    y = 190 - bounce * 130
    draw.ellipse((x - 18, y - 18, x + 18, y + 18), fill=(240, 200, 30), outline=(120, 90, 0), width=2)
    _caption(image, "Ball in the park")
    return image


def _car_at_sunset(local: float, width: int, height: int) -> Image.Image:
    image = _sky((width, height), (250, 140, 70), (255, 210, 140))
    draw = ImageDraw.Draw(image)
    draw.ellipse((190, 150, 290, 250), fill=(255, 120, 40))  # low sun
    draw.rectangle((0, 200, width, height), fill=(60, 60, 70))
    x = -120 + local * (width + 160)
    draw.rounded_rectangle((x, 190, x + 110, 220), radius=8, fill=(200, 30, 30))
    draw.polygon([(x + 20, 190), (x + 35, 172), (x + 80, 172), (x + 95, 190)], fill=(200, 30, 30))
    for cx in (x + 22, x + 88):
        draw.ellipse((cx - 11, 210, cx + 11, 232), fill=(25, 25, 25))
    _caption(image, "Car at sunset")
    return image


def _fireworks(local: float, width: int, height: int, stars: np.ndarray) -> Image.Image:
    image = Image.new("RGB", (width, height), (10, 12, 35))
    draw = ImageDraw.Draw(image)
    for sx, sy in stars:
        draw.point((int(sx), int(sy)), fill=(230, 230, 255))
    for k, (cx, cy, colour) in enumerate(((150, 90, (255, 80, 80)), (330, 70, (120, 220, 255)), (250, 130, (255, 230, 90)))):
        age = local * 3 - k * 0.6  # staggered bursts
        if 0 < age < 1.4:
            radius = 70 * min(age, 1.0)
            for ray in range(16):
                angle = 2 * math.pi * ray / 16
                draw.line((cx, cy, cx + radius * math.cos(angle), cy + radius * math.sin(angle)), fill=colour, width=2)
    draw.rectangle((0, 235, width, height), fill=(15, 30, 20))
    _caption(image, "Fireworks")
    return image


def _tone(seconds: float) -> np.ndarray:
    """A quiet tone whose pitch follows the scene (220, 330, 440 Hz), with short fades."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    pitch = np.choose(np.minimum((t // _SCENE_SECONDS).astype(int), 2), [220.0, 330.0, 440.0])
    phase = 2 * np.pi * np.cumsum(pitch) / AUDIO_RATE
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)
    return (0.15 * envelope * np.sin(phase)).astype(np.float32)


def write_video(path: Path) -> None:
    stars = np.random.default_rng(7).uniform((0, 0), (VIDEO_SIZE[0], 230), size=(60, 2))
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height = VIDEO_SIZE
        video.pix_fmt = "yuv420p"
        video.thread_count = 1  # multi-threaded x264 output is not byte-for-byte reproducible
        video.options = {"preset": "medium", "crf": "27", "x264-params": "keyint=48:min-keyint=48:threads=1:lookahead-threads=1"}
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = 64_000
        for index in range(VIDEO_FPS * VIDEO_SECONDS):
            frame = av.VideoFrame.from_image(_video_frame(index, stars))
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = _tone(VIDEO_SECONDS)
        for offset in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, offset : offset + 1024], format="fltp", layout="mono")
            chunk.sample_rate = AUDIO_RATE
            chunk.pts = offset
            chunk.time_base = Fraction(1, AUDIO_RATE)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))


# --------------------------------------------------------------------------------------------


def main(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "scene.jpg", out / "scene_changed.jpg", out / "chart.png", out / "example.mp4"]
    draw_scene().save(written[0], quality=85, optimize=True)
    draw_scene(car_colour=(30, 70, 200)).save(written[1], quality=85, optimize=True)
    draw_chart().quantize(colors=64, dither=Image.Dither.NONE).save(written[2], optimize=True)
    write_video(written[3])
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    for path in main(parser.parse_args().out):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB")
