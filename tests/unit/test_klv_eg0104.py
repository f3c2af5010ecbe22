"""MISB EG 0104 KLV: two published sample packets, hand-built packets from raw bytes, round trips, and every
kind of bad packet (truncated, wrong key, bad BER length, wrong value length, duplicate) rejected with KlvError."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_samples import telemetry

from ibet import klv_eg0104
from ibet.exceptions import MessageDecodeError
from ibet.klv import UAS_LS_KEY, KlvError, encode_st0601
from ibet.klv_eg0104 import EG0104_KEY, Eg0104Reading, decode_eg0104, encode_eg0104, is_eg0104
from ibet.messages import Telemetry

# The ULs, written out again here from EG 0104.5 as jmisb and KWIVER give them (not taken from the module).
TIME = "060E2B34010101030702010101050000"  # User Defined Time Stamp, uint64 µs since 1970
HEADING = "060E2B34010101070701100106000000"  # Platform Heading Angle, float32 degrees
PITCH = "060E2B34010101070701100105000000"
ROLL = "060E2B34010101070701100104000000"
LAT = "060E2B34010101030701020102040200"  # Device Latitude, float64 degrees
LON = "060E2B34010101030701020102060200"
ALT = "060E2B34010101010701020102020000"  # Device Altitude, float32 metres above MSL
HFOV = "060E2B34010101020420020101080000"
VFOV = "060E2B340101010704200201010A0100"
SLANT = "060E2B34010101010701080101000000"
FC_LAT = "060E2B34010101010701020103020000"
FC_LON = "060E2B34010101010701020103040000"
FC_ELEV = "060E2B340101010A0701020103160000"
SENSOR_ROLL = "060E2B34010101010701100101000000"
ANGLE_TO_NORTH = "060E2B34010101010701100102000000"
OBLIQUITY = "060E2B34010101010701100103000000"
DEVICE_DESIGNATION = "060E2B34010101010101200100000000"  # text: known to EG 0104, not used here
SECURITY_LS = "060E2B34020301010E01030302000000"  # a nested ST 0102 local set: skipped

# jmisb api/src/test/java/org/jmisb/api/klv/eg0104/PredatorUavMessageFactoryTest.java, checkBaseParse
# (WestRidgeSystems/jmisb, MIT licence): a whole EG 0104.5 packet, 31 items, BER long-form length 0x02D0.
JMISB_SAMPLE = bytes.fromhex(
    "060E2B34020101010E010102010100008202D0060E2B340101010707011001050000000441FD5C29060E2B340101010A"
    "070102010316000004447A6AE1060E2B340101010704200201010A0100044235999A060E2B3401010101010505000000"
    "000003313030060E2B34010101010101200100000000023130060E2B340101010707011001040000000441B07AE1060E"
    "2B340101010107010101000000000132060E2B340101010707011001060000000441A0147B060E2B3401010103070201"
    "0101050000080003F3B35EDE0A7C060E2B3401010101042001020101000007454F204E6F7365060E2B34010101010702"
    "0102010100000E3230303530333331303830343532060E2B340101010107020102070100000E32303035303333313037"
    "35303531060E2B3401010101070102010302000008C04165134A876329060E2B34010101010701020103040000084061"
    "545F7131410D060E2B340101010107010902010000000445E1CB90060E2B3401010101070102010202000004454A18A9"
    "060E2B3401010103070102010204020008C0416B46465EABFE060E2B34010101030701020102060200084061522D320E"
    "B74F060E2B3401010101070108010100000004460ED800060E2B3401010101070110010100000004BFB9041D060E2B34"
    "010101010701100102000000044245A767060E2B34010101010701100103000000044349547B060E2B34010101020420"
    "020101080000043F40B00B060E2B3401010103070102010307010008C04164EC27BEEAE8060E2B340101010307010201"
    "030B01000840615464FA374924060E2B3401010103070102010308010008C041650763005DB2060E2B34010101030701"
    "0201030C0100084061546C1A2602DB060E2B3401010103070102010309010008C041653964A09B3D060E2B3401010103"
    "07010201030D0100084061545A0D9ADDEF060E2B340101010307010201030A010008C041651EE18B4E23060E2B340101"
    "010307010201030E010008406154531DDBCD29"
)

# KWIVER arrows/klv/tests/test_klv_0104.cxx, read_write_0104_packet (Kitware/kwiver, BSD-3 licence): the
# header 060E2B34 02010101 0E010102 01010000 8202E2 and these 738 bytes of items (text items, corners, an
# empty ST 0102 security local set included).
KWIVER_SAMPLE = EG0104_KEY + bytes.fromhex("8202E2") + bytes.fromhex(
    "060E2B34010101010101200100000000054D51312D42060E2B34010101010105050000000000023432060E2B34010101"
    "01042001020101000002454F060E2B340101010204200201010800000443109241060E2B340101010704200201010A01"
    "00044318A4C5060E2B340101010107010101000000000355544D060E2B3401010101070102010202000004465DBAE106"
    "0E2B3401010103070102010204020008404E16A2228E2D44060E2B340101010307010201020602000840600DA802941B"
    "50060E2B3401010101070102010302000008C02515B3F6822B68060E2B3401010101070102010304000008403D286B7C"
    "B250D6060E2B3401010103070102010307010008C02528C64FDB09A6060E2B3401010103070102010308010008C02521"
    "E28DFF31A4060E2B3401010103070102010309010008C0251AFF1950331E060E2B340101010307010201030A010008C0"
    "25141B5ACF596F060E2B340101010307010201030B010008403D209B2D17903F060E2B340101010307010201030C0100"
    "08403D240D0E057C41060E2B340101010307010201030D010008403D277EC85CFB84060E2B340101010307010201030E"
    "010008403D2AF0A79D685B060E2B340101010A07010201031600000445490098060E2B34010101010701080101000000"
    "044785F77E060E2B34010101010701090201000000044434B479060E2B34010101010701100101000000044330DD8D06"
    "0E2B34010101010701100102000000044320B81E060E2B340101010107011001030000000443AE656B060E2B34010101"
    "070701100104000000044059F9B4060E2B3401010107070110010500000004BEDCF1BA060E2B34010101070701100106"
    "00000004431FF970060E2B3401010103070201010105000008000459F4A6AA4AA8060E2B340101010107020102010100"
    "000F313939353034313654313334343534060E2B340101010107020102070100000F3139393530343136543133343435"
    "34060E2B34020301010E0103030200000000"
)


def f32(value: float) -> bytes:
    return struct.pack(">f", value)


def f64(value: float) -> bytes:
    return struct.pack(">d", value)


def as_f32(value: float) -> float:
    """What a float32 item carries for ``value``."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def ber(length: int) -> bytes:
    """BER length, written out independently of ibet.klv.ber_length."""
    if length < 128:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def item(ul: str, value: bytes) -> bytes:
    return bytes.fromhex(ul) + ber(len(value)) + value


def packet(*items: bytes) -> bytes:
    body = b"".join(items)
    return EG0104_KEY + ber(len(body)) + body


def test_decodes_the_jmisb_sample():
    reading = decode_eg0104(JMISB_SAMPLE)
    t = reading.telemetry
    # jmisb's expected values (its assertions, to 4 decimals)
    assert t.precision_ts_us == 1_112_376_646_437_500
    assert t.platform_heading_deg == pytest.approx(20.01, abs=1e-4)
    assert t.platform_pitch_deg == pytest.approx(31.67, abs=1e-4)
    assert t.platform_roll_deg == pytest.approx(22.06, abs=1e-4)
    assert t.sensor_lat_deg == pytest.approx(-34.8381, abs=1e-4)
    assert t.sensor_lon_deg == pytest.approx(138.5680, abs=1e-4)
    assert reading.sensor_msl_alt_m == pytest.approx(3233.5413, abs=1e-4)
    assert t.hfov_deg == pytest.approx(0.7527, abs=1e-4)
    assert t.vfov_deg == pytest.approx(45.4, abs=1e-4)
    assert t.slant_range_m == pytest.approx(9142.0, abs=1e-3)
    assert t.frame_center_lat_deg == pytest.approx(-34.7897, abs=1e-4)
    assert t.frame_center_lon_deg == pytest.approx(138.6367, abs=1e-4)
    assert t.frame_center_elev_m == pytest.approx(1001.67, abs=1e-4)
    assert reading.sensor_roll_angle_deg == pytest.approx(-1.4454, abs=1e-4)
    assert reading.angle_to_north_deg == pytest.approx(49.4135, abs=1e-4)
    assert reading.obliquity_angle_deg == pytest.approx(201.33, abs=1e-4)
    # EG 0104 altitudes are above MSL and it has no platform-relative sensor angles
    assert t.sensor_alt_m is None and t.sensor_alt_ref is None
    assert t.sensor_rel_azimuth_deg is None and t.sensor_rel_elevation_deg is None and t.sensor_rel_roll_deg is None


def test_decodes_the_kwiver_sample():
    reading = decode_eg0104(KWIVER_SAMPLE)
    t = reading.telemetry
    # KWIVER's expected values: doubles exactly, float32 items as the float32 literals it gives
    assert t.precision_ts_us == 0x000459F4A6AA4AA8
    assert t.frame_center_lat_deg == -10.542388633146132
    assert t.frame_center_lon_deg == 29.157890122923014
    assert t.sensor_lat_deg == 60.176822966978335
    assert t.sensor_lon_deg == 128.42675904204452
    assert t.frame_center_elev_m == as_f32(3216.03723)
    assert t.slant_range_m == as_f32(68590.9832)
    assert t.platform_roll_deg == as_f32(3.40586566)
    assert t.platform_pitch_deg == as_f32(-0.431531724)
    assert t.platform_heading_deg == as_f32(159.974365)
    assert t.hfov_deg == as_f32(144.571298)
    assert t.vfov_deg == as_f32(152.643626)
    assert reading.sensor_msl_alt_m == as_f32(14190.7195)
    assert reading.sensor_roll_angle_deg == as_f32(176.865437)
    assert reading.angle_to_north_deg == as_f32(160.719211)
    assert reading.obliquity_angle_deg == as_f32(348.792324)


def test_decodes_a_hand_built_packet():
    data = packet(
        item(TIME, struct.pack(">Q", 1_718_000_000_123_456)),
        item(DEVICE_DESIGNATION, b"MQ-1"),
        item(HEADING, f32(359.5)),
        item(PITCH, f32(-4.25)),
        item(ROLL, f32(12.0)),
        item(LAT, f64(49.0021)),
        item(LON, f64(-122.7566)),
        item(ALT, f32(152.5)),
        item(HFOV, f32(62.25)),
        item(VFOV, f32(48.75)),
        item(SLANT, f32(212.75)),
        item(FC_LAT, f64(49.0009)),
        item(FC_LON, f64(-122.7551)),
        item(FC_ELEV, f32(18.5)),
    )
    reading = decode_eg0104(data)
    assert reading == Eg0104Reading(
        Telemetry(precision_ts_us=1_718_000_000_123_456, platform_heading_deg=359.5, platform_pitch_deg=-4.25,
                  platform_roll_deg=12.0, sensor_lat_deg=49.0021, sensor_lon_deg=-122.7566, hfov_deg=62.25,
                  vfov_deg=48.75, slant_range_m=212.75, frame_center_lat_deg=49.0009, frame_center_lon_deg=-122.7551,
                  frame_center_elev_m=18.5),
        sensor_msl_alt_m=152.5,
    )


def test_floats_of_either_size_are_read():
    t = decode_eg0104(packet(item(HEADING, f64(12.125)), item(LAT, f32(49.5)), item(SLANT, f64(1e6 + 0.125)))).telemetry
    assert (t.platform_heading_deg, t.sensor_lat_deg, t.slant_range_m) == (12.125, 49.5, 1e6 + 0.125)


def test_the_version_byte_of_a_key_is_ignored():
    # KWIVER lists the time stamp's UL with version 01, EG 0104.5 and jmisb with 03: the same element.
    other_version = TIME[:14] + "01" + TIME[16:]
    assert decode_eg0104(packet(item(other_version, struct.pack(">Q", 7)))).telemetry.precision_ts_us == 7
    # EG 0104.4's Device Latitude/Longitude ULs are read too
    old = packet(item("060E2B34010101010701020102040000", f64(10.5)), item("060E2B34010101010701020102060000", f64(20.5)))
    t = decode_eg0104(old).telemetry
    assert (t.sensor_lat_deg, t.sensor_lon_deg) == (10.5, 20.5)


def test_unknown_items_are_skipped():
    data = packet(
        item("060E2B34010101010E0101FFFF000000", b"\x01\x02\x03"),  # unknown UL
        item(SECURITY_LS, b""),  # empty nested set
        item(DEVICE_DESIGNATION, b"x" * 200),  # known text item, long-form length
        item(HFOV, f32(30.0)),
    )
    assert decode_eg0104(data) == Eg0104Reading(Telemetry(hfov_deg=30.0), None)


def test_nan_values_are_missing():
    nan32, nan64 = f32(math.nan), f64(math.nan)
    data = packet(item(HEADING, nan32), item(LAT, nan64), item(LON, f64(5.0)), item(ALT, nan32), item(VFOV, nan32),
                  item(ANGLE_TO_NORTH, nan32), item(FC_ELEV, bytes.fromhex("7FC00001")))  # a NaN with a payload
    reading = decode_eg0104(data)
    assert reading == Eg0104Reading(Telemetry(sensor_lon_deg=5.0), None)
    assert reading.angle_to_north_deg is None


@pytest.mark.parametrize(
    ("ul", "sent", "field", "expected"),
    [
        (HEADING, -10.0, "platform_heading_deg", 350.0),
        (HEADING, 360.0, "platform_heading_deg", 0.0),
        (HEADING, 725.0, "platform_heading_deg", 5.0),
        (HEADING, -1e-30, "platform_heading_deg", 0.0),  # -1e-30 % 360 is 360.0: still [0, 360)
        (ROLL, 190.0, "platform_roll_deg", -170.0),
        (ROLL, -180.0, "platform_roll_deg", -180.0),
        (ROLL, 180.0, "platform_roll_deg", 180.0),
        (LON, 200.0, "sensor_lon_deg", -160.0),
        (FC_LON, -190.0, "frame_center_lon_deg", 170.0),
    ],
)
def test_angles_are_brought_into_telemetry_conventions(ul: str, sent: float, field: str, expected: float):
    value = f64(sent) if ul in (LON, FC_LON) else f32(sent)
    assert getattr(decode_eg0104(packet(item(ul, value))).telemetry, field) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ul", "value", "match"),
    [
        (PITCH, f32(95.0), "Platform Pitch Angle: platform_pitch_deg = 95.0"),
        (LAT, f64(-91.0), "Device Latitude: sensor_lat_deg"),
        (HFOV, f32(0.0), "Field of View \\(Horizontal\\): hfov_deg"),
        (VFOV, f32(181.0), "Field of View \\(Vertical\\)"),
        (SLANT, f32(-1.0), "Slant Range"),
        (FC_ELEV, f32(20_000.0), "Frame Center Elevation"),
        (HEADING, f32(math.inf), "Platform Heading Angle: infinite"),
        (ALT, f32(-math.inf), "Device Altitude: infinite"),
    ],
)
def test_values_outside_telemetry_ranges_raise(ul: str, value: bytes, match: str):
    with pytest.raises(KlvError, match=match):
        decode_eg0104(packet(item(ul, value)))


@pytest.mark.parametrize(
    ("ul", "value", "match"),
    [
        (TIME, b"\x00" * 4, "User Defined Time Stamp: length 4, expected 8"),
        (HEADING, b"\x00" * 3, "Platform Heading Angle: length 3, expected 4 or 8"),
        (LAT, b"", "Device Latitude: length 0"),
    ],
)
def test_wrong_value_lengths_raise(ul: str, value: bytes, match: str):
    with pytest.raises(KlvError, match=match):
        decode_eg0104(packet(item(ul, value)))


def test_wrong_key_raises():
    with pytest.raises(KlvError, match="not a Predator UAV universal set"):
        decode_eg0104(encode_st0601(telemetry()))
    with pytest.raises(KlvError, match="not a Predator UAV universal set"):
        decode_eg0104(b"\x00" + JMISB_SAMPLE[1:])
    with pytest.raises(KlvError, match="not a SMPTE universal label"):
        decode_eg0104(packet(b"\x07" + item(HFOV, f32(1.0))[1:]))


@pytest.mark.parametrize("length_bytes", ["80", "89", "FF"])
def test_bad_ber_lengths_raise(length_bytes: str):
    with pytest.raises(KlvError, match="bad BER length byte"):
        decode_eg0104(EG0104_KEY + bytes.fromhex(length_bytes) + b"\x00" * 20)
    body = bytes.fromhex(HFOV) + bytes.fromhex(length_bytes) + f32(1.0)
    with pytest.raises(KlvError, match="item Field of View \\(Horizontal\\): bad BER length byte"):
        decode_eg0104(EG0104_KEY + ber(len(body)) + body)


def test_lengths_past_the_end_raise():
    with pytest.raises(KlvError, match="truncated: universal set length 200"):
        decode_eg0104(EG0104_KEY + b"\x81\xc8" + item(HFOV, f32(1.0)))
    body = bytes.fromhex(HFOV) + b"\x08" + f32(1.0)  # says 8, the set holds 4
    with pytest.raises(KlvError, match="truncated: item Field of View \\(Horizontal\\) at byte 17: length 8 but 4"):
        decode_eg0104(EG0104_KEY + ber(len(body)) + body)


@pytest.mark.parametrize("sample", [JMISB_SAMPLE, KWIVER_SAMPLE], ids=["jmisb", "kwiver"])
def test_every_prefix_raises_klv_error(sample: bytes):
    for end in range(len(sample)):
        with pytest.raises(KlvError):
            decode_eg0104(sample[:end])


def test_truncation_messages_say_what_is_missing():
    data = packet(item(HFOV, f32(1.0)))
    with pytest.raises(KlvError, match="truncated: 5 of the 16 key bytes"):
        decode_eg0104(data[:5])
    with pytest.raises(KlvError, match="truncated: the universal set has no length byte"):
        decode_eg0104(data[:16])
    with pytest.raises(KlvError, match="truncated: universal set length 21 but 10 bytes follow"):
        decode_eg0104(data[:27])
    short_set = EG0104_KEY + b"\x0a" + bytes.fromhex(HFOV)[:10]  # a set of 10 bytes: not even one key
    with pytest.raises(KlvError, match="truncated: item at byte 17 has 10 of the 16 key bytes"):
        decode_eg0104(short_set)


def test_trailing_bytes_and_duplicates_raise():
    with pytest.raises(KlvError, match="3 bytes after the universal set"):
        decode_eg0104(JMISB_SAMPLE + b"\x06\x0e\x2b")
    with pytest.raises(KlvError, match="Field of View \\(Horizontal\\): appears twice"):
        decode_eg0104(packet(item(HFOV, f32(1.0)), item(HFOV, f32(2.0))))
    with pytest.raises(KlvError, match="Platform Heading Angle: appears twice"):
        decode_eg0104(packet(item(HEADING, f32(math.nan)), item(HEADING, f32(2.0))))


def test_klv_error_is_a_message_decode_error():
    with pytest.raises(MessageDecodeError):
        decode_eg0104(b"")


def test_is_eg0104():
    assert is_eg0104(JMISB_SAMPLE) and is_eg0104(bytearray(EG0104_KEY)) and is_eg0104(memoryview(KWIVER_SAMPLE))
    assert not is_eg0104(UAS_LS_KEY + b"\x00") and not is_eg0104(EG0104_KEY[:15]) and not is_eg0104(b"")


def test_the_geoid_conversion_fills_the_ellipsoid_height():
    calls = []

    def to_hae(lat: float, lon: float, msl: float) -> float:
        calls.append((lat, lon, msl))
        return msl - 17.25

    data = packet(item(LAT, f64(49.0)), item(LON, f64(-122.5)), item(ALT, f32(150.0)))
    reading = decode_eg0104(data, geoid_msl_to_hae=to_hae)
    assert calls == [(49.0, -122.5, 150.0)]
    assert reading.telemetry.sensor_alt_m == 132.75 and reading.telemetry.sensor_alt_ref == "msl_egm96"
    assert reading.sensor_msl_alt_m == 150.0
    # without the sensor's position there is nothing to convert
    assert decode_eg0104(packet(item(ALT, f32(150.0))), geoid_msl_to_hae=to_hae).telemetry.sensor_alt_m is None
    assert len(calls) == 1


def test_geoid_failures_and_out_of_range_heights_raise():
    data = packet(item(LAT, f64(49.0)), item(LON, f64(-122.5)), item(ALT, f32(150.0)))

    def broken(lat: float, lon: float, msl: float) -> float:
        raise ValueError("outside the grid")

    with pytest.raises(KlvError, match="Device Altitude: no height above the ellipsoid for 150 m: outside the grid"):
        decode_eg0104(data, geoid_msl_to_hae=broken)
    with pytest.raises(KlvError, match="Device Altitude \\(plus the geoid height\\): sensor_alt_m = 99999"):
        decode_eg0104(data, geoid_msl_to_hae=lambda lat, lon, msl: 99999.0)


def test_encoder_writes_the_standards_bytes():
    sample = Telemetry(precision_ts_us=1_224_807_209_913_000, platform_heading_deg=159.974365234375)
    expected = (
        EG0104_KEY + bytes.fromhex("2E")  # set length 46: items of 16 + 1 + 8 and 16 + 1 + 4 bytes
        + bytes.fromhex(TIME) + bytes.fromhex("08 000459F4A6AA4AA8")
        + bytes.fromhex(HEADING) + bytes.fromhex("04 431FF970")  # KWIVER's sample bytes for this heading
    )
    assert encode_eg0104(sample) == expected
    assert encode_eg0104(Telemetry()) == EG0104_KEY + b"\x00"


def test_encoder_leaves_out_what_eg0104_cannot_carry():
    data = encode_eg0104(telemetry())  # has sensor_alt_m (above the ellipsoid) and the sensor_rel_* angles
    for ul in (ALT, SENSOR_ROLL, ANGLE_TO_NORTH, OBLIQUITY):
        assert bytes.fromhex(ul) not in data
    t = decode_eg0104(data).telemetry
    assert t.sensor_alt_m is None and t.sensor_rel_azimuth_deg is None


def test_encoder_keeps_a_tiny_field_of_view_positive():
    t = decode_eg0104(encode_eg0104(Telemetry(hfov_deg=1e-60, vfov_deg=5e-324))).telemetry
    assert t.hfov_deg > 0 and t.vfov_deg > 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e39])
def test_encoder_refuses_values_it_cannot_write(bad: float):
    with pytest.raises(ValueError, match="Device Altitude"):
        encode_eg0104(Telemetry(), sensor_msl_alt_m=bad)


def test_long_packets_use_the_ber_long_form():
    data = encode_eg0104(telemetry(), sensor_msl_alt_m=150.0, angle_to_north_deg=10.0)  # 14 items: over 255 bytes
    assert data[16] == 0x82 and int.from_bytes(data[17:19], "big") == len(data) - 19
    assert decode_eg0104(data).angle_to_north_deg == 10.0


def optional(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | values


telemetries = st.builds(
    Telemetry,
    precision_ts_us=optional(st.integers(0, 2**64 - 1)),
    platform_heading_deg=optional(st.floats(0, 360, exclude_max=True)),
    platform_pitch_deg=optional(st.floats(-90, 90)),
    platform_roll_deg=optional(st.floats(-180, 180)),
    sensor_lat_deg=optional(st.floats(-90, 90)),
    sensor_lon_deg=optional(st.floats(-180, 180)),
    hfov_deg=optional(st.floats(0, 180, exclude_min=True)),
    vfov_deg=optional(st.floats(0, 180, exclude_min=True)),
    frame_center_lat_deg=optional(st.floats(-90, 90)),
    frame_center_lon_deg=optional(st.floats(-180, 180)),
    frame_center_elev_m=optional(st.floats(-900, 19000)),
    slant_range_m=optional(st.floats(0, 5_000_000)),
)
finite = optional(st.floats(-1e6, 1e6))


@settings(max_examples=300)
@given(telemetries, finite, finite, finite, finite)
def test_round_trip(sent: Telemetry, msl: float | None, roll: float | None, north: float | None, oblique: float | None):
    reading = decode_eg0104(encode_eg0104(sent, msl, sensor_roll_angle_deg=roll, angle_to_north_deg=north,
                                          obliquity_angle_deg=oblique))
    got = reading.telemetry
    for field in Telemetry.model_fields:
        value, back = getattr(sent, field), getattr(got, field)
        if value is None or field.endswith("_lat_deg") or field.endswith("_lon_deg") or field == "precision_ts_us":
            assert back == value, field  # unset, float64 or uint64: exact
        elif field == "platform_heading_deg" and as_f32(value) == 360.0:
            assert back == 0.0  # just under 360 rounds to 360 in float32, which is heading 0
        elif field in ("hfov_deg", "vfov_deg") and as_f32(value) == 0.0:  # only there: Telemetry wants > 0
            assert 0 < back < 1e-40  # a subnormal float32 rather than 0
        else:
            assert back == as_f32(value), field  # float32: exactly the nearest float32
    for sent_extra, back_extra in ((msl, reading.sensor_msl_alt_m), (roll, reading.sensor_roll_angle_deg),
                                   (north, reading.angle_to_north_deg), (oblique, reading.obliquity_angle_deg)):
        assert back_extra == (None if sent_extra is None else as_f32(sent_extra))


def test_every_item_key_is_a_smpte_label_and_distinct():
    keys = [bytes.fromhex(k) for i in klv_eg0104.ITEMS for k in (i.key, *i.aliases)]
    assert all(len(k) == 16 and k[:4] == bytes.fromhex("060E2B34") and k[4] == 0x01 for k in keys)
    assert len({k[:7] + k[8:] for k in keys}) == len(keys)
