"""Errors raised by the fuse tracker; each derives from :class:`ibet.exceptions.IbetError`."""

from __future__ import annotations

from ibet.exceptions import IbetError


class TrackingError(IbetError):
    """Base of the errors the tracker raises on purpose."""


class TrackerStateError(TrackingError):
    """A saved tracker state cannot be restored: wrong schema, id prefix or malformed fields."""
