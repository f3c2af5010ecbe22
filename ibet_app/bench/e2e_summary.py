"""Summary of ``ibet bench e2e`` (pure): percentiles, each stage's share, one side's totals, the table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ibet import topics
from ibet.messages import Alert, BorderEvent, DetectionBatch, TrackUpdate
from ibet_app.bench.e2e_trace import MS, STAGES, Chain, frame_detect_ns, trace_chains

if TYPE_CHECKING:
    from ibet_app.bench.e2e_sides import SideRun


def percentiles_ms(values_ns: Sequence[int], qs: Sequence[float] = (50, 95)) -> list[float | None]:
    """The ``qs`` percentiles of ``values_ns`` in ms (rounded to 0.1), None for no values."""
    if not values_ns:
        return [None for _ in qs]
    return [round(float(v), 1) for v in np.percentile(np.asarray(values_ns, dtype=np.float64) / MS, list(qs))]


def summarize(chains: Sequence[Chain]) -> dict[str, Any]:
    """p50/p95 of the total (ms), each stage's p50 (ms) and share of the summed time (0..1)."""
    p50, p95 = percentiles_ms([c.total_ns for c in chains])
    per_stage = [c.stage_ns() for c in chains]
    total = sum(c.total_ns for c in chains)
    out: dict[str, Any] = {"alerts_traced": len(chains), "p50_ms": p50, "p95_ms": p95}
    for stage in STAGES:
        values = [s[stage] for s in per_stage]
        out[f"{stage}_p50_ms"] = percentiles_ms(values, (50,))[0]
        out[f"{stage}_share"] = round(sum(values) / total, 3) if total > 0 else None
    return out


@dataclass
class SideTotals:
    """One side's traced alerts and per-frame detect times, by scenario, over every round."""

    side: str
    chains: dict[str, list[Chain]] = field(default_factory=dict)
    frame_detect: dict[str, list[int]] = field(default_factory=dict)  # ns per detected frame
    frames_sent: dict[str, int] = field(default_factory=dict)
    untraced: dict[str, int] = field(default_factory=dict)
    not_frames: dict[str, int] = field(default_factory=dict)

    def add(self, run: SideRun, hysteresis_m: float) -> None:
        """Trace one round's run (producer timestamps are ms: see :attr:`Record.timestamp_ms`)."""
        detections = [(r.timestamp_ms * MS, DetectionBatch.from_bytes(r.value)) for r in run.records[topics.DETECTIONS]]
        events = [(r.timestamp_ms * MS, BorderEvent.from_bytes(r.value)) for r in run.records[topics.EVENTS]]
        alerts = [(r.timestamp_ms * MS, Alert.from_bytes(r.value)) for r in run.records[topics.ALERTS]]
        tracks = [TrackUpdate.from_bytes(r.value) for r in run.records[topics.TRACKS]]
        everything = {k: t for sent in run.sent.values() for k, t in sent.items()}
        trace = trace_chains(everything, detections, events, alerts, run.arrivals, tracks, hysteresis_m)
        for mine, theirs in ((self.untraced, trace.untraced), (self.not_frames, trace.not_frames)):
            for reason, n in theirs.items():
                mine[reason] = mine.get(reason, 0) + n
        for name, sent in run.sent.items():
            sensors = {s for s, _ in sent}
            self.chains.setdefault(name, []).extend(c for c in trace.chains if c.sensor_id in sensors)
            self.frame_detect.setdefault(name, []).extend(frame_detect_ns(sent, detections))
            self.frames_sent[name] = self.frames_sent.get(name, 0) + len(sent)

    def summary(self, scenario: str | None = None) -> dict[str, Any]:
        """Figures for ``scenario``, or over every scenario (None)."""
        names = [scenario] if scenario is not None else list(self.chains)
        chains = [c for n in names for c in self.chains.get(n, [])]
        detect = [v for n in names for v in self.frame_detect.get(n, [])]
        p50, p95 = percentiles_ms(detect)
        return {"side": self.side, "scenario": scenario or "all", **summarize(chains),
                "frames_sent": sum(self.frames_sent.get(n, 0) for n in names), "frames_detected": len(detect),
                "frame_detect_p50_ms": p50, "frame_detect_p95_ms": p95}


COLUMNS = ["side", "scenario", "alerts", "p50 ms", "p95 ms", "det %", "fuse %", "alrt %", "dlv %", "frames",
           "frame->det p95"]


def table_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    """One row per side and scenario, then one per side over every scenario."""
    def row(r: Mapping[str, Any]) -> list[Any]:
        shown = [r[k] if r[k] is not None else "-" for k in ("p50_ms", "p95_ms")]
        shares = [f"{100 * r[f'{s}_share']:.0f}" if r[f"{s}_share"] is not None else "-" for s in STAGES]
        detect_p95 = r["frame_detect_p95_ms"] if r["frame_detect_p95_ms"] is not None else "-"
        return [r["side"], r["scenario"], r["alerts_traced"], *shown, *shares, f"{r['frames_detected']}/{r['frames_sent']}",
                detect_p95]
    rows = [row(r) for r in result["per_scenario"]]
    rows += [row(r) for r in result["sides"].values()] if len(result["scenarios"]) > 1 else []
    return rows
