"""Deterministic ids, event-time windows, the injectable clock and time conversions."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from ibet.clock import (
    Clock,
    ManualClock,
    SystemClock,
    datetime_to_ns,
    ns_from_seconds,
    ns_to_datetime_utc,
    seconds_from_ns,
)
from ibet.ids import alert_id, delivery_key, event_id, time_window_start_ns
from ibet.messages import BorderEventType

T0 = 1_718_000_000_000_000_000
SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS

EVENT = ("trk-17", "crossing", T0)
DELIVERY = ("alr-0123456789abcdef", "usbp-blaine", "webhook")


@pytest.mark.parametrize(
    ("make", "args", "pattern"),
    [
        (event_id, EVENT, r"evt-[0-9a-f]{16}"),
        (alert_id, ("evt-0123456789abcdef",), r"alr-[0-9a-f]{16}"),
        (delivery_key, DELIVERY, r"dlv-[0-9a-f]{16}"),
    ],
)
def test_ids_are_deterministic_and_well_formed(make, args, pattern):
    first = make(*args)
    assert re.fullmatch(pattern, first)
    assert make(*args) == first


def test_ids_are_pinned():
    # Stored format: these values live in outboxes and partners' dedup tables. If this fails,
    # the id scheme changed and replays after an upgrade would deliver alerts again.
    assert event_id(*EVENT) == "evt-07fbf83fd87c19d4"
    assert alert_id("evt-0123456789abcdef") == "alr-da93822348134689"
    assert delivery_key(*DELIVERY) == "dlv-82118f618d6d4cf9"


@pytest.mark.parametrize(
    "other",
    [
        ("trk-18", "crossing", T0),
        ("trk-17", "approach", T0),
        ("trk-17", "crossing", T0 + MINUTE_NS),
    ],
    ids=["track", "type", "window"],
)
def test_event_id_differs_when_any_input_differs(other):
    assert event_id(*other) != event_id(*EVENT)


@pytest.mark.parametrize(
    "other",
    [
        ("alr-0123456789abcdee", "usbp-blaine", "webhook"),
        ("alr-0123456789abcdef", "rcmp-e-div", "webhook"),
        ("alr-0123456789abcdef", "usbp-blaine", "email"),
        ("alr-0123456789abcdefu", "sbp-blaine", "webhook"),  # same characters, boundary moved
    ],
    ids=["alert", "partner", "channel", "shifted-boundary"],
)
def test_delivery_key_differs_when_any_input_differs(other):
    assert delivery_key(*other) != delivery_key(*DELIVERY)


def test_alert_id_differs_per_event_and_from_the_event_id():
    assert alert_id("evt-a") != alert_id("evt-b")
    assert alert_id("evt-a")[4:] != event_id("evt-a", "crossing", 0)[4:]


def test_event_type_enum_and_value_give_the_same_id():
    assert event_id("trk-17", BorderEventType.LOST_NEAR_BORDER, T0) == event_id("trk-17", "lost_near_border", T0)
    assert event_id("trk-17", "crossing", np.int64(T0)) == event_id(*EVENT)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: event_id("", "crossing", T0), ValueError),
        (lambda: event_id("trk-17", "teleport", T0), ValueError),
        (lambda: event_id("trk-17", "crossing", float(T0)), TypeError),
        (lambda: event_id("trk-17", "crossing", True), TypeError),
        (lambda: alert_id(""), ValueError),
        (lambda: delivery_key("alr-1", "usbp-blaine", ""), ValueError),
        (lambda: delivery_key("alr-1", None, "email"), ValueError),
    ],
)
def test_invalid_id_inputs_raise(call, error):
    with pytest.raises(error):
        call()


@pytest.mark.parametrize(
    ("ts_ns", "window_ns", "start_ns"),
    [
        (0, 10, 0),
        (9, 10, 0),
        (10, 10, 10),
        (25, 10, 20),
        (-1, 10, -10),
        (T0 + 59 * SECOND_NS, MINUTE_NS, T0 + 40 * SECOND_NS),  # T0 is hh:mm:20
        (T0 + 1, 1, T0 + 1),
    ],
)
def test_time_window_start(ts_ns, window_ns, start_ns):
    start = time_window_start_ns(ts_ns, window_ns)
    assert start == start_ns
    assert start <= ts_ns < start + window_ns
    assert start % window_ns == 0


def test_same_window_same_event_id():
    a = time_window_start_ns(T0 + 1, MINUTE_NS)
    b = time_window_start_ns(T0 + MINUTE_NS // 2, MINUTE_NS)
    c = time_window_start_ns(T0 + 2 * MINUTE_NS, MINUTE_NS)
    assert a == b != c
    assert event_id("trk-17", "crossing", a) == event_id("trk-17", "crossing", b) != event_id("trk-17", "crossing", c)


@pytest.mark.parametrize(("window_ns", "error"), [(0, ValueError), (-10, ValueError), (1.5, TypeError)])
def test_time_window_rejects_bad_windows(window_ns, error):
    with pytest.raises(error):
        time_window_start_ns(T0, window_ns)


# Clock


def test_manual_clock_moves_only_when_told():
    clock = ManualClock(start_ns=T0)
    assert clock.now_ns() == T0
    assert clock.now_ns() == T0
    clock.advance(1.5)
    assert clock.now_ns() == T0 + 1_500_000_000
    clock.sleep(0.25)
    assert clock.now_ns() == T0 + 1_750_000_000
    clock.advance(0)
    assert clock.now_ns() == T0 + 1_750_000_000


@pytest.mark.parametrize("seconds", [-0.001, math.nan, math.inf])
def test_manual_clock_rejects_bad_steps(seconds):
    clock = ManualClock(start_ns=T0)
    with pytest.raises(ValueError):
        clock.advance(seconds)
    assert clock.now_ns() == T0


def test_manual_clock_needs_an_int_start():
    with pytest.raises(TypeError):
        ManualClock(start_ns=1.5)


def test_clocks_satisfy_the_protocol():
    assert isinstance(ManualClock(start_ns=T0), Clock)
    assert isinstance(SystemClock(), Clock)
    now = SystemClock().now_ns()
    assert isinstance(now, int) and now > T0  # later than 2024-06-10


@pytest.mark.parametrize(
    ("seconds", "ns"),
    [(0, 0), (1, 1_000_000_000), (1.5, 1_500_000_000), (0.1, 100_000_000), (1e-9, 1), (-2.5, -2_500_000_000), (1_718_000_000, T0)],
)
def test_ns_from_seconds(seconds, ns):
    assert ns_from_seconds(seconds) == ns
    assert isinstance(ns_from_seconds(seconds), int)


def test_seconds_from_ns():
    assert seconds_from_ns(1_500_000_000) == 1.5
    assert seconds_from_ns(0) == 0.0


@pytest.mark.parametrize(
    ("ns", "dt"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (T0, datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC)),
        (T0 + 123_456_789, datetime(2024, 6, 10, 6, 13, 20, 123_456, tzinfo=UTC)),  # floored to µs
        (-1, datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    ],
)
def test_ns_to_datetime_utc(ns, dt):
    got = ns_to_datetime_utc(ns)
    assert got == dt
    assert got.utcoffset() == timedelta(0)
    assert datetime_to_ns(got) == ns - ns % 1_000


def test_datetime_to_ns_handles_any_zone():
    pacific = timezone(timedelta(hours=-7))
    assert datetime_to_ns(datetime(2024, 6, 9, 23, 13, 20, tzinfo=pacific)) == T0


def test_naive_datetime_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        datetime_to_ns(datetime(2024, 6, 10, 6, 13, 20))
