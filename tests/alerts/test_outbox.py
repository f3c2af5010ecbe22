"""The alert outbox on SQLite and PostgreSQL, and webhook delivery to a real local HTTP receiver.

The receiver (stdlib http.server on 127.0.0.1) checks every signature with verify_webhook and
de-duplicates on the idempotency key, as a partner would: it keeps the first copy of a key and
answers 409 to a repeat.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from wire_samples import T0, alert

from alerts.delivery import DeliveryStats, Outcome, WebhookChannel, deliver_due, publish_delivery_health
from alerts.formats.webhook import idempotency_key, idempotency_key_of, verify_webhook
from alerts.outbox import DEAD, DELIVERED, PENDING, SENDING, SUPERSEDED, Backoff, Outbox, deliveries_table
from ibet.clock import ManualClock
from ibet.config import DatabaseSettings
from ibet.db import make_engine, migrate
from ibet.messages import AlertState

PARTNERS = ("usbp-blaine", "rcmp-e-div")
SECRETS = {"usbp-blaine": b"usbp-secret", "rcmp-e-div": b"rcmp-secret"}
NOW = T0 + 5_000_000_000


@pytest.fixture
def make_outbox(database_url: str) -> Iterator[Callable[..., Outbox]]:
    """Outboxes on the test database, each with an engine of its own (another process, as far as the
    database can tell); the schema is migrated once (and again, which must be a no-op)."""
    engines = []

    def _make(clock: ManualClock, **options) -> Outbox:
        engine = make_engine(DatabaseSettings(url=database_url))
        engines.append(engine)
        return Outbox(engine, clock, **options)

    first = make_engine(DatabaseSettings(url=database_url))
    engines.append(first)
    migrate(first)
    migrate(first)
    yield _make
    for engine in engines:
        engine.dispose()


def webhook_deliveries(an_alert, partners=PARTNERS) -> list[tuple[str, str, str]]:
    return [(partner, "webhook", idempotency_key(an_alert, partner)) for partner in partners]


def alerts(n: int):
    return [alert(alert_id=f"alr-{i:016x}", created_ts_ns=T0 + i, updated_ts_ns=T0 + i) for i in range(n)]


# Recording
def test_record_is_idempotent_and_keeps_the_newest_state(make_outbox):
    outbox = make_outbox(ManualClock(NOW))
    first = alert()
    keys = [key for _, _, key in webhook_deliveries(first)]

    assert outbox.record(first, webhook_deliveries(first)) == keys
    assert outbox.record(first, webhook_deliveries(first)) == []  # replayed after a crash: no-op
    assert outbox.record(first, webhook_deliveries(first) * 2) == []
    assert [r.key for r in outbox.deliveries()] == keys
    assert {r.status for r in outbox.deliveries()} == {PENDING}
    assert outbox.alert(first.alert_id) == first

    acked = alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1_000_000_000)
    new_keys = outbox.record(acked, webhook_deliveries(acked))
    assert len(new_keys) == 2 and not set(new_keys) & set(keys)  # a state change is a new delivery
    assert outbox.alert(first.alert_id) == acked
    outbox.record(first, webhook_deliveries(first))  # a late replay of the older state
    assert outbox.alert(first.alert_id) == acked
    # the first version's deliveries, still waiting when the acknowledgement came, never go
    assert outbox.counts() == {PENDING: 2, SENDING: 0, DELIVERED: 0, DEAD: 0, SUPERSEDED: 2}
    versions = {r.key: r.version for r in outbox.deliveries(first.alert_id)}
    assert versions[new_keys[0]] == f"acknowledged.0.{T0 + 1_000_000_000}"


def test_escalation_candidates_are_the_old_enough_alerts_in_the_states_with_their_first_record(make_outbox):
    clock = ManualClock(NOW)
    outbox = make_outbox(clock)
    opened = alerts(3)
    for an_alert in opened[:2]:
        outbox.record(an_alert, webhook_deliveries(an_alert))
        clock.advance(10)
    outbox.record(opened[2], [])  # no delivery rows: its alert row's record time counts
    acked = alert(alert_id=opened[1].alert_id, state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 9)
    outbox.record(acked, webhook_deliveries(acked))  # acknowledged later: no longer a candidate
    states = (AlertState.OPEN.value, AlertState.ESCALATED.value)
    every = outbox.escalation_candidates(states, clock.now_ns())
    assert [(a.alert_id, first) for a, first in every] == [(opened[0].alert_id, NOW),
                                                          (opened[2].alert_id, NOW + 20_000_000_000)]
    assert [a.alert_id for a, _ in outbox.escalation_candidates(states, NOW + 19_000_000_000)] == [opened[0].alert_id]
    assert outbox.escalation_candidates(states, NOW - 1) == []
    assert all(first == outbox.first_recorded_ns(a.alert_id) for a, first in every)


# Claiming and leases
def test_due_claims_oldest_first_under_a_lease(make_outbox):
    clock = ManualClock(NOW)
    worker_a, worker_b = make_outbox(clock, lease_s=30), make_outbox(clock, lease_s=30)
    recorded = []
    for an_alert in alerts(3):
        recorded += worker_a.record(an_alert, webhook_deliveries(an_alert, PARTNERS[:1]))
        clock.advance(1)

    assert worker_a.due(NOW - 1) == []  # nothing is due before it was recorded
    taken_a = worker_a.due(clock.now_ns(), limit=2)
    assert [job.key for job in taken_a] == recorded[:2]
    assert [job.attempt for job in taken_a] == [1, 1]
    assert taken_a[0].alert == alerts(3)[0] and taken_a[0].partner_id == PARTNERS[0]
    taken_b = worker_b.due(clock.now_ns(), limit=10)
    assert [job.key for job in taken_b] == recorded[2:]  # the leased ones are not handed out twice
    assert worker_b.due(clock.now_ns()) == [] and worker_a.due(clock.now_ns()) == []
    assert worker_a.due(clock.now_ns(), channels=["email"]) == []

    worker_b.delivered(recorded[2])
    clock.advance(29)
    assert worker_b.due(clock.now_ns()) == []
    clock.advance(1)  # worker A's lease has ended: as if it died while sending
    again = worker_b.due(clock.now_ns())
    assert [job.key for job in again] == recorded[:2]
    assert [job.attempt for job in again] == [2, 2]
    assert worker_b.get(recorded[0]).first_attempt_ns == NOW + 3_000_000_000  # kept from the first claim
    assert worker_b.delivered(recorded[0]) and not worker_b.delivered(recorded[0])
    assert worker_b.counts() == {PENDING: 0, SENDING: 1, DELIVERED: 2, DEAD: 0, SUPERSEDED: 0}


def test_concurrent_workers_never_share_a_job(make_outbox):
    clock = ManualClock(NOW)
    recorder = make_outbox(clock)
    for an_alert in alerts(15):
        recorder.record(an_alert, webhook_deliveries(an_alert))
    workers = [make_outbox(clock) for _ in range(3)]
    taken: list[list[str]] = [[] for _ in workers]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            while jobs := workers[index].due(NOW, limit=2):
                taken[index] += [job.key for job in jobs]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    everything = [key for keys in taken for key in keys]
    assert len(everything) == len(set(everything)) == 30
    assert recorder.counts()[SENDING] == 30


# Backoff and dead deliveries
def test_backoff_grows_with_jitter_and_is_capped():
    backoff = Backoff(base_s=1.0, factor=2.0, cap_s=60.0, jitter=0.5)
    delays = [backoff.delay_s("dlv-a.open.0.1", attempt) for attempt in range(1, 40)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        assert ceiling * 0.5 <= delay <= ceiling
    assert delays[:6] == sorted(delays[:6])  # grows while below the cap (jitter is at most half)
    assert max(delays) <= 60.0 and delays[-1] > 30.0
    assert delays == [backoff.delay_s("dlv-a.open.0.1", a) for a in range(1, 40)]  # reproducible
    assert delays[:8] != [backoff.delay_s("dlv-b.open.0.1", a) for a in range(1, 9)]  # keys spread out
    assert Backoff(jitter=0.0).delay_s("k", 3) == 4.0
    assert Backoff(cap_s=300.0).delay_s("k", 10**9) <= 300.0
    with pytest.raises(ValueError):
        Backoff(jitter=1.0)


def test_failed_backs_off_in_the_database_then_dies(make_outbox):
    clock = ManualClock(NOW)
    backoff = Backoff(base_s=2.0, factor=2.0, cap_s=10.0, jitter=0.25, dead_after_s=60.0)
    outbox = make_outbox(clock, backoff=backoff, lease_s=5)
    [key] = outbox.record(alert(), webhook_deliveries(alert(), PARTNERS[:1]))
    waits = []
    while True:
        [job] = outbox.due(clock.now_ns())
        record = outbox.failed(job.key, "HTTP 503", clock.now_ns())
        if record.status == DEAD:
            break
        assert record.status == PENDING and record.last_error == "HTTP 503"
        wait_ns = record.next_attempt_ns - clock.now_ns()
        waits.append(wait_ns / 1e9)
        clock.advance(wait_ns / 1e9 - 0.5)
        assert outbox.due(clock.now_ns()) == []  # not before its time
        clock.advance(0.5)
    assert waits[0] == pytest.approx(backoff.delay_s(key, 1))
    assert 1.5 <= waits[0] <= 2.0 and all(w <= 10.0 for w in waits)
    assert waits[:3] == sorted(waits[:3]) and all(w >= 7.5 for w in waits[4:])
    dead = outbox.get(key)
    assert dead.status == DEAD and dead.attempts == len(waits) + 1
    assert clock.now_ns() - dead.first_attempt_ns >= 60 * 10**9
    assert clock.now_ns() - dead.first_attempt_ns - waits[-1] * 1e9 < 60 * 10**9  # died at the first failure past it
    clock.advance(3600)
    assert outbox.due(clock.now_ns()) == []
    assert outbox.failed(key, "late", clock.now_ns()).status == DEAD  # not sending: left as it is


def test_a_refusal_is_dead_at_once(make_outbox):
    outbox = make_outbox(ManualClock(NOW))
    [key] = outbox.record(alert(), webhook_deliveries(alert(), PARTNERS[:1]))
    [job] = outbox.due(NOW)
    record = outbox.failed(job.key, "HTTP 400", NOW, permanent=True)
    assert (record.status, record.attempts, record.last_error) == (DEAD, 1, "HTTP 400")
    assert outbox.failed("dlv-unknown", "x", NOW) is None


# Webhook channel
def test_webhook_channel_classifies_answers():
    answers = iter([200, 204, 409, 400, 404, 429, 500, 503, "timeout", "refused", 301])

    def handler(request: httpx.Request) -> httpx.Response:
        assert verify_webhook(request.headers, request.content, SECRETS["usbp-blaine"], NOW / 1e9)
        answer = next(answers)
        if answer == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if answer == "refused":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(answer, text="body")

    channel = WebhookChannel(httpx.Client(transport=httpx.MockTransport(handler)),
                             {"usbp-blaine": ("http://partner.test/hook", "usbp-secret")})
    from alerts.outbox import DeliveryJob

    job = DeliveryJob("k", alert(), "usbp-blaine", "webhook", "open.0.1", 1, NOW)
    outcomes = [channel.send(job, NOW).outcome for _ in range(11)]
    assert outcomes == [Outcome.DELIVERED] * 3 + [Outcome.DEAD] * 2 + [Outcome.RETRY] * 5 + [Outcome.DEAD]
    missing = channel.send(job._replace(partner_id="nobody"), NOW)
    assert missing.outcome is Outcome.DEAD and "nobody" in missing.detail


# A real receiver
class Receiver:
    """A partner's webhook endpoint: /hook/<partner id>, signatures checked, duplicates dropped."""

    def __init__(self, clock: ManualClock):
        with socket.socket() as probe:  # a free port, with nothing listening on it yet: connection refused
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.clock = clock
        self.lock = threading.Lock()
        self.unavailable = False  # answer 503 to everything
        self.seen: list[str] = []  # every idempotency key that arrived, signed, in order
        self.kept: dict[str, dict] = {}  # after de-duplication
        self.bad_signatures = 0
        self.server: ThreadingHTTPServer | None = None

    def url(self, partner_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{partner_id}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                partner = self.path.rsplit("/", 1)[-1]
                headers = dict(self.headers.items())
                with receiver.lock:
                    if receiver.unavailable:
                        return self._answer(503)
                    if not verify_webhook(headers, body, SECRETS.get(partner, b"?"), receiver.clock.now_ns() / 1e9):
                        receiver.bad_signatures += 1
                        return self._answer(401)
                    key = idempotency_key_of(headers)
                    document = json.loads(body)
                    assert document["idempotency_key"] == key and document["partner_id"] == partner
                    receiver.seen.append(key)
                    if key in receiver.kept:
                        return self._answer(409)
                    receiver.kept[key] = document
                return self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    clock = ManualClock(NOW)
    made = Receiver(clock)
    yield made
    made.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def webhook(receiver: Receiver, http: httpx.Client) -> dict[str, WebhookChannel]:
    return {"webhook": WebhookChannel(http, {p: (receiver.url(p), SECRETS[p]) for p in PARTNERS})}


def test_a_partner_that_is_down_gets_every_alert_once_when_it_comes_back(make_outbox, receiver, http):
    clock = receiver.clock
    outbox = make_outbox(clock, backoff=Backoff(base_s=1.0, cap_s=8.0, dead_after_s=3600.0))
    channels = webhook(receiver, http)
    keys = []
    for an_alert in alerts(4):
        keys += outbox.record(an_alert, webhook_deliveries(an_alert))

    stats = [deliver_due(outbox, channels, clock.now_ns())]  # nobody listening: connection refused
    assert stats[0] == DeliveryStats(claimed=8, delivered=0, retried=8, dead=0)
    assert "cannot reach" in outbox.get(keys[0]).last_error
    clock.advance(1)
    stats.append(deliver_due(outbox, channels, clock.now_ns()))
    receiver.unavailable = True
    receiver.start()  # up, but answering 503
    for _ in range(3):
        clock.advance(2)
        stats.append(deliver_due(outbox, channels, clock.now_ns()))
    assert receiver.kept == {} and sum(s.retried for s in stats) >= 16
    assert outbox.counts()[PENDING] == 8

    receiver.unavailable = False
    for _ in range(30):
        if outbox.counts()[DELIVERED] == len(keys):
            break
        clock.advance(1)
        stats.append(deliver_due(outbox, channels, clock.now_ns()))
    assert outbox.counts() == {PENDING: 0, SENDING: 0, DELIVERED: 8, DEAD: 0, SUPERSEDED: 0}
    assert sorted(receiver.kept) == sorted(keys)  # every alert, to both partners
    assert sorted(receiver.seen) == sorted(keys)  # each key exactly once
    assert receiver.bad_signatures == 0
    assert sum(s.dead for s in stats) == 0
    assert {doc["alert"]["alert_id"] for doc in receiver.kept.values()} == {a.alert_id for a in alerts(4)}
    assert all(outbox.get(key).attempts >= 3 for key in keys)
    assert deliver_due(outbox, channels, clock.now_ns() + 10**12) == DeliveryStats()


def test_a_crash_between_sending_and_recording_is_no_duplicate_for_the_partner(make_outbox, receiver, http):
    clock = receiver.clock
    receiver.start()
    channels = webhook(receiver, http)
    before = make_outbox(clock, lease_s=30)
    an_alert = alert()
    [key] = before.record(an_alert, webhook_deliveries(an_alert, PARTNERS[:1]))

    [job] = before.due(clock.now_ns())
    assert channels["webhook"].send(job, clock.now_ns()).outcome is Outcome.DELIVERED
    before.engine.dispose()  # the service dies here, before delivered(): the row stays "sending"
    del before

    after = make_outbox(clock, lease_s=30)  # the restarted service
    assert deliver_due(after, channels, clock.now_ns()) == DeliveryStats()  # the lease still holds
    clock.advance(30)
    assert deliver_due(after, channels, clock.now_ns()) == DeliveryStats(claimed=1, delivered=1)
    assert receiver.seen == [key, key]  # sent twice, with the same idempotency key ...
    assert list(receiver.kept) == [key]  # ... and the partner kept one
    record = after.get(key)
    assert (record.status, record.attempts) == (DELIVERED, 2)
    clock.advance(3600)
    assert deliver_due(after, channels, clock.now_ns()) == DeliveryStats()
    assert receiver.seen == [key, key]



# Versions in order
def test_an_older_version_is_never_sent_after_a_newer_one(make_outbox):
    clock = ManualClock(NOW)
    outbox = make_outbox(clock, lease_s=30)
    first = alert()
    acked = alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1_000_000_000)
    resolved = alert(state=AlertState.RESOLVED, updated_ts_ns=T0 + 2_000_000_000)
    one = PARTNERS[:1]
    [k1] = [k for _, _, k in webhook_deliveries(first, one)]
    outbox.record(first, webhook_deliveries(first, one))
    [in_flight] = outbox.due(clock.now_ns())  # the first version is on its way (a slow partner)
    assert in_flight.key == k1
    outbox.record(acked, webhook_deliveries(acked, one))
    assert outbox.due(clock.now_ns()) == []  # the newer one waits behind the one in flight
    outbox.failed(k1, "timed out", clock.now_ns())  # ... which fails and would be retried
    clock.advance(60)
    outbox.record(resolved, webhook_deliveries(resolved, one))
    [job] = outbox.due(clock.now_ns())
    assert job.alert == resolved  # the newest only; the first and the acknowledgement are superseded
    assert [r.status for r in outbox.deliveries()] == [SUPERSEDED, SUPERSEDED, SENDING]
    assert outbox.record(acked, webhook_deliveries(acked, PARTNERS)) != []  # a late replay, a new partner too
    statuses = {(r.partner_id, r.version.split(".")[0], r.status) for r in outbox.deliveries()}
    assert (PARTNERS[1], "acknowledged", PENDING) in statuses  # that partner has no newer version yet
    assert (PARTNERS[0], "acknowledged", SUPERSEDED) in statuses


# Delivery health per partner
def test_delivery_health_tells_one_unreachable_partner_apart(make_outbox):
    clock = ManualClock(NOW)
    outbox = make_outbox(clock)
    first = alert()
    keys = dict((p, k) for p, _, k in webhook_deliveries(first))
    outbox.record(first, webhook_deliveries(first))
    jobs = outbox.due(clock.now_ns())
    clock.advance(30)
    outbox.delivered(keys[PARTNERS[0]], clock.now_ns())
    outbox.failed(keys[PARTNERS[1]], "connection refused", clock.now_ns())
    assert len(jobs) == 2
    health = {h.partner_id: h for h in outbox.delivery_health()}
    assert (health[PARTNERS[0]].pending, health[PARTNERS[0]].last_delivered_ns) == (0, clock.now_ns())
    assert (health[PARTNERS[1]].pending, health[PARTNERS[1]].oldest_pending_ns) == (1, NOW)
    assert health[PARTNERS[1]].last_delivered_ns is None
    publish_delivery_health(outbox, clock.now_ns())
    sample = REGISTRY.get_sample_value
    assert sample("ibet_alert_delivery_oldest_pending_seconds", {"partner": PARTNERS[1], "channel": "webhook"}) == 30
    assert sample("ibet_alert_deliveries_pending", {"partner": PARTNERS[0], "channel": "webhook"}) == 0
    assert sample("ibet_alert_delivery_last_success_timestamp_seconds",
                  {"partner": PARTNERS[0], "channel": "webhook"}) == clock.now_ns() / 1e9


def test_a_newer_version_never_goes_while_an_older_one_may_be_being_claimed(make_outbox):
    """Two workers claiming at once on PostgreSQL: one locks the first version's row (SKIP LOCKED hides
    it from the other, which still reads it as pending) while the second version is recorded. The
    other worker must not claim the second meanwhile, or both would be on the wire together."""
    clock = ManualClock(NOW)
    outbox = make_outbox(clock, lease_s=30)
    first, acked = alert(), alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1_000_000_000)
    one = PARTNERS[:1]
    outbox.record(first, webhook_deliveries(first, one))
    outbox.record(acked, webhook_deliveries(acked, one))
    assert [r.status for r in outbox.deliveries()] == [SUPERSEDED, PENDING]  # superseded when the newer came
    with outbox.engine.begin() as conn:  # as the other worker sees it: the first one still pending
        conn.execute(deliveries_table.update().where(deliveries_table.c.id == min(
            r for r in conn.execute(select(deliveries_table.c.id)).scalars())).values(status=PENDING))
    assert outbox.due(clock.now_ns()) == []  # not behind a version that may be on its way
    [job] = outbox.due(clock.now_ns())  # the older one was superseded on that read: now the newer goes
    assert job.alert == acked and [r.status for r in outbox.deliveries()] == [SUPERSEDED, SENDING]


def test_an_older_version_that_fails_while_a_newer_one_waits_is_superseded_not_retried(make_outbox):
    clock = ManualClock(NOW)
    outbox = make_outbox(clock, lease_s=30)
    first, acked = alert(), alert(state=AlertState.ACKNOWLEDGED, updated_ts_ns=T0 + 1_000_000_000)
    one = PARTNERS[:1]
    outbox.record(first, webhook_deliveries(first, one))
    [in_flight] = outbox.due(clock.now_ns())
    outbox.record(acked, webhook_deliveries(acked, one))
    assert outbox.due(clock.now_ns()) == []  # behind the one in flight
    assert outbox.failed(in_flight.key, "timed out", clock.now_ns()).status == SUPERSEDED
    [job] = outbox.due(clock.now_ns())  # at once, not after the first one's backoff
    assert job.alert == acked
