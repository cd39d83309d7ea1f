"""Untrusted video decoding runs in a child bounded in time and memory (pipelines.isolation), and
variable-frame-rate video is routed to the reader that looks frames up by time."""

from __future__ import annotations

import ctypes
import os
import pickle
import threading
import time

import numpy as np
import pytest

from pipelines import isolation, media
from pipelines.errors import BadInputError, DecodeError, GenerationCancelled
from pipelines.limits import LIMITS
from tests import media_factory as mf


def _children() -> set[int]:
    """Live (non-zombie) children of this process, and zombies separately marked negative."""
    found = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            pids = open(f"/proc/{os.getpid()}/task/{task}/children").read().split()
        except OSError:
            continue
        for pid in map(int, pids):
            try:
                state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            found.add(-pid if state == "Z" else pid)
    return found


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolation")
    return {
        "cfr": mf.make_video(root / "cfr.mp4", 4, fps=10, size=(128, 96)),
        "vfr": mf.make_vfr_video(root / "vfr.mp4", size=(128, 96)),
        "audio": mf.make_audio_only(root / "sound.m4a"),
        "noise": mf.make_random_bytes(root / "noise.mp4"),
    }


@pytest.fixture(scope="module", autouse=True)
def warm_fork_server(clips):
    """The fork server and the resource tracker start once and stay: they are the baseline."""
    isolation.load_video(clips["cfr"], 1.0, 2)


def test_isolated_load_equals_in_process_load(clips):
    here = media.load_video(clips["cfr"], 1.0, 8)
    there = isolation.load_video(clips["cfr"], 1.0, 8)
    assert there.info == here.info and there.sample == here.sample
    assert np.array_equal(there.frames, here.frames) and there.frames.flags.writeable


def test_user_errors_keep_their_type_and_words(clips):
    with pytest.raises(BadInputError, match="no video track") as caught:
        isolation.load_video(clips["audio"], 1.0, 8)
    assert type(caught.value) is BadInputError and "sound.m4a" in str(caught.value)
    with pytest.raises(DecodeError, match="noise.mp4"):
        isolation.load_video(clips["noise"], 1.0, 8)


def test_a_crashing_decoder_is_an_error_not_a_dead_server(clips):
    before = _children()
    with pytest.raises(DecodeError, match="crashed while reading bad.mp4"):
        isolation.run(ctypes.string_at, 0, what="bad.mp4", timeout_s=10, memory_mb=1024)  # segfault
    assert _children() == before  # reaped: no zombie
    assert isolation.load_video(clips["cfr"], 1.0, 2).frames.shape[0] == 2


def test_a_hanging_decoder_is_killed_at_the_time_limit():
    before = _children()
    started = time.monotonic()
    with pytest.raises(DecodeError, match="longer than 1 s"):
        isolation.run(time.sleep, 60, what="slow.mp4", timeout_s=1, memory_mb=1024)
    assert time.monotonic() - started < 3
    assert _children() == before


def test_memory_is_capped_in_the_child():
    rss_before = _rss()
    with pytest.raises(DecodeError, match="more than the 512 MB"):
        isolation.run(bytearray, 2 * 2**30, what="huge.mp4", timeout_s=10, memory_mb=512)
    assert _rss() - rss_before < 50 * 2**20  # the parent never held it


def test_cancel_kills_the_child_at_once():
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    before = _children()
    started = time.monotonic()
    with pytest.raises(GenerationCancelled):
        isolation.run(time.sleep, 60, what="x.mp4", timeout_s=30, memory_mb=1024, cancel=cancel)
    assert time.monotonic() - started < 1.5 and _children() == before


def test_file_kind_by_content_with_the_probe_isolated(clips, sample_image, tmp_path):
    renamed = mf.make_png_renamed_mp4(tmp_path / "picture.mp4")
    assert isolation.file_kind(clips["cfr"]) == "video"
    assert isolation.file_kind(sample_image) == "image"
    assert isolation.file_kind(renamed) == "image"  # judged by content, not by name
    assert isolation.file_kind(clips["noise"]) is None
    assert isolation.file_kind(clips["audio"]) is None
    assert isolation.file_kind(tmp_path / "missing.mp4") is None


def test_variable_frame_rate_is_detected_and_read_by_time(clips):
    assert media.probe_video(clips["cfr"]).variable_rate is False
    clip = isolation.load_video(clips["vfr"], 4.0, 16)
    assert clip.info.variable_rate is True
    starts = mf.vfr_frame_times()
    # Each frame the model sees is the one on screen at the timestamp the prompt gives it.
    shown = [max(k for k, start in enumerate(starts) if start <= t + 1e-3) for t in clip.sample.timestamps]
    assert [mf.decode_frame_index(frame) for frame in clip.frames] == shown


def test_limits_travel_to_the_child():
    assert pickle.loads(pickle.dumps(LIMITS)) == LIMITS
    assert LIMITS.decode_timeout_s.value > 0 and LIMITS.decode_memory_mb.value >= 512


def _rss() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
