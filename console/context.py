"""What every request handler of one console shares: the database, settings, clock, registry,
accounts, sessions and the alert life cycle. Built once by :func:`console.app.create_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from console.accounts import Accounts
from console.roles import Role
from console.sessions import LoginThrottle, Sessions
from console.settings import ConsoleSettings
from ibet.clock import Clock
from ibet.registry import Registry


@dataclass
class ConsoleContext:
    """The console's shared objects (one per app)."""

    engine: Engine
    settings: ConsoleSettings
    clock: Clock
    registry: Registry | None
    accounts: Accounts
    sessions: Sessions
    throttle: LoginThrottle
    lifecycle: Any  # alerts.lifecycle.AlertLifecycle
    layers: dict[str, Any] = field(default_factory=dict)
    publish: Callable[[Any], None] | None = None

    def sector_timezone(self, sector_id: str) -> str:
        """IANA time zone of a sector, UTC when the sector is unknown."""
        if self.registry is not None:
            for sector in self.registry.sectors:
                if sector.id == sector_id:
                    return sector.timezone
        return "UTC"

    def visible_sectors(self, principal) -> frozenset[str] | None:
        """The sectors whose live tracks and sensor health ``principal`` (a :class:`console.auth.Principal`)
        may see: a partner, those its agency covers in the registry (none when it is not there);
        everyone else, all (None)."""
        if principal.role != Role.PARTNER:
            return None
        if self.registry is not None:
            for partner in self.registry.partners:
                if partner.id == principal.partner_id:
                    return frozenset(partner.sectors)
        return frozenset()

    def partner_name(self, partner_id: str) -> str:
        """A partner's full name, or its id when it is not in the registry."""
        if self.registry is not None:
            for partner in self.registry.partners:
                if partner.id == partner_id:
                    return partner.name
        return partner_id
