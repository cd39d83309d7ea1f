"""The user-boundary benchmark's own arithmetic and its bare side, on the tiny checkpoint (the
figures come from ``python -m benchmarks.run --only boundary``)."""

from __future__ import annotations

import math

import pytest

from benchmarks import boundary


def test_stream_timing_reads_first_text_and_speed_from_arrivals():
    arrivals = [(0.4, ""), (1.0, "a"), (1.2, "a"), (1.5, "abc"), (2.0, "abcdef")]
    timing = boundary.stream_timing(arrivals, tokens=5)
    assert timing.ttft_s == 1.0
    assert timing.tokens_per_s == pytest.approx(4 / 1.0)  # 4 tokens after the first, over 1 s
    assert timing.chars_per_s == pytest.approx(5 / 1.0)
    assert timing.updates == 5


def test_stream_timing_refuses_an_answer_that_never_came():
    with pytest.raises(RuntimeError, match="empty"):
        boundary.stream_timing([(0.1, ""), (0.2, "")], tokens=3)


def test_a_single_update_has_no_speed():
    timing = boundary.stream_timing([(0.5, "all at once")], tokens=1)
    assert timing.ttft_s == 0.5 and math.isnan(timing.tokens_per_s)


def test_the_bare_side_times_preparation_and_generation(tiny_smolvlm, sample_image):
    timing = boundary.Bare(tiny_smolvlm, "fp32").chat([sample_image])
    assert timing.ttft_s > 0 and timing.tokens_per_s > 0 and timing.tokens == boundary.NEW_TOKENS


def test_the_log_check_fails_on_a_traceback():
    boundary._check_log("INFO all good\n")
    with pytest.raises(RuntimeError, match="Traceback"):
        boundary._check_log("INFO start\nTraceback (most recent call last):\n  boom\n")
