"""The frame ledger on both of its databases: SQLite (embedded mode) and a real PostgreSQL server.

Each test runs twice through the ``database_url`` fixture, on a fresh database of its own. The
concurrency tests are where the two differ: SQLite queues whole transactions (``BEGIN IMMEDIATE``),
PostgreSQL only the writers of one sensor's counter row, so there several API replicas (here threads,
each on its own connection) really do race.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select

from ibet.clock import ManualClock
from ibet.config import DatabaseSettings
from ibet.db import alembic_config, make_engine, migrate
from ingest.exceptions import FrameIdReusedError
from ingest.frame_store import FrameLedger, Reservation, frames, sensor_sequences

T0_NS = 1_764_000_000 * 10**9
THREADS = 8
FRAMES_PER_THREAD = 25


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(DatabaseSettings(url=database_url))
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0_NS)


@pytest.fixture
def ledger(engine: Engine, clock: ManualClock) -> FrameLedger:
    return FrameLedger(engine, clock)


def run_threads(count: int, work: Callable[[int], list[Reservation]]) -> list[Reservation]:
    """``work(k)`` in ``count`` threads started together; all their reservations, and their errors re-raised."""
    start = threading.Barrier(count)
    results: list[Reservation] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        try:
            start.wait(timeout=30)
            done = work(k)
            with lock:
                results.extend(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,), name=f"reserve-{k}") for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a reserving thread hung (a lock never released?)"
    if errors:
        raise errors[0]
    return results


def frame_rows(engine: Engine, sensor_id: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(frames.c.device_frame_id, frames.c.sequence).where(frames.c.sensor_id == sensor_id)
            .order_by(frames.c.sequence))]


def test_migrate_creates_the_schema_and_is_idempotent(engine: Engine, database_url: str):
    assert engine.dialect.name == database_url.split(":")[0].split("+")[0]
    tables = set(inspect(engine).get_table_names())
    assert {"ingest_frames", "ingest_sensor_sequences", "alembic_version"} <= tables
    migrate(engine)  # a second time: nothing to do, no error
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head
        assert conn.execute(select(func.count()).select_from(frames)).scalar_one() == 0


def test_reserve_numbers_each_sensor_from_zero(ledger: FrameLedger):
    assert ledger.next_sequence_of("drone-a") == 0
    assert [ledger.reserve("drone-a", f"a-{i}", "sha-a").sequence for i in range(5)] == [0, 1, 2, 3, 4]
    assert [ledger.reserve("drone-b", f"b-{i}", "sha-b").sequence for i in range(3)] == [0, 1, 2]
    assert ledger.reserve("drone-a", None).sequence == 5  # no device id: always a new frame
    assert ledger.reserve("drone-a", None).sequence == 6
    assert ledger.next_sequence_of("drone-a") == 7 and ledger.next_sequence_of("drone-b") == 3
    assert ledger.reserve("drone-a", "a-5", "sha-a") == Reservation(7, False, None, None)


def test_a_retry_gets_its_first_sequence_back(ledger: FrameLedger, engine: Engine):
    first = ledger.reserve("drone-a", "f-1", "abc")
    assert first == Reservation(0, False, None, None)
    assert ledger.reserve("drone-a", "f-1", "abc") == first  # died before Kafka: produce it now, same number
    ledger.mark_produced("drone-a", "f-1", 2, 40)
    assert ledger.reserve("drone-a", "f-1", "abc") == Reservation(0, True, 2, 40)
    assert ledger.reserve("drone-a", "f-1") == Reservation(0, True, 2, 40)  # no digest given: not compared
    with pytest.raises(FrameIdReusedError):
        ledger.reserve("drone-a", "f-1", "other-bytes")
    assert ledger.reserve("drone-a", "f-2", "def").sequence == 1  # retries took no numbers
    assert frame_rows(engine, "drone-a") == [("f-1", 0), ("f-2", 1)]


def test_concurrent_reserves_for_one_sensor_are_unique_and_gap_free(ledger: FrameLedger, engine: Engine):
    # A new sensor: the threads also race to create its counter row (the IntegrityError-retry path).
    results = run_threads(THREADS, lambda k: [ledger.reserve("drone-x", f"t{k}-{i}", "sha")
                                              for i in range(FRAMES_PER_THREAD)])
    total = THREADS * FRAMES_PER_THREAD
    assert sorted(r.sequence for r in results) == list(range(total))
    assert ledger.next_sequence_of("drone-x") == total
    rows = frame_rows(engine, "drone-x")
    assert [seq for _, seq in rows] == list(range(total))
    assert len({dfid for dfid, _ in rows}) == total


def test_concurrent_retries_of_one_frame_share_one_sequence(ledger: FrameLedger, engine: Engine):
    ledger.reserve("drone-y", "before", "sha")  # the counter row exists: only the frame row is raced for
    rounds = 10

    def work(k: int) -> list[Reservation]:
        out = []
        for i in range(rounds):
            out.append(ledger.reserve("drone-y", "shared", "sha"))
            out.append(ledger.reserve("drone-y", f"own-{k}-{i}", "sha"))
        return out

    results = run_threads(THREADS, work)  # each thread's reservations in order: shared, own, shared, own...
    retried, own = results[0::2], results[1::2]
    rows = dict(frame_rows(engine, "drone-y"))
    total = 2 + THREADS * rounds  # "before", one row for "shared", every own frame once
    assert len(rows) == total and sorted(rows.values()) == list(range(total))  # losers gave their numbers back
    assert {r.sequence for r in retried} == {rows["shared"]}  # every upload of the frame got the same number
    assert all(not r.already_produced for r in retried)
    assert sorted([r.sequence for r in own] + [rows["before"], rows["shared"]]) == list(range(total))
    assert ledger.next_sequence_of("drone-y") == total


def test_concurrent_anonymous_frames_of_a_new_sensor(ledger: FrameLedger):
    results = run_threads(THREADS, lambda k: [ledger.reserve("drone-z", None) for _ in range(FRAMES_PER_THREAD)])
    assert sorted(r.sequence for r in results) == list(range(THREADS * FRAMES_PER_THREAD))
    assert ledger.next_sequence_of("drone-z") == THREADS * FRAMES_PER_THREAD


def test_prune_forgets_old_frames_and_keeps_the_counters(ledger: FrameLedger, clock: ManualClock, engine: Engine):
    for i in range(3):
        ledger.reserve("drone-a", f"old-{i}", "sha")
    clock.advance(600)
    ledger.reserve("drone-a", "new-0", "sha")
    clock.advance(60)
    assert ledger.prune(older_than_s=300) == 3
    assert [dfid for dfid, _ in frame_rows(engine, "drone-a")] == ["new-0"]
    assert ledger.prune(older_than_s=300) == 0
    assert ledger.next_sequence_of("drone-a") == 4  # numbers are never handed out twice
    assert ledger.reserve("drone-a", "old-0", "sha").sequence == 4  # forgotten: a new frame now
    with engine.connect() as conn:
        assert conn.execute(select(sensor_sequences.c.next_sequence)).scalar_one() == 5
