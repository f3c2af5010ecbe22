"""EGM96 geoid heights against NGA's own check values, and ST 0601 tag 15 (MSL) turned into ellipsoid height."""

from __future__ import annotations

import doctest
import math
import struct

import pytest

import ibet.geoid
from ibet.geoid import ellipsoid_to_msl_m, geoid_height_m, msl_to_ellipsoid_m
from ibet.klv import ITEMS, UAS_LS_KEY, ber_length, decode_st0601, st0601_checksum

# NGA's test points for EGM96 (the F477 program's OUTINTPT.DAT): spherical-harmonic values, not this grid's.
NGA_CHECK_POINTS = [
    (38.6281550, 269.7791550, -31.628), (-14.6212170, 305.0211140, -2.969), (46.8743190, 102.4487290, -43.575),
    (-23.6174460, 133.8747120, 15.871), (38.6254730, 359.9995000, 50.066), (-0.4667440, 0.0023000, 17.329),
]


@pytest.mark.parametrize(("lat", "lon", "expected"), NGA_CHECK_POINTS)
def test_geoid_heights_match_ngas_check_values_to_the_grids_interpolation_accuracy(lat, lon, expected):
    assert geoid_height_m(lat, lon) == pytest.approx(expected, abs=0.06)  # measured: at most 0.056 m


def test_the_modules_docstring_example_holds():
    assert doctest.testmod(ibet.geoid).failed == 0  # the suite runs no --doctest-modules; this keeps the example true


def test_longitudes_wrap_and_negative_longitudes_are_west():
    assert geoid_height_m(38.628155, -90.220845) == pytest.approx(geoid_height_m(38.628155, 269.779155), abs=1e-9)
    assert geoid_height_m(10.0, 359.99) == pytest.approx(geoid_height_m(10.0, -0.01), abs=1e-9)
    assert geoid_height_m(10.0, 0.0) == pytest.approx(geoid_height_m(10.0, 360.0), abs=1e-9)


def test_poles_and_the_border_give_finite_plausible_heights():
    # WW15MGH.DAC's pole rows: one value each, whatever the longitude
    assert [geoid_height_m(90.0, lon) for lon in (0.0, 123.0, -45.0)] == pytest.approx([13.61] * 3, abs=1e-9)
    assert [geoid_height_m(-90.0, lon) for lon in (0.0, 123.0, -45.0)] == pytest.approx([-29.53] * 3, abs=1e-9)
    # along the US-Canada border south of Alaska the geoid lies 10-40 m below the ellipsoid (EGM96 charts); no NGA value to hand
    for lat, lon in ((49.0, -122.75), (45.005, -72.1), (42.33, -83.05), (49.0, -95.15)):
        assert -40.0 < geoid_height_m(lat, lon) < -10.0


@pytest.mark.parametrize(("lat", "lon"), [(math.nan, 0.0), (0.0, math.inf), (91.0, 0.0), (-90.5, 10.0)])
def test_bad_positions_are_refused(lat, lon):
    with pytest.raises(ValueError):
        geoid_height_m(lat, lon)


def test_msl_and_ellipsoid_heights_convert_both_ways():
    h = msl_to_ellipsoid_m(49.0, -122.75, 100.0)
    assert h == pytest.approx(100.0 + geoid_height_m(49.0, -122.75))
    assert ellipsoid_to_msl_m(49.0, -122.75, h) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        msl_to_ellipsoid_m(49.0, -122.75, math.nan)


def packet(items: dict[int, float]) -> bytes:
    """An ST 0601 packet of these items, built item by item (tag, BER length, value) and checksummed."""
    body = b"".join(bytes([tag]) + ber_length(ITEMS[tag].size) + ITEMS[tag].encode(value) for tag, value in items.items())
    body += bytes([1, 2])
    head = UAS_LS_KEY + ber_length(len(body) + 2) + body
    return head + struct.pack(">H", st0601_checksum(head))


def test_a_packet_with_only_tag_15_gets_its_ellipsoid_height_from_egm96_and_says_so():
    telemetry = decode_st0601(packet({2: 1_784_149_200_000_000, 13: 49.0, 14: -122.75, 15: 150.0}))
    assert telemetry.sensor_alt_ref == "msl_egm96"
    assert telemetry.sensor_alt_m == pytest.approx(150.0 - 20.41, abs=0.35)  # tag 15's step is 0.3 m
    with_75 = decode_st0601(packet({13: 49.0, 14: -122.75, 15: 150.0, 75: 130.0}))
    assert with_75.sensor_alt_ref == "ellipsoid" and with_75.sensor_alt_m == pytest.approx(130.0, abs=0.3)
    no_position = decode_st0601(packet({15: 150.0}))
    assert no_position.sensor_alt_m is None and no_position.sensor_alt_ref is None
