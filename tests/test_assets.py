"""The example media: every file in assets/ is drawn by the committed script (no third-party media),
stays small, and is what the tabs' examples point at."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from pipelines import media

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SCRIPT = ASSETS / "make_assets.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_assets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> dict[str, Path]:
    return {path.name: path for path in _script().main(tmp_path_factory.mktemp("assets"))}


def test_every_committed_asset_comes_from_the_script(regenerated):
    committed = {path.name for path in ASSETS.iterdir() if path.is_file() and path.name != SCRIPT.name}
    assert committed == set(regenerated), "assets/ holds media the script does not make"


def test_images_match_the_committed_ones_and_stay_small(regenerated):
    for name, path in regenerated.items():
        if path.suffix == ".mp4":
            continue
        assert path.stat().st_size < 100_000 and (ASSETS / name).stat().st_size < 100_000
        with Image.open(path) as fresh, Image.open(ASSETS / name) as committed:
            assert fresh.size == committed.size and fresh.mode == committed.mode


def test_the_example_video_is_short_small_and_has_sound(regenerated):
    for path in (regenerated["example.mp4"], ASSETS / "example.mp4"):
        info = media.probe_video(path)
        assert abs(info.duration - 12) < 0.2 and (info.width, info.height) == (480, 270)
        assert info.has_audio and round(info.fps) == 24
        assert path.stat().st_size < 1_000_000
