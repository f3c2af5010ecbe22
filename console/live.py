"""The operator's live stream (Server-Sent Events): alerts, tracks and sensor health as they change.

The console may run as several replicas apart from the stages that write, so the stream watches
the database: every ``live_poll_s`` it compares each alert's lifecycle revision with what this
stream has sent, and reads tracks and sensor health stored since its last look. Each change is
sent once per stream as ``event: alert|track|health`` with a JSON ``data`` line; the browser's
EventSource reconnects by itself and the page reloads the full list when it does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from fastapi import Request
from sqlalchemy import select

from alerts.lifecycle import lifecycle_table
from console import tables
from console.alert_views import alert_view, visible_to
from console.auth import Principal
from console.context import ConsoleContext

KEEPALIVE_EVERY = 30  # polls between comment lines that keep proxies from closing the stream


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event: ``event: alert\\ndata: {...}\\n\\n``."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass
class LiveCursor:
    """What one stream has already sent."""

    alert_revisions: dict[str, int] = field(default_factory=dict)
    tracks_after_ns: int = 0
    health_after_ns: int = 0


def initial_cursor(ctx: ConsoleContext) -> LiveCursor:
    """A cursor at "now": alerts as they are (the page loaded them), tracks and health from now on."""
    with ctx.engine.connect() as conn:
        revisions = dict(conn.execute(select(lifecycle_table.c.alert_id, lifecycle_table.c.revision)).all())
    now = ctx.clock.now_ns()
    return LiveCursor(revisions, now, now)


def changes(ctx: ConsoleContext, principal: Principal, cursor: LiveCursor) -> list[str]:
    """The events since ``cursor`` visible to ``principal``, as SSE text; advances the cursor."""
    out: list[str] = []
    sectors = ctx.visible_sectors(principal)  # None: all; a partner sees the sectors its agency covers
    with ctx.engine.connect() as conn:
        changed = [(alert_id, revision) for alert_id, revision in
                   conn.execute(select(lifecycle_table.c.alert_id, lifecycle_table.c.revision))
                   if cursor.alert_revisions.get(alert_id) != revision]
        t = tables.tracks
        for row in conn.execute(select(t).where(t.c.stored_ns > cursor.tracks_after_ns).order_by(t.c.stored_ns)):
            cursor.tracks_after_ns = max(cursor.tracks_after_ns, row.stored_ns)
            if sectors is None or row.sector_id in sectors:
                out.append(sse("track", track_view(row)))
        h = tables.sensor_health
        for row in conn.execute(select(h).where(h.c.stored_ns > cursor.health_after_ns).order_by(h.c.stored_ns)):
            cursor.health_after_ns = max(cursor.health_after_ns, row.stored_ns)
            if sectors is None or row.sector_id in sectors:
                out.append(sse("health", health_view(row)))
    for alert_id, revision in changed:
        cursor.alert_revisions[alert_id] = revision
        alert = ctx.lifecycle.get(alert_id)
        if alert is not None and visible_to(alert, principal):
            out.insert(0, sse("alert", alert_view(ctx, alert)))
    return out


def track_view(row) -> dict[str, Any]:
    """A stored track as the map draws it."""
    return {"track_id": row.track_id, "sector_id": row.sector_id, "lat_deg": row.lat_deg, "lon_deg": row.lon_deg,
            "class_name": row.class_name, "status": row.status, "version": row.version, "time_ts_ns": row.time_ts_ns}


def health_view(row) -> dict[str, Any]:
    """A sensor's latest health as the operator page lists it."""
    return {"sensor_id": row.sensor_id, "sector_id": row.sector_id, "state": row.state,
            "event_ts_ns": row.event_ts_ns, "silent_s": row.silent_s}


async def stream(request: Request, ctx: ConsoleContext, principal: Principal, stopping: asyncio.Event) -> AsyncIterator[str]:
    """The SSE body for one browser: changes as they are stored, until it disconnects or the app stops."""
    cursor = await to_thread.run_sync(initial_cursor, ctx)
    yield "retry: 2000\n\n"
    polls = 0
    while not stopping.is_set() and not await request.is_disconnected():
        for text in await to_thread.run_sync(changes, ctx, principal, cursor):
            yield text
        polls += 1
        if polls % KEEPALIVE_EVERY == 0:
            yield ": keep-alive\n\n"
        try:
            await asyncio.wait_for(stopping.wait(), ctx.settings.live_poll_s)
        except TimeoutError:
            pass
