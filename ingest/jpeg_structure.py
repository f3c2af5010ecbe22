"""The marker structure of a JPEG (ITU T.81, annex B), checked without decoding (pure).

libjpeg decodes a JPEG whose entropy-coded data is scrambled: it warns ("Corrupt JPEG data") and
returns an image of garbage, and OpenCV does not pass the warning on. The structure shows it:
inside a scan, a 0xFF byte may only be followed by 0x00 (a stuffed byte), a restart marker
RST0-RST7 (in order, modulo 8) or more 0xFF fill; anything else ends the scan and must be a marker
that may follow one (another table, another scan of a progressive JPEG, the end of the image).

    >>> header = "ffd8 ffdd 0004 0001 ffda 0008 01 0100 003f00"  # restart interval 1, one scan
    >>> jpeg_structure_problem(bytes.fromhex(header + "12ff0034 ffd0 56 ffd1 78 ffd9"))
    >>> jpeg_structure_problem(bytes.fromhex(header + "12ff4734 ffd9"))
    'marker FF 47 inside the image data at byte 19: the image data is corrupt'
    >>> jpeg_structure_problem(bytes.fromhex(header + "12 ffd3 34 ffd9"))
    'restart marker RST3 at byte 19 where RST0 was due: the image data is corrupt'
"""

from __future__ import annotations

import numpy as np

SOI, EOI, SOS, DRI = 0xD8, 0xD9, 0xDA, 0xDD
RST0, RST7 = 0xD0, 0xD7
# Markers that may come after a scan: tables (DHT C4, DAC CC, DQT DB, DRI DD), DNL DC, SOS DA, EOI,
# application and comment segments (APPn E0-EF, COM FE)
_AFTER_SCAN = {0xC4, 0xCC, 0xDB, 0xDC, SOS, DRI, EOI, 0xFE, *range(0xE0, 0xF0)}
# Markers without a length field
_STANDALONE = {SOI, EOI, 0x01, *range(RST0, RST7 + 1)}


def jpeg_structure_problem(data: bytes) -> str | None:
    """What is wrong with the markers of ``data`` (a JPEG from FF D8 on), or None if nothing is."""
    buf = np.frombuffer(data, dtype=np.uint8)
    pos, restart_interval = 2, 0
    while pos < len(buf):
        if buf[pos] != 0xFF:
            return f"byte {pos} should start a marker (FF), found {buf[pos]:02X}: the file is corrupt"
        while pos + 1 < len(buf) and buf[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= len(buf):
            return "the file ends inside a marker"
        marker = int(buf[pos + 1])
        if marker == EOI:
            return None
        if marker in _STANDALONE:
            return f"unexpected marker FF {marker:02X} at byte {pos}: the file is corrupt"
        if pos + 3 >= len(buf):
            return f"segment FF {marker:02X} at byte {pos} is cut short"
        length = int(buf[pos + 2]) << 8 | int(buf[pos + 3])
        if length < 2 or pos + 2 + length > len(buf):
            return f"segment FF {marker:02X} at byte {pos} claims {length} bytes: the file is corrupt"
        if marker == DRI and length >= 4:
            restart_interval = int(buf[pos + 4]) << 8 | int(buf[pos + 5])
        pos += 2 + length
        if marker == SOS:
            pos, problem = _skip_scan(buf, pos, restart_interval > 0)
            if problem:
                return problem
    return "the file ends without an end-of-image marker"


def _skip_scan(buf: np.ndarray, start: int, restarts: bool) -> tuple[int, str | None]:
    """The position of the marker that ends the scan starting at ``start``, or the problem in it."""
    ff = np.flatnonzero(buf[start:-1] == 0xFF) + start
    following = buf[ff + 1]
    expected_rst = RST0
    for at, nxt in zip(ff.tolist(), following.tolist(), strict=True):
        if nxt == 0x00 or (nxt == 0xFF):
            continue
        if RST0 <= nxt <= RST7:
            if not restarts or nxt != expected_rst:
                what = "without a restart interval" if not restarts else f"where RST{expected_rst - RST0} was due"
                return at, f"restart marker RST{nxt - RST0} at byte {at} {what}: the image data is corrupt"
            expected_rst = RST0 + (expected_rst - RST0 + 1) % 8
            continue
        if nxt in _AFTER_SCAN:
            return at, None
        return at, f"marker FF {nxt:02X} inside the image data at byte {at}: the image data is corrupt"
    return len(buf), "the image data runs to the end of the file without an end-of-image marker"
