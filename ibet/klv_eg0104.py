"""MISB EG 0104.5 Predator UAV Basic Universal Metadata Set: KLV bytes to :class:`~ibet.messages.Telemetry` and back.

The predecessor of ST 0601, still sent by older platforms. A packet is a SMPTE ST 336 universal set: the
16-byte key :data:`EG0104_KEY`, a BER length, then items, each a 16-byte SMPTE universal label (UL), a BER
length and a big-endian value: an IEEE 754 float (degrees, metres), a uint64 (µs since 1970) or ASCII text.
There is no checksum. Items this module does not use (text items, corner points, target width, nested sets
such as ST 0102) are skipped.

What differs from ST 0601, and how it is handled:

* The sensor's altitude (Device Altitude) is above mean sea level, not the ellipsoid: it is returned in
  :attr:`Eg0104Reading.sensor_msl_alt_m` and goes into ``Telemetry.sensor_alt_m`` only through a caller's
  EGM96 conversion (``geoid_msl_to_hae``). Frame Center Elevation is mapped as it is (Telemetry's tag 25
  field is above mean sea level too; KWIVER describes the EG 0104 item as MSL, though RP 210's entry for
  that UL says above the WGS-84 ellipsoid).
* EG 0104 has no sensor angles relative to the platform (ST 0601 tags 18-20). Its sensor angles are
  Sensor Roll Angle, Angle to North and Obliquity Angle, with other meanings; they are returned as sent in
  the reading and never put in the ``sensor_rel_*`` fields.
* A float item that is NaN counts as absent. Headings are brought into [0, 360), roll and longitude into
  [-180, 180]; any other value outside Telemetry's ranges (or infinite) raises KlvError naming the item.

Keys and value types: jmisb (``org.jmisb.api.klv.eg0104``) and KWIVER (``arrows/klv/klv_0104.cxx``, from the
EG 0104 / ST 0601.12 crosswalk) agree on every key used here, SMPTE RP 210 names each one, and the ST 0601
"US key" column as quoted by klvdata confirms those ST 0601 maps (see the letters in :data:`ITEMS`). Keys
are matched ignoring byte 8, the UL's registry version, as SMPTE says and KWIVER does.

    >>> packet = encode_eg0104(Telemetry(sensor_lat_deg=49.0021, hfov_deg=62.2), sensor_msl_alt_m=150.0)
    >>> reading = decode_eg0104(packet)
    >>> reading.telemetry.sensor_lat_deg, reading.sensor_msl_alt_m
    (49.0021, 150.0)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from ibet.klv import KlvError, ber_length
from ibet.messages import Telemetry

EG0104_KEY = bytes.fromhex("060E2B34020101010E01010201010000")  # universal set key, EG 0104.5 section 4.1
UL_PREFIX = bytes.fromhex("060E2B34")  # every SMPTE universal label starts with these 4 bytes
_KEY_SIZE = 16
_VERSION_BYTE = 7  # byte 8 of a UL: the version of the registry it was entered in, not part of its identity

MslToHae = Callable[[float, float, float], float]
"""(latitude deg, longitude deg, height above mean sea level m) -> height above the WGS-84 ellipsoid m, by EGM96."""


@dataclass(frozen=True, slots=True)
class Eg0104Item:
    """One EG 0104 item this module reads and writes.

    ``kind`` is "uint64" (8 bytes), "float32" or "float64" (the size the encoder writes; the decoder takes
    either float size, as KWIVER does). ``field`` is the Telemetry field, or the Eg0104Reading attribute
    for ``target="reading"``. ``wrap``: "heading" brings the angle into [0, 360), "signed" into [-180, 180].
    """

    key: str  # the UL in hex, as EG 0104.5 lists it (version byte included)
    name: str
    kind: str
    field: str
    target: str = "telemetry"
    wrap: str | None = None
    aliases: tuple[str, ...] = ()  # other ULs of the same element, decoded only
    positive: bool = False  # Telemetry wants > 0: a value that float32 rounds to 0 is written as its smallest > 0

    @property
    def ul(self) -> bytes:
        return bytes.fromhex(self.key)

    @property
    def size(self) -> int:
        return 4 if self.kind == "float32" else 8


ITEMS: tuple[Eg0104Item, ...] = (
    # Key sources: J = jmisb PredatorMetadataConstants, K = KWIVER klv_0104_traits_lookup, D = klvdata
    # misb0601 UDSKey (ST 0601's US key column), Q = QGIS FMV's klvdata misbEG0104, R = SMPTE RP 210 v12 name.
    Eg0104Item("060E2B34010101030702010101050000", "User Defined Time Stamp", "uint64", "precision_ts_us"),  # JKDQR
    Eg0104Item("060E2B34010101070701100106000000", "Platform Heading Angle", "float32", "platform_heading_deg",
               wrap="heading"),  # JKDQR
    Eg0104Item("060E2B34010101070701100105000000", "Platform Pitch Angle", "float32", "platform_pitch_deg"),  # JKDQR
    Eg0104Item("060E2B34010101070701100104000000", "Platform Roll Angle", "float32", "platform_roll_deg",
               wrap="signed"),  # JKDQR
    # EG 0104.4's Device Latitude/Longitude ULs (07 01 02 01 02 04|06 00 00, RP 210 "Device Latitude|Longitude",
    # decimal degrees; Q reads them) are accepted as aliases.
    Eg0104Item("060E2B34010101030701020102040200", "Device Latitude", "float64", "sensor_lat_deg",
               aliases=("060E2B34010101010701020102040000",)),  # JKDQR
    Eg0104Item("060E2B34010101030701020102060200", "Device Longitude", "float64", "sensor_lon_deg", wrap="signed",
               aliases=("060E2B34010101010701020102060000",)),  # JKDQR
    Eg0104Item("060E2B34010101010701020102020000", "Device Altitude", "float32", "sensor_msl_alt_m",
               target="reading"),  # JKDQR; R: "Altitude of sensor as measured from Mean Sea Level"
    Eg0104Item("060E2B34010101020420020101080000", "Field of View (Horizontal)", "float32", "hfov_deg",
               positive=True),  # JKDQR
    Eg0104Item("060E2B340101010704200201010A0100", "Field of View (Vertical)", "float32", "vfov_deg",
               positive=True),  # JKQR (D: none)
    Eg0104Item("060E2B34010101010701080101000000", "Slant Range", "float32", "slant_range_m"),  # JKDQR
    Eg0104Item("060E2B34010101010701020103020000", "Frame Center Latitude", "float64", "frame_center_lat_deg"),  # JKDQR
    Eg0104Item("060E2B34010101010701020103040000", "Frame Center Longitude", "float64", "frame_center_lon_deg",
               wrap="signed"),  # JKDQR
    Eg0104Item("060E2B340101010A0701020103160000", "Frame Center Elevation", "float32", "frame_center_elev_m"),  # JKR
    Eg0104Item("060E2B34010101010701100101000000", "Sensor Roll Angle", "float32", "sensor_roll_angle_deg",
               target="reading"),  # JKR
    Eg0104Item("060E2B34010101010701100102000000", "Angle to North", "float32", "angle_to_north_deg",
               target="reading"),  # JKR (Q takes it for ST 0601 tag 18; it is not relative to the platform)
    Eg0104Item("060E2B34010101010701100103000000", "Obliquity Angle", "float32", "obliquity_angle_deg",
               target="reading"),  # JKR (Q takes it for ST 0601 tag 19; it is not relative to the platform)
)
"""The items decoded and encoded, in EG 0104.5's order of the fields they fill."""


def _identity(ul: bytes) -> bytes:
    """A UL without its version byte: what identifies the element."""
    return ul[:_VERSION_BYTE] + ul[_VERSION_BYTE + 1 :]


_BY_IDENTITY: dict[bytes, Eg0104Item] = {
    _identity(bytes.fromhex(key)): item for item in ITEMS for key in (item.key, *item.aliases)
}


@dataclass(frozen=True, slots=True)
class Eg0104Reading:
    """What one EG 0104 packet says.

    ``telemetry``: the values Telemetry has fields for; ``sensor_alt_m`` only if ``decode_eg0104`` was given
    ``geoid_msl_to_hae`` (then ``sensor_alt_ref="msl_egm96"``). ``sensor_msl_alt_m``: Device Altitude, metres
    above mean sea level. The three sensor angles are EG 0104's own, in degrees as sent (NaN: None): Sensor
    Roll Angle; Angle to North (RP 210: from the first row of the image to true north); Obliquity Angle
    (RP 210: the inverse of the sensor depression angle).
    """

    telemetry: Telemetry
    sensor_msl_alt_m: float | None
    sensor_roll_angle_deg: float | None = None
    angle_to_north_deg: float | None = None
    obliquity_angle_deg: float | None = None


def is_eg0104(data: bytes | bytearray | memoryview) -> bool:
    """True if ``data`` starts with the EG 0104 universal set key (says nothing about the rest)."""
    return bytes(data[:_KEY_SIZE]) == EG0104_KEY


def decode_eg0104(data: bytes | bytearray | memoryview, geoid_msl_to_hae: MslToHae | None = None) -> Eg0104Reading:
    """The reading of exactly one EG 0104 packet; KlvError says what is wrong with a bad one.

    ``geoid_msl_to_hae(lat, lon, msl)`` (for instance ``ibet.geoid.msl_to_ellipsoid_m``), if given and the
    packet has the sensor's latitude, longitude and altitude, fills ``sensor_alt_m`` with the sensor's height
    above the ellipsoid; a ValueError it raises becomes KlvError.
    """
    data = bytes(data)
    values = _read_values(data)
    fields = {item.field: value for item, value in values.items() if item.target == "telemetry"}
    extra = {item.field: value for item, value in values.items() if item.target == "reading"}
    source = {item.field: item.name for item in values}
    msl = extra.pop("sensor_msl_alt_m", None)
    if geoid_msl_to_hae is not None and msl is not None and "sensor_lat_deg" in fields and "sensor_lon_deg" in fields:
        try:
            height = geoid_msl_to_hae(fields["sensor_lat_deg"], fields["sensor_lon_deg"], msl)
        except ValueError as exc:
            raise KlvError(f"EG 0104 Device Altitude: no height above the ellipsoid for {msl:g} m: {exc}") from exc
        fields["sensor_alt_m"], fields["sensor_alt_ref"] = height, "msl_egm96"
        source["sensor_alt_m"] = "Device Altitude (plus the geoid height)"
    try:
        telemetry = Telemetry(**fields)
    except ValidationError as exc:
        problems = [
            f"{source.get(str(err['loc'][0]), 'item')}: {err['loc'][0]} = {err.get('input')!r} rejected: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise KlvError("EG 0104 " + "; ".join(problems)) from exc
    return Eg0104Reading(telemetry, msl, **extra)


def encode_eg0104(
    telemetry: Telemetry,
    sensor_msl_alt_m: float | None = None,
    *,
    sensor_roll_angle_deg: float | None = None,
    angle_to_north_deg: float | None = None,
    obliquity_angle_deg: float | None = None,
) -> bytes:
    """One EG 0104 packet of the set fields (the inverse of :func:`decode_eg0104`, for tests and the simulator).

    Angles, lengths and altitudes go as float32, latitudes and longitudes as float64, the time stamp as
    uint64, in the order of :data:`ITEMS`. EG 0104 cannot carry ``sensor_alt_m`` (above the ellipsoid: pass
    the altitude above mean sea level as ``sensor_msl_alt_m``) nor the ``sensor_rel_*`` angles: those are not
    written. A positive field of view too small for float32 is written as the smallest float32 above 0.
    ValueError if an extra value is not finite or too large for float32.
    """
    extra = {
        "sensor_msl_alt_m": sensor_msl_alt_m,
        "sensor_roll_angle_deg": sensor_roll_angle_deg,
        "angle_to_north_deg": angle_to_north_deg,
        "obliquity_angle_deg": obliquity_angle_deg,
    }
    body = bytearray()
    for item in ITEMS:
        value = getattr(telemetry, item.field) if item.target == "telemetry" else extra[item.field]
        if value is None:
            continue
        encoded = _encode_value(item, value)
        body += item.ul + ber_length(len(encoded)) + encoded
    return EG0104_KEY + ber_length(len(body)) + bytes(body)


def _encode_value(item: Eg0104Item, value: float | int) -> bytes:
    if item.kind == "uint64":
        return struct.pack(">Q", value)
    if not math.isfinite(value):
        raise ValueError(f"EG 0104 {item.name}: {value} is not a finite number")
    if item.kind == "float64":
        return struct.pack(">d", value)
    try:
        encoded = struct.pack(">f", value)
    except OverflowError as exc:
        raise ValueError(f"EG 0104 {item.name}: {value:g} is too large for a float32") from exc
    if item.positive and value > 0 and struct.unpack(">f", encoded)[0] == 0.0:
        encoded = struct.pack(">I", 1)  # the smallest positive float32 (a field of view must stay > 0)
    return encoded


def _read_values(data: bytes) -> dict[Eg0104Item, float | int]:
    """The known items of the packet that is ``data``, decoded and normalised (NaN items left out)."""
    values: dict[Eg0104Item, float | int] = {}
    seen: set[Eg0104Item] = set()
    for at, ul, value in _read_items(data):
        item = _BY_IDENTITY.get(_identity(ul))
        if item is None:
            continue
        if item in seen:
            raise KlvError(f"EG 0104 {item.name}: appears twice (second at byte {at})")
        seen.add(item)
        decoded = _decode_value(item, value)
        if decoded is not None:
            values[item] = decoded
    return values


def _decode_value(item: Eg0104Item, value: bytes) -> float | int | None:
    if item.kind == "uint64":
        if len(value) != 8:
            raise KlvError(f"EG 0104 {item.name}: length {len(value)}, expected 8 (uint64)")
        return struct.unpack(">Q", value)[0]
    if len(value) not in (4, 8):
        raise KlvError(f"EG 0104 {item.name}: length {len(value)}, expected 4 or 8 (IEEE 754 float)")
    (number,) = struct.unpack(">f" if len(value) == 4 else ">d", value)
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise KlvError(f"EG 0104 {item.name}: infinite value")
    if item.wrap == "heading":
        number %= 360.0
        if number >= 360.0:  # a tiny negative angle: -1e-20 % 360 is 360.0
            number = 0.0
    elif item.wrap == "signed" and not -180.0 <= number <= 180.0:
        number = (number + 180.0) % 360.0 - 180.0
    return number


def _read_items(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Check the key, length and item layout of the packet that is ``data``: (offset, UL, value) of each item."""
    key = data[:_KEY_SIZE]
    if key != EG0104_KEY[: len(key)]:
        raise KlvError(f"EG 0104: not a Predator UAV universal set (key {key.hex(' ').upper()})")
    if len(key) < _KEY_SIZE:
        raise KlvError(f"EG 0104 truncated: {len(key)} of the {_KEY_SIZE} key bytes")
    length, pos = _read_ber(data, _KEY_SIZE, len(data), "the universal set")
    end = pos + length
    if end > len(data):
        raise KlvError(f"EG 0104 truncated: universal set length {length} but {len(data) - pos} bytes follow")
    if end < len(data):
        raise KlvError(f"EG 0104: {len(data) - end} bytes after the universal set")
    items: list[tuple[int, bytes, bytes]] = []
    while pos < end:
        at = pos
        if end - pos < _KEY_SIZE:
            raise KlvError(f"EG 0104 truncated: item at byte {at} has {end - pos} of the {_KEY_SIZE} key bytes")
        ul = data[pos : pos + _KEY_SIZE]
        if ul[:4] != UL_PREFIX:
            raise KlvError(f"EG 0104: item at byte {at} is not a SMPTE universal label ({ul.hex(' ').upper()})")
        item = _BY_IDENTITY.get(_identity(ul))
        what = f"item {item.name}" if item else f"item {ul.hex().upper()}"
        size, pos = _read_ber(data, pos + _KEY_SIZE, end, what)
        if pos + size > end:
            raise KlvError(f"EG 0104 truncated: {what} at byte {at}: length {size} but {end - pos} bytes left in the set")
        items.append((at, ul, data[pos : pos + size]))
        pos += size
    return items


def _read_ber(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A BER length at ``pos`` that must end by ``end``: (length, position after it)."""
    if pos >= end:
        raise KlvError(f"EG 0104 truncated: {what} has no length byte")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if not 1 <= count <= 8:
        raise KlvError(f"EG 0104 {what}: bad BER length byte 0x{first:02X} (indefinite or over 8 octets)")
    if pos + 1 + count > end:
        raise KlvError(f"EG 0104 truncated: {what}: BER length needs {count} bytes, {end - pos - 1} follow")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count
