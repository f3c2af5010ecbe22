"""Sending what the outbox holds: channels, and one delivery pass over the due deliveries.

A channel turns a claimed :class:`~alerts.outbox.DeliveryJob` into a :class:`SendResult`:
``delivered`` (the partner has it), ``retry`` (try again after the backoff) or ``dead`` (the
partner refused it for good; a person has to look). :func:`deliver_due` claims the due deliveries,
sends each through its channel and records the outcome. The send comes before the record, so a
crash in between resends after the lease ends, with the same idempotency key: the partner drops
the repeat.

    >>> channel = WebhookChannel(httpx.Client(timeout=5.0), {"usbp-blaine": (url, secret)})  # doctest: +SKIP
    >>> deliver_due(outbox, {"webhook": channel})  # doctest: +SKIP
    DeliveryStats(claimed=2, delivered=2, retried=0, dead=0)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

import httpx
from prometheus_client import Counter, Gauge

from alerts.formats.webhook import CHANNEL as WEBHOOK
from alerts.formats.webhook import webhook_request
from alerts.outbox import DEAD, DeliveryJob, Outbox
from ibet.messages import Alert

log = logging.getLogger(__name__)

DELIVERIES = Counter("ibet_alert_deliveries", "Delivery attempts by partner, channel and outcome (delivered, retry, dead)",
                     ["partner", "channel", "outcome"])
PENDING_DELIVERIES = Gauge("ibet_alert_deliveries_pending", "Deliveries waiting or in flight", ["partner", "channel"])
OLDEST_PENDING_SECONDS = Gauge("ibet_alert_delivery_oldest_pending_seconds",
                               "Age of the oldest delivery still waiting or in flight (0: none)", ["partner", "channel"])
LAST_SUCCESS_TIMESTAMP = Gauge("ibet_alert_delivery_last_success_timestamp_seconds",
                               "When a delivery last got through (Unix time; 0: never)", ["partner", "channel"])

_RETRYABLE_4XX = frozenset({408, 425, 429})  # timeout, too early, rate limited: the partner asks to come back
MAX_DETAIL_CHARS = 300

MAX_ANSWER_BYTES = 64 * 1024
"""Of a partner's answer, ibet reads at most this much (the status is what counts; the start of the
body goes into the delivery's error): a 10 MB or endless body costs nothing more."""

LinksFor = Callable[[Alert, str], Mapping[str, str]]
"""Signed links for a partner's copy of an alert, by name (see ``alerts.service.action_links``)."""


class Outcome(StrEnum):
    """What became of one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


class SendResult(NamedTuple):
    """The outcome of one attempt and why (status code, error)."""

    outcome: Outcome
    detail: str = ""


class Channel(Protocol):
    """Something that can attempt one delivery."""

    def send(self, job: DeliveryJob, now_ns: int) -> SendResult:
        """Attempt ``job`` at ``now_ns``; never raises for a failed delivery."""
        ...


class WebhookChannel:
    """Signed JSON POSTs (:func:`alerts.formats.webhook.webhook_request`) to each partner's URL.

    ``endpoints``: ``{partner_id: (url, secret)}``. 2xx and 409 (the partner already has this
    idempotency key) are delivered; 408/425/429, 5xx, timeouts and connection errors are retried;
    any other status (a 4xx refusal, an unexpected redirect) is dead, as is a partner without an
    endpoint. ``exercise`` marks every body as an exercise. ``lane_concurrency``: POSTs in flight at
    once to one partner (:class:`alerts.delivery_pump.DeliveryPump`).
    """

    name = WEBHOOK

    def __init__(self, client: httpx.Client, endpoints: Mapping[str, tuple[str, bytes | str]], *,
                 exercise: bool = False, links_for: LinksFor | None = None, read_links_for: LinksFor | None = None,
                 lane_concurrency: int = 8):
        self.client = client
        self.lane_concurrency = lane_concurrency  # POSTs in flight at once per partner (httpx.Client is thread-safe)
        self.endpoints = {partner: (url, secret.encode("utf-8") if isinstance(secret, str) else bytes(secret))
                          for partner, (url, secret) in endpoints.items()}
        self.exercise = exercise
        self.links_for, self.read_links_for = links_for, read_links_for

    def send(self, job: DeliveryJob, now_ns: int) -> SendResult:
        """POST ``job``'s alert to its partner, signed at ``now_ns``, and classify the answer."""
        endpoint = self.endpoints.get(job.partner_id)
        if endpoint is None:
            return SendResult(Outcome.DEAD, f"no webhook endpoint configured for partner {job.partner_id!r}")
        url, secret = endpoint
        actions = self.links_for(job.alert, job.partner_id) if self.links_for else None
        links = self.read_links_for(job.alert, job.partner_id) if self.read_links_for else None
        headers, body = webhook_request(job.alert, job.partner_id, secret, now_ns // 1_000_000_000,
                                        self.exercise or job.alert.exercise, actions, links)
        try:
            status, text = post_bounded(self.client, url, body, headers)
        except httpx.TimeoutException as exc:
            return SendResult(Outcome.RETRY, f"timeout posting to {url}: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return SendResult(Outcome.RETRY, f"cannot reach {url}: {type(exc).__name__}: {exc}")
        detail = f"HTTP {status} from {url}: {text[:MAX_DETAIL_CHARS]}".rstrip(": ")
        if 200 <= status < 300 or status == 409:
            return SendResult(Outcome.DELIVERED, detail)
        if status >= 500 or status in _RETRYABLE_4XX:
            return SendResult(Outcome.RETRY, detail)
        return SendResult(Outcome.DEAD, detail)


def post_bounded(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str],
                 max_bytes: int = MAX_ANSWER_BYTES, max_body_s: float = 5.0) -> tuple[int, str]:
    """POST ``body`` and return the answer's status and the first ``max_bytes`` of its body (as
    text), read for at most ``max_body_s`` (a body that trickles is cut off: the status is what
    counts); the rest is never read. Redirects are not followed (a 3xx is the answer). Raises what
    httpx raises for timeouts and transport errors."""
    with client.stream("POST", url, content=body, headers=headers, follow_redirects=False) as response:
        head = bytearray()
        deadline = time.monotonic() + max_body_s
        try:
            for chunk in response.iter_raw():  # as sent: no decompression (a gzip bomb stays small)
                head += chunk
                if len(head) >= max_bytes or time.monotonic() > deadline:
                    break
        except httpx.StreamConsumed:  # a transport that read the body already (httpx.MockTransport)
            head = bytearray(response.content[:max_bytes])
        return response.status_code, bytes(head[:max_bytes]).decode(response.encoding or "utf-8", "replace")


@dataclass
class DeliveryStats:
    """What one :func:`deliver_due` pass (or one turn of the delivery worker) did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0

    def add(self, other: DeliveryStats) -> DeliveryStats:
        """Add ``other``'s counts to these; returns self."""
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        return self


def lane_of(channel: Channel, job: DeliveryJob) -> Hashable:
    """Where a delivery goes: deliveries in one lane are sent one after another, in order; lanes are
    sent side by side. A channel names its lanes with ``lane(job)`` (the TAK server a CoT delivery
    goes to); by default, one lane per partner and channel."""
    lane = getattr(channel, "lane", None)
    return (job.channel, lane(job) if lane is not None else job.partner_id)


def deliver_due(outbox: Outbox, channels: Mapping[str, Channel], now_ns: int | None = None,
                limit: int = 100, max_lanes: int = 8) -> DeliveryStats:
    """One pass: claim up to ``limit`` deliveries due at ``now_ns`` on ``channels`` (by channel name),
    send them and record every outcome before returning; a channel that raises counts as a retry
    with the exception as the error.

    It is one turn of the delivery worker's :class:`~alerts.delivery_pump.DeliveryPump` (lanes side
    by side on ``max_lanes`` threads, a lane whose endpoint failed not trying the rest), run until
    everything it claimed is recorded: for a script or a test that wants a pass, not for the worker.
    """
    from alerts.delivery_pump import DeliveryPump  # the pump is built on this module's channels

    pump = DeliveryPump(outbox, channels, batch=max(1, limit), max_in_flight=max(1, max_lanes), lane_queue=max(1, limit))
    try:
        stats = pump.step(now_ns) if limit > 0 else DeliveryStats()
        stats.add(pump.drain())
    finally:
        pump.close()
    return stats


def record_failure(outbox: Outbox, job: DeliveryJob, result: SendResult, now_ns: int, stats: DeliveryStats) -> None:
    """Record a failed attempt (retry or dead) with its counter and, for a dead one, an error log."""
    record = outbox.failed(job.key, result.detail, now_ns, permanent=result.outcome is Outcome.DEAD)
    if record is not None and record.status == DEAD:
        stats.dead += 1
        DELIVERIES.labels(job.partner_id, job.channel, "dead").inc()
        log.error("delivery %s of alert %s to %s on %s is dead: %s", job.key, job.alert.alert_id, job.partner_id,
                  job.channel, result.detail)
    else:
        stats.retried += 1
        DELIVERIES.labels(job.partner_id, job.channel, "retry").inc()


def publish_delivery_health(outbox: Outbox, now_ns: int | None = None) -> None:
    """Set the per-partner, per-channel gauges from the outbox: pending count, oldest pending age,
    last success time (what tells one unreachable partner apart while the others receive)."""
    now_ns = outbox.clock.now_ns() if now_ns is None else now_ns
    for health in outbox.delivery_health():
        labels = (health.partner_id, health.channel)
        PENDING_DELIVERIES.labels(*labels).set(health.pending)
        oldest = (now_ns - health.oldest_pending_ns) / 1e9 if health.oldest_pending_ns is not None else 0.0
        OLDEST_PENDING_SECONDS.labels(*labels).set(max(0.0, oldest))
        LAST_SUCCESS_TIMESTAMP.labels(*labels).set(health.last_delivered_ns / 1e9 if health.last_delivered_ns else 0.0)
