"""Errors of the console, named for where they come from."""

from __future__ import annotations

from ibet.exceptions import IbetError


class ConsoleError(IbetError):
    """Base of the console's errors."""


class AccountError(ConsoleError):
    """A user or token cannot be created or changed as asked; the message says why."""


class NotFound(ConsoleError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class InvalidRequest(ConsoleError):
    """A request's values are not acceptable; the message names the field."""
