"""Shots, sound and shapes (issue 15) on generated media and tiny checkpoints: edges snapped to
known cuts, a loud burst found by the audio signal, a vertical reel whose crop follows a moving
object and, before any motion, a face, the scan's frames kept by the signals pass (one decoding),
the selection guarantees with snapping on (property-based), and the CLI's acceptance command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines import media
from pipelines.errors import BadInputError
from pipelines.highlights import HighlightRequest, ReelShape, ScoreCache, Selection, Window, analyse, finish, make_highlights
from pipelines.highlights import make_windows, select, signals, total_seconds
from pipelines.highlights.reframe import crop_paths, crop_size, face_aims, max_step
from pipelines.highlights.selection import merge
from pipelines.runtime import Runtime
from tests import face_media, media_factory

RUNTIME = Runtime(device="cpu", dtype="fp32")
REPO = Path(__file__).resolve().parent.parent
FPS = 10
CUTS = (3.7, 11.3, 19.9, 27.4)  # never on a 5 s window edge, more than a window apart
EPS = 1e-6


@pytest.fixture(scope="module")
def shots_clip(tmp_path_factory) -> Path:
    return media_factory.make_shots_video(tmp_path_factory.mktemp("shots") / "shots.mp4", 34, CUTS, fps=FPS)


@pytest.fixture(scope="module")
def burst_clip(tmp_path_factory) -> Path:
    return media_factory.make_burst_video(tmp_path_factory.mktemp("burst") / "burst.mp4", 30, burst_at=17.3, fps=FPS)


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    return media_factory.make_moving_object_video(tmp_path_factory.mktemp("move") / "move.mp4", 16, fps=FPS)


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    return face_media.make_face_video(tmp_path_factory.mktemp("face") / "face.mp4", 16, fps=FPS)


@pytest.fixture()
def cache(tmp_path) -> ScoreCache:
    return ScoreCache(tmp_path / "cache")


def _request(video, model, **changes) -> HighlightRequest:
    values = dict(video=str(video), model=str(model), criteria="anything moving", window_seconds=5.0,
                  target_seconds=10.0, frames_per_window=2)
    values.update(changes)
    return HighlightRequest(**values)


def _edges_on_cuts(segments, cuts, reach: float, duration: float) -> None:
    """The issue's rule: an edge with a cut within half a window lies within one frame of a cut
    (or of the video's ends)."""
    for segment in segments:
        for edge in (segment.start, segment.end):
            if any(abs(edge - c) <= reach + EPS for c in cuts):
                landmarks = [*cuts, 0.0, duration]
                assert min(abs(edge - c) for c in landmarks) <= 1 / FPS + EPS, (edge, segments)


# --- the signals pass --------------------------------------------------------------------------


def test_the_signals_pass_finds_the_cuts_to_the_frame_and_the_burst(shots_clip, burst_clip):
    found = signals.measure(shots_clip, media.probe_video(shots_clip))
    assert found.cuts == CUTS and found.frames == 34 * FPS
    assert len(found.loudness) == pytest.approx(34 / signals.BLOCK_S, abs=2)
    burst = signals.measure(burst_clip, media.probe_video(burst_clip))
    assert burst.cuts == ()
    loud = [k * signals.BLOCK_S for k, level in enumerate(burst.loudness) if level > -40]
    assert 17.2 <= loud[0] <= 17.4 and 18.2 <= loud[-1] <= 18.4


def test_shot_windows_cover_the_video_and_split_long_shots():
    windows = signals.shot_windows(34.0, CUTS, 5.0)
    assert windows[0].start == 0.0 and windows[-1].end == 34.0
    assert all(a.end == b.start for a, b in zip(windows, windows[1:]))
    assert all(w.duration <= 5.0 + EPS for w in windows)
    assert {c for c in CUTS} <= {w.start for w in windows}


# --- snapping --------------------------------------------------------------------------------


def test_snapped_edges_lie_on_the_cuts_end_to_end(shots_clip, tiny_smolvlm, cache, tmp_path):
    result = make_highlights(_request(shots_clip, tiny_smolvlm, target_seconds=12.0), RUNTIME, tmp_path, cache=cache)
    assert result.analysis.cuts == CUTS and result.segments
    assert total_seconds(result.segments) <= 12.0 + EPS
    _edges_on_cuts(result.segments, CUTS, 2.5, 34.0)
    document = json.loads(result.files["json"].read_text())
    assert document["shots"] == list(CUTS) and document["selection"]["snap"] == "shots"
    unsnapped = make_highlights(_request(shots_clip, tiny_smolvlm, target_seconds=12.0, snap="none"), RUNTIME,
                                tmp_path / "none", cache=cache)
    assert all(s.start % 5.0 == 0 for s in unsnapped.segments)  # today's window edges
    assert unsnapped.analysis.from_cache  # snapping needs no new scores


@st.composite
def scored_video_with_cuts(draw):
    duration = draw(st.floats(min_value=3.0, max_value=600.0))
    window = draw(st.floats(min_value=2.0, max_value=60.0))
    windows = make_windows(duration, window, draw(st.sampled_from([0.0, window / 4])))
    scores = draw(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=len(windows), max_size=len(windows)))
    fps = draw(st.sampled_from([10.0, 25.0, 30.0]))
    frames = draw(st.lists(st.integers(min_value=1, max_value=int(duration * fps) - 1), max_size=40, unique=True))
    cuts = sorted(f / fps for f in frames)
    return duration, window, fps, cuts, [Window(w.index, w.start, w.end, s) for w, s in zip(windows, scores)]


def _one_cut_in_reach_of_both_edges_of_a_merged_window():
    """Found by hypothesis: the window [133.65, 145.53] has the cut 139.6 in reach of both
    edges (its start takes it), and is merged with the windows before it."""
    duration, window, fps, cuts = 256.0, 11.880124732376194, 30.0, [28.0, 84.83333333333333, 139.6]
    windows = [Window(w.index, w.start, w.end, 0.9 if 106.0 < w.start < 134.0 else 0.1)
               for w in make_windows(duration, window, window / 4)]
    return duration, window, fps, cuts, windows


@settings(max_examples=150, deadline=None)
@given(scored_video_with_cuts(), st.floats(min_value=1.0, max_value=600.0), st.floats(min_value=0.0, max_value=3.0))
def test_selection_guarantees_hold_with_snapping(video, target, padding):
    duration, window, fps, cuts, windows = video
    segments = Selection(target, None, padding, "shots").choose(windows, duration, fps, cuts, reach=window / 2)
    for segment in segments:
        assert -EPS <= segment.start < segment.end <= duration + EPS
        for edge in (segment.start, segment.end):  # frame grid
            assert edge * fps == pytest.approx(round(edge * fps), abs=1e-3)
    for earlier, later in zip(segments, segments[1:]):
        assert earlier.end < later.start
    assert total_seconds(segments) <= target + EPS
    assert merge(segments) == segments


@settings(max_examples=150, deadline=None)
@given(scored_video_with_cuts())
@example(_one_cut_in_reach_of_both_edges_of_a_merged_window())
def test_every_snapped_edge_with_a_cut_in_reach_sits_on_a_cut(video):
    duration, window, fps, cuts, windows = video
    reach = window / 2
    # Cuts more than a window apart (as in real footage): one cut never serves both edges.
    spaced = [c for k, c in enumerate(cuts) if k == 0 or c - cuts[k - 1] > window]
    segments = select(windows, duration, threshold=0.5, fps=fps, cuts=spaced, reach=reach)
    for segment in segments:
        # An edge that did not move is the edge of the window that produced it, so that window's
        # other edge lies one window length inside the segment (no padding here).
        for edge, window_other in ((segment.start, min(segment.start + window, duration)),
                                   (segment.end, segment.end - window)):
            # The one exception (documented in selection.py): a cut within reach of BOTH edges of
            # a window is taken by its nearer edge only, or the window would vanish. It is judged
            # on the WINDOW's edges (within a frame of rounding), not the merged segment's.
            near = [c for c in spaced if abs(edge - c) <= reach + EPS and abs(window_other - c) > reach + 1 / fps]
            if near:
                assert min(abs(edge - c) for c in [*spaced, 0.0, duration]) <= 1 / fps + EPS


def test_a_bad_snap_mode_is_refused():
    with pytest.raises(BadInputError, match="Snapping must be one of shots, none"):
        Selection(target_seconds=10, snap="edges")


# --- sound ---------------------------------------------------------------------------------


def test_the_audio_weight_finds_the_burst_and_zero_scores_as_before(burst_clip, tiny_smolvlm, cache):
    loud = analyse(_request(burst_clip, tiny_smolvlm, audio_weight=1.0), RUNTIME, cache=cache)
    best = max(loud.windows, key=lambda w: w.score)
    assert best.start <= 17.3 < best.end
    silent = analyse(_request(burst_clip, tiny_smolvlm, audio_weight=0.0), RUNTIME, cache=cache)
    assert silent.from_cache  # the same visual scores: the mix is applied after the cache
    assert [w.score for w in silent.windows] == list(silent.visual) == list(loud.visual)
    default = analyse(_request(burst_clip, tiny_smolvlm), RUNTIME, cache=cache)  # the documented default
    assert max(default.windows, key=lambda w: w.score).index == best.index


def test_a_video_without_sound_scores_on_the_picture_with_a_note(tiny_smolvlm, tmp_path, cache):
    quiet = media_factory.make_shots_video(tmp_path / "quiet.mp4", 12, (5.5,), fps=FPS, audio=False)
    result = make_highlights(_request(quiet, tiny_smolvlm, audio_weight=0.8), RUNTIME, tmp_path / "out", cache=cache)
    assert [w.score for w in result.analysis.windows] == list(result.analysis.visual)
    document = json.loads(result.files["json"].read_text())
    assert "no soundtrack" in document["audio_note"] and "audio" not in document["windows"][0]
    assert "visual" in document["windows"][0]


def test_both_signals_are_in_the_json_per_window(burst_clip, tiny_smolvlm, cache, tmp_path):
    result = make_highlights(_request(burst_clip, tiny_smolvlm, audio_weight=0.5), RUNTIME, tmp_path, cache=cache)
    rows = json.loads(result.files["json"].read_text())["windows"]
    assert {"visual", "audio", "loudness_db", "burst_db", "score"} <= set(rows[0])
    for row in rows:
        assert row["score"] == pytest.approx(0.5 * row["visual"] + 0.5 * row["audio"], abs=1e-5)
    assert rows[3]["audio"] == 1.0 and rows[0]["audio"] == 0.0


# --- shapes --------------------------------------------------------------------------------


def _object_columns(path: Path) -> tuple[tuple[int, int], bool, list[float]]:
    """(size, has audio, the white square's centre column in every frame)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        centres = []
        for frame in container.decode(stream):
            bright = frame.to_ndarray(format="rgb24").mean(axis=2) > 200
            columns = bright.sum(axis=0)
            centres.append(float(columns @ np.arange(len(columns)) / columns.sum()) if columns.sum() else -1.0)
        return (stream.width, stream.height), bool(container.streams.audio), centres


@pytest.mark.slow  # scores and renders a follow reel end to end (~25 s on 2 cores): not in the fast tier
def test_a_vertical_follow_reel_keeps_the_moving_object_in_the_middle(moving_clip, tiny_smolvlm, cache, tmp_path):
    result = make_highlights(_request(moving_clip, tiny_smolvlm, target_seconds=None, threshold=0.0, aspect="9:16",
                                      reframe="follow"), RUNTIME, tmp_path, cache=cache)
    size, has_audio, centres = _object_columns(result.reel)
    assert size == (1080, 1920) and has_audio
    assert len(centres) == round(result.selected_seconds * FPS)
    inside = [1080 / 3 <= c <= 2 * 1080 / 3 for c in centres]
    assert sum(inside) >= 0.9 * len(inside)
    info = result.analysis.info
    for path in crop_paths(ReelShape("9:16", "follow"), result.segments, info, result.analysis.signals):
        assert (path.width, path.height) == crop_size(info.width, info.height, "9:16") == (100, 180)
        steps = np.abs(np.diff(path.xs))
        assert steps.max() <= max_step(info.width, info.fps) + 1  # glides, never jumps
        assert min(path.xs) >= 0 and max(path.xs) + path.width <= info.width  # clamped to the frame
    centred = finish(result.analysis, result.segments, tmp_path / "center", shape=ReelShape("9:16", "center"))
    _size, _audio, still = _object_columns(centred.reel)
    assert sum(1080 / 3 <= c <= 2 * 1080 / 3 for c in still) < 0.6 * len(still)  # a fixed crop loses it


# --- faces ---------------------------------------------------------------------------------


def test_the_bundled_cascade_finds_the_drawn_face_on_a_still_and_nothing_without_it():
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + signals.FACE_CASCADE)
    assert not cascade.empty()
    picture = face_media.background(320, 180)
    empty = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)
    face_media.draw_face(picture, 100, 76, 52)
    for grey in (cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY), empty):
        small = cv2.resize(grey, (signals.FACE_WIDTH, 108), interpolation=cv2.INTER_AREA)
        found = cascade.detectMultiScale(small, signals.FACE_SCALE_STEP, signals.FACE_NEIGHBOURS,
                                         minSize=(signals.FACE_MIN_PX, signals.FACE_MIN_PX))
        if grey is empty:
            assert len(found) == 0
        else:
            (x, y, w, h), = found
            assert abs((x + w / 2) / signals.FACE_WIDTH - 100 / 320) < 0.03 and abs((y + h / 2) / 108 - 76 / 180) < 0.05


def test_the_signals_pass_finds_the_moving_face_at_every_look_and_not_the_noise(face_clip):
    found = signals.measure(face_clip, media.probe_video(face_clip))
    assert len(found.faces) == round(16 / signals.FACE_S)
    for step, faces in enumerate(found.faces):
        (x, y, width), = faces  # one face, never the noise block
        assert abs(x - face_media.face_x(step * signals.FACE_S, 320) / 320) < 0.03 and 0.35 < y < 0.5
        assert 0.15 < width < 0.3
    assert max(amount for _x, _y, amount in found.motion) > 0.01  # the distractor moves a lot


def test_faces_steer_only_when_seen_twice_are_held_through_gaps_and_keep_the_face_they_follow():
    reach = round(1.0 / signals.FACE_S)
    lone = [(), ((0.2, 0.5, 0.2),), (), (), (), (), ()]
    assert face_aims(lone) == (None,) * len(lone)  # a single look: likely a false face
    gap = [((0.3, 0.5, 0.2),), ((0.32, 0.5, 0.2),), *([()] * (reach + 2))]
    aims = face_aims(gap)
    assert aims[:2 + reach] == ((0.3, 0.5), (0.32, 0.5), *[(0.32, 0.5)] * reach) and aims[-1] is None
    # Two faces: the crop stays with the one it follows while it is not much smaller than the other...
    two = [((0.7, 0.5, 0.25), (0.2, 0.5, 0.22)), ((0.7, 0.5, 0.22), (0.2, 0.5, 0.25)), ((0.7, 0.5, 0.21), (0.2, 0.5, 0.25))]
    assert [aim[0] for aim in face_aims(two)] == [0.7, 0.7, 0.7]
    # ...and moves to the biggest once it is.
    shrinking = [*two, ((0.2, 0.5, 0.3), (0.7, 0.5, 0.1)), ((0.2, 0.5, 0.3), (0.7, 0.5, 0.1))]
    assert face_aims(shrinking)[-1][0] == 0.2


@pytest.mark.slow  # scores and renders a follow reel end to end (~25 s on 2 cores): not in the fast tier
def test_a_vertical_follow_reel_keeps_the_face_in_the_middle_not_the_busier_distractor(face_clip, tiny_smolvlm,
                                                                                     cache, tmp_path):
    import dataclasses

    result = make_highlights(_request(face_clip, tiny_smolvlm, target_seconds=None, threshold=0.0, aspect="9:16",
                                      reframe="follow"), RUNTIME, tmp_path, cache=cache)
    with av.open(str(result.reel)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1080, 1920) and container.streams.audio
        columns = [face_media.skin_columns(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    assert len(columns) == round(result.selected_seconds * FPS)
    assert sum(1080 / 3 <= c <= 2 * 1080 / 3 for c in columns) >= 0.9 * len(columns)
    info, found = result.analysis.info, result.analysis.signals
    for path in crop_paths(ReelShape("9:16", "follow"), result.segments, info, found):
        assert np.abs(np.diff(path.xs)).max() <= max_step(info.width, info.fps) + 1  # glides, never jumps
    # Steering by motion alone follows the noise block instead: the face leaves the middle.
    blind = dataclasses.replace(found, faces=())
    kept = 0
    for segment, path in zip(result.segments, crop_paths(ReelShape("9:16", "follow"), result.segments, info, blind)):
        for k, left in enumerate(path.xs):
            kept += left + path.width / 3 <= face_media.face_x(segment.start + k / FPS, info.width) <= left + 2 * path.width / 3
    assert kept < 0.6 * len(columns)


# --- one decoding pass -------------------------------------------------------------------------


def test_the_signals_pass_keeps_exactly_the_frames_the_scan_would_decode(tmp_path):
    videos = [media_factory.make_video(tmp_path / "b.mp4", 6, fps=25, gop=40, bframes=2, audio=True),
              media_factory.make_video(tmp_path / "r.mkv", 4, fps=24, rotation=90)]
    for video in videos:
        info = media.probe_video(video)
        wanted = [*range(0, info.frame_count, 7), info.frame_count + 5, 3]  # past the end, out of order
        kept = signals.read_signals_and_frames(video, info, wanted)
        assert kept.signals == signals.read_signals(video, info)
        assert np.array_equal(kept.frames, media.read_frames(video, wanted, info, backend="pyav"))
    vfr = media_factory.make_vfr_video(tmp_path / "vfr.mp4", size=(128, 96))
    assert signals.read_signals_and_frames(vfr, media.probe_video(vfr), [0, 5]).frames is None  # the scan decodes


def test_a_scan_takes_its_frames_from_the_signals_pass_and_scores_as_its_own_decoding(shots_clip, tiny_smolvlm,
                                                                                      tmp_path, monkeypatch):
    from pipelines import isolation

    children, real_run = [], isolation.run

    def run(function, *args, **kwargs):
        children.append(getattr(function, "func", function).__name__)
        return real_run(function, *args, **kwargs)

    monkeypatch.setattr(isolation, "run", run)
    request = _request(shots_clip, tiny_smolvlm)
    one_pass = analyse(request, RUNTIME, cache=ScoreCache(tmp_path / "one"))
    assert children.count("read_signals_and_frames") == 1 and "read_frames" not in children
    # The same scan with the signals already known (cached) decodes its frames itself: same scores.
    children.clear()
    own = ScoreCache(tmp_path / "own")
    own.store(own.key("signals", video=one_pass.video_hash, version=signals.SIGNALS_VERSION), one_pass.signals.to_dict())
    decoded = analyse(request, RUNTIME, cache=own)
    assert "read_frames" in children and "read_signals_and_frames" not in children
    assert decoded.visual == one_pass.visual and not decoded.from_cache


@pytest.mark.parametrize("aspect, size", [("1:1", (1080, 1080)), ("16:9", (1920, 1080))])
def test_every_shape_has_its_standard_size_and_keeps_the_sound(moving_clip, tiny_smolvlm, cache, tmp_path, aspect, size):
    analysis = analyse(_request(moving_clip, tiny_smolvlm, aspect=aspect), RUNTIME, cache=cache)
    segments = Selection(target_seconds=4.0).choose(analysis.windows, analysis.duration, analysis.fps)
    result = finish(analysis, segments, tmp_path, shape=ReelShape(aspect, "follow"))
    got, has_audio, centres = _object_columns(result.reel)
    assert got == size and has_audio and len(centres) == round(result.selected_seconds * FPS)


def test_bad_shapes_are_refused_before_any_model_work(moving_clip, tiny_smolvlm, cache, monkeypatch):
    monkeypatch.setattr(Runtime, "load", lambda *a, **k: pytest.fail("model loaded for a bad request"))
    for changes, message in ((dict(aspect="4:5"), "reel shape"), (dict(reframe="track"), "Reframing"),
                             (dict(audio_weight=1.5), "audio weight"), (dict(windows="scenes"), "Windows must be")):
        with pytest.raises(BadInputError, match=message):
            analyse(_request(moving_clip, tiny_smolvlm, **changes), RUNTIME, cache=cache)


# --- the acceptance command ------------------------------------------------------------


@pytest.mark.slow  # the CLI end to end in a subprocess (~25 s on 2 cores): not in the fast tier
def test_cli_vertical_reel_with_snapping_and_sound(shots_clip, tiny_smolvlm, tmp_path):
    command = [sys.executable, "-m", "pipelines.highlights", str(shots_clip), "--model", str(tiny_smolvlm),
               "--criteria", "anything", "--target-seconds", "30", "--window-seconds", "5", "--snap", "shots",
               "--audio-weight", "0.5", "--aspect", "9:16", "--reframe", "follow", "--out", str(tmp_path / "out"),
               "--cache-dir", str(tmp_path / "cache"), "--dtype", "fp32", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    folder = tmp_path / "out" / "shots"
    document = json.loads((folder / "highlights.json").read_text())
    with av.open(str(folder / "highlights.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1080, 1920) and container.streams.audio
        seconds = float(stream.duration * stream.time_base)
    assert abs(seconds - document["selected_seconds"]) <= 0.1 and document["selected_seconds"] <= 30.0
    segments = [Window(0, s["start"], s["end"]) for s in document["segments"]]
    _edges_on_cuts(segments, CUTS, 2.5, 34.0)
    assert document["shape"] == {"aspect": "9:16", "reframe": "follow", "size": [1080, 1920]}


def test_when_the_signals_pass_fails_the_json_says_so_and_the_reel_is_as_before(tmp_path):
    from pipelines.highlights import Analysis, Segment, exports
    from pipelines.highlights.signals import Signals

    info = media.VideoInfo("/x/match.mp4", 30.0, 10.0, 300, 160, 120, True)
    windows = [Window(i, 5.0 * i, 5.0 * i + 5, 0.1 * i) for i in range(6)]
    missing = Signals.missing("Shots and sound were not measured: Reading match.mp4 took longer than 120 s")
    analysis = Analysis("/x/match.mp4", "ab" * 32, info, "m", "tiny", "fp32", "goals", 5.0, 0.0, 2, windows,
                        visual=tuple(w.score for w in windows), signals=missing)
    segments = Selection(target_seconds=10).choose(analysis.windows, analysis.duration, analysis.fps, analysis.cuts, 2.5)
    assert segments == [Segment(20.0, 30.0, 0.5)]  # no cuts: today's edges
    document = json.loads(exports.write_json(tmp_path / "h.json", analysis, segments).read_text())
    assert document["shots"] == [] and "took longer" in document["signals_note"]
    assert "No audio signal" in document["audio_note"]


def test_crops_are_the_largest_of_their_aspect_and_slide_along_the_free_axis():
    from pipelines.highlights import Segment
    from pipelines.highlights.signals import Signals

    assert crop_size(1920, 1080, "9:16") == (606, 1080) and crop_size(1920, 1080, "1:1") == (1080, 1080)
    assert crop_size(1080, 1920, "16:9") == (1080, 606) and crop_size(1080, 1920, "9:16") == (1080, 1920)
    # A portrait video made wide: the crop slides up and down, toward where things move (low).
    info = media.VideoInfo("/x/tall.mp4", 10.0, 10.0, 100, 360, 640, False)
    moving_low = Signals((), None, tuple((0.5, 0.9, 0.01) for _ in range(100)))
    (path,) = crop_paths(ReelShape("16:9", "follow"), [Segment(0.0, 10.0)], info, moving_low)
    assert (path.width, path.height) == (360, 202) and set(path.xs) == {0}
    assert path.ys[0] == path.ys[-1] == 640 - 202  # clamped to the frame's bottom edge
    (still,) = crop_paths(ReelShape("16:9", "center"), [Segment(0.0, 10.0)], info, moving_low)
    assert set(still.ys) == {(640 - 202) // 2}
    assert crop_paths(ReelShape(), [Segment(0.0, 10.0)], info, moving_low) is None
