"""Pure parts of the highlight generator: windows, selection (property-based), exports."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import BadInputError
from pipelines.highlights import Analysis, Segment, Window, exports, make_windows, segments_from_rows, select
from pipelines.highlights.selection import merge, selected_flags, total_seconds
from pipelines.highlights import default_frames_per_window
from pipelines.highlights.windows import check_window_settings, chunks, frame_indices
from pipelines.media import VideoInfo

EPS = 1e-6


# --- windows ---------------------------------------------------------------------------------


def test_windows_cover_the_video_and_the_last_one_is_shorter():
    windows = make_windows(23.0, 5.0)
    assert [(w.start, w.end) for w in windows] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert [w.index for w in windows] == list(range(5))


def test_overlapping_windows_step_by_window_minus_overlap():
    windows = make_windows(20.0, 10.0, overlap_seconds=5.0)
    assert [(w.start, w.end) for w in windows] == [(0, 10), (5, 15), (10, 20)]


def test_a_sliver_at_the_end_is_not_a_window():
    assert make_windows(10.2, 5.0)[-1].end == 10.0


@pytest.mark.parametrize("window, overlap, frames", [(1, 0, 4), (61, 0, 4), (10, 6, 4), (10, -1, 4), (10, 0, 0), (10, 0, 17)])
def test_window_settings_outside_the_limits_are_refused(window, overlap, frames):
    with pytest.raises(BadInputError):
        check_window_settings(window, overlap, frames)


def test_frame_indices_spread_inside_the_window_and_repeat_when_short():
    assert frame_indices(Window(0, 10.0, 20.0), 10.0, 1200, 4) == (112, 137, 162, 187)
    assert frame_indices(Window(0, 0.0, 0.2), 10.0, 1200, 4) == (0, 0, 1, 1)
    assert frame_indices(Window(0, 119.5, 120.0), 10.0, 1200, 2) == (1196, 1198)


def test_default_frames_follow_the_window_length_per_family():
    assert [default_frames_per_window("smolvlm", w) for w in (2, 10, 30, 60)] == [2, 2, 6, 12]
    assert [default_frames_per_window("perception_lm", w) for w in (2, 10, 30, 60)] == [2, 4, 12, 16]


def test_decoding_chunks_are_consecutive_and_bounded():
    plan = [(0, 1), (2, 3), (3, 4), (5, 6), (7, 8)]
    assert chunks(plan, frame_bytes=10, budget=40) == [[0, 1], [2, 3], [4]]
    assert chunks(plan, frame_bytes=10, budget=5) == [[0], [1], [2], [3], [4]]  # one window at least


# --- selection: properties -------------------------------------------------------------------


@st.composite
def scored_video(draw):
    duration = draw(st.floats(min_value=3.0, max_value=900.0))
    window = draw(st.floats(min_value=2.0, max_value=60.0))
    overlap = draw(st.sampled_from([0.0, 0.0, window / 4, window / 2]))
    windows = make_windows(duration, window, overlap)
    scores = draw(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=len(windows), max_size=len(windows)))
    return duration, window, [Window(w.index, w.start, w.end, s) for w, s in zip(windows, scores)]


def _check_well_formed(segments, duration):
    for segment in segments:
        assert -EPS <= segment.start < segment.end <= duration + EPS
    for earlier, later in zip(segments, segments[1:]):
        assert earlier.end < later.start  # chronological, no overlap, not even touching (merged)


@settings(max_examples=150, deadline=None)
@given(scored_video(), st.floats(min_value=1.0, max_value=600.0))
def test_target_selection_fills_the_target_without_exceeding_it(video, target):
    duration, window, windows = video
    segments = select(windows, duration, target_seconds=target)
    _check_well_formed(segments, duration)
    total = total_seconds(segments)
    assert total <= target + EPS
    covered = total_seconds(merge(Segment(w.start, w.end) for w in windows))
    if covered >= target:
        assert total >= target - window - EPS
    else:
        assert total == pytest.approx(covered)


@settings(max_examples=100, deadline=None)
@given(scored_video(), st.floats(min_value=1.0, max_value=600.0), st.floats(min_value=0.0, max_value=3.0),
       st.sampled_from([None, 10.0, 25.0, 29.97, 30.0]))
def test_padding_and_frame_snapping_keep_every_guarantee(video, target, padding, fps):
    duration, window, windows = video
    segments = select(windows, duration, target_seconds=target, padding_seconds=padding, fps=fps)
    _check_well_formed(segments, duration)
    assert total_seconds(segments) <= target + EPS
    if fps:
        for segment in segments:  # every cut on a frame boundary
            assert segment.start * fps == pytest.approx(round(segment.start * fps), abs=1e-3)
            assert segment.end * fps == pytest.approx(round(segment.end * fps), abs=1e-3)


@settings(max_examples=100, deadline=None)
@given(scored_video(), st.floats(min_value=0.0, max_value=1.0))
def test_threshold_selection_keeps_exactly_the_windows_at_or_above_it(video, threshold):
    duration, _window, windows = video
    segments = select(windows, duration, threshold=threshold)
    _check_well_formed(segments, duration)
    flags = selected_flags(windows, segments)
    for window, flag in zip(windows, flags):
        if window.score >= threshold:
            assert flag
    expected = merge(Segment(w.start, w.end, w.score) for w in windows if w.score >= threshold)
    assert [(s.start, s.end) for s in segments] == [(s.start, s.end) for s in expected]


def test_the_best_windows_win_and_come_back_in_time_order():
    windows = [Window(i, 10.0 * i, 10.0 * i + 10, s) for i, s in enumerate([0.1, 0.9, 0.2, 0.8, 0.95, 0.3])]
    segments = select(windows, 60.0, target_seconds=30)
    assert [(s.start, s.end) for s in segments] == [(10, 20), (30, 50)]
    assert segments[1].score == 0.95  # a merged segment keeps its best window's score


def test_a_selection_needs_a_target_or_a_threshold():
    with pytest.raises(BadInputError, match="target reel length or a score threshold"):
        select([Window(0, 0, 10, 0.5)], 10.0)


# --- hand edits ------------------------------------------------------------------------------


def test_table_rows_are_cleaned_sorted_merged_and_clamped():
    rows = [[50, 60, 0.4, True], [5, 12, None, True], [10, 20, 0.9, "true"], [30, 40, 0.8, False], [None, None, None, None],
            [110, 500, 0.1, True]]
    segments = segments_from_rows(rows, duration=120.0, fps=10.0)
    assert [(s.start, s.end) for s in segments] == [(5, 20), (50, 60), (110, 120)]


@pytest.mark.parametrize("row", [[10, 5, None, True], ["abc", 5, None, True], [130, 140, None, True]])
def test_bad_table_rows_name_the_row(row):
    with pytest.raises(BadInputError, match="Row 2"):
        segments_from_rows([[0, 1, None, True], row], duration=120.0)


# --- exports ---------------------------------------------------------------------------------


def _analysis(windows) -> Analysis:
    info = VideoInfo("/somewhere/match.mp4", 120.0, 25.0, 3000, 320, 240, True)
    return Analysis("/somewhere/match.mp4", "ab" * 32, info, "model-dir", "Local: tiny", "fp32", "goals", 10.0, 0.0, 4, windows)


def test_exports_describe_every_window_and_the_reel_timeline(tmp_path):
    windows = [Window(i, 10.0 * i, 10.0 * i + 10, 0.1 * i) for i in range(12)]
    segments = [Segment(70.0, 80.0, 0.7), Segment(3610.48, 3620.48, 0.9)]
    files = exports.write_all(_analysis(windows), segments, tmp_path, {"target_seconds": 20})
    document = json.loads(files["json"].read_text())
    assert document["video"] == "match.mp4" and "/somewhere" not in files["json"].read_text()
    assert document["selected_seconds"] == 20.0 and document["criteria"] == "goals"
    assert [w["selected"] for w in document["windows"]] == [i == 7 for i in range(12)]
    assert set(document["windows"][0]) == {"index", "start", "end", "score", "selected"}
    srt = files["srt"].read_text()
    assert "1\n00:00:00,000 --> 00:00:10,000\nHighlight 1 · source 1:10-1:20 · score 0.70" in srt
    assert "2\n00:00:10,000 --> 00:00:20,000\nHighlight 2 · source 1:00:10-1:00:20" in srt
    edl = files["edl"].read_text().splitlines()
    assert edl[:2] == ["TITLE: Highlights", "FCM: NON-DROP FRAME"]
    assert edl[3] == "001  AX       AA/V  C        00:01:10:00 00:01:20:00 00:00:00:00 00:00:10:00"
    assert edl[4] == "* FROM CLIP NAME: match.mp4"
    assert edl[6] == "002  AX       AA/V  C        01:00:10:12 01:00:20:12 00:00:10:00 00:00:20:00"
    xspf = files["xspf"].read_text()
    assert "<vlc:option>start-time=70.000</vlc:option>" in xspf and xspf.count("<track>") == 2
    assert all(math.isfinite(w["score"]) for w in document["windows"])
