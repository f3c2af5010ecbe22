"""The alert service around the stage: delivery and escalation workers, channels from the config.

The stage (:mod:`alerts.stage`) records alerts; these workers act on what is recorded, so they can
die and restart at any point without losing anything:

- :class:`DeliveryWorker` claims due deliveries from the outbox and sends them through the channels
  (:class:`alerts.delivery_pump.DeliveryPump`), when woken and every ``delivery_poll_s``.
- :class:`EscalationWorker` looks at open alerts: when nobody acknowledged one within
  ``ack_timeout_s`` per level (counted from when the alert was first recorded, not from the event's
  capture time, so a replayed scenario is not escalated at once), it routes the alert at the next
  level (supervisors, then the neighbouring IBETs under mutual aid), records the escalated version
  with its deliveries and puts it on ``ibet.alerts.v1``.

:func:`build_service` wires the stage, the outbox and the workers from an :class:`IbetConfig`.
"""

from __future__ import annotations

import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import Counter

from alerts.api import SNAPSHOT, create_app
from alerts.cap_channel import CapChannel
from alerts.compose import deliveries_for, escalated_alert
from alerts.cot_channel import CotChannel, tak_tls_context
from alerts.delivery import Channel, DeliveryStats, LinksFor, WebhookChannel, publish_delivery_health
from alerts.delivery_pump import DeliveryPump
from alerts.email_channel import EmailChannel
from alerts.identity import LINK_ACTIONS, ContactTokens, LinkSigner
from alerts.lifecycle import AlertLifecycle
from alerts.outbox import Backoff, Outbox
from alerts.rosters import Roster, load_rosters, on_duty
from alerts.routing import EscalationPolicy, instant_of, route_sector
from alerts.rules import Decision, RulesConfig
from alerts.stage import AlertStage
from ibet import topics
from ibet.audit import SYSTEM, record_audit
from ibet.bus.base import Bus, OutRecord, Producer
from ibet.clock import Clock, SystemClock
from ibet.config import AlertSettings, HttpSettings, IbetConfig
from ibet.db import make_engine, migrate
from ibet.http_limits import uvicorn_config
from ibet.messages import Alert, AlertState, BorderEvent
from ibet.registry import Registry

log = logging.getLogger(__name__)
HEALTH_EVERY_S = 15.0  # how often the delivery worker refreshes the per-partner delivery gauges

RAISED = Counter("ibet_alerts_raised", "Alert versions recorded (new, updated, escalated)", ["severity", "kind"])
SUPPRESSED = Counter("ibet_alerts_suppressed", "Border events that raised no alert, by the rule's reason", ["reason"])
ESCALATIONS = Counter("ibet_alerts_escalated", "Alerts escalated because nobody acknowledged them", ["level"])


class _Worker:
    """A daemon thread calling ``step()`` every ``interval_s`` until stopped; a failing step is logged."""

    name = "worker"

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Run the next step now instead of at the end of the interval (work was just recorded)."""
        self._wake.set()

    def step(self) -> object:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"alerts-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - keep the service alive; the outbox keeps the work
                log.exception("alerts %s step failed; retrying in %.1f s", self.name, self.interval_s)
            self._wake.wait(self.interval_s)
            self._wake.clear()


class DeliveryWorker(_Worker):
    """Sends what the outbox holds through ``channels`` (by channel name) with a
    :class:`~alerts.delivery_pump.DeliveryPump`: woken when an alert is recorded and when a send
    finishes, else every ``interval_s``."""

    name = "delivery"

    def __init__(self, outbox: Outbox, channels: Mapping[str, Channel], interval_s: float = 0.5, batch: int = 250):
        super().__init__(interval_s)
        self.outbox, self.channels, self.batch = outbox, dict(channels), batch
        self.pump = DeliveryPump(outbox, self.channels, batch=batch, on_done=self._sent, poll_s=interval_s)
        self._health_at = -HEALTH_EVERY_S
        self._turn_at = 0.0

    TURN_S = 0.01  # finished sends are recorded together, at most a turn this often

    def recorded(self) -> None:
        """Deliveries were recorded in this process: claim them now."""
        self.pump.recorded()
        self.wake()

    def _sent(self) -> None:
        self.wake()

    def step(self) -> DeliveryStats:
        """Record the finished sends, claim and start what is due, turn after turn while whole
        batches come; return the totals (and, every ``HEALTH_EVERY_S``, the per-partner gauges)."""
        now = time.monotonic()
        if now - self._health_at >= HEALTH_EVERY_S:
            self._health_at = now
            publish_delivery_health(self.outbox)
        time.sleep(max(0.0, self._turn_at + self.TURN_S - time.monotonic()))
        self._turn_at = time.monotonic()
        total = DeliveryStats()
        while True:
            stats = self.pump.step()
            total.add(stats)
            if stats.claimed < self.batch:
                return total

    def stop(self, timeout_s: float = 10.0) -> None:
        super().stop(timeout_s)
        self.pump.close()


class CotKeepAliveWorker(_Worker):
    """Every ``interval_s`` sends the markers of every unresolved alert again to its partners' TAK
    servers, so they stay on the map while the alert is open (a marker lives ``alerts.cot_stale_s``)."""

    name = "cot-keepalive"

    def __init__(self, outbox: Outbox, channel: CotChannel, interval_s: float, clock: Clock):
        super().__init__(interval_s)
        self.outbox, self.channel, self.clock = outbox, channel, clock

    def step(self) -> int:
        sent = 0
        for alert in self.outbox.alerts_in([s.value for s in AlertState if s is not AlertState.RESOLVED]):
            sent += sum(r.outcome.value == "delivered" for r in self.channel.refresh(alert, self.clock.now_ns()))
        return sent


class EscalationWorker(_Worker):
    """Escalates open alerts nobody acknowledged in time (see the module doc)."""

    name = "escalation"

    def __init__(self, outbox: Outbox, registry: Registry, roster: Roster, policy: EscalationPolicy, *,
                 channels: tuple[str, ...], publish: Callable[[Alert], None], clock: Clock | None = None,
                 interval_s: float = 5.0, lifecycle: AlertLifecycle | None = None):
        super().__init__(interval_s)
        self.outbox, self.registry, self.roster, self.policy = outbox, registry, roster, policy
        self.channels, self.publish = channels, publish
        self.clock = clock or SystemClock()
        self.lifecycle = lifecycle

    def step(self) -> list[Alert]:
        """Escalate what is due now; return the escalated versions."""
        now_ns = self.clock.now_ns()
        escalated = []
        states = (AlertState.OPEN.value, AlertState.ESCALATED.value)
        due_by_ns = now_ns - round(self.policy.ack_timeout_s * 1e9)  # none younger than one timeout is due
        for alert, first_ns in self.outbox.escalation_candidates(states, due_by_ns):
            level = self.policy.next_escalation(alert.state, first_ns, now_ns, alert.escalation_level)
            if level is None:
                continue
            routing = route_sector(alert.sector_id, now_ns, alert.direction, self.registry, self.roster, level)
            rerouted = escalated_alert(alert, routing, now_ns)
            if self.lifecycle is not None:
                # The new partners first (so they may act on it), then the escalation, whose publish
                # hook records the version with its deliveries and puts it on the bus.
                self.lifecycle.open(rerouted.model_copy(update={"escalation_level": alert.escalation_level}))
                version = self.lifecycle.escalate(alert.alert_id, SYSTEM, "nobody acknowledged in time", level=level)
            else:
                version = rerouted.model_copy(update={"state": AlertState.ESCALATED})
                self.outbox.record(version, deliveries_for(version, self.registry, self.channels))
                self.publish(version)
            ESCALATIONS.labels(str(level)).inc()
            log.warning("alert %s not acknowledged: escalated to level %d (%s)", alert.alert_id, level,
                        ", ".join(routing.partner_ids) or routing.reason)
            escalated.append(version)
        return escalated


def bus_publisher(producer: Producer, timeout_s: float = 30.0) -> Callable[[Alert], None]:
    """Put an alert version on ``ibet.alerts.v1`` and wait for the broker's acknowledgement."""
    def publish(alert: Alert) -> None:
        producer.send_and_wait(OutRecord(topics.ALERTS, key=alert.alert_id.encode(), value=alert.to_bytes()), timeout_s)
    return publish


def version_recorder(outbox: Outbox, registry: Registry, channels: Collection[str], publish: Callable[[Alert], None],
                     wake: Callable[[], None] | None = None) -> Callable[[Alert], None]:
    """The lifecycle's publish hook: a state change (acknowledged, escalated, resolved) is recorded in
    the outbox with a delivery to every routed partner (their copy follows the alert's state; CAP gets
    an Update or a Cancel) and put on ``ibet.alerts.v1``. The console uses the same hook."""
    def record(alert: Alert) -> None:
        outbox.record(alert, deliveries_for(alert, registry, channels))
        publish(alert)
        if wake is not None:
            wake()
    return record


def _contact_on_duty(roster: Roster, alert: Alert, partner_id: str, now_ns: int) -> str:
    """The partner's contact on duty in the alert's sector now (lowest level first), else its desk."""
    duties = [d for d in on_duty(roster, alert.sector_id, instant_of(now_ns)) if d.partner_id == partner_id]
    return next((c for d in sorted(duties, key=lambda d: d.level) for c in d.contacts), f"{partner_id}-desk")


def action_links(signer: LinkSigner, public_url: Callable[[], str | None], roster: Roster, ttl_s: float,
                 clock: Clock | None = None) -> LinksFor:
    """Signed one-click links (acknowledge, resolve, escalate) for a partner's copy of an alert, valid
    ``ttl_s`` from the send. Each link names the partner's contact on duty in the alert's sector now
    (the audit says who acted), or the partner's desk when its roster has nobody there."""
    clock = clock or SystemClock()

    def links(alert: Alert, partner_id: str) -> dict[str, str]:
        base = (public_url() or "").rstrip("/")
        if alert.state is AlertState.RESOLVED or not base:
            return {}
        contact = _contact_on_duty(roster, alert, partner_id, clock.now_ns())
        return {action: f"{base}/a/{signer.sign(alert.alert_id, action, partner_id, contact, ttl_s=ttl_s)}"
                for action in LINK_ACTIONS}
    return links


def read_links(signer: LinkSigner, public_url: Callable[[], str | None], roster: Roster, ttl_s: float,
               clock: Clock | None = None) -> LinksFor:
    """Signed read-only links for a partner's copy of an alert, valid ``ttl_s`` from the send:
    ``alert`` (its page, with the snapshot), and ``crop`` and ``frame`` (the JPEGs, when the alert
    has them). Scoped to the partner and named for its contact on duty, like the action links;
    every image fetched is audited. In every channel, resolved alerts included."""
    clock = clock or SystemClock()

    def links(alert: Alert, partner_id: str) -> dict[str, str]:
        base = (public_url() or "").rstrip("/")
        if not base or alert.kind != "border":
            return {}
        contact = _contact_on_duty(roster, alert, partner_id, clock.now_ns())
        expires_ns = clock.now_ns() + int(ttl_s * 1e9)
        out = {"alert": f"{base}/a/{signer.sign(alert.alert_id, 'view', partner_id, contact, expires_ns=expires_ns)}"}
        for which, _ref in zip(SNAPSHOT, alert.evidence_refs, strict=False):
            out[which] = f"{base}/e/{signer.sign(alert.alert_id, which, partner_id, contact, expires_ns=expires_ns)}"
        return out
    return links


def make_channels(settings: AlertSettings, registry: Registry, client: httpx.Client | None = None,
                  links_for: LinksFor | None = None, read_links_for: LinksFor | None = None) -> dict[str, Channel]:
    """The enabled channels that can be built from the settings and the registry's partner contacts;
    ``links_for`` puts signed action links into webhook bodies and e-mails, ``read_links_for`` the
    links to the alert's page and snapshot into every channel (CAP web and resources, CoT links)."""
    pool = max(20, 4 * settings.delivery_concurrency)  # every partner's lane keeps its connections alive
    client = client or httpx.Client(timeout=settings.http_timeout_s,
                                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=pool))
    channels: dict[str, Channel] = {}
    partner_secrets = {p: v.get_secret_value() for p, v in settings.webhook_secrets.items()}
    if "email" in settings.channels:
        smtp = settings.smtp
        channels["email"] = EmailChannel.from_registry(
            registry, smtp.host, smtp.port, smtp.sender, security=smtp.security, username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None, timeout_s=smtp.timeout_s,
            exercise=settings.exercise, links_for=links_for, read_links_for=read_links_for)
    if "cot" in settings.channels:
        context = None
        if settings.cot_tls_certfile:
            context = tak_tls_context(str(settings.cot_tls_certfile),
                                      str(settings.cot_tls_keyfile) if settings.cot_tls_keyfile else None,
                                      str(settings.cot_tls_cafile) if settings.cot_tls_cafile else None)
        elif settings.cot_tls_cafile:
            context = ssl.create_default_context(cafile=str(settings.cot_tls_cafile))
        channels["cot"] = CotChannel.from_registry(registry, ssl_context=context, exercise=settings.exercise,
                                                   stale_s=settings.cot_stale_s, timeout_s=settings.cot_timeout_s,
                                                   read_links_for=read_links_for)
    if "cap" in settings.channels:
        endpoints = {p.id: (p.contacts.cap_url, partner_secrets[p.id]) for p in registry.partners
                     if p.contacts.cap_url and p.id in partner_secrets}
        missing = [p.id for p in registry.partners if p.contacts.cap_url and p.id not in partner_secrets]
        if missing:
            log.warning("no secret for the CAP endpoints of %s: their CAP deliveries will be dead until one is "
                        "configured (alerts.webhook_secrets)", ", ".join(missing))
        channels["cap"] = CapChannel(client, endpoints, settings.cap_sender, exercise=settings.exercise,
                                     expires_s=settings.cap_expires_s, read_links_for=read_links_for,
                                     lane_concurrency=settings.delivery_concurrency)
    if "webhook" in settings.channels:
        endpoints = {p.id: (p.contacts.webhook_url, settings.webhook_secrets[p.id].get_secret_value())
                     for p in registry.partners if p.contacts.webhook_url and p.id in settings.webhook_secrets}
        missing = [p.id for p in registry.partners if p.contacts.webhook_url and p.id not in settings.webhook_secrets]
        if missing:
            log.warning("no webhook secret for %s: their webhook deliveries will be dead until one is configured "
                        "(alerts.webhook_secrets)", ", ".join(missing))
        channels["webhook"] = WebhookChannel(client, endpoints, exercise=settings.exercise, links_for=links_for,
                                             read_links_for=read_links_for,
                                             lane_concurrency=settings.delivery_concurrency)
    return channels


@dataclass
class AlertService:
    """The stage plus its workers; ``start(bus)`` starts the workers, ``stop()`` stops them."""

    stage: AlertStage
    outbox: Outbox
    registry: Registry
    roster: Roster
    settings: AlertSettings
    channels: dict[str, Channel] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)
    workers: list[_Worker] = field(default_factory=list)
    delivery: DeliveryWorker | None = None
    lifecycle: AlertLifecycle | None = None
    api: FastAPI | None = None
    api_url: str | None = None
    http: HttpSettings = field(default_factory=HttpSettings)
    _api_server: uvicorn.Server | None = None

    def recorded(self, alert: Alert) -> None:
        """The stage recorded an alert version: count it and wake the delivery worker in this process
        (workers in other processes find it at their next poll)."""
        RAISED.labels(alert.severity.value, alert.kind).inc()
        if self.delivery is not None:
            self.delivery.recorded()

    def start(self, bus: Bus) -> None:
        """Start the delivery and escalation workers and the acknowledge/resolve API."""
        publish = bus_publisher(bus.producer("alerts-service"))
        self.delivery = DeliveryWorker(self.outbox, self.channels, self.settings.delivery_poll_s,
                                       self.settings.delivery_batch)
        if self.lifecycle is not None:
            self.lifecycle.publish = version_recorder(self.outbox, self.registry, self.settings.channels, publish,
                                                      self.delivery.recorded)
        self.workers = [
            self.delivery,
            EscalationWorker(self.outbox, self.registry, self.roster,
                             EscalationPolicy(self.settings.ack_timeout_s, self.settings.max_escalation_level),
                             channels=tuple(self.settings.channels), publish=publish, clock=self.clock,
                             interval_s=min(5.0, self.settings.ack_timeout_s / 4), lifecycle=self.lifecycle),
        ]
        cot = self.channels.get("cot")
        if isinstance(cot, CotChannel):
            self.workers.append(CotKeepAliveWorker(self.outbox, cot, self.settings.cot_keepalive_s, self.clock))
        for worker in self.workers:
            worker.start()
        if self.api is not None:
            self._serve_api()

    def _serve_api(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind((self.settings.api_host, self.settings.api_port))
        self._api_server = uvicorn.Server(uvicorn_config(self.api, self.http))
        threading.Thread(target=self._api_server.run, kwargs={"sockets": [sock]}, name="alerts-api", daemon=True).start()
        host = "127.0.0.1" if self.settings.api_host in ("0.0.0.0", "") else self.settings.api_host
        self.api_url = f"http://{host}:{sock.getsockname()[1]}"
        log.info("alert actions API on %s", self.api_url)

    def stop(self) -> None:
        if self._api_server is not None:
            self._api_server.should_exit = True
        for worker in self.workers:
            worker.stop()
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()


def rules_config(settings: AlertSettings) -> RulesConfig:
    return RulesConfig(dedup_window_s=settings.dedup_window_s, cell_m=settings.cell_m,
                       group_window_s=settings.group_window_s)


def build_service(config: IbetConfig, registry: Registry, *, clock: Clock | None = None,
                  channels: dict[str, Channel] | None = None, with_api: bool = True) -> AlertService:
    """Migrate the database, load the rosters, build the outbox, the stage and the channels."""
    clock = clock or SystemClock()
    settings = config.alerts
    engine = make_engine(config.database)
    migrate(engine)
    roster = load_rosters(config.rosters_file(), registry)
    outbox = Outbox(engine, clock, lease_s=settings.delivery_lease_s,
                    backoff=Backoff(base_s=settings.retry_initial_s, cap_s=settings.retry_max_s, dead_after_s=settings.dead_after_s))

    def suppressed(event: BorderEvent, decision: Decision) -> None:
        """Every suppressed alert is recorded with why: a counter, and the audit log."""
        SUPPRESSED.labels(decision.reason).inc()
        record_audit(engine, actor=SYSTEM, action="alert.suppressed", subject_kind="event", subject_id=event.event_id,
                     detail={"reason": decision.reason, "detail": decision.detail, "alert_id": decision.alert_id,
                             "related_alert_id": decision.related_alert_id, "sector_id": event.sector_id,
                             "event_type": event.event_type.value, "track_id": event.track_id},
                     now_ns=clock.now_ns())

    lifecycle = AlertLifecycle(engine, clock)
    stage = AlertStage(registry, roster, outbox, rules_config=rules_config(settings), channels=settings.channels,
                       exercise=settings.exercise, max_escalation_level=settings.max_escalation_level,
                       on_suppressed=suppressed, lifecycle=lifecycle)
    secret = settings.link_secret.get_secret_value() if settings.link_secret else None
    if secret is None:
        secret = secrets.token_urlsafe(32)
        log.warning("alerts.link_secret is not set: signed links in alerts stop working when this process restarts "
                    "(set IBET_ALERTS__LINK_SECRET, 32 bytes or more)")
    evidence_root = settings.evidence_dir or config.console.evidence_dir
    api = create_app(lifecycle, ContactTokens(engine, clock), link_secret=secret, clock=clock,
                     evidence_root=evidence_root) if with_api else None
    service = AlertService(stage, outbox, registry, roster, settings, {}, clock, lifecycle=lifecycle, api=api,
                           http=config.http)
    if channels is None:
        signer, base = LinkSigner(secret, clock), (lambda: settings.public_url or service.api_url)
        channels = make_channels(settings, registry,
                                 links_for=action_links(signer, base, roster, settings.link_ttl_s, clock),
                                 read_links_for=read_links(signer, base, roster, settings.link_ttl_s, clock))
    service.channels = channels
    stage.on_recorded = service.recorded
    stage.service = service  # the runner starts and stops the workers through the stage
    return service
