"""Errors raised by detect, named for where they come from."""

from __future__ import annotations

from ibet.exceptions import IbetError


class DetectError(IbetError):
    """Base of the detect stage's errors."""


class FrameDecodeError(DetectError):
    """A record on ``ibet.frames.v1`` that is not a usable frame (bad headers, not a JPEG, wrong
    size, key and sensor disagree); the runner dead-letters it and the batch goes on."""
