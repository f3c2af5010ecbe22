"""Checks of a pushed frame's bytes before it goes to Kafka (pure: bytes in, size or IngestError out).

    >>> check_jpeg(open("frame.jpg", "rb").read(), max_bytes=8 * 2**20)  # doctest: +SKIP
    (1280, 720)
"""

from __future__ import annotations

import cv2
import numpy as np

from ibet.messages import JPEG_EOI, JPEG_SOI
from ingest.exceptions import CorruptJpegError, EmptyFrameError, FrameTooLargeError, NotJpegError, TruncatedJpegError
from ingest.jpeg_structure import jpeg_structure_problem

_OTHER_FORMATS = (  # what a frame that is not a JPEG most often is, by its magic bytes
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def check_jpeg(data: bytes, max_bytes: int) -> tuple[int, int]:
    """(width_px, height_px) of a complete, decodable JPEG of at most ``max_bytes`` bytes.

    Raises, in this order: EmptyFrameError (no bytes), FrameTooLargeError (413, names the limit),
    NotJpegError (magic is not FF D8 FF; says "PNG" for a PNG), TruncatedJpegError (no FF D9 at
    the end, trailing zero padding allowed), CorruptJpegError (its markers are out of order, as in
    scrambled image data that libjpeg would decode to garbage, or OpenCV cannot decode it).
    """
    if not data:
        raise EmptyFrameError("the frame is empty (0 bytes); send the JPEG in the 'frame' part")
    if len(data) > max_bytes:
        raise FrameTooLargeError(len(data), max_bytes)
    if not data.startswith(JPEG_SOI):
        raise NotJpegError(_not_jpeg_message(data))
    if not data.rstrip(b"\x00").endswith(JPEG_EOI):
        raise TruncatedJpegError(f"the JPEG ({len(data)} bytes) has no end-of-image marker FF D9: "
                                 "it was cut short; send the whole file")
    problem = jpeg_structure_problem(data.rstrip(b"\x00"))  # libjpeg decodes scrambled data with a warning
    if problem is not None:
        raise CorruptJpegError(f"the JPEG ({len(data)} bytes): {problem}")
    # Grayscale: libjpeg decodes only the luma channel, enough to prove the image decodes.
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise CorruptJpegError(f"the JPEG ({len(data)} bytes) has start and end markers but cannot be decoded")
    height_px, width_px = image.shape[:2]
    return int(width_px), int(height_px)


def _not_jpeg_message(data: bytes) -> str:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return f"the frame is a {name} image, not a JPEG; encode frames as JPEG (image/jpeg)"
    return (f"the frame is not a JPEG: it starts with {data[:3].hex(' ').upper()}, "
            "not the JPEG start-of-image marker FF D8 FF")
