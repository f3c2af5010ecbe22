"""KLV access units of a stream's data streams into :class:`~ibet.messages.Telemetry` (pure).

A unit holds one or more KLV packets. Each is decoded by its key: MISB ST 0601 (the UAS Datalink
Local Set) or MISB EG 0104 (the Predator universal set, whose altitude above mean sea level gets
the EGM96 geoid height). Anything else (ST 0102 security, ST 0903 VMTI sent on their own, a
vendor's set) is skipped and counted. A packet whose only fault is its checksum is refused unless
``lenient_checksum`` is on; then it is used and counted as such.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ibet.klv import UAS_LS_KEY, KlvChecksumError, KlvError, decode_st0601, split_packets
from ibet.messages import Telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KlvReading:
    """One packet's outcome: its telemetry, or None with the reason it was not used."""

    telemetry: Telemetry | None
    outcome: str  # "st0601", "eg0104", "st0601_lenient", or a refusal: "bad_checksum", "invalid", ...
    detail: str = ""


def read_unit(data: bytes, *, lenient_checksum: bool = False) -> list[KlvReading]:
    """Every packet of one access unit, decoded or refused (never raises for bad bytes)."""
    try:
        packets = split_packets(data)
    except KlvError as exc:
        return [KlvReading(None, "truncated", str(exc))]
    return [_read_packet(key, packet, lenient_checksum) for key, packet in packets]


def _read_packet(key: bytes, packet: bytes, lenient_checksum: bool) -> KlvReading:
    if key == UAS_LS_KEY:
        try:
            return KlvReading(decode_st0601(packet), "st0601")
        except KlvChecksumError as exc:
            if not lenient_checksum:
                return KlvReading(None, "bad_checksum", str(exc))
            try:
                return KlvReading(decode_st0601(packet, check_checksum=False), "st0601_lenient", str(exc))
            except KlvError as inner:
                return KlvReading(None, "invalid", str(inner))
        except KlvError as exc:
            return KlvReading(None, "invalid", str(exc))
    from ibet.klv_eg0104 import EG0104_KEY, decode_eg0104

    if key == EG0104_KEY:
        try:
            reading = decode_eg0104(packet)
        except KlvError as exc:
            return KlvReading(None, "invalid", str(exc))
        telemetry = reading.telemetry
        if (reading.sensor_msl_alt_m is not None and telemetry.sensor_alt_m is None
                and telemetry.sensor_lat_deg is not None and telemetry.sensor_lon_deg is not None):
            from ibet import geoid

            try:
                height = geoid.msl_to_ellipsoid_m(telemetry.sensor_lat_deg, telemetry.sensor_lon_deg,
                                                  reading.sensor_msl_alt_m)
                telemetry = Telemetry(**{**telemetry.model_dump(exclude_none=True), "sensor_alt_m": height,
                                         "sensor_alt_ref": "msl_egm96"})
            except ValueError as exc:
                return KlvReading(None, "invalid", f"EG 0104 sensor altitude: {exc}")
        return KlvReading(telemetry, "eg0104")
    return KlvReading(None, "unknown_key", f"KLV key {key.hex(' ').upper()} is neither ST 0601 nor EG 0104")
