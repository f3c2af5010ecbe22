"""Alerts as the console shows them, scoped to the caller.

Alerts are read through the alert service's :class:`~alerts.lifecycle.AlertLifecycle` (table
``alert_lifecycle``, revision 0003, in the database the console shares with the alert stage), so the
console shows the state every partner channel also sees. A partner caller sees an alert only when its agency is among the
alert's ``routed_partner_ids`` or is its lead; to a partner, any other alert does not exist (404,
so an id cannot be probed). Times are shown in the sector's local time and in UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from alerts.lifecycle import lifecycle_table
from alerts.outbox import deliveries_table
from alerts.transitions import status_json
from console import tables
from console.auth import Principal
from console.context import ConsoleContext
from console.errors import NotFound
from console.roles import Role
from ibet.evidence_refs import evidence_keys
from ibet.messages import Alert


def visible_to(alert: Alert, principal: Principal) -> bool:
    """Whether ``principal`` may see ``alert``: everyone but partners sees all; a partner its own."""
    if principal.role != Role.PARTNER:
        return True
    return principal.partner_id is not None and (
        principal.partner_id in alert.routed_partner_ids or principal.partner_id == alert.lead_partner_id)


def recent_alerts(ctx: ConsoleContext, principal: Principal, limit: int) -> list[Alert]:
    """The caller's most recently updated alerts, newest first."""
    t = lifecycle_table
    with ctx.engine.connect() as conn:
        ids = list(conn.execute(select(t.c.alert_id).order_by(t.c.updated_ts_ns.desc(), t.c.alert_id)).scalars())
    found: list[Alert] = []
    for alert_id in ids:  # partner scoping is on the alert's routing: decoded here
        alert = ctx.lifecycle.get(alert_id)
        if alert is not None and visible_to(alert, principal):
            found.append(alert)
            if len(found) >= limit:
                break
    return found


def alert_for(ctx: ConsoleContext, principal: Principal, alert_id: str) -> Alert:
    """The alert ``alert_id`` if the caller may see it; NotFound otherwise (also when it is not theirs)."""
    alert = ctx.lifecycle.get(alert_id)
    if alert is None or not visible_to(alert, principal):
        raise NotFound(f"no alert {alert_id!r}")
    return alert


def format_times(ts_ns: int, timezone: str) -> dict[str, str]:
    """``{"local": "2026-11-28 05:19:52 PST", "utc": "2026-11-28 13:19:52 UTC"}`` for a time in ns."""
    moment = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    return {"local": moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z"),
            "utc": moment.strftime("%Y-%m-%d %H:%M:%S UTC")}


def evidence_refs(engine: Engine, event_ids: tuple[str, ...]) -> list[str]:
    """Evidence references of an alert's border events (as the console store recorded them)."""
    t = tables.event_evidence
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.evidence_ref).where(t.c.event_id.in_(list(event_ids)))
                            .order_by(t.c.position, t.c.event_id, t.c.evidence_ref))  # crops first
        return list(dict.fromkeys(rows.scalars()))


def alert_view(ctx: ConsoleContext, alert: Alert, with_evidence: bool = False) -> dict[str, Any]:
    """An alert as the pages' JavaScript and the API return it: its fields plus display times, names
    and, from the lifecycle, the outcome and who acknowledged and resolved it."""
    timezone = ctx.sector_timezone(alert.sector_id)
    view = json.loads(alert.model_dump_json(exclude={"evidence_refs"}))  # server paths: the browser gets keys
    status = ctx.lifecycle.status(alert.alert_id)
    if status is not None:
        view["status"] = status_json(status)
    view["created"] = format_times(alert.created_ts_ns, timezone)
    view["updated"] = format_times(alert.updated_ts_ns, timezone)
    view["partners"] = [{"id": p, "name": ctx.partner_name(p)} for p in alert.routed_partner_ids]
    if with_evidence:
        # keys under the evidence folder, as /api/evidence/<key> serves them
        view["evidence_refs"] = evidence_keys(evidence_refs(ctx.engine, alert.event_ids), ctx.settings.evidence_dir)
    return view


def delivery_state(ctx: ConsoleContext, principal: Principal, alert: Alert) -> list[dict[str, Any]]:
    """Where the alert's newest version stands with each partner on each channel (from the alert
    service's outbox): status (pending, sending, delivered, dead), attempts, the last error, when it
    got through. A partner caller sees only its own rows."""
    d = deliveries_table
    query = select(d.c.partner_id, d.c.channel, d.c.alert_version, d.c.status, d.c.attempts, d.c.last_error,
                   d.c.delivered_ns).where(d.c.alert_id == alert.alert_id, d.c.status != "superseded").order_by(d.c.id)
    if principal.role == Role.PARTNER:
        query = query.where(d.c.partner_id == (principal.partner_id or ""))
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    with ctx.engine.connect() as conn:
        for row in conn.execute(query):
            newest[(row.partner_id, row.channel)] = {
                "partner_id": row.partner_id, "partner": ctx.partner_name(row.partner_id), "channel": row.channel,
                "version": row.alert_version, "status": row.status, "attempts": row.attempts,
                "last_error": row.last_error,
                "delivered": format_times(row.delivered_ns, ctx.sector_timezone(alert.sector_id))
                if row.delivered_ns else None}
    return [newest[k] for k in sorted(newest)]
