"""The console's typed settings: the ``console`` section of the configuration (``ibet.config``)."""

from __future__ import annotations

from ibet.config import ConsoleSettings

__all__ = ["ConsoleSettings"]
