"""The durable alert outbox: an alert is committed before any delivery of it is attempted.

Two tables (revision 0002, ``ibet/migrations/versions/0002_alert_outbox.py``): ``alerts`` holds each
alert's current JSON and state; ``deliveries`` one row per delivery key (the channel's idempotency
key: alert + partner + channel + alert version) with the exact alert JSON of that version, its
status and its retry schedule. Portable SQLAlchemy Core: SQLite in the embedded mode and tests,
PostgreSQL in production; the schema comes from :func:`ibet.db.migrate`.

Statuses: ``pending`` (waiting for ``next_attempt_ns``) -> ``sending`` (claimed by a worker under a
lease) -> ``delivered`` | ``pending`` (retry, with backoff) | ``dead`` (refused for good, or still
failing ``dead_after_s`` after the first attempt). While a delivery is ``sending``,
``next_attempt_ns`` is the end of its lease: a worker that crashed between sending and recording
leaves the row ``sending``, and once the lease ends :meth:`Outbox.due` hands it out again. The
resend carries the same idempotency key, so the partner de-duplicates it: "once" as the partner
sees it.

Versions in order: per (alert, partner, channel) only the newest recorded version is sent. An older
one that is still waiting when a newer one is recorded becomes ``superseded`` and is never sent
(a partner that keeps the last document it got keeps the newest), as does one in flight that fails
then; and a newer version is not claimed while an older one is waiting or in flight, so the two
never cross on the wire, even with several workers claiming at once (with ``SKIP LOCKED`` another
worker's uncommitted claim reads as still waiting).

    >>> outbox = Outbox(engine, clock)  # doctest: +SKIP
    >>> outbox.record(alert, [("usbp-blaine", "webhook", idempotency_key(alert, "usbp-blaine"))])  # doctest: +SKIP
    >>> for job in outbox.due(clock.now_ns(), limit=10): ...  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from alerts.formats import alert_version
from ibet.clock import Clock, SystemClock, ns_from_seconds
from ibet.exceptions import IbetError
from ibet.messages import Alert

PENDING, SENDING, DELIVERED, DEAD = "pending", "sending", "delivered", "dead"
SUPERSEDED = "superseded"  # a newer version of the alert for the same partner and channel was recorded

# The tables as revision 0002 creates them.
metadata = MetaData()
alerts_table = Table(
    "alerts", metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("alert_json", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("version", String(128), nullable=False),
    Column("updated_ts_ns", BigInteger, nullable=False),
    Column("recorded_ns", BigInteger, nullable=False),
)
deliveries_table = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_key", String(256), nullable=False),
    Column("alert_id", String(64), ForeignKey("alerts.alert_id"), nullable=False),
    Column("partner_id", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("alert_version", String(128), nullable=False),
    Column("alert_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("next_attempt_ns", BigInteger, nullable=False),
    Column("first_attempt_ns", BigInteger),
    Column("last_error", Text),
    Column("delivered_ns", BigInteger),
    UniqueConstraint("delivery_key", name="uq_deliveries_key"),
    Index("ix_deliveries_due", "status", "next_attempt_ns"),
    Index("ix_deliveries_alert", "alert_id"),
)

_ATTEMPTS = 5  # concurrent records of the same alert collide on a key at most a few times
_MAX_ERROR_CHARS = 2000
_IN_CHUNK = 500  # keys per IN (...) list: well under every driver's bound-parameter limit


class OutboxError(IbetError):
    """The outbox database cannot be reached or refused a write; says which operation."""


@dataclass(frozen=True)
class Backoff:
    """Retry schedule: the n-th retry waits ``min(cap_s, base_s * factor**(n-1))`` reduced by up to
    ``jitter`` of itself (a fraction drawn from the delivery key and attempt, so it is reproducible
    and two deliveries failing together spread out); dead ``dead_after_s`` after the first attempt."""

    base_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 300.0
    jitter: float = 0.5
    dead_after_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not self.base_s > 0 or not self.factor >= 1 or not self.cap_s >= self.base_s:
            raise ValueError(f"backoff needs base_s > 0, factor >= 1 and cap_s >= base_s, got {self!r}")
        if not 0 <= self.jitter < 1 or not self.dead_after_s > 0:
            raise ValueError(f"backoff needs 0 <= jitter < 1 and dead_after_s > 0, got {self!r}")

    def delay_s(self, key: str, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first) of ``key``."""
        exponent = min(max(attempt, 1) - 1, 10_000)
        try:
            ceiling = min(self.cap_s, self.base_s * self.factor ** exponent)
        except OverflowError:
            ceiling = self.cap_s
        digest = hashlib.sha256(f"ibet.outbox.jitter.v1\x00{key}\x00{attempt}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return ceiling * (1.0 - self.jitter * fraction)


class DeliveryJob(NamedTuple):
    """A delivery claimed by :meth:`Outbox.due`: send ``alert`` (as it was at ``version``)."""

    key: str
    alert: Alert
    partner_id: str
    channel: str
    version: str
    attempt: int  # 1 for the first attempt
    lease_until_ns: int


class PartnerHealth(NamedTuple):
    """The deliveries of one partner on one channel, summed up."""

    partner_id: str
    channel: str
    pending: int  # waiting or in flight
    oldest_pending_ns: int | None  # when the oldest of those was recorded
    last_delivered_ns: int | None
    dead: int


class DeliveryRecord(NamedTuple):
    """A delivery row as stored."""

    key: str
    alert_id: str
    partner_id: str
    channel: str
    version: str
    status: str
    attempts: int
    next_attempt_ns: int
    first_attempt_ns: int | None
    last_error: str | None
    delivered_ns: int | None


class Outbox:
    """The outbox in the database of ``engine`` (migrated to revision 0002 or later).

    ``lease_s``: how long a claimed delivery is reserved for its worker before another may take it
    (longer than a send, including its HTTP timeout). ``backoff``: the default retry schedule.
    """

    def __init__(self, engine: Engine, clock: Clock | None = None, *, lease_s: float = 60.0,
                 backoff: Backoff | None = None):
        if not lease_s > 0:
            raise ValueError(f"lease_s must be > 0, got {lease_s!r}")
        self.engine = engine
        self.clock = clock or SystemClock()
        self.lease_ns = ns_from_seconds(lease_s)
        self.backoff = backoff or Backoff()

    # Recording
    def record(self, alert: Alert, deliveries: Iterable[tuple[str, str, str]]) -> list[str]:
        """Store ``alert`` (its current state) and its deliveries ``(partner_id, channel, key)`` in one
        transaction; returns the keys that were new. Keys already recorded are left as they are, so
        recording again (a replayed event after a crash) is a no-op. An older version of an alert
        never replaces a newer one as the alert's current state.
        """
        wanted = list(dict.fromkeys((str(p), str(c), str(k)) for p, c, k in deliveries))
        for _ in range(_ATTEMPTS):
            try:
                return self._record_once(alert, wanted)
            except IntegrityError:
                continue  # a concurrent record of the same alert or key won: read again
            except SQLAlchemyError as exc:
                raise OutboxError(f"outbox unavailable, cannot record alert {alert.alert_id}: {exc}") from exc
        raise OutboxError(f"could not record alert {alert.alert_id} after {_ATTEMPTS} attempts")

    def _record_once(self, alert: Alert, wanted: list[tuple[str, str, str]]) -> list[str]:
        with self.engine.begin() as conn:
            return self.record_many(conn, [(alert, wanted)])[0]

    def record_many(self, conn: Connection, items: Sequence[tuple[Alert, Iterable[tuple[str, str, str]]]]) -> list[list[str]]:
        """:meth:`record` for distinct alerts in the caller's transaction ``conn`` (the alert stage's
        batch), with one read of the alerts there are, one of the delivery keys there are, and one
        insert each of the new alerts and deliveries; returns each alert's new keys. A concurrent
        writer of the same alert or key makes it raise IntegrityError: the caller rolls back and
        records them one by one."""
        now_ns = self.clock.now_ns()
        a, d = alerts_table, deliveries_table
        items = [(alert, list(dict.fromkeys((str(p), str(c), str(k)) for p, c, k in wanted))) for alert, wanted in items]
        ids = [alert.alert_id for alert, _ in items]
        if len(set(ids)) != len(ids):
            raise ValueError("record_many takes distinct alerts (record the versions of one alert in turn)")
        current = {row.alert_id: row for row in conn.execute(
            select(a.c.alert_id, a.c.updated_ts_ns, a.c.alert_json).where(a.c.alert_id.in_(ids)))}
        keys = [key for _, wanted in items for _, _, key in wanted]
        known: set[str] = set()
        for start in range(0, len(keys), _IN_CHUNK):
            known.update(conn.execute(select(d.c.delivery_key)
                                      .where(d.c.delivery_key.in_(keys[start:start + _IN_CHUNK]))).scalars())
        new_alerts, new_deliveries, new_keys = [], [], []
        for alert, wanted in items:
            version = alert_version(alert)
            alert_json = alert.model_dump_json(exclude_none=True)
            values = dict(alert_json=alert_json, state=alert.state.value, version=version,
                          updated_ts_ns=alert.updated_ts_ns, recorded_ns=now_ns)
            row = current.get(alert.alert_id)
            older = False  # a late replay of a version older than the one recorded
            if row is None:
                new_alerts.append(dict(alert_id=alert.alert_id, **values))
            elif _newer(alert, Alert.model_validate_json(row.alert_json)):
                conn.execute(update(a).where(a.c.alert_id == alert.alert_id).values(**values))
            else:
                older = alert_json != row.alert_json
            new = [(partner, channel, key) for partner, channel, key in wanted if key not in known]
            if row is not None and not older and new:  # a newer version: the older ones still waiting never go
                conn.execute(update(d).where(d.c.alert_id == alert.alert_id, d.c.status == PENDING,
                                             or_(*(and_(d.c.partner_id == partner, d.c.channel == channel)
                                                   for partner, channel, _ in new)))
                             .values(status=SUPERSEDED, last_error="superseded by a newer version"))
            sent_newer = set()
            if older and new:  # where a newer version is already recorded, the older one is superseded at once
                sent_newer = {(row.partner_id, row.channel) for row in conn.execute(
                    select(d.c.partner_id, d.c.channel).where(d.c.alert_id == alert.alert_id))}
            new_deliveries += [
                dict(delivery_key=key, alert_id=alert.alert_id, partner_id=partner, channel=channel,
                     alert_version=version, alert_json=alert_json, attempts=0, created_ns=now_ns,
                     next_attempt_ns=now_ns, status=SUPERSEDED if (partner, channel) in sent_newer else PENDING,
                     last_error="superseded by a newer version" if (partner, channel) in sent_newer else None)
                for partner, channel, key in new]
            new_keys.append([key for _, _, key in new])
        if new_alerts:
            conn.execute(insert(a), new_alerts)
        if new_deliveries:
            conn.execute(insert(d), new_deliveries)
        return new_keys

    # Claiming
    def due(self, now_ns: int | None = None, limit: int = 100, channels: Collection[str] | None = None,
            excluding: Collection[tuple[str, str]] = ()) -> list[DeliveryJob]:
        """Claim up to ``limit`` deliveries that are due at ``now_ns``, oldest first: pending ones
        whose next attempt has come, and sending ones whose lease has ended (their worker died).
        Each is set ``sending`` under a lease of ``lease_s``, so another worker does not take it
        meanwhile. ``channels``: only deliveries on these channels (those this worker can send);
        ``excluding``: none of these (partner, channel) pairs (a sender's lanes that are full).
        """
        now_ns = self.clock.now_ns() if now_ns is None else now_ns
        if limit <= 0:
            return []
        d = deliveries_table
        lease_until = now_ns + self.lease_ns
        condition = and_(d.c.status.in_((PENDING, SENDING)), d.c.next_attempt_ns <= now_ns)
        if channels is not None:
            if not channels:
                return []
            condition = and_(condition, d.c.channel.in_(list(channels)))
        if excluding:
            condition = and_(condition, not_(or_(*(and_(d.c.partner_id == partner, d.c.channel == channel)
                                                   for partner, channel in set(excluding)))))
        other = deliveries_table.alias("other")
        same = and_(other.c.alert_id == d.c.alert_id, other.c.partner_id == d.c.partner_id,
                    other.c.channel == d.c.channel)
        newer = exists().where(same, other.c.id > d.c.id, other.c.status != SUPERSEDED)
        # Behind an older version still waiting or in flight: with SKIP LOCKED another worker may be
        # claiming that one right now, uncommitted (it reads as pending here); it is superseded
        # (by whoever reads it next, or when it fails) or delivered before this one goes.
        older_in_flight = exists().where(same, other.c.id < d.c.id, other.c.status.in_((PENDING, SENDING)))
        jobs: list[DeliveryJob] = []
        try:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(d.c.id, d.c.delivery_key, d.c.partner_id, d.c.channel, d.c.alert_version, d.c.alert_json,
                           d.c.attempts, d.c.status, d.c.next_attempt_ns, newer.label("superseded"),
                           older_in_flight.label("behind"))
                    .where(condition).order_by(d.c.next_attempt_ns, d.c.id).limit(limit)
                    .with_for_update(skip_locked=True, of=d)  # PostgreSQL; SQLite's BEGIN IMMEDIATE serializes anyway
                ).all()
                gone = [row.id for row in rows if row.superseded]  # never send an older version once a newer one is recorded
                wanted = [row for row in rows if not row.superseded and not row.behind]  # behind: follows the older in flight
                # Both UPDATEs are conditional on the row still being due: a concurrent claimer that got
                # there first set a lease in the future (or an outcome), and the row then matches nothing.
                still_due = and_(d.c.status.in_((PENDING, SENDING)), d.c.next_attempt_ns <= now_ns)
                if gone:
                    conn.execute(update(d).where(d.c.id.in_(gone), still_due)
                                 .values(status=SUPERSEDED, last_error="superseded by a newer version"))
                claimed = set()
                if wanted:
                    claimed = set(conn.execute(
                        update(d).where(d.c.id.in_([row.id for row in wanted]), still_due)
                        .values(status=SENDING, attempts=d.c.attempts + 1, next_attempt_ns=lease_until,
                                first_attempt_ns=func.coalesce(d.c.first_attempt_ns, now_ns))
                        .returning(d.c.id)).scalars())
                jobs = [DeliveryJob(row.delivery_key, Alert.model_validate_json(row.alert_json), row.partner_id,
                                    row.channel, row.alert_version, row.attempts + 1, lease_until)
                        for row in wanted if row.id in claimed]
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox unavailable, cannot claim due deliveries: {exc}") from exc
        return jobs

    # Outcomes
    def delivered(self, key: str, now_ns: int | None = None) -> bool:
        """Record that the partner has ``key``; True when this changed the row (False if already so)."""
        now_ns = self.clock.now_ns() if now_ns is None else now_ns
        d = deliveries_table
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(d).where(d.c.delivery_key == key, d.c.status != DELIVERED)
                    .values(status=DELIVERED, delivered_ns=now_ns, last_error=None)
                ).rowcount
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox unavailable, cannot mark {key} delivered: {exc}") from exc
        return changed == 1

    def delivered_many(self, keys: Collection[str], now_ns: int | None = None) -> int:
        """:meth:`delivered` for many keys in one transaction (a delivery pass's successes);
        returns how many rows this changed."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return 0
        now_ns = self.clock.now_ns() if now_ns is None else now_ns
        d = deliveries_table
        try:
            with self.engine.begin() as conn:
                return conn.execute(
                    update(d).where(d.c.delivery_key.in_(keys), d.c.status != DELIVERED)
                    .values(status=DELIVERED, delivered_ns=now_ns, last_error=None)
                ).rowcount
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox unavailable, cannot mark {len(keys)} deliveries delivered: {exc}") from exc

    def release_many(self, keys: Collection[str]) -> int:
        """Give claimed (``sending``) deliveries that were never tried back: ``pending``, due at once,
        the claim not counted as an attempt (a worker stopping with deliveries still waiting in its
        lanes). Returns how many rows this changed."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return 0
        d = deliveries_table
        try:
            with self.engine.begin() as conn:
                return conn.execute(
                    update(d).where(d.c.delivery_key.in_(keys), d.c.status == SENDING)
                    .values(status=PENDING, next_attempt_ns=self.clock.now_ns(), attempts=d.c.attempts - 1)
                ).rowcount
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox unavailable, cannot release {len(keys)} claimed deliveries: {exc}") from exc

    def failed(self, key: str, error: str, now_ns: int | None = None, backoff: Backoff | None = None, *,
               permanent: bool = False) -> DeliveryRecord | None:
        """Record a failed attempt of a claimed (``sending``) delivery: back to ``pending`` with the
        next attempt after ``backoff``'s delay, or ``dead`` when ``permanent`` (the partner refused
        it) or ``dead_after_s`` have passed since the first attempt, or ``superseded`` (a retry) when
        a newer version of the alert is recorded for the partner meanwhile: that one goes instead.
        Returns the row after, or None when ``key`` is unknown. A delivery not ``sending`` (already
        delivered, or dead) is left as is.
        """
        now_ns = self.clock.now_ns() if now_ns is None else now_ns
        backoff = backoff or self.backoff
        d = deliveries_table
        try:
            with self.engine.begin() as conn:
                other = deliveries_table.alias("other")
                newer = exists().where(other.c.alert_id == d.c.alert_id, other.c.partner_id == d.c.partner_id,
                                       other.c.channel == d.c.channel, other.c.id > d.c.id,
                                       other.c.status != SUPERSEDED)
                row = conn.execute(select(d.c.status, d.c.attempts, d.c.first_attempt_ns, newer.label("newer"))
                                   .where(d.c.delivery_key == key)).first()
                if row is not None and row.status == SENDING and row.newer and not permanent:
                    conn.execute(update(d).where(d.c.delivery_key == key, d.c.status == SENDING).values(
                        status=SUPERSEDED, last_error=f"superseded by a newer version after: {error}"[:_MAX_ERROR_CHARS]))
                elif row is not None and row.status == SENDING:
                    first_ns = now_ns if row.first_attempt_ns is None else row.first_attempt_ns
                    expired = now_ns - first_ns >= ns_from_seconds(backoff.dead_after_s)
                    values: dict[str, object] = {"last_error": str(error)[:_MAX_ERROR_CHARS]}
                    if permanent or expired:
                        values["status"] = DEAD
                    else:
                        values["status"] = PENDING
                        values["next_attempt_ns"] = now_ns + ns_from_seconds(backoff.delay_s(key, row.attempts))
                    conn.execute(update(d).where(d.c.delivery_key == key, d.c.status == SENDING).values(**values))
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox unavailable, cannot record the failure of {key}: {exc}") from exc
        return self.get(key)

    # Reading
    def get(self, key: str) -> DeliveryRecord | None:
        """The delivery ``key`` as stored, or None."""
        d = deliveries_table
        with self.engine.connect() as conn:
            row = conn.execute(select(d).where(d.c.delivery_key == key)).first()
        return None if row is None else _record_of(row)

    def deliveries(self, alert_id: str | None = None) -> list[DeliveryRecord]:
        """All deliveries (of ``alert_id`` when given), in the order they were recorded."""
        d = deliveries_table
        query = select(d).order_by(d.c.id)
        if alert_id is not None:
            query = query.where(d.c.alert_id == alert_id)
        with self.engine.connect() as conn:
            return [_record_of(row) for row in conn.execute(query)]

    def alert(self, alert_id: str) -> Alert | None:
        """The alert's current state as recorded, or None."""
        with self.engine.connect() as conn:
            text = conn.execute(select(alerts_table.c.alert_json)
                                .where(alerts_table.c.alert_id == alert_id)).scalar()
        return None if text is None else Alert.model_validate_json(text)

    def first_recorded_ns(self, alert_id: str) -> int:
        """When the alert was first recorded (its first delivery row, else its current row), ns."""
        with self.engine.connect() as conn:
            first = conn.execute(select(func.min(deliveries_table.c.created_ns))
                                 .where(deliveries_table.c.alert_id == alert_id)).scalar()
            if first is None:
                first = conn.execute(select(alerts_table.c.recorded_ns)
                                     .where(alerts_table.c.alert_id == alert_id)).scalar()
        if first is None:
            raise OutboxError(f"alert {alert_id} is not in the outbox")
        return int(first)

    def alerts_in(self, states: Collection[str]) -> list[Alert]:
        """Alerts whose current state is one of ``states`` (e.g. open ones, for escalation), oldest first."""
        query = (select(alerts_table.c.alert_json).where(alerts_table.c.state.in_(list(states)))
                 .order_by(alerts_table.c.updated_ts_ns, alerts_table.c.alert_id))
        with self.engine.connect() as conn:
            return [Alert.model_validate_json(text) for text in conn.execute(query).scalars()]

    def escalation_candidates(self, states: Collection[str], recorded_by_ns: int) -> list[tuple[Alert, int]]:
        """(alert, first recorded ns) of the alerts in ``states`` first recorded at or before
        ``recorded_by_ns`` (younger ones cannot be due), oldest first: one query, where calling
        :meth:`first_recorded_ns` per alert made the escalation pass grow with the open backlog."""
        d, a = deliveries_table, alerts_table
        first_delivery = (select(d.c.alert_id, func.min(d.c.created_ns).label("first_ns"))
                          .group_by(d.c.alert_id).subquery())
        first = func.coalesce(first_delivery.c.first_ns, a.c.recorded_ns)
        query = (select(a.c.alert_json, first.label("first_ns"))
                 .select_from(a.outerjoin(first_delivery, first_delivery.c.alert_id == a.c.alert_id))
                 .where(a.c.state.in_(list(states)), first <= recorded_by_ns)
                 .order_by(a.c.updated_ts_ns, a.c.alert_id))
        with self.engine.connect() as conn:
            return [(Alert.model_validate_json(row.alert_json), int(row.first_ns)) for row in conn.execute(query)]

    def delivery_health(self) -> list[PartnerHealth]:
        """Per (partner, channel): pending deliveries, the oldest one's record time, the last success, the dead."""
        d = deliveries_table
        waiting = d.c.status.in_((PENDING, SENDING))
        query = (select(d.c.partner_id, d.c.channel,
                        func.sum(case((waiting, 1), else_=0)), func.min(case((waiting, d.c.created_ns), else_=None)),
                        func.max(d.c.delivered_ns), func.sum(case((d.c.status == DEAD, 1), else_=0)))
                 .group_by(d.c.partner_id, d.c.channel).order_by(d.c.partner_id, d.c.channel))
        with self.engine.connect() as conn:
            return [PartnerHealth(p, c, int(n or 0), oldest, last, int(dead or 0))
                    for p, c, n, oldest, last, dead in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status (every status present)."""
        result = dict.fromkeys((PENDING, SENDING, DELIVERED, DEAD, SUPERSEDED), 0)
        d = deliveries_table
        with self.engine.connect() as conn:
            for status, count in conn.execute(select(d.c.status, func.count()).group_by(d.c.status)):
                result[status] = int(count)
        return result

def _newer(alert: Alert, current: Alert) -> bool:
    return (alert.updated_ts_ns, alert.escalation_level) > (current.updated_ts_ns, current.escalation_level)


def _record_of(row) -> DeliveryRecord:
    return DeliveryRecord(row.delivery_key, row.alert_id, row.partner_id, row.channel, row.alert_version, row.status,
                          row.attempts, row.next_attempt_ns, row.first_attempt_ns, row.last_error, row.delivered_ns)
