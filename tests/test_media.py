"""Tests for pipelines/media/ (images, probing, sampling, reading): the pure sampler (properties +
equality with transformers), video probing, frame reading through decord and PyAV, images in every
mode, and broken files.

Everything is generated offline by tests/media_factory.py; the whole file runs in well under a
minute on 2 CPU cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network

import resource
import time
from types import SimpleNamespace

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from pipelines import isolation, media
from pipelines.errors import BadInputError, DecodeError
from pipelines.limits import LIMITS
from pipelines.media import (
    FrameSample,
    VideoInfo,
    file_kind,
    iter_frames,
    load_video,
    open_image,
    probe_video,
    read_frames,
    sample_indices,
)
from tests import media_factory as mf

# =============================================================================================
# Sampler: reference implementations from transformers
# =============================================================================================


def _reference_samplers():
    """(SmolVLM sample_frames, base sample_frames) as bound callables.

    The real processors need torchvision to be constructed; without it, call the same functions
    unbound with a stand-in ``self`` (they only read ``self.num_frames`` / ``self.fps`` when an
    argument is None, which these tests never do)."""
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor
    from transformers.video_processing_utils import BaseVideoProcessor

    try:
        from transformers.models.perception_lm.video_processing_perception_lm import PerceptionLMVideoProcessor

        return SmolVLMVideoProcessor().sample_frames, PerceptionLMVideoProcessor().sample_frames
    except Exception:
        stub = SimpleNamespace(num_frames=None, fps=None)
        return (
            lambda metadata, **kw: SmolVLMVideoProcessor.sample_frames(stub, metadata, **kw),
            lambda metadata, **kw: BaseVideoProcessor.sample_frames(stub, metadata, **kw),
        )


SMOL_SAMPLE, BASE_SAMPLE = _reference_samplers()


def _metadata(frame_count: int, fps: float, duration: float):
    from transformers.video_utils import VideoMetadata

    return VideoMetadata(total_num_frames=frame_count, fps=fps, duration=duration)


video_fps_values = st.one_of(
    st.sampled_from([23.976, 24.0, 25.0, 29.97, 30.0, 30000 / 1001, 50.0, 59.94, 60.0, 10.0, 1.0, 120.0]),
    st.floats(min_value=0.5, max_value=240.0, allow_nan=False),
)
sample_fps_values = st.one_of(st.sampled_from([1.0, 2.0, 0.5, 4.0, 8.0, 0.05]), st.floats(min_value=0.05, max_value=8.0))


@st.composite
def metadata_values(draw):
    """Header-like metadata: frame count and duration roughly agree, as they do in real files
    (sometimes exactly, sometimes off by rounding or a bad header)."""
    fps = draw(video_fps_values)
    frame_count = draw(st.integers(min_value=1, max_value=200_000))
    jitter = draw(st.one_of(st.just(1.0), st.floats(min_value=0.8, max_value=1.25)))
    duration = frame_count / fps * jitter
    return frame_count, fps, duration


@settings(max_examples=400, deadline=None)
@given(metadata_values(), sample_fps_values, st.integers(min_value=1, max_value=128))
def test_smolvlm_style_equals_transformers(meta, fps, max_frames):
    frame_count, video_fps, duration = meta
    expected = SMOL_SAMPLE(_metadata(frame_count, video_fps, duration), num_frames=max_frames, fps=fps)
    got = sample_indices(VideoInfo("v.mp4", duration, video_fps, frame_count, 8, 8, False), fps, max_frames)
    assert list(got.indices) == expected.tolist()


@settings(max_examples=400, deadline=None)
@given(metadata_values(), st.integers(min_value=1, max_value=128))
def test_fixed_count_style_equals_transformers(meta, max_frames):
    frame_count, video_fps, duration = meta
    if max_frames > frame_count:
        max_frames = frame_count  # transformers raises there; our clamp is tested separately
    expected = BASE_SAMPLE(_metadata(frame_count, video_fps, duration), num_frames=max_frames)
    got = sample_indices(_metadata(frame_count, video_fps, duration), None, max_frames)
    assert list(got.indices) == expected.tolist()


@pytest.mark.parametrize("frame_count", [1, 2, 3, 29, 30, 31, 59, 60, 61, 64, 65, 66, 67, 68, 300, 1799, 1800, 1980, 2041, 18_000, 432_000])
@pytest.mark.parametrize("video_fps", [24.0, 29.97, 30.0, 60.0])
@pytest.mark.parametrize(("fps", "max_frames"), [(1.0, 64), (2.0, 64), (1.0, 8), (0.5, 128), (4.0, 16)])
def test_smolvlm_grid_equals_transformers(frame_count, video_fps, fps, max_frames):
    """Edges of the 1 s trim rule and of round(): durations around max_frames * fps + 2 s."""
    for duration in (frame_count / video_fps, frame_count / video_fps + 0.5, max_frames * fps + 2.0, max_frames * fps + 2.001, 2.5):
        expected = SMOL_SAMPLE(_metadata(frame_count, video_fps, duration), num_frames=max_frames, fps=fps)
        got = sample_indices(_metadata(frame_count, video_fps, duration), fps, max_frames)
        assert list(got.indices) == expected.tolist(), (frame_count, video_fps, duration)


def test_round_half_to_even_is_reproduced():
    # fps * duration = 2.5 -> Python round() gives 2 (banker's rounding), not 3.
    meta = _metadata(75, 30.0, 2.5)
    assert len(sample_indices(meta, 1.0, 64).indices) == len(SMOL_SAMPLE(meta, num_frames=64, fps=1.0)) == 2


@settings(max_examples=300, deadline=None)
@given(metadata_values(), st.one_of(st.none(), sample_fps_values), st.integers(min_value=1, max_value=128))
def test_sample_properties(meta, fps, max_frames):
    frame_count, video_fps, duration = meta
    info = VideoInfo("v.mp4", duration, video_fps, frame_count, 8, 8, False)
    sample = sample_indices(info, fps, max_frames)
    indices = list(sample.indices)
    assert 1 <= len(indices) <= max_frames
    assert indices == sorted(set(indices))  # ascending and unique
    assert 0 <= indices[0] and indices[-1] <= frame_count - 1
    assert all(isinstance(i, int) for i in indices)
    assert sample.timestamps == tuple(i / video_fps for i in indices)
    if fps is None:
        assert len(indices) == min(max_frames, frame_count) and indices[0] == 0
    else:
        assert len(indices) <= max(1, round(fps * duration))
    assert sample_indices(info, fps, max_frames) == sample  # pure: same answer every time


def test_fixed_count_clamps_short_clips_where_transformers_raises():
    meta = _metadata(10, 10.0, 1.0)
    with pytest.raises(ValueError):
        BASE_SAMPLE(meta, num_frames=32)
    assert sample_indices(meta, None, 32).indices == tuple(range(10))


def test_duration_missing_falls_back_to_frames_over_fps():
    meta = SimpleNamespace(frame_count=300, fps=30.0, duration=None)
    assert sample_indices(meta, 1.0, 64) == sample_indices(_metadata(300, 30.0, 10.0), 1.0, 64)


@pytest.mark.parametrize(
    ("meta", "fps", "max_frames"),
    [
        (_metadata(100, 30.0, 3.3), 1.0, 0),
        (_metadata(100, 30.0, 3.3), 1.0, -3),
        (_metadata(100, 30.0, 3.3), 1.0, 2.5),
        (_metadata(100, 30.0, 3.3), 1.0, True),
        (_metadata(100, 30.0, 3.3), 0.0, 8),
        (_metadata(100, 30.0, 3.3), -1.0, 8),
        (_metadata(100, 30.0, 3.3), float("nan"), 8),
        (_metadata(0, 30.0, 0.0), 1.0, 8),
        (_metadata(100, 0.0, 3.3), 1.0, 8),
        (_metadata(100, None, 3.3), None, 8),
    ],
)
def test_sampler_rejects_bad_arguments(meta, fps, max_frames):
    with pytest.raises(BadInputError):
        sample_indices(meta, fps, max_frames)


def test_chosen_frames_are_clamped_sorted_once_each_with_their_times():
    meta = _metadata(100, 25.0, 4.0)
    sample = media.chosen_frames(meta, [40, 7, 40, 250])  # 250: a header's estimate ran past the end
    assert sample.indices == (7, 40, 99)
    assert sample.timestamps == (7 / 25.0, 40 / 25.0, 99 / 25.0)
    for bad in ([], [-1, 3]):
        with pytest.raises(BadInputError):
            media.chosen_frames(meta, bad)


def test_a_video_loads_with_chosen_frames_up_to_the_frame_limit(tmp_path):
    video = mf.make_video(tmp_path / "v.mp4", seconds=2, fps=10, size=(64, 48))
    clip = media.load_video(video, 1.0, 4, frames=(15, 2, 9))
    assert clip.sample.indices == (2, 9, 15) and clip.frames.shape[0] == 3
    np.testing.assert_array_equal(clip.frames, media.read_frames(video, [2, 9, 15]))
    with pytest.raises(BadInputError, match="at most 2"):
        media.load_video(video, 1.0, 2, frames=(1, 2, 3))


def test_frame_sample_is_hashable_value():
    assert FrameSample((0, 1), (0.0, 0.5)) == FrameSample((0, 1), (0.0, 0.5))


# =============================================================================================
# Generated videos (built once per test session)
# =============================================================================================


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return SimpleNamespace(
        root=root,
        # 20 s, GOP 30 (1 s): sparse requests cross many keyframes, dense ones none.
        gop30=mf.make_video(root / "gop30.mp4", 20, fps=30, gop=30, audio=True),
        short=mf.make_video(root / "short.mp4", 3, fps=25, size=(320, 240)),
        b_frames=mf.make_video(root / "bframes.mp4", 6, fps=30, gop=48, bframes=3),
        mkv=mf.make_video(root / "clip.mkv", 2, fps=30, audio=True),
        webm=mf.make_video(root / "clip.webm", 2, fps=24, codec="libvpx-vp9"),
        rotated=mf.make_video(root / "rotated.mp4", 1, fps=30, rotation=90),
        faststart=mf.make_video(root / "faststart.mp4", 4, fps=30, gop=30, faststart=True),
        vfr=mf.make_vfr_video(root / "vfr.mp4"),
        gif=mf.make_animated_gif(root / "anim.gif", frames=12),
        audio_only=mf.make_audio_only(root / "sound.m4a"),
    )


def _codes(frames: np.ndarray) -> list[int]:
    return [mf.decode_frame_index(frame) for frame in frames]


def test_factory_code_roundtrip():
    base = mf._gradient(320, 240)
    for index in (0, 1, 2, 255, 256, 4095, 17_999, 65_535):
        assert mf.decode_frame_index(mf.draw_frame(index, base)) == index


def test_probe_reads_headers(videos):
    info = probe_video(videos.gop30)
    assert info == VideoInfo(str(videos.gop30), 20.0, 30.0, 600, 320, 240, True, 0)
    short = probe_video(videos.short)
    assert (short.duration, short.fps, short.frame_count, short.has_audio) == (3.0, 25.0, 75, False)


@pytest.mark.parametrize(("name", "fps", "frames"), [("mkv", 30.0, 60), ("webm", 24.0, 48)])
def test_probe_matroska_uses_stream_duration(videos, name, fps, frames):
    info = probe_video(getattr(videos, name))
    assert info.fps == fps and info.frame_count == frames and abs(info.duration - 2.0) < 1e-6
    assert info.has_audio == (name == "mkv")
    got = read_frames(info.path, [0, frames // 2, frames - 1], info)
    assert _codes(got) == [0, frames // 2, frames - 1]


def test_probe_rotation_swaps_size_and_frames_come_upright(videos):
    info = probe_video(videos.rotated)
    assert (info.rotation, info.width, info.height) == (90, 240, 320)
    for backend in ("decord", "pyav"):
        frames = read_frames(videos.rotated, [0, 7, 29], info, backend=backend)
        assert frames.shape == (3, 320, 240, 3)
        assert _codes(np.rot90(frames, k=1, axes=(1, 2))) == [0, 7, 29]  # undo the display turn


def test_probe_animated_gif_as_video(videos):
    info = probe_video(videos.gif)
    assert info.frame_count == 12 and info.fps == 10.0
    assert _codes(read_frames(videos.gif, [0, 5, 11], info)) == [0, 5, 11]  # decord fails; PyAV


# =============================================================================================
# Reading frames
# =============================================================================================

SPARSE = [0, 95, 211, 377, 499, 599]
DENSE = list(range(300, 360, 2))


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("indices", [SPARSE, DENSE, [599, 3, 3, 120]], ids=["sparse", "dense", "unsorted-dup"])
def test_read_frames_returns_exactly_the_requested_frames(videos, backend, indices):
    info = probe_video(videos.gop30)
    frames = read_frames(videos.gop30, indices, info, backend=backend)
    assert frames.shape == (len(indices), 240, 320, 3) and frames.dtype == np.uint8
    assert _codes(frames) == indices


@pytest.mark.parametrize("strategy", ["seek", "sequential", "auto"])
def test_pyav_strategies_agree(videos, strategy):
    info = probe_video(videos.gop30)
    for indices in (SPARSE, DENSE):
        assert _codes(read_frames(videos.gop30, indices, info, backend="pyav", strategy=strategy)) == indices


def _seeks_to_read(path, indices, info) -> int:
    """Read ``indices`` with the "auto" cursor that ``read_frames`` uses; how often it seeked."""
    with av.open(str(path)) as container:
        cursor = media.Cursor(container, container.streams.video[0], info, "auto")
        frames = [cursor.frame_at(index) for index in indices]
    assert all(frame is not None for frame in frames)
    return cursor.seeks


def test_auto_strategy_seeks_for_sparse_and_decodes_dense_sequentially(videos):
    info = probe_video(videos.gop30)
    assert _seeks_to_read(videos.gop30, SPARSE, info) == len(SPARSE) - 1  # each gap crosses a keyframe
    assert _seeks_to_read(videos.gop30, list(range(0, 600, 10)), info) == 0  # 3 per GOP


def test_pyav_seeks_correctly_with_b_frames(videos):
    info = probe_video(videos.b_frames)
    wanted = [0, 1, 47, 48, 49, 95, 96, 150, 179]
    for strategy in ("seek", "sequential"):
        assert _codes(read_frames(videos.b_frames, wanted, info, backend="pyav", strategy=strategy)) == wanted


def test_indices_past_the_end_are_clamped(videos):
    info = probe_video(videos.short)
    for backend in ("decord", "pyav"):
        assert _codes(read_frames(videos.short, [74, 75, 500], info, backend=backend)) == [74, 74, 74]


def test_frame_count_overestimate_is_tolerated(videos):
    info = probe_video(videos.short)
    inflated = VideoInfo(info.path, info.duration, info.fps, info.frame_count + 3, info.width, info.height, False)
    assert _codes(read_frames(videos.short, [76, 77], inflated, backend="pyav")) == [74, 74]


def test_bad_index_requests(videos):
    with pytest.raises(BadInputError):
        read_frames(videos.short, [])
    with pytest.raises(BadInputError):
        read_frames(videos.short, [-1])


class _LateFailingReader:
    """Opens fine, fails in get_batch: what decord does on some damaged files."""

    def __init__(self, *args, **kwargs):
        pass

    def __len__(self):
        return 10

    def get_batch(self, indices):
        import decord

        raise decord._ffi.base.DECORDError("simulated late failure")


def test_auto_reads_with_pyav_first_without_touching_decord(videos, monkeypatch):
    import decord

    monkeypatch.setattr(decord, "VideoReader", _LateFailingReader)  # read_frames would fail had it been used
    frames = read_frames(videos.gop30, SPARSE, probe_video(videos.gop30))
    assert _codes(frames) == SPARSE


def test_pyav_failure_falls_back_to_decord(videos, monkeypatch):
    info = probe_video(videos.gop30)

    def failing_open(*args, **kwargs):
        raise av.error.InvalidDataError(1094995529, "simulated PyAV failure")

    monkeypatch.setattr(av, "open", failing_open)  # PyAV itself fails; decord does not use it
    assert _codes(read_frames(videos.gop30, SPARSE, info)) == SPARSE
    with pytest.raises(DecodeError, match="Could not decode gop30"):
        read_frames(videos.gop30, SPARSE, info, backend="pyav")


def test_decord_only_failure_is_a_decode_error(videos, monkeypatch):
    import decord

    monkeypatch.setattr(decord, "VideoReader", _LateFailingReader)
    with pytest.raises(DecodeError):
        read_frames(videos.short, [0], backend="decord")


def test_truncated_faststart_mp4(videos, tmp_path):
    """Header intact, data cut: early frames read, frames past the cut fail with DecodeError."""
    cut = mf.write_truncated(videos.faststart, tmp_path / "cut.mp4", 0.5)
    info = probe_video(cut)  # the index is at the front, so probing still succeeds
    assert _codes(read_frames(cut, [0, 10], info)) == [0, 10]
    with pytest.raises(DecodeError) as caught:
        read_frames(cut, [0, 119], info)  # decord fails at open, PyAV finds the file ends early
    assert "cut.mp4" in str(caught.value) and str(tmp_path) not in str(caught.value)


def test_vfr_pyav_returns_the_frame_shown_at_each_timestamp(videos):
    info = probe_video(videos.vfr)
    starts = mf.vfr_frame_times()
    wanted = list(range(0, info.frame_count, 3))
    frames = read_frames(videos.vfr, wanted, info, backend="pyav")
    shown = [max(k for k, start in enumerate(starts) if start <= i / info.fps + 1e-3) for i in wanted]
    assert _codes(frames) == shown
    assert read_frames(videos.vfr, wanted, info).shape[0] == len(wanted)  # decord: by count


def test_iter_frames_one_pass_in_order(videos):
    info = probe_video(videos.gop30)
    seen = [(index, mf.decode_frame_index(frame)) for index, frame in iter_frames(videos.gop30, [40, 5, 5, 599, 41, 300], info)]
    assert seen == [(5, 5), (40, 40), (41, 41), (300, 300), (599, 599)]


def test_iter_frames_is_lazy_and_closes(videos):
    frames = iter_frames(videos.gop30, range(0, 600), probe_video(videos.gop30))
    index, frame = next(frames)
    assert index == 0 and frame.shape == (240, 320, 3)
    frames.close()  # must not decode the remaining 599 frames or leak the file


def test_load_video_smolvlm_and_perception_lm_styles(videos):
    clip = load_video(videos.gop30, fps=1.0, max_frames=8)
    assert clip.sample == sample_indices(clip.info, 1.0, 8)
    assert _codes(clip.frames) == list(clip.sample.indices)
    plm = load_video(videos.short, fps=None, max_frames=32)
    assert plm.frames.shape[0] == 32 and _codes(plm.frames) == list(plm.sample.indices)


@pytest.mark.parametrize(("fps", "max_frames"), [(1.0, 0), (1.0, 1000), (100.0, 8)])
def test_load_video_checks_limits(videos, fps, max_frames):
    with pytest.raises(BadInputError):
        load_video(videos.short, fps=fps, max_frames=max_frames)


# =============================================================================================
# Broken and wrong video files
# =============================================================================================


def _assert_user_worded(error: Exception, path) -> None:
    message = str(error)
    assert os.path.basename(path) in message
    assert str(os.path.dirname(path)) not in message


def test_zero_byte_video(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(DecodeError) as caught:
        probe_video(path)
    _assert_user_worded(caught.value, path)


def test_random_bytes_video(tmp_path):
    path = mf.make_random_bytes(tmp_path / "noise.mp4")
    with pytest.raises(DecodeError) as caught:
        probe_video(path)
    _assert_user_worded(caught.value, path)


def test_png_renamed_mp4_is_rejected(tmp_path):
    path = mf.make_png_renamed_mp4(tmp_path / "photo.mp4")
    with pytest.raises(BadInputError, match="image") as caught:
        probe_video(path)
    _assert_user_worded(caught.value, path)


def test_svg_renamed_mp4_is_rejected(tmp_path):
    path = mf.make_text_file(tmp_path / "drawing.mp4", "svg")
    with pytest.raises(BadInputError):
        probe_video(path)


def test_audio_only_is_rejected(videos, tmp_path):
    for path in (videos.audio_only, mf.make_audio_only(tmp_path / "voice.wav")):  # mp4 and wav
        with pytest.raises(BadInputError, match="no video track") as caught:
            probe_video(path)
        assert not isinstance(caught.value, DecodeError)
        _assert_user_worded(caught.value, path)


def test_truncated_mp4_without_index(videos, tmp_path):
    cut = mf.write_truncated(videos.gop30, tmp_path / "cut.mp4", 0.6)  # moov atom is at the end
    with pytest.raises(DecodeError):
        probe_video(cut)


def test_over_long_video_rejected_before_decoding(videos, tmp_path):
    undecodable = mf.write_undecodable(videos.short, tmp_path / "short-undecodable.mp4")
    with pytest.raises(DecodeError):  # the premise: decoding this file fails
        probe_video(undecodable)
    limits = LIMITS.with_value("max_video_seconds", 1)
    for path in (videos.short, undecodable):  # the limit, not "could not decode": nothing decoded first
        with pytest.raises(BadInputError, match=r"0:03 long; the limit is 0:01") as caught:
            probe_video(path, limits)
        assert not isinstance(caught.value, DecodeError)
        _assert_user_worded(caught.value, path)
    with pytest.raises(BadInputError):
        load_video(videos.short, fps=1.0, max_frames=8, limits=limits)


def test_oversized_frames_rejected(videos):
    with pytest.raises(BadInputError, match="320x240"):
        probe_video(videos.short, LIMITS.with_value("max_video_pixels", 64 * 64))


# =============================================================================================
# Images
# =============================================================================================

IMAGE_CASES = [
    ("RGB", "JPEG"), ("RGB", "PNG"), ("RGB", "WEBP"), ("RGB", "BMP"), ("RGB", "TIFF"), ("RGB", "MPO"),
    ("RGBA", "PNG"), ("RGBA", "WEBP"), ("LA", "PNG"), ("PT", "PNG"), ("PT", "GIF"), ("P", "PNG"),
    ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("I;16", "PNG"), ("I;16", "TIFF"), ("I", "TIFF"), ("F", "TIFF"),
    ("1", "PNG"), ("1", "BMP"), ("L", "JPEG"), ("L", "PNG"), ("RGB", "HEIF"), ("RGB", "AVIF"), ("L", "AVIF"),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "fmt"), IMAGE_CASES)
def test_open_image_any_mode_to_rgb(tmp_path, mode, fmt):
    path = mf.make_image(tmp_path / f"picture.{fmt.lower()}", mode, (64, 48), fmt)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)
    pixels = np.asarray(image).astype(int)
    if mode in ("RGBA", "LA", "PT"):
        assert (pixels[:, :28] >= 250).all()  # transparent half composited on white
        assert (pixels[:, 36:] < 250).any()
    if mode in ("I;16", "I", "F"):  # a 0..65535 ramp must become a 0..255 ramp, not clip at 255
        row = pixels[24, :, 0]
        assert row[0] <= 2 and row[-1] >= 253 and 100 < row[32] < 155
        assert (np.diff(row) >= 0).all()
    if mode in ("RGB", "CMYK", "P"):  # the red corner survives conversion
        red, green, blue = pixels[3, 3]
        assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize(("name", "fmt"), [("IMG_0042.HEIC", "HEIF"), ("photo.avif", "AVIF")])
def test_phone_photos_are_images_never_videos(tmp_path, name, fmt):
    """HEIC (most phones) and AVIF live in the MP4 family of containers, which FFmpeg would open
    as a one-frame video: they must be recognised as images, and a video slot must say so."""
    path = mf.make_image(tmp_path / name, "RGB", (64, 48), fmt)
    assert file_kind(path) == "image"
    assert isolation.file_kind(path) == "image"
    assert np.asarray(open_image(path))[3, 3, 0] > 200  # the red corner: upright, decoded
    with pytest.raises(BadInputError, match=rf"{name} is an image \({fmt}\), not a video") as caught:
        probe_video(path)
    assert not isinstance(caught.value, DecodeError)
    assert "as a video" not in str(caught.value)


def test_damaged_phone_photo_is_a_decode_error(tmp_path):
    path = mf.write_truncated(mf.make_image(tmp_path / "whole.heic", "RGB", (64, 48), "HEIF"), tmp_path / "cut.heic", 0.6)
    with pytest.raises(DecodeError) as caught:
        open_image(path)
    _assert_user_worded(caught.value, path)


def test_mpo_is_read_as_its_first_picture(tmp_path):
    path = mf.make_image(tmp_path / "stereo.mpo", "RGB", (64, 48), "MPO")
    assert Image.open(path).format == "MPO"
    assert np.asarray(open_image(path))[3, 3, 0] > 200  # not the mirrored second picture


@pytest.mark.parametrize(("orientation", "size", "red_corner"), [(6, (48, 64), (3, 44)), (3, (64, 48), (44, 60)), (8, (48, 64), (60, 3)), (1, (64, 48), (3, 3))])
def test_exif_orientation_applied(tmp_path, orientation, size, red_corner):
    path = mf.make_image(tmp_path / "phone.jpg", "RGB", (64, 48), "JPEG", exif_orientation=orientation)
    image = open_image(path)
    assert image.size == size
    red, green, blue = np.asarray(image)[red_corner].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_animated_gif_gives_first_frame(videos):
    image = open_image(videos.gif)
    assert image.mode == "RGB" and mf.decode_frame_index(np.asarray(image)) == 0


def test_decompression_bomb_rejected_fast_with_flat_memory(tmp_path):
    path = mf.make_decompression_bomb_png(tmp_path / "bomb.png")  # 3.6 gigapixels declared
    assert path.stat().st_size < 1000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(BadInputError) as caught:
        open_image(path)
    assert time.perf_counter() - started < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    _assert_user_worded(caught.value, path)


def test_image_over_pixel_limit_reports_size_and_limit(tmp_path):
    path = mf.make_decompression_bomb_png(tmp_path / "big.png", 8000, 8000)  # 64 Mpx > 40 Mpx
    with pytest.raises(BadInputError, match=r"8000x8000 pixels .*limit is 40 megapixels"):
        open_image(path)
    with pytest.raises(BadInputError, match="limit is 1 megapixels"):
        open_image(mf.make_image(tmp_path / "ok.png", "RGB", (1200, 1000), "PNG"), LIMITS.with_value("max_image_pixels", 1_000_000))


@pytest.mark.parametrize("fraction", [0.5, 0.02])  # data cut, header cut
def test_truncated_jpeg_is_decode_error(tmp_path, fraction):
    source = mf.make_noise_jpeg(tmp_path / "noise.jpg")
    path = mf.write_truncated(source, tmp_path / "cut.jpg", fraction)
    with pytest.raises(DecodeError) as caught:
        open_image(path)
    _assert_user_worded(caught.value, path)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # never "fixed" by loading garbage


@pytest.mark.parametrize("kind", ["svg", "html"])
def test_markup_renamed_jpg_is_rejected(tmp_path, kind):
    path = mf.make_text_file(tmp_path / "cat.jpg", kind)
    with pytest.raises(BadInputError, match="not a supported image") as caught:
        open_image(path)
    assert type(caught.value) is BadInputError
    _assert_user_worded(caught.value, path)


def test_video_renamed_jpg_is_not_an_image(videos, tmp_path):
    path = tmp_path / "still.jpg"
    path.write_bytes(videos.short.read_bytes())
    with pytest.raises(BadInputError):
        open_image(path)


def test_zero_byte_image(tmp_path):
    path = tmp_path / "nothing.png"
    path.write_bytes(b"")
    with pytest.raises(DecodeError):
        open_image(path)


def test_open_image_closes_the_file(tmp_path):
    path = mf.make_image(tmp_path / "a.png", "RGBA", (64, 48), "PNG")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        open_image(path)
    assert len(os.listdir("/proc/self/fd")) <= before


# =============================================================================================
# Kind by content
# =============================================================================================


def test_file_kind_by_content(videos, tmp_path):
    still_gif = tmp_path / "still.gif"
    Image.new("RGB", (8, 8), "red").save(still_gif)
    video_named_jpg = tmp_path / "clip.jpg"
    video_named_jpg.write_bytes(videos.short.read_bytes())
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert file_kind(mf.make_png_renamed_mp4(tmp_path / "photo.mp4")) == "image"
    assert file_kind(video_named_jpg) == "video"
    assert file_kind(videos.mkv) == "video"
    assert file_kind(videos.gif) == "video"  # animated GIFs are watched, not looked at
    assert file_kind(still_gif) == "image"
    assert file_kind(mf.make_decompression_bomb_png(tmp_path / "bomb.png")) == "image"
    assert file_kind(mf.make_text_file(tmp_path / "x.jpg", "svg")) is None
    assert file_kind(mf.make_random_bytes(tmp_path / "noise.mp4")) is None
    assert file_kind(videos.audio_only) is None
    assert file_kind(empty) is None
    assert file_kind(tmp_path / "missing.mp4") is None


def test_media_module_stays_light():
    """pipelines.media may run in a child process: it must not pull in torch, transformers or gradio."""
    import subprocess
    import sys

    code = "import sys, pipelines.media; bad = {'torch', 'transformers', 'gradio'} & set(sys.modules); print(sorted(bad))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)), check=True)
    assert result.stdout.strip() == "[]"
