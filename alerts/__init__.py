"""Alerts: rules, partners and duty rosters, routing and escalation, channels, the outbox, the stage.

Border events in (``ibet.events.v1``), alerts out (``ibet.alerts.v1``) and delivered to the partners
on duty: duty rosters (:mod:`alerts.rosters`), severity and routing (:mod:`alerts.routing`), alert
rules (:mod:`alerts.rules`), the alerts partners read (:mod:`alerts.compose`), partner formats
(:mod:`alerts.formats`: CoT, CAP 1.2, signed webhooks, e-mail), the durable outbox and delivery
(:mod:`alerts.outbox`, :mod:`alerts.delivery`), the stage (:mod:`alerts.stage`) and the workers
around it (:mod:`alerts.service`).
"""

from __future__ import annotations

from ibet.config import IbetConfig
from ibet.registry import Registry


def build_stage(config: IbetConfig, registry: Registry):
    """The alert stage with its delivery and escalation workers (started by the runner)."""
    from alerts.service import build_service

    return build_service(config, registry).stage
