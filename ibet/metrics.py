"""Prometheus metrics of every stage, labelled by stage, and the /metrics endpoint."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from ibet.bus.base import TopicPartition
from ibet.config import MetricsSettings

log = logging.getLogger(__name__)

CONSUMED = Counter("ibet_stage_consumed_records", "Records consumed", ["stage", "topic"])
PRODUCED = Counter("ibet_stage_produced_records", "Records produced (dead letters excluded)", ["stage", "topic"])
DEAD_LETTERED = Counter("ibet_stage_dead_lettered_records", "Input records sent to the DLQ", ["stage", "topic"])
COMMIT_FAILURES = Counter("ibet_stage_commit_failures", "Commits refused after a rebalance", ["stage"])
STATE_NOT_SAVED = Counter("ibet_stage_state_not_saved", "State records the bus refused (over the record limit): "
                          "that key's state is not saved for the batch", ["stage"])
PROCESSING_SECONDS = Histogram(
    "ibet_stage_processing_seconds",
    "Time to process, produce and commit one consumed batch",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONSUMER_LAG = Gauge("ibet_stage_consumer_lag_records", "Records not yet consumed", ["stage", "topic", "partition"])


class StageMetrics:
    """The metrics above bound to one stage's label."""

    def __init__(self, stage: str):
        self.stage = stage
        self.processing_seconds = PROCESSING_SECONDS.labels(stage)
        self.commit_failures = COMMIT_FAILURES.labels(stage)
        self.state_not_saved = STATE_NOT_SAVED.labels(stage)

    def consumed(self, topic: str, n: int = 1) -> None:
        CONSUMED.labels(self.stage, topic).inc(n)

    def produced(self, topic: str, n: int = 1) -> None:
        PRODUCED.labels(self.stage, topic).inc(n)

    def dead_lettered(self, topic: str, n: int = 1) -> None:
        DEAD_LETTERED.labels(self.stage, topic).inc(n)

    def lag(self, lags: Mapping[TopicPartition, int]) -> None:
        for tp, n in lags.items():
            CONSUMER_LAG.labels(self.stage, tp.topic, str(tp.partition)).set(n)


def serve_metrics(settings: MetricsSettings) -> int | None:
    """Start the /metrics HTTP endpoint if enabled; return the port it listens on."""
    if not settings.enabled:
        return None
    server, _thread = start_http_server(settings.port, addr=settings.host)
    port = server.server_address[1]
    log.info("metrics on http://%s:%d/metrics", settings.host, port)
    return port
