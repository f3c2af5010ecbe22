"""MISB ST 0601 UAS Datalink Local Set: :class:`~ibet.messages.Telemetry` to KLV bytes and back.

A packet is the 16-byte UAS LS universal key, a BER length, then items (BER-OID tag, BER length, big-endian
value) with the checksum, tag 1, last. Angles (degrees) and lengths (metres) travel as fixed-point integers:
a value in [lo, hi] maps linearly onto the integer range; signed items keep their most negative integer as the
"out of range" / "error" indicator, which decodes to None. Mappings and the checksum follow ST 0601 as quoted
by jmisb and klvdata; the tests check the standard's worked examples.

    >>> packet = encode_st0601(Telemetry(sensor_lat_deg=49.0021, hfov_deg=62.2))
    >>> round(decode_st0601(packet).sensor_lat_deg, 6)
    49.0021
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from pydantic import ValidationError

from ibet.exceptions import MessageDecodeError
from ibet.messages import Telemetry

UAS_LS_KEY = bytes.fromhex("060E2B34020B01010E01030101000000")  # SMPTE ST 336 universal key of the UAS LS
ST0601_VERSION = 17  # written in tag 65: the revision ST 0601.17, whose item definitions these are
CHECKSUM_TAG = 1
MSL_ALTITUDE_TAG = 15
VERSION_TAG = 65
_SHORT_TO_FULL = {6: 90, 7: 91}  # pitch and roll: the ±20/±50 int16 items and their ±90 int32 successors


class KlvError(MessageDecodeError):
    """Bytes are not a valid ST 0601 packet (key, length, item, checksum or value); the message says which."""


class KlvChecksumError(KlvError):
    """The packet is well formed but its checksum (tag 1) does not match its bytes."""


@dataclass(frozen=True, slots=True)
class Item:
    """One ST 0601 item and the fixed-point mapping of its value.

    ``fmt`` is the struct format of the big-endian integer. If ``lo != hi`` the item is scaled: unsigned
    items map [lo, hi] onto 0..2^n-1; signed items have lo = -hi, map it onto -(2^(n-1)-1)..2^(n-1)-1 and
    reserve -2^(n-1) as the indicator. Otherwise the value is the integer itself.
    """

    tag: int
    name: str
    fmt: str
    lo: float = 0.0
    hi: float = 0.0
    field: str | None = None  # the Telemetry field it fills, if any
    wrap: bool = False  # an angle in [0, 360): the top integer, 360 degrees, decodes as 0
    positive: bool = False  # Telemetry wants > 0: a value under half a step encodes as one step, not as 0

    @property
    def size(self) -> int:
        """Value length in bytes."""
        return struct.calcsize(self.fmt)

    @property
    def signed(self) -> bool:
        return self.fmt[-1].islower()

    @property
    def scaled(self) -> bool:
        return self.lo != self.hi

    @property
    def counts(self) -> int:
        """The integer that stands for ``hi``: 2^n - 1 unsigned, 2^(n-1) - 1 signed."""
        bits = 8 * self.size
        return (1 << (bits - 1)) - 1 if self.signed else (1 << bits) - 1

    @property
    def indicator(self) -> int | None:
        """The reserved "out of range" / "error" integer, -2^(n-1), of signed scaled items."""
        return -self.counts - 1 if self.signed and self.scaled else None

    @property
    def step(self) -> float:
        """Quantisation step in the value's unit (degrees or metres); 1 for unscaled items."""
        if not self.scaled:
            return 1.0
        return (self.hi - self.lo) / (2 * self.counts if self.signed else self.counts)

    def encode(self, value: float) -> bytes:
        """Value bytes, rounded to the nearest integer (halves up, like Java's Math.round in jmisb).

        Outside [lo, hi] a signed item writes its indicator; an unsigned one raises ValueError.
        """
        if not self.scaled:
            if not 0 <= value <= self.counts:
                raise ValueError(f"{self.field} = {value} does not fit ST 0601 tag {self.tag} ({self.name})")
            return struct.pack(self.fmt, value)
        if not self.lo <= value <= self.hi:
            if self.indicator is None:
                raise ValueError(f"{self.field} = {value:g} is outside ST 0601 tag {self.tag}: {self.lo:g}..{self.hi:g}")
            return struct.pack(self.fmt, self.indicator)
        zero = 0.0 if self.signed else self.lo
        raw = math.floor((value - zero) / (self.hi - zero) * self.counts + 0.5)
        lowest = -self.counts if self.signed else (1 if self.positive and value > 0 else 0)
        return struct.pack(self.fmt, min(max(raw, lowest), self.counts))

    def decode(self, value: bytes) -> float | int | None:
        """The value of these bytes (None for the indicator); KlvError if the length is wrong."""
        if len(value) != self.size:
            raise KlvError(f"KLV {_label(self.tag)}: length {len(value)}, expected {self.size}")
        (raw,) = struct.unpack(self.fmt, value)
        if not self.scaled:
            return raw
        if raw == self.indicator:
            return None
        zero = 0.0 if self.signed else self.lo
        result = min(max(zero + raw * (self.hi - zero) / self.counts, self.lo), self.hi)
        return result % 360.0 if self.wrap else result


ITEMS: dict[int, Item] = {
    item.tag: item
    for item in (
        Item(1, "Checksum", ">H"),
        Item(2, "Precision Time Stamp", ">Q", field="precision_ts_us"),  # µs since 1970-01-01T00:00Z
        Item(5, "Platform Heading Angle", ">H", 0.0, 360.0, "platform_heading_deg", wrap=True),
        Item(6, "Platform Pitch Angle", ">h", -20.0, 20.0, "platform_pitch_deg"),
        Item(7, "Platform Roll Angle", ">h", -50.0, 50.0, "platform_roll_deg"),
        Item(13, "Sensor Latitude", ">i", -90.0, 90.0, "sensor_lat_deg"),
        Item(14, "Sensor Longitude", ">i", -180.0, 180.0, "sensor_lon_deg"),
        Item(15, "Sensor True Altitude", ">H", -900.0, 19000.0),  # above MSL: read, not mapped (Telemetry has HAE)
        Item(16, "Sensor Horizontal Field of View", ">H", 0.0, 180.0, "hfov_deg", positive=True),
        Item(17, "Sensor Vertical Field of View", ">H", 0.0, 180.0, "vfov_deg", positive=True),
        Item(18, "Sensor Relative Azimuth Angle", ">I", 0.0, 360.0, "sensor_rel_azimuth_deg", wrap=True),
        Item(19, "Sensor Relative Elevation Angle", ">i", -180.0, 180.0, "sensor_rel_elevation_deg"),
        Item(20, "Sensor Relative Roll Angle", ">I", 0.0, 360.0, "sensor_rel_roll_deg", wrap=True),
        Item(21, "Slant Range", ">I", 0.0, 5_000_000.0, "slant_range_m"),
        Item(23, "Frame Center Latitude", ">i", -90.0, 90.0, "frame_center_lat_deg"),
        Item(24, "Frame Center Longitude", ">i", -180.0, 180.0, "frame_center_lon_deg"),
        Item(25, "Frame Center Elevation", ">H", -900.0, 19000.0, "frame_center_elev_m"),
        Item(65, "UAS Datalink LS Version Number", ">B"),
        Item(75, "Sensor Ellipsoid Height", ">H", -900.0, 19000.0, "sensor_alt_m"),
        Item(90, "Platform Pitch Angle (Full)", ">i", -90.0, 90.0, "platform_pitch_deg"),
        Item(91, "Platform Roll Angle (Full)", ">i", -90.0, 90.0, "platform_roll_deg"),
    )
}
"""The items this module reads and writes, by tag (all below 128, so each tag is one byte)."""


def _label(tag: int) -> str:
    item = ITEMS.get(tag)
    return f"tag {tag} ({item.name})" if item else f"tag {tag}"


def ber_length(length: int) -> bytes:
    """BER length octets: short form below 128, else 0x80 | n and n big-endian bytes.

    Example: ``ber_length(100) == b"\\x64"``, ``ber_length(200) == b"\\x81\\xc8"``.
    """
    if length < 0:
        raise ValueError(f"a BER length cannot be negative (got {length})")
    if length < 128:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def st0601_checksum(data: bytes) -> int:
    """ST 0601 checksum of ``data``: the packet from the first key byte through the checksum's length byte.

    A 16-bit running sum in which bytes at even offsets count as high bytes: sum(b[i] << 8 * ((i + 1) % 2)).
    Example from the standard: ``st0601_checksum(bytes.fromhex("060E2B34020081BB")) == 0xB4FD``.
    """
    return ((sum(data[0::2]) << 8) + sum(data[1::2])) & 0xFFFF


def encode_st0601(telemetry: Telemetry) -> bytes:
    """One ST 0601 packet of the set fields, with version (tag 65) and checksum (tag 1, last).

    Precision Time Stamp comes first, the rest in tag order. Pitch and roll always go in tags 90/91 (±90°;
    a roll beyond ±90° writes the "out of range" indicator) and also in tags 6/7 when within ±20° / ±50°.
    Altitudes (sensor_alt_m is tag 75, height above the ellipsoid) must lie in -900..19000 m and slant range in
    0..5,000,000 m, or ValueError names the field.
    """
    body = bytearray()
    for item in ITEMS.values():
        if item.tag == VERSION_TAG:
            value = ST0601_VERSION
        elif item.field is None or (value := getattr(telemetry, item.field)) is None:
            continue
        elif item.tag in _SHORT_TO_FULL and not item.lo <= value <= item.hi:
            continue  # too steep for the short item; the full one carries it
        encoded = item.encode(value)
        body += bytes([item.tag]) + ber_length(len(encoded)) + encoded
    body += bytes([CHECKSUM_TAG, 2])
    packet = UAS_LS_KEY + ber_length(len(body) + 2) + body
    return packet + struct.pack(">H", st0601_checksum(packet))


def decode_st0601(data: bytes | bytearray | memoryview, *, check_checksum: bool = True) -> Telemetry:
    """The telemetry in exactly one ST 0601 packet; KlvError says what is wrong with a bad one.

    Unknown tags (nested sets such as ST 0102, 0903, 1206 included) are skipped, indicators become None,
    tags 90/91 win over 6/7 unless they hold the indicator. The sensor's height comes from tag 75 (above
    the ellipsoid, ``sensor_alt_ref="ellipsoid"``); a packet with only tag 15 (above mean sea level) gets
    tag 15 plus the EGM96 geoid height at the sensor's position (``sensor_alt_ref="msl_egm96"``).
    ``check_checksum=False`` is the lenient mode for packets whose only fault is the checksum
    (KlvChecksumError otherwise).
    """
    return _to_telemetry(decode_tags(data, check_checksum=check_checksum))


def decode_all(stream: bytes | bytearray | memoryview) -> list[Telemetry]:
    """The telemetry of every packet in a stream of complete ST 0601 packets back to back (empty: [])."""
    data = bytes(stream)
    decoded: list[Telemetry] = []
    pos = 0
    while pos < len(data):
        try:
            values, end = _read_values(data, pos)
            decoded.append(_to_telemetry(values))
        except KlvError as exc:
            raise KlvError(f"packet {len(decoded) + 1} at byte {pos}: {exc}") from exc
        pos = end
    return decoded


def split_packets(data: bytes | bytearray | memoryview) -> list[tuple[bytes, bytes]]:
    """The KLV packets (16-byte universal key, BER length, value) back to back in ``data``: (key, packet).

    A data stream's access unit may hold several packets; each is returned whole, key included, for a
    decoder chosen by its key. KlvError for a truncated key, length or value.
    """
    data = bytes(data)
    packets: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < len(UAS_LS_KEY):
            raise KlvError(f"KLV truncated: {len(data) - pos} bytes at byte {pos}, less than a 16-byte key")
        length, value_at = _read_ber(data, pos + len(UAS_LS_KEY), len(data), "packet")
        end = value_at + length
        if end > len(data):
            raise KlvError(f"KLV truncated: packet at byte {pos} says {length} bytes, {len(data) - value_at} follow")
        packets.append((data[pos : pos + len(UAS_LS_KEY)], data[pos:end]))
        pos = end
    return packets


def decode_tags(data: bytes | bytearray | memoryview, *, check_checksum: bool = True) -> dict[int, float | int | None]:
    """The known items of one packet by tag, in their units (degrees, metres, µs; None for an indicator).

    Example: ``decode_tags(packet)[65] == 17``; tag 15 gives the altitude above mean sea level in metres.
    """
    data = bytes(data)
    values, end = _read_values(data, 0, check_checksum)
    if end != len(data):
        raise KlvError(f"KLV: {len(data) - end} bytes after the local set (decode_all reads several packets)")
    return values


def _to_telemetry(values: dict[int, float | int | None]) -> Telemetry:
    fields: dict[str, float | int | str] = {}
    source: dict[str, int] = {}
    for tag, value in values.items():
        field = ITEMS[tag].field
        if field is None or value is None or values.get(_SHORT_TO_FULL.get(tag, -1)) is not None:
            continue
        fields[field], source[field] = value, tag
    if "sensor_alt_m" in fields:
        fields["sensor_alt_ref"] = "ellipsoid"
    elif values.get(MSL_ALTITUDE_TAG) is not None and "sensor_lat_deg" in fields and "sensor_lon_deg" in fields:
        from ibet import geoid  # the grid loads on first use: only streams with tag 15 alone need it

        fields["sensor_alt_m"] = geoid.msl_to_ellipsoid_m(fields["sensor_lat_deg"], fields["sensor_lon_deg"],
                                                          values[MSL_ALTITUDE_TAG])
        fields["sensor_alt_ref"], source["sensor_alt_m"] = "msl_egm96", MSL_ALTITUDE_TAG
    try:
        return Telemetry(**fields)
    except ValidationError as exc:
        problems = [
            f"{_label(source[str(err['loc'][0])])}: {err['loc'][0]} = {err.get('input')!r} rejected: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise KlvError("KLV " + "; ".join(problems)) from exc


def _read_values(data: bytes, start: int, check_checksum: bool = True) -> tuple[dict[int, float | int | None], int]:
    items, end = _read_items(data, start, check_checksum)
    return {tag: ITEMS[tag].decode(value) for tag, value in items.items() if tag in ITEMS}, end


def _read_items(data: bytes, start: int, check_checksum: bool = True) -> tuple[dict[int, bytes], int]:
    """Check the key, length, item layout and checksum of the packet at ``start``: (items by tag, its end)."""
    key = data[start : start + len(UAS_LS_KEY)]
    if key != UAS_LS_KEY[: len(key)]:
        raise KlvError(f"KLV: not a UAS Datalink Local Set (key {key.hex(' ').upper()})")
    if len(key) < len(UAS_LS_KEY):
        raise KlvError(f"KLV truncated: {len(key)} of the {len(UAS_LS_KEY)} key bytes")
    length, pos = _read_ber(data, start + len(UAS_LS_KEY), len(data), "local set")
    end = pos + length
    if end > len(data):
        raise KlvError(f"KLV truncated: local set length {length} but {len(data) - pos} bytes follow")
    items: dict[int, bytes] = {}
    while pos < end:
        tag, pos = _read_tag(data, pos, end)
        size, pos = _read_ber(data, pos, end, _label(tag))
        if pos + size > end:
            raise KlvError(f"KLV {_label(tag)}: length {size} but {end - pos} bytes left in the local set")
        if tag in items and tag in ITEMS:
            raise KlvError(f"KLV {_label(tag)}: appears twice")
        items[tag] = data[pos : pos + size]
        pos += size
        if tag == CHECKSUM_TAG and pos != end:
            raise KlvError("KLV: the checksum (tag 1) must be the last item")
    if CHECKSUM_TAG not in items:
        raise KlvError("KLV: no checksum (tag 1) at the end of the local set")
    stated = ITEMS[CHECKSUM_TAG].decode(items[CHECKSUM_TAG])
    computed = st0601_checksum(data[start : end - 2])
    if stated != computed and check_checksum:
        raise KlvChecksumError(f"KLV checksum mismatch: packet says 0x{stated:04X}, computed 0x{computed:04X}")
    return items, end


def _read_ber(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A BER length at ``pos`` that must end by ``end``: (length, position after it)."""
    if pos >= end:
        raise KlvError(f"KLV truncated: {what} has no length byte")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if not 1 <= count <= 8:
        raise KlvError(f"KLV {what}: unsupported BER length byte 0x{first:02X}")
    if pos + 1 + count > end:
        raise KlvError(f"KLV truncated: {what} BER length needs {count} bytes, {end - pos - 1} follow")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _read_tag(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A BER-OID tag at ``pos`` (7 bits a byte, high bit set on all but the last): (tag, position after it)."""
    tag = 0
    for at in range(pos, end):
        tag = (tag << 7) | (data[at] & 0x7F)
        if data[at] < 0x80:
            return tag, at + 1
    raise KlvError(f"KLV: the item tag at byte {pos} runs past the end of the local set")
