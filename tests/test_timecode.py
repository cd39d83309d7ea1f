"""The one time formatter, at its edges (pipelines/timecode.py)."""

from __future__ import annotations

import math

import pytest

from pipelines.timecode import clock, srt_time


@pytest.mark.parametrize("seconds, shown", [
    (0, "0:00"),
    (0.999, "0:00"),
    (59.6, "0:59"),  # floored, as a player shows it: not "1:00"
    (59.99, "0:59"),
    (60, "1:00"),
    (0.1 * 30, "0:03"),  # 3.0000000000000004 and friends: float error is not a second
    (2.9999999999, "0:03"),
    (3599.5, "59:59"),
    (3600, "1:00:00"),
    (3661.9, "1:01:01"),
    (36000, "10:00:00"),
    (-0.0001, "0:00"),  # float error from a subtraction
    (-5, "0:00"),
])
def test_clock(seconds, shown):
    assert clock(seconds) == shown


@pytest.mark.parametrize("seconds, decimals, shown", [
    (0, 2, "0:00.00"),
    (59.6, 2, "0:59.60"),
    (59.999, 2, "0:59.99"),
    (0.29, 2, "0:00.29"),  # 0.29 * 100 is 28.999999999999996
    (1 / 3, 2, "0:00.33"),
    (3599.5, 1, "59:59.5"),
    (3600.25, 2, "1:00:00.25"),
])
def test_clock_with_fractions(seconds, decimals, shown):
    assert clock(seconds, decimals) == shown


@pytest.mark.parametrize("seconds, shown", [
    (0, "00:00:00,000"),
    (59.6, "00:00:59,600"),
    (59.9996, "00:01:00,000"),  # nearest millisecond
    (3599.5, "00:59:59,500"),
    (3723.004, "01:02:03,004"),
    (-1, "00:00:00,000"),
])
def test_srt_time(seconds, shown):
    assert srt_time(seconds) == shown


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_times_that_cannot_be_printed_raise(bad):
    with pytest.raises(ValueError):
        clock(bad)
    with pytest.raises(ValueError):
        srt_time(bad)
