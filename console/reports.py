"""Reports for analysts: joint operations by sector, partner and month; alert counts,
acknowledgement times and false-alarm rates, from the case tables and the alert lifecycle.
Exercise alerts (scenario runs) are counted apart and left out of every real figure."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from alerts.lifecycle import lifecycle_table
from console import tables
from ibet.messages import Alert


def _month(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m")


def report(engine: Engine) -> dict[str, Any]:
    """Every figure of the reports page (counts sorted by key)."""
    with engine.connect() as conn:
        cases = conn.execute(select(tables.cases)).all()
        partners = conn.execute(select(tables.case_partners)).all()
        rows = conn.execute(select(lifecycle_table)).all()
    by_partner = Counter(p.partner_id for p in partners)
    alerts_by_sector: Counter[str] = Counter()
    alerts_by_month: Counter[str] = Counter()
    ack_s: dict[str, list[float]] = defaultdict(list)
    resolved: Counter[str] = Counter()
    false_alarms: Counter[str] = Counter()
    exercises = 0
    for row in rows:
        alert = Alert.model_validate_json(row.alert_json)
        if alert.exercise:
            exercises += 1
            continue
        alerts_by_sector[alert.sector_id] += 1
        alerts_by_month[_month(alert.created_ts_ns)] += 1
        if row.acknowledged_ns is not None:
            ack_s[alert.sector_id].append(max(0.0, (row.acknowledged_ns - row.opened_ns) / 1e9))
        if row.outcome is not None:
            resolved[alert.sector_id] += 1
            false_alarms[alert.sector_id] += row.outcome == "false_alarm"
    sectors = sorted(alerts_by_sector)
    return {
        "cases_total": len(cases),
        "cases_by_month": dict(sorted(Counter(_month(c.created_ns) for c in cases).items())),
        "cases_by_sector": dict(sorted(Counter(c.sector_id or "-" for c in cases).items())),
        "cases_by_partner": dict(sorted(by_partner.items())),
        "alerts_total": len(rows) - exercises,
        "exercise_alerts": exercises,
        "alerts_by_month": dict(sorted(alerts_by_month.items())),
        "alerts_by_sector": [{
            "sector_id": s, "alerts": alerts_by_sector[s], "acknowledged": len(ack_s[s]),
            "median_ack_s": statistics.median(ack_s[s]) if ack_s[s] else None,
            "resolved": resolved[s], "false_alarms": false_alarms[s],
            "false_alarm_rate": false_alarms[s] / resolved[s] if resolved[s] else None,
        } for s in sectors],
    }
