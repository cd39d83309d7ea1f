"""The highlight pipeline end to end on tiny checkpoints and generated media: one decoding pass,
frame-accurate rendering (checked with PyAV against frames that encode their own index), the
score cache, progress, Stop, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest

from pipelines import media
from pipelines.devices import DEVICE_LOCK
from pipelines.errors import BadInputError, DecodeError, GenerationCancelled, RenderError
from pipelines.highlights import (
    HighlightRequest,
    ScoreCache,
    Segment,
    analyse,
    finish,
    make_highlights,
    make_windows,
    render_reel,
    suggest_criteria,
)
from pipelines.highlights import __main__ as cli
from pipelines.highlights import windows as windows_module
from pipelines.highlights.criteria import tidy_criteria
from pipelines.highlights.windows import frame_indices, iter_window_clips
from pipelines.runtime import Runtime
from tests import media_factory
from tests.media_factory import decode_frame_index

RUNTIME = Runtime(device="cpu", dtype="fp32")
REPO = Path(__file__).resolve().parent.parent
FPS = 10


@pytest.fixture(scope="session")
def clip_2min(media_dir) -> Path:
    """The issue's acceptance video: 2 minutes, 160x120, 10 fps, with audio."""
    return media_factory.make_video(media_dir / "clip.mp4", seconds=120, fps=FPS, size=(160, 120), audio=True)


@pytest.fixture(scope="session")
def silent_clip(media_dir) -> Path:
    return media_factory.make_video(media_dir / "silent.mp4", seconds=12, fps=FPS, size=(160, 120), audio=False)


@pytest.fixture()
def cache(tmp_path) -> ScoreCache:
    return ScoreCache(tmp_path / "cache")


def _request(video, model, **changes) -> HighlightRequest:
    values = dict(video=str(video), model=str(model), criteria="anything moving", window_seconds=5.0, target_seconds=30.0)
    values.update(changes)
    return HighlightRequest(**values)


def _reel_facts(path: Path) -> dict:
    """Video and audio durations, and the source frame index painted into every frame."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        frames = [decode_frame_index(frame.to_ndarray(format="rgb24")) for frame in container.decode(video)]
        return {
            "video_s": float(video.duration * video.time_base),
            "audio_s": float(audio.duration * audio.time_base) if audio is not None else None,
            "frames": frames,
        }


def _expected_frames(segments) -> list[int]:
    return [index for s in segments for index in range(round(s.start * FPS), round(s.end * FPS))]


# --- one decoding pass -----------------------------------------------------------------------


def _scan_threads_and_children() -> list:
    import multiprocessing

    threads = [t for t in threading.enumerate() if t.name == "vlms-scan"]
    return threads + [c for c in multiprocessing.active_children() if c.name == "vlms-decode"]


def test_one_forward_pass_in_bounded_chunks_yields_every_window_with_its_own_frames(clip_2min, monkeypatch):
    info = media.probe_video(clip_2min)
    windows = make_windows(info.duration, 7.0, overlap_seconds=2.0)
    monkeypatch.setattr(windows_module, "CHUNK_BYTES", 40 * 160 * 120 * 3)  # about 40 frames per child
    calls = []
    real_run = windows_module.isolation.run
    monkeypatch.setattr(windows_module.isolation, "run",
                        lambda fn, path, indices, *a, **k: calls.append(list(indices)) or real_run(fn, path, indices, *a, **k))
    seen = list(iter_window_clips(clip_2min, info, windows, 3))
    assert len(calls) > 1 and all(len(c) <= 40 for c in calls)
    decoded = [i for call in calls for i in call]
    assert decoded == sorted(set(decoded))  # one forward pass: every frame once, in file order
    assert [w.index for w, _ in seen] == [w.index for w in windows]
    for window, clip in seen:
        wanted = frame_indices(window, info.fps, info.frame_count, 3)
        assert [decode_frame_index(f) for f in clip.frames] == list(wanted)
        assert clip.info.duration == pytest.approx(window.duration)  # the model sees a standalone clip
        assert clip.sample.timestamps[0] < window.duration
    assert not _scan_threads_and_children()


def test_a_damaged_video_fails_the_scan_with_a_clear_error(tmp_path, clip_2min):
    damaged = media_factory.write_truncated(clip_2min, tmp_path / "cut.mp4", 0.5)
    info = media.probe_video(clip_2min)  # the header of the whole file: frames past the cut are missing
    with pytest.raises(DecodeError, match="cut.mp4"):
        list(iter_window_clips(damaged, info, make_windows(info.duration, 10.0), 2))
    assert not _scan_threads_and_children()


# --- rendering -------------------------------------------------------------------------------


def test_reel_is_frame_accurate_with_audio(clip_2min, tmp_path):
    info = media.probe_video(clip_2min)
    segments = [Segment(10.0, 14.3), Segment(33.1, 37.0), Segment(61.0, 65.0), Segment(115.5, 120.0)]
    reel = render_reel(clip_2min, segments, tmp_path / "reel.mp4", info)
    facts = _reel_facts(reel)
    total = sum(s.duration for s in segments)
    assert facts["video_s"] == pytest.approx(total, abs=1 / FPS)
    assert facts["audio_s"] == pytest.approx(total, abs=0.05)
    assert facts["frames"] == _expected_frames(segments)  # every frame from the right source time
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reel.mp4"]  # no work files left


def test_reel_of_a_silent_video_has_no_audio(silent_clip, tmp_path):
    info = media.probe_video(silent_clip)
    reel = render_reel(silent_clip, [Segment(1.0, 3.0), Segment(6.0, 7.5)], tmp_path / "reel.mp4", info)
    facts = _reel_facts(reel)
    assert facts["audio_s"] is None and facts["video_s"] == pytest.approx(3.5, abs=1 / FPS)


def test_many_segments_render_in_groups_joined_accurately(clip_2min, tmp_path, monkeypatch):
    from pipelines.highlights import render

    monkeypatch.setattr(render, "MAX_INPUTS_PER_PASS", 3)
    info = media.probe_video(clip_2min)
    segments = [Segment(10.0 * i, 10.0 * i + 1.5) for i in range(7)]
    facts = _reel_facts(render_reel(clip_2min, segments, tmp_path / "reel.mp4", info))
    assert facts["frames"] == _expected_frames(segments)
    assert facts["video_s"] == pytest.approx(10.5, abs=1 / FPS)


def test_a_failed_render_leaves_no_file(tmp_path, clip_2min):
    broken = media_factory.make_random_bytes(tmp_path / "broken.mp4")
    info = media.probe_video(clip_2min)
    out = tmp_path / "out"
    with pytest.raises(RenderError, match="ffmpeg could not write") as caught:
        render_reel(broken, [Segment(0.0, 2.0)], out / "reel.mp4", info)
    assert str(tmp_path) not in str(caught.value)  # no server paths in the message
    assert list(out.iterdir()) == []


def test_stop_during_render_kills_ffmpeg_and_leaves_no_file(clip_2min, tmp_path):
    info = media.probe_video(clip_2min)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        render_reel(clip_2min, [Segment(0.0, 100.0)], tmp_path / "reel.mp4", info, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_nothing_selected_means_no_reel_but_every_export(clip_2min, tiny_smolvlm, tmp_path, cache):
    with pytest.raises(BadInputError, match="No segments"):
        render_reel(clip_2min, [], tmp_path / "reel.mp4", media.probe_video(clip_2min))
    result = make_highlights(_request(clip_2min, tiny_smolvlm, target_seconds=None, threshold=1.0), RUNTIME,
                             tmp_path / "out", cache=cache)
    assert result.reel is None and result.segments == []
    assert sorted(result.files) == ["edl", "json", "srt", "xspf"]


# --- the pipeline, the cache, progress, Stop -------------------------------------------------


def test_a_new_target_or_hand_edit_rerenders_from_the_cache_with_no_model_call(clip_2min, tiny_model, tmp_path, cache, monkeypatch):
    first = make_highlights(_request(clip_2min, tiny_model, frames_per_window=2), RUNTIME, tmp_path / "first", cache=cache)
    assert not first.analysis.from_cache and len(first.analysis.windows) == 24
    assert 25.0 <= first.selected_seconds <= 30.0

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a cached analysis")

    monkeypatch.setattr(Runtime, "load", no_model)
    passes = DEVICE_LOCK.passes
    second = make_highlights(_request(clip_2min, tiny_model, frames_per_window=2, target_seconds=12.0), RUNTIME,
                             tmp_path / "second", cache=cache)
    assert second.analysis.from_cache and DEVICE_LOCK.passes == passes
    assert [w.score for w in second.analysis.windows] == [w.score for w in first.analysis.windows]
    assert 7.0 <= second.selected_seconds <= 12.0
    edited = [Segment(0.0, 2.0), *second.segments[1:]]
    third = finish(second.analysis, edited, tmp_path / "third")
    assert DEVICE_LOCK.passes == passes
    assert _reel_facts(third.reel)["frames"] == _expected_frames(edited)


def test_a_different_criteria_or_window_is_scored_again(clip_2min, tiny_smolvlm, cache):
    analyse(_request(clip_2min, tiny_smolvlm), RUNTIME, cache=cache)
    assert not analyse(_request(clip_2min, tiny_smolvlm, criteria="faces"), RUNTIME, cache=cache).from_cache
    assert not analyse(_request(clip_2min, tiny_smolvlm, window_seconds=6.0), RUNTIME, cache=cache).from_cache
    assert analyse(_request(clip_2min, tiny_smolvlm, target_seconds=5.0), RUNTIME, cache=cache).from_cache


def test_progress_names_stages_counts_windows_and_ends_at_one(clip_2min, tiny_smolvlm, tmp_path):
    seen: list[tuple[float, str]] = []
    make_highlights(_request(clip_2min, tiny_smolvlm, batch_size=2), RUNTIME, tmp_path,
                    on_progress=lambda f, m: seen.append((f, m)), cache=ScoreCache(enabled=False))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = " | ".join(m for _, m in seen)
    for stage in ("Reading the video", "Loading the model", "Scoring windows 2/24", "left", "Rendering the reel", "Done"):
        assert stage in messages


def test_stop_mid_scan_ends_the_decoding_thread(clip_2min, tiny_smolvlm, tmp_path):
    cancel = threading.Event()

    def stop_after_first_batch(fraction, message):
        if "Scoring windows" in message:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        make_highlights(_request(clip_2min, tiny_smolvlm), RUNTIME, tmp_path, cancel=cancel,
                        on_progress=stop_after_first_batch, cache=ScoreCache(enabled=False))
    assert not _scan_threads_and_children()
    assert not list(tmp_path.iterdir())


def test_the_model_can_propose_criteria_and_they_are_cached(clip_2min, tiny_smolvlm, cache):
    proposed = suggest_criteria(str(clip_2min), str(tiny_smolvlm), RUNTIME, cache=cache)
    assert proposed.strip() and len(proposed) <= 1000
    analysis = analyse(_request(clip_2min, tiny_smolvlm, criteria="", auto_criteria=True), RUNTIME, cache=cache)
    assert analysis.criteria == proposed


def test_an_empty_proposal_asks_the_user_to_type_criteria():
    with pytest.raises(BadInputError, match="Type what counts as a highlight"):
        tidy_criteria(" \n\t \n")
    assert tidy_criteria("Video:  a match\n\n Highlights: goals;   saves ") == "Video: a match\nHighlights: goals; saves"
    assert len(tidy_criteria("x" * 5000)) == 1000


@pytest.mark.parametrize("changes, message", [
    (dict(criteria=""), "Describe what counts as a highlight"),
    (dict(target_seconds=None), "target reel length or a score threshold"),
    (dict(window_seconds=1.0), "Window length"),
    (dict(frames_per_window=40), "Frames per window"),
    (dict(criteria="x" * 1001), "limit is 1,000"),
    (dict(threshold=1.5), "between 0 and 1"),
])
def test_bad_requests_are_refused_before_any_model_work(clip_2min, tiny_smolvlm, cache, changes, message, monkeypatch):
    monkeypatch.setattr(Runtime, "load", lambda *a, **k: pytest.fail("model loaded for a bad request"))
    with pytest.raises(BadInputError, match=message):
        analyse(_request(clip_2min, tiny_smolvlm, **changes), RUNTIME, cache=cache)


# --- command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(clip_2min, tiny_smolvlm, tmp_path_factory):
    """The issue's acceptance command, run once as a separate process."""
    work = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pipelines.highlights", str(clip_2min), str(work / "missing.mp4"),
               "--model", str(tiny_smolvlm), "--criteria", "anything moving", "--target-seconds", "30",
               "--window-seconds", "5", "--out", str(work / "out"), "--cache-dir", str(work / "cache"), "--dtype", "fp32"]
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return finished, work


def test_cli_end_to_end_writes_reel_and_exports(cli_run, tiny_smolvlm):
    finished, work = cli_run
    assert finished.returncode == 1, finished.stderr  # one of the two videos is missing
    assert "error: " in finished.stderr and "missing.mp4: no such file" in finished.stderr
    assert "Scoring windows" in finished.stderr  # the tqdm bar
    folder = work / "out" / "clip"
    assert sorted(p.name for p in folder.iterdir()) == [
        "highlights.edl", "highlights.json", "highlights.mp4", "highlights.srt", "highlights.xspf"]
    document = json.loads((folder / "highlights.json").read_text())
    reel_seconds = _reel_facts(folder / "highlights.mp4")["video_s"]
    assert abs(reel_seconds - document["selected_seconds"]) <= 0.1
    assert 25.0 <= reel_seconds <= 30.0
    assert len(document["windows"]) == 24 and document["model"] == str(Path(tiny_smolvlm).resolve())
    assert (folder / "highlights.srt").read_text().startswith("1\n00:00:00,000 --> ")


def test_cli_rerun_with_a_threshold_uses_the_cache(cli_run, clip_2min, tiny_smolvlm, capsys, monkeypatch):
    _finished, work = cli_run
    monkeypatch.setattr(Runtime, "load", lambda *a, **k: pytest.fail("model loaded for a cached video"))
    argv = [str(clip_2min), "--model", str(tiny_smolvlm), "--criteria", "anything moving", "--window-seconds", "5",
            "--threshold", "0.0", "--out", str(work / "rerun"), "--cache-dir", str(work / "cache"), "--dtype", "fp32",
            "--quiet"]
    assert cli.main(argv) == 0
    assert "(scores from the cache)" in capsys.readouterr().out
    document = json.loads((work / "rerun" / "clip" / "highlights.json").read_text())
    assert document["selected_seconds"] == pytest.approx(120.0) and all(w["selected"] for w in document["windows"])


def test_cli_refuses_out_of_range_settings(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["x.mp4", "--criteria", "a", "--target-seconds", "5", "--window-seconds", "90", "--out", "o"])
    assert caught.value.code == 2 and "between 2 and 60" in capsys.readouterr().err
