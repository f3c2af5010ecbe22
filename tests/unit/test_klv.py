"""MISB ST 0601 KLV: the standard's worked examples, round trips within a quantisation step, and every kind of
bad packet (truncated, corrupted, wrong key, wrong lengths) rejected with KlvError and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_samples import telemetry

from ibet import klv
from ibet.exceptions import MessageDecodeError
from ibet.klv import KlvError, decode_all, decode_st0601, decode_tags, encode_st0601
from ibet.messages import Telemetry

# Where the decoder takes each field from (pitch and roll: the full-range tags 90/91).
FIELD_TAG = {item.field: tag for tag, item in klv.ITEMS.items() if item.field and tag not in (6, 7)}


def bcc16(data: bytes) -> int:
    """The standard's reference checksum, written as its byte loop (independent of klv.st0601_checksum)."""
    total = 0
    for i, byte in enumerate(data):
        total += byte << (8 * ((i + 1) % 2))
    return total & 0xFFFF


def item(tag: int, value: bytes) -> bytes:
    """One item with a one-byte tag and a short-form length."""
    return bytes([tag, len(value)]) + value


def packet(*items: bytes, length_octets: int = 0, checksum: bool = True) -> bytes:
    """A UAS LS packet of these items, its checksum computed with bcc16; length_octets > 0: BER long form."""
    body = b"".join(items) + (b"\x01\x02" if checksum else b"")
    size = len(body) + (2 if checksum else 0)
    length = bytes([0x80 | length_octets]) + size.to_bytes(length_octets, "big") if length_octets else klv.ber_length(size)
    data = klv.UAS_LS_KEY + length + body
    return data + bcc16(data).to_bytes(2, "big") if checksum else data


def walk(data: bytes) -> list[tuple[int, int, bytes]]:
    """(tag, offset of the value, value) of each item of a packet written by encode_st0601 (short forms)."""
    assert data[16] < 0x80
    found, pos = [], 17
    while pos < len(data):
        tag, size = data[pos], data[pos + 1]
        found.append((tag, pos + 2, data[pos + 2 : pos + 2 + size]))
        pos += 2 + size
    return found


def tags_of(data: bytes) -> dict[int, bytes]:
    return {tag: value for tag, _, value in walk(data)}


# Worked examples of ST 0601 (as quoted in jmisb's and klvdata's tests): value -> value bytes.
ST_EXAMPLES = [
    (2, "precision_ts_us", 1_224_807_209_913_000, "0004 59F4 A6AA 4AA8"),  # 2008-10-24T00:13:29.913Z
    (5, "platform_heading_deg", 159.9744, "71C2"),
    (6, "platform_pitch_deg", -0.4315251, "FD3D"),
    (7, "platform_roll_deg", 3.405814, "08B8"),
    (13, "sensor_lat_deg", 60.1768229669783, "5595 B66D"),
    (14, "sensor_lon_deg", 128.426759042045, "5B53 60C4"),
    (16, "hfov_deg", 144.5713, "CD9C"),
    (17, "vfov_deg", 152.6436, "D917"),
    (18, "sensor_rel_azimuth_deg", 160.719211474396, "724A 0A20"),
    (19, "sensor_rel_elevation_deg", -168.792324833941, "87F8 4B86"),
    (20, "sensor_rel_roll_deg", 176.865437690572, "7DC5 5ECE"),
    (21, "slant_range_m", 68590.98329874477, "0383 0926"),
    (23, "frame_center_lat_deg", -10.5423886331461, "F101 A229"),
    (24, "frame_center_lon_deg", 29.157890122923, "14BC 082B"),
    (25, "frame_center_elev_m", 3216.037, "34F3"),
    (75, "sensor_alt_m", 14190.72, "C221"),  # the standard's example is for tag 15, which has the same mapping
    (90, "platform_pitch_deg", -0.43152510208614414, "FF62 E2F2"),
    (91, "platform_roll_deg", 3.4058139815022304, "04D8 04DF"),
]


def test_klv_error_is_a_message_decode_error():
    assert issubclass(KlvError, MessageDecodeError)


def test_checksum_matches_the_standards_example():
    # ST 0601: the words 060E 2B34 0200 81BB sum to B4FD.
    assert klv.st0601_checksum(bytes.fromhex("060E 2B34 0200 81BB")) == 0xB4FD
    # Odd length: the last byte sits at an even offset, so it is a high byte: B4FD + 1200 = C6FD.
    assert klv.st0601_checksum(bytes.fromhex("060E 2B34 0200 81BB 12")) == 0xC6FD


@given(st.binary(max_size=300))
def test_checksum_equals_the_reference_byte_loop(data: bytes):
    assert klv.st0601_checksum(data) == bcc16(data)


def test_whole_packet_known_answer():
    # Items from the examples above; checksum by hand with bcc16: 0x827D.
    sample = Telemetry(precision_ts_us=1_224_807_209_913_000, platform_heading_deg=159.9744, sensor_lat_deg=60.1768229669783)
    expected = bytes.fromhex(
        "060E2B34020B01010E01030101000000 1B"  # key, local set length 27
        " 0208 000459F4A6AA4AA8  0502 71C2  0D04 5595B66D  4101 11  0102 827D"  # time, heading, lat, version 17, checksum
    )
    assert encode_st0601(sample) == expected
    assert bcc16(expected[:-2]) == 0x827D
    decoded = decode_st0601(expected)
    assert decoded.precision_ts_us == 1_224_807_209_913_000
    assert decoded.platform_heading_deg == pytest.approx(159.9744, abs=klv.ITEMS[5].step / 2)
    assert decoded.sensor_lat_deg == pytest.approx(60.1768229669783, abs=klv.ITEMS[13].step / 2)


@pytest.mark.parametrize(("tag", "field", "value", "hex_bytes"), ST_EXAMPLES, ids=[f"tag{t}" for t, *_ in ST_EXAMPLES])
def test_encodes_the_standards_examples(tag: int, field: str, value: float, hex_bytes: str):
    assert tags_of(encode_st0601(Telemetry(**{field: value})))[tag] == bytes.fromhex(hex_bytes)


@pytest.mark.parametrize(("tag", "field", "value", "hex_bytes"), ST_EXAMPLES, ids=[f"tag{t}" for t, *_ in ST_EXAMPLES])
def test_decodes_the_standards_examples(tag: int, field: str, value: float, hex_bytes: str):
    decoded = decode_st0601(packet(item(tag, bytes.fromhex(hex_bytes))))
    assert getattr(decoded, field) == pytest.approx(value, abs=klv.ITEMS[tag].step / 2)


def test_steps_follow_the_mappings():
    # ST 0601 resolutions: ~42 nano degrees for ±90 in int32, ~0.3 m for -900..19000 m in uint16, ...
    assert klv.ITEMS[13].step == pytest.approx(180 / (2**32 - 2))
    assert klv.ITEMS[6].step == pytest.approx(40 / 65534)
    assert klv.ITEMS[75].step == pytest.approx(19900 / 65535)
    assert klv.ITEMS[21].step == pytest.approx(5_000_000 / (2**32 - 1))


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
    sensor_alt_m=optional(st.floats(-900, 19000)),
    sensor_rel_azimuth_deg=optional(st.floats(0, 360, exclude_max=True)),
    sensor_rel_elevation_deg=optional(st.floats(-180, 180)),
    sensor_rel_roll_deg=optional(st.floats(0, 360, exclude_max=True)),
    hfov_deg=optional(st.floats(0, 180, exclude_min=True)),
    vfov_deg=optional(st.floats(0, 180, exclude_min=True)),
    frame_center_lat_deg=optional(st.floats(-90, 90)),
    frame_center_lon_deg=optional(st.floats(-180, 180)),
    frame_center_elev_m=optional(st.floats(-900, 19000)),
    slant_range_m=optional(st.floats(0, 5_000_000)),
)


@settings(max_examples=300)
@given(telemetries)
def test_round_trip_is_within_half_a_quantisation_step(sent: Telemetry):
    got = decode_st0601(encode_st0601(sent))
    for field, tag in FIELD_TAG.items():
        value, back = getattr(sent, field), getattr(got, field)
        if value is None or (field == "platform_roll_deg" and abs(value) > 90):
            assert back is None, field  # unset, or beyond tag 91's ±90: the "out of range" indicator
            continue
        spec = klv.ITEMS[tag]
        error = abs(back - value)
        if spec.wrap:
            error = min(error, 360 - error)
        allowed = spec.step if spec.positive and value < spec.step / 2 else spec.step / 2  # FOV: never 0
        assert error <= allowed + 1e-12 * max(1.0, abs(value)), (field, value, back)


@settings(max_examples=40)
@given(telemetries)
def test_every_prefix_raises_klv_error(sent: Telemetry):
    data = encode_st0601(sent)
    for end in range(len(data)):
        with pytest.raises(KlvError):
            decode_st0601(data[:end])
        if end:
            with pytest.raises(KlvError):
                decode_all(data[:end])


@given(telemetries, st.data())
def test_a_changed_value_byte_is_caught_by_the_checksum(sent: Telemetry, data: st.DataObject):
    encoded = encode_st0601(sent)
    offsets = [start + i for _, start, value in walk(encoded) for i in range(len(value))]
    corrupted = bytearray(encoded)
    corrupted[data.draw(st.sampled_from(offsets))] ^= data.draw(st.integers(1, 255))
    with pytest.raises(KlvError, match="checksum mismatch"):
        decode_st0601(bytes(corrupted))


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_any_changed_byte_anywhere_raises_klv_error(mask: int):
    encoded = encode_st0601(telemetry())
    for at in range(len(encoded)):
        corrupted = bytearray(encoded)
        corrupted[at] ^= mask
        with pytest.raises(KlvError):
            decode_st0601(bytes(corrupted))


def test_checksum_error_message_gives_both_values():
    data = bytearray(encode_st0601(telemetry()))
    data[-1] ^= 0x01
    stated, computed = int.from_bytes(data[-2:], "big"), bcc16(bytes(data[:-2]))
    with pytest.raises(KlvError, match=f"KLV checksum mismatch: packet says 0x{stated:04X}, computed 0x{computed:04X}"):
        decode_st0601(bytes(data))


@pytest.mark.parametrize(
    "key",
    [
        "060E2B34020B01010E01030301000000",  # another local set's key
        "060E2B34020B01010E01030101000001",  # last byte changed
        "00000000000000000000000000000000",
    ],
)
def test_wrong_key_is_not_a_uas_local_set(key: str):
    data = bytes.fromhex(key) + encode_st0601(telemetry())[16:]
    with pytest.raises(KlvError, match=r"^KLV: not a UAS Datalink Local Set \(key "):
        decode_st0601(data)


def test_truncated_local_set_names_both_lengths():
    data = encode_st0601(telemetry())
    assert data[16] == len(data) - 17
    with pytest.raises(KlvError, match=f"^KLV truncated: local set length {data[16]} but {data[16] - 5} bytes follow$"):
        decode_st0601(data[:-5])


@pytest.mark.parametrize(("size", "octets"), [(0, "00"), (127, "7F"), (128, "8180"), (255, "81FF"), (256, "820100")])
def test_ber_length_uses_the_short_form_below_128(size: int, octets: str):
    assert klv.ber_length(size) == bytes.fromhex(octets)


@pytest.mark.parametrize("length_octets", [1, 2, 4])
def test_long_form_local_set_length_decodes(length_octets: int):
    lat = item(13, bytes.fromhex("5595B66D"))
    assert decode_st0601(packet(lat, length_octets=length_octets)) == decode_st0601(packet(lat))


def test_long_form_item_length_decodes():
    lat = bytes.fromhex("0D 8104 5595B66D")  # tag 13, length 4 in long form
    assert decode_st0601(packet(lat)).sensor_lat_deg == pytest.approx(60.1768229669783, abs=1e-7)


def test_local_set_over_127_bytes_decodes():
    big = packet(item(3, b"M" * 120), item(13, bytes.fromhex("5595B66D")))  # tag 3: Mission ID, not ours
    assert big[16] == 0x81
    assert decode_st0601(big).sensor_lat_deg == pytest.approx(60.1768229669783, abs=1e-7)


def test_indefinite_ber_length_is_rejected():
    data = klv.UAS_LS_KEY + b"\x80" + item(13, bytes(4)) + b"\x01\x02\x00\x00"
    with pytest.raises(KlvError, match="unsupported BER length byte 0x80"):
        decode_st0601(data)


def test_unknown_tags_are_skipped():
    lat = item(13, bytes.fromhex("5595B66D"))
    unknown = [
        item(3, b"BORDER-7"),  # Mission ID
        item(15, bytes.fromhex("C221")),  # Sensor True Altitude (MSL): checked, not kept
        bytes.fromhex("8102 03 AABBCC"),  # tag 130 as a two-byte BER-OID
        item(127, b""),
    ]
    assert decode_st0601(packet(unknown[0], lat, *unknown[1:])) == decode_st0601(packet(lat))
    assert decode_tags(packet(lat, *unknown))[15] == pytest.approx(14190.72, abs=0.16)


@pytest.mark.parametrize(
    ("tag", "field"),
    [
        (6, "platform_pitch_deg"),
        (7, "platform_roll_deg"),
        (13, "sensor_lat_deg"),
        (14, "sensor_lon_deg"),
        (19, "sensor_rel_elevation_deg"),
        (23, "frame_center_lat_deg"),
        (24, "frame_center_lon_deg"),
        (90, "platform_pitch_deg"),
        (91, "platform_roll_deg"),
    ],
)
def test_error_indicator_decodes_to_none(tag: int, field: str):
    size = klv.ITEMS[tag].size
    indicator = b"\x80" + bytes(size - 1)  # -2^(n-1)
    assert getattr(decode_st0601(packet(item(tag, indicator))), field) is None
    one_above = b"\x80" + bytes(size - 2) + b"\x01"  # -(2^(n-1) - 1): the bottom of the range
    assert getattr(decode_st0601(packet(item(tag, one_above))), field) == klv.ITEMS[tag].lo


@pytest.mark.parametrize(
    ("tag", "field"), [(5, "platform_heading_deg"), (18, "sensor_rel_azimuth_deg"), (20, "sensor_rel_roll_deg")]
)
def test_top_of_an_angle_range_is_360_which_is_0(tag: int, field: str):
    assert getattr(decode_st0601(packet(item(tag, b"\xff" * klv.ITEMS[tag].size))), field) == 0.0


def test_full_pitch_and_roll_win_over_the_short_tags():
    short = [item(6, bytes.fromhex("FD3D")), item(7, bytes.fromhex("08B8"))]  # -0.43, 3.41 degrees
    full = [item(90, (45 * 2**31 // 90).to_bytes(4, "big")), item(91, (-60 * 2**31 // 90).to_bytes(4, "big", signed=True))]
    both = decode_st0601(packet(*short, *full))
    assert both.platform_pitch_deg == pytest.approx(45, abs=1e-6)
    assert both.platform_roll_deg == pytest.approx(-60, abs=1e-6)
    alone = decode_st0601(packet(*short))
    assert alone.platform_pitch_deg == pytest.approx(-0.4315, abs=1e-4)
    indicator = decode_st0601(packet(*short, item(90, bytes.fromhex("80000000"))))  # full unknown: the short one stands
    assert indicator.platform_pitch_deg == pytest.approx(-0.4315, abs=1e-4)


def test_encoder_writes_short_pitch_and_roll_only_within_their_range():
    assert {6, 7, 90, 91} <= set(tags_of(encode_st0601(Telemetry(platform_pitch_deg=20.0, platform_roll_deg=-50.0))))
    steep = tags_of(encode_st0601(Telemetry(platform_pitch_deg=20.5, platform_roll_deg=-60.0)))
    assert {90, 91} <= set(steep) and not {6, 7} & set(steep)
    inverted = encode_st0601(Telemetry(platform_roll_deg=120.0))
    assert tags_of(inverted)[91] == bytes.fromhex("80000000") and 7 not in tags_of(inverted)
    assert decode_st0601(inverted).platform_roll_deg is None


def test_encoder_layout_time_first_version_17_checksum_last():
    tags = [tag for tag, _, _ in walk(encode_st0601(telemetry()))]
    assert tags[0] == 2 and tags[-1] == 1
    assert tags[1:-1] == sorted(tags[1:-1])
    assert tags_of(encode_st0601(telemetry()))[65] == bytes([17])
    assert decode_tags(encode_st0601(Telemetry()))[65] == 17


def test_encoder_rejects_values_outside_a_range_without_indicator():
    with pytest.raises(ValueError, match="sensor_alt_m"):  # the wire model keeps ST 0601's ranges itself
        Telemetry(sensor_alt_m=19_500.0)
    # and the encoder checks on its own, for telemetry built without validation
    with pytest.raises(ValueError, match="sensor_alt_m = 19500 is outside ST 0601 tag 75"):
        encode_st0601(Telemetry.model_construct(sensor_alt_m=19_500.0))
    with pytest.raises(ValueError, match="slant_range_m"):
        encode_st0601(Telemetry.model_construct(slant_range_m=5_000_001.0))


def test_tiny_field_of_view_encodes_as_one_step_not_zero():
    assert tags_of(encode_st0601(Telemetry(hfov_deg=1e-6)))[16] == b"\x00\x01"


def test_wrong_item_length_names_the_tag():
    with pytest.raises(KlvError, match=r"^KLV tag 13 \(Sensor Latitude\): length 3, expected 4$"):
        decode_st0601(packet(item(13, b"\x00\x00\x00")))
    with pytest.raises(KlvError, match=r"tag 13 \(Sensor Latitude\): length 9 but 8 bytes left in the local set$"):
        decode_st0601(packet(bytes.fromhex("0D09 5595B66D")))


def test_value_the_model_rejects_names_the_tag_and_field():
    with pytest.raises(KlvError, match=r"tag 16 \(Sensor Horizontal Field of View\): hfov_deg = 0.0 rejected"):
        decode_st0601(packet(item(16, b"\x00\x00")))


def test_checksum_must_be_present_and_last():
    lat = item(13, bytes.fromhex("5595B66D"))
    with pytest.raises(KlvError, match="no checksum"):
        decode_st0601(packet(lat, checksum=False))
    with pytest.raises(KlvError, match="must be the last item"):
        decode_st0601(packet(item(1, b"\x00\x00"), lat))
    with pytest.raises(KlvError, match="appears twice"):
        decode_st0601(packet(lat, lat))


def test_bytes_after_the_packet_are_rejected():
    with pytest.raises(KlvError, match="1 bytes after the local set"):
        decode_st0601(encode_st0601(telemetry()) + b"\x00")


def test_decode_all_reads_packets_back_to_back():
    sent = [telemetry(), Telemetry(sensor_lat_deg=-33.5, platform_roll_deg=170.0), Telemetry()]
    packets = [encode_st0601(t) for t in sent]
    decoded = decode_all(b"".join(packets))
    assert decoded == [decode_st0601(p) for p in packets]
    assert decoded[1].sensor_lat_deg == pytest.approx(-33.5, abs=1e-7) and decoded[1].platform_roll_deg is None
    assert decoded[2] == Telemetry()
    assert decode_all(b"") == []
    assert decode_all(memoryview(packets[0])) == decoded[:1]


def test_decode_all_names_the_bad_packet():
    packets = [encode_st0601(telemetry()) for _ in range(3)]
    with pytest.raises(KlvError, match=f"^packet 3 at byte {2 * len(packets[0])}: KLV truncated"):
        decode_all(b"".join(packets)[:-1])
    with pytest.raises(KlvError, match="^packet 2 at byte .*not a UAS Datalink Local Set"):
        decode_all(packets[0] + b"\x00" * 20)
