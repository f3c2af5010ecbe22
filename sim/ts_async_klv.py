"""Asynchronous KLV out of FFmpeg's MPEG-TS muxer: the PTS taken out of each KLV PES header.

MISB ST 1402 carries KLV two ways: synchronous (each PES has a PTS on the video's clock) and
asynchronous (no PTS; the receiver pairs packets by their own tag 2). FFmpeg's muxer always writes
a PTS, so the simulator writes synchronously and this rewrites the finished 188-byte packets: in
each packet that starts a private-stream PES (stream id 0xBD, how FFmpeg carries KLV), the PTS
(and DTS) bytes are removed, the PES header's flags and lengths say so, and adaptation-field
stuffing keeps the packet 188 bytes long. Other packets pass unchanged. Written by hand: no
maintained Python library edits PES headers (PyAV and FFmpeg offer no option for it).
"""

from __future__ import annotations

TS_PACKET = 188
SYNC = 0x47
KLV_STREAM_IDS = (0xBD, 0xFC)  # private_stream_1 (FFmpeg's KLV), metadata stream


def strip_klv_pts(packet: bytes) -> bytes:
    """``packet`` (188 bytes) without the PTS/DTS of a KLV PES that starts in it; else unchanged.

    >>> pes = b"\\0\\0\\1\\xbd\\0\\x0d\\x80\\x80\\x05" + b"\\x21\\0\\x01\\0\\x01" + b"KLV"
    >>> ts = bytes([0x47, 0x41, 0x01, 0x10]) + pes + b"\\xff" * (184 - len(pes))
    >>> out = strip_klv_pts(ts)
    >>> len(out), out[3] & 0x30, out[4], out[5 + out[4]:][:9].hex(), out[5 + out[4] + 9:][:3]
    (188, 48, 4, '000001bd0008800000', b'KLV')
    """
    if len(packet) != TS_PACKET or packet[0] != SYNC or not packet[1] & 0x40:  # no payload unit start
        return packet
    control = (packet[3] >> 4) & 0x3
    if not control & 0x1:  # no payload
        return packet
    start = 4 + (1 + packet[4] if control & 0x2 else 0)
    pes = packet[start:]
    if len(pes) < 9 or pes[:3] != b"\0\0\1" or pes[3] not in KLV_STREAM_IDS:
        return packet
    timestamps = pes[7] >> 6
    cut = {2: 5, 3: 10}.get(timestamps, 0)
    if cut == 0 or pes[8] < cut or len(pes) < 9 + cut:
        return packet
    length = int.from_bytes(pes[4:6], "big")
    header = bytearray(pes[:9])
    header[4:6] = (length - cut if length else 0).to_bytes(2, "big")
    header[7] &= 0x3F
    header[8] -= cut
    new_pes = bytes(header) + pes[9 + cut:]
    head = bytearray(packet[:4])
    if control & 0x2:  # an adaptation field already: make it longer by the bytes cut
        field = bytearray(packet[4:start])
        if field[0] == 0:
            field += b"\x00" + b"\xff" * (cut - 1)  # a flags byte, then stuffing
        else:
            field += b"\xff" * cut
        field[0] = len(field) - 1
    else:  # none: add one of exactly the bytes cut (length byte, flags byte, stuffing)
        head[3] |= 0x20
        field = bytearray([cut - 1, 0x00]) + b"\xff" * (cut - 2)
    out = bytes(head) + bytes(field) + new_pes
    assert len(out) == TS_PACKET, len(out)
    return out


class AsyncKlvWriter:
    """A file-like sink for PyAV's muxer that passes whole TS packets, KLV PTS stripped, to ``send``."""

    def __init__(self, send):
        self.send = send
        self._pending = b""

    def write(self, data: bytes) -> int:
        self._pending += bytes(data)
        whole = len(self._pending) - len(self._pending) % TS_PACKET
        if whole:
            chunk, self._pending = self._pending[:whole], self._pending[whole:]
            self.send(b"".join(strip_klv_pts(chunk[i:i + TS_PACKET]) for i in range(0, whole, TS_PACKET)))
        return len(data)

    def flush(self) -> None:
        if self._pending:  # never a partial packet from the muxer; passed on as it is
            self.send(self._pending)
            self._pending = b""
