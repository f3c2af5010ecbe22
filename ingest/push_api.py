"""The drone push API: ``POST /v1/sensors/{sensor_id}/frames`` puts one JPEG frame on ``ibet.frames.v1``.

A thin runner over the pure checks (:mod:`ingest.frame_checks`, :mod:`ingest.telemetry_input`,
:mod:`ingest.rate_limit`), the credentials (:mod:`ingest.credentials`) and the ledger
(:mod:`ingest.frame_store`). The answer 202 means the frame is durably in Kafka (acknowledged with
acks=all); every refusal is a JSON ``{"error": reason, "detail": message}`` with its status, counted
in ``ibet_ingest_frames_rejected{reason}``, and nothing is produced. A drone pushes::

    curl -H "Authorization: Bearer $TOKEN" -F frame=@f.jpg -F klv=@f.klv -F device_frame_id=f-000042 \\
         https://ingest.example:8080/v1/sensors/drone-vista-1/frames
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from ibet import topics
from ibet.api_errors import error_responses, install_error_handlers
from ibet.bus.base import OutRecord, Producer
from ibet.bus.exceptions import BusError, RecordTooLargeError
from ibet.clock import Clock
from ibet.config import IbetConfig, IngestSettings
from ibet.exceptions import ConfigError, RegistryError
from ibet.forwarded import client_address, parse_networks
from ibet.http_limits import uvicorn_config
from ibet.messages import FrameMeta, SensorHealthEvent
from ibet.registry import Registry, Sensor, load_registry
from ingest import credentials, metrics
from ingest.auth_failures import AuthFailureLimiter
from ingest.capture_time import SensorTimelines, check_skew
from ingest.credentials import TokenVerifier
from ingest.exceptions import (
    AuthThrottledError,
    BusUnavailableError,
    CredentialError,
    EmptyFrameError,
    FrameTooLargeError,
    IngestError,
    LedgerError,
    MalformedUploadError,
    RateLimitedError,
    UnauthorizedError,
    UnknownDeviceError,
    WrongDeviceError,
)
from ingest.frame_checks import check_jpeg
from ingest.frame_store import FrameLedger
from ingest.health import FeedHealth
from ingest.rate_limit import RateLimiter
from ingest.telemetry_input import parse_telemetry

log = logging.getLogger(__name__)

PATH = "push"  # the ``path`` label of the ingest metrics
FORM_ALLOWANCE_BYTES = 64 * 1024  # telemetry, KLV and multipart framing on top of the frame itself
FORM_PARTS = ("frame", "telemetry", "klv", "device_frame_id", "capture_ts_ns")
LEDGER_RETENTION_S = 24 * 3600.0  # a retry comes within minutes; a day of frame ids is plenty


PUSH_REQUEST_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["frame"],
        "properties": {
            "frame": {"type": "string", "format": "binary", "description": "the JPEG (image/jpeg), at most ingest.max_frame_bytes"},
            "klv": {"type": "string", "format": "binary", "description": "one MISB ST 0601 packet (instead of telemetry)"},
            "telemetry": {"type": "string", "description": "JSON object with MISB ST 0601 names (instead of klv)"},
            "device_frame_id": {"type": "string", "maxLength": 256,
                                "description": "the device's id of the frame: a retry with the same id is produced once"},
            "capture_ts_ns": {"type": "string", "pattern": "^[0-9]+$",
                              "description": "capture time, ns since the Unix epoch (else the KLV's precision time stamp)"},
        },
    }}},
}
PUSH_ERRORS = {
    400: "malformed upload, empty, truncated or corrupt JPEG (error: the reason)",
    401: "no token, or a token that is not the device's (unauthorized)",
    403: "another device's token (wrong_device)",
    404: "no drone of that id in the registry (unknown_device)",
    408: "the request body did not arrive in time (request_timeout)",
    409: "a device_frame_id reused for another frame (frame_id_reused)",
    413: "frame or request too large (frame_too_large)",
    415: "not a JPEG (not_jpeg)",
    422: "bad telemetry, KLV or capture time, naming the field (bad_telemetry, bad_klv, capture_time_skew, "
         "capture_time_jump, invalid_request)",
    429: "the device pushes too fast (rate_limited) or the client failed to authenticate too often (auth_throttled)",
    503: "Kafka or the frame ledger is unavailable: retry with the same device_frame_id",
}


class PushAccepted(BaseModel):
    """The 202 answer: where the frame is (sequence, Kafka partition and offset), and if it was a retry."""

    sensor_id: str
    sequence: int
    partition: int | None
    offset: int | None
    duplicate: bool


class Devices:
    """The registry's drones; with ``path``, re-read when the file changes (enrol, rotate, revoke take
    effect without a restart; an invalid edit is logged and the last good registry kept)."""

    def __init__(self, registry: Registry, path: Path | None = None):
        self._registry, self._path = registry, path
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self._path) if self._path else None
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size) if stat else None

    def current(self) -> Registry:
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            try:
                self._registry = load_registry(self._path)
                log.info("registry %s reloaded", self._path)
            except RegistryError as exc:
                log.error("registry %s changed but is invalid, keeping the previous one: %s", self._path, exc)
        return self._registry

    def drone(self, sensor_id: str) -> Sensor:
        """The drone ``sensor_id``, or UnknownDeviceError (not in the registry, or not a drone)."""
        try:
            sensor = self.current().sensor(sensor_id)
        except RegistryError:
            raise UnknownDeviceError(f"unknown device {sensor_id[:80]!r}: not a sensor of the registry") from None
        if sensor.kind != "drone":
            raise UnknownDeviceError(f"{sensor_id} is a {sensor.kind}; only drones push frames")
        return sensor

    def enrolled(self) -> list[tuple[str, str]]:
        """(sensor id, credential hash) of every enrolled drone."""
        return [(s.id, s.credential_hash) for s in self.current().sensors if s.kind == "drone" and s.credential_hash]


class HealthPublisher:
    """Produces the feed-health events to ``ibet.sensor-health.v1``; keeps those that failed for the next try."""

    def __init__(self, health: FeedHealth, producer: Producer, clock: Clock, timeout_s: float):
        self.health, self.producer, self.clock, self.timeout_s = health, producer, clock, timeout_s
        self.pending: deque[SensorHealthEvent] = deque()

    def check(self) -> None:
        """Queue the feeds that went dark by now (call on the event loop, like ``frame_seen``)."""
        self.pending.extend(self.health.check(self.clock.now_ns()))

    def flush(self) -> int:
        """Produce the queued events in order (blocking); stop at the first failure. Returns how many went."""
        sent = 0
        while self.pending:
            event = self.pending[0]
            try:
                self.producer.send_and_wait(OutRecord(topics.SENSOR_HEALTH, event.sensor_id.encode(), event.to_bytes()),
                                            self.timeout_s)
            except BusError as exc:
                log.warning("sensor-health event for %s not produced yet (%d queued): %s", event.sensor_id,
                            len(self.pending), exc)
                break
            self.pending.popleft()
            sent += 1
        return sent


def create_push_app(settings: IngestSettings, registry: Registry, producer: Producer, ledger: FrameLedger,
                    clock: Clock, health: FeedHealth, *, registry_path: Path | None = None,
                    verifier: TokenVerifier | None = None, health_interval_s: float = 1.0) -> FastAPI:
    """The push API over ``producer`` (frames and sensor-health events), ``ledger`` and ``health``.

    ``registry_path``: re-read the registry when that file changes. ``verifier``: the token cache
    (default: 5 minutes on ``clock``). Every ``health_interval_s`` a background task produces the
    feed_lost events of ``health.check``.
    """
    devices = Devices(registry, registry_path)
    verifier = verifier or TokenVerifier(clock=clock)
    proxies = parse_networks(settings.trusted_proxies)
    failures = AuthFailureLimiter(settings.auth_max_failures, settings.auth_failure_window_s, clock)
    upgrade_tried: set[str] = set()  # drones whose legacy hash this process tried to upgrade
    limiter = RateLimiter(settings.rate_limit_fps, settings.rate_limit_burst, clock)
    publisher = HealthPublisher(health, producer, clock, settings.produce_timeout_s)
    sensor_locks: dict[str, asyncio.Lock] = {}
    timelines = SensorTimelines(settings.max_capture_jump_s)
    max_body_bytes = settings.max_frame_bytes + FORM_ALLOWANCE_BYTES

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_health_loop(publisher, ledger, clock, health_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await run_in_threadpool(publisher.flush)

    app = FastAPI(title="ibet drone push API", version="1", lifespan=lifespan)
    install_error_handlers(app)
    app.state.publisher = publisher

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (no authentication)."""
        return {"status": "ok"}

    @app.post("/v1/sensors/{sensor_id}/frames", status_code=202, response_model=PushAccepted,
              responses=error_responses(PUSH_ERRORS), openapi_extra={"requestBody": PUSH_REQUEST_BODY})
    async def push_frame(sensor_id: str, request: Request):
        """Accept one JPEG frame with its telemetry (multipart: frame, telemetry or klv, device_frame_id,
        capture_ts_ns) once it is durably in Kafka."""
        label = "unknown"  # unknown ids never become metric labels
        try:
            sensor = devices.drone(sensor_id)
            label = sensor_id
            metrics.FRAMES_RECEIVED.labels(label, PATH).inc()
            client = client_address(request.client.host if request.client else None,
                                    request.headers.get("x-forwarded-for"), proxies)
            wait_s = failures.retry_after_s(client)
            if wait_s > 0:
                raise AuthThrottledError(wait_s, settings.auth_max_failures, settings.auth_failure_window_s)
            try:
                await _authenticate(request, sensor, devices, verifier, registry_path, upgrade_tried)
            except (UnauthorizedError, WrongDeviceError):
                failures.failed(client)
                raise
            _check_declared_size(request, settings.max_frame_bytes, max_body_bytes)
            wait_s = limiter.acquire(sensor_id)
            if wait_s > 0:
                raise RateLimitedError(sensor_id, wait_s, settings.rate_limit_fps, settings.rate_limit_burst)
            form = await _read_form(request, settings.max_frame_bytes, max_body_bytes)
            upload = await _frame_upload(form, settings.max_frame_bytes)
            async with sensor_locks.setdefault(sensor_id, asyncio.Lock()):  # sequence order == offset order
                now_ns = clock.now_ns()
                check_skew(upload.capture_ts_ns, now_ns, settings.max_capture_ahead_s, settings.max_capture_age_s)
                timelines.check(sensor_id, upload.capture_ts_ns, now_ns)
                accepted = await _produce(upload, sensor_id, settings, producer, ledger, clock)
                if not accepted.duplicate:
                    timelines.accepted(sensor_id, upload.capture_ts_ns, now_ns)
        except IngestError as exc:
            metrics.FRAMES_REJECTED.labels(label, PATH, exc.reason).inc()
            log.info("rejected frame of %r: %s %s: %s", sensor_id[:80], exc.status_code, exc.reason, exc.detail)
            return JSONResponse({"error": exc.reason, "detail": exc.detail}, exc.status_code, exc.headers())
        if accepted.duplicate:
            metrics.FRAMES_DUPLICATE.labels(sensor_id).inc()
        else:
            metrics.FRAMES_ACCEPTED.labels(sensor_id, PATH).inc()
            metrics.BYTES_ACCEPTED.labels(sensor_id, PATH).inc(len(upload.jpeg))
            publisher.pending.extend(health.frame_seen(sensor_id, clock.now_ns(), upload.capture_ts_ns))
        return JSONResponse(accepted.model_dump(), 202)

    return app


class _Upload:
    """A checked upload: the JPEG, its size, the telemetry and capture time, the device's frame id."""

    def __init__(self, jpeg: bytes, width_px: int, height_px: int, telemetry, capture_ts_ns: int,
                 device_frame_id: str | None):
        self.jpeg, self.width_px, self.height_px = jpeg, width_px, height_px
        self.telemetry, self.capture_ts_ns, self.device_frame_id = telemetry, capture_ts_ns, device_frame_id


async def _authenticate(request: Request, sensor: Sensor, devices: Devices, verifier: TokenVerifier,
                        registry_path: Path | None, upgrade_tried: set[str]) -> None:
    """The bearer token must be ``sensor``'s: 401 without one or with a stranger's, 403 with another drone's.

    Only ``sensor``'s own stored hash is verified; whose token a wrong one is, is a lookup by digest
    (:meth:`TokenVerifier.owner`). A legacy hash that verified is upgraded to sha256 in the registry."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("missing device token: send the header 'Authorization: Bearer <token>' "
                                "(issued by 'ibet sensors enroll')")
    stored = sensor.credential_hash
    if stored is not None and credentials.is_legacy_hash(stored):
        if await run_in_threadpool(verifier.verify, sensor.id, stored, token):
            if registry_path is not None and sensor.id not in upgrade_tried:
                upgrade_tried.add(sensor.id)
                await run_in_threadpool(_upgrade, registry_path, sensor.id, token)
            return
    elif verifier.verify(sensor.id, stored, token):
        return
    owner = verifier.owner(token, [(sid, h) for sid, h in devices.enrolled() if sid != sensor.id])
    if owner is not None:
        raise WrongDeviceError(owner, sensor.id)
    if sensor.credential_hash is None:
        raise UnauthorizedError(f"{sensor.id} is not enrolled (or its token was revoked): 'ibet sensors enroll'")
    raise UnauthorizedError(f"the token is not {sensor.id}'s current token (wrong, or rotated)")


def _upgrade(registry_path: Path, sensor_id: str, token: str) -> None:
    """Store the sha256 hash of a drone's verified token in place of its legacy hash, or say why not."""
    try:
        credentials.upgrade_hash(registry_path, sensor_id, token)
        log.info("credential of %s upgraded to sha256 in %s", sensor_id, registry_path)
    except CredentialError as exc:
        log.warning("credential of %s stays a legacy (slow) hash: %s; 'ibet sensors rotate %s' replaces it",
                    sensor_id, exc, sensor_id)


def _check_declared_size(request: Request, max_frame_bytes: int, max_body_bytes: int) -> None:
    """413 from Content-Length alone, before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is None:
        return  # chunked: bounded while reading
    if not declared.strip().isdigit():
        raise MalformedUploadError(f"Content-Length {declared[:20]!r} is not a byte count")
    if int(declared) > max_body_bytes:
        raise FrameTooLargeError(int(declared), max_frame_bytes, "request",
                                 allowance_bytes=FORM_ALLOWANCE_BYTES)


async def _read_form(request: Request, max_frame_bytes: int, max_body_bytes: int) -> FormData:
    """The multipart form, read with a bound on the body (a chunked upload cannot exceed it either)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body_bytes:
            raise FrameTooLargeError(None, max_frame_bytes, "request", allowance_bytes=FORM_ALLOWANCE_BYTES)
    if not body:
        raise EmptyFrameError("empty body: send a multipart/form-data request with the JPEG in the 'frame' part")
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise MalformedUploadError(f"Content-Type must be multipart/form-data, not {content_type[:60]!r}")
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=2, max_fields=len(FORM_PARTS),
                                                         max_part_size=FORM_ALLOWANCE_BYTES)
    except MultiPartException as exc:
        raise MalformedUploadError(f"cannot read the multipart form: {exc.message}") from None
    for name in form:
        if name not in FORM_PARTS:
            raise MalformedUploadError(f"unknown form part {name!r}; the parts are {', '.join(FORM_PARTS)}")
        if len(form.getlist(name)) > 1:
            raise MalformedUploadError(f"form part {name!r} given more than once")
    return form


async def _frame_upload(form: FormData, max_frame_bytes: int) -> _Upload:
    """Check the frame, telemetry and ids of the form (JPEG decode in a worker thread)."""
    frame, klv = form.get("frame"), form.get("klv")
    if frame is None:
        raise EmptyFrameError("no 'frame' part: send the JPEG as the file part 'frame'")
    if not isinstance(frame, UploadFile) or (klv is not None and not isinstance(klv, UploadFile)):
        raise MalformedUploadError("'frame' and 'klv' must be file parts (curl -F frame=@f.jpg -F klv=@f.klv)")
    jpeg = await frame.read()
    klv_bytes = await klv.read() if klv is not None else None
    texts = {}
    for name in ("telemetry", "device_frame_id", "capture_ts_ns"):
        value = form.get(name)
        if isinstance(value, UploadFile):
            value = (await value.read()).decode("utf-8", errors="replace")
        texts[name] = value
    width_px, height_px = await run_in_threadpool(check_jpeg, jpeg, max_frame_bytes)
    parsed = parse_telemetry(texts["telemetry"], klv_bytes, texts["capture_ts_ns"])
    device_frame_id = (texts["device_frame_id"] or "").strip() or None
    if device_frame_id is not None and (len(device_frame_id) > 256 or not device_frame_id.isprintable()):
        raise MalformedUploadError("device_frame_id must be at most 256 printable characters")
    return _Upload(jpeg, width_px, height_px, parsed.telemetry, parsed.capture_ts_ns, device_frame_id)


async def _produce(upload: _Upload, sensor_id: str, settings: IngestSettings, producer: Producer,
                   ledger: FrameLedger, clock: Clock) -> PushAccepted:
    """Reserve the sequence, produce (unless a retry of a produced frame), record it as produced."""
    digest = hashlib.sha256(upload.jpeg).hexdigest() if upload.device_frame_id else ""
    reservation = await run_in_threadpool(ledger.reserve, sensor_id, upload.device_frame_id, digest)
    if reservation.already_produced:
        return PushAccepted(sensor_id=sensor_id, sequence=reservation.sequence, partition=reservation.partition,
                            offset=reservation.offset, duplicate=True)
    meta = FrameMeta(sensor_id=sensor_id, sequence=reservation.sequence, capture_ts_ns=upload.capture_ts_ns,
                     ingest_ts_ns=clock.now_ns(), width_px=upload.width_px, height_px=upload.height_px,
                     device_frame_id=upload.device_frame_id, telemetry=upload.telemetry)
    record = OutRecord(topics.FRAMES, sensor_id.encode(), upload.jpeg, tuple(meta.to_headers()))
    started = time.perf_counter()
    try:
        partition, offset = await run_in_threadpool(producer.send_and_wait, record, settings.produce_timeout_s)
    except RecordTooLargeError as exc:
        raise FrameTooLargeError(len(upload.jpeg), settings.max_frame_bytes, "frame with its metadata") from exc
    except BusError as exc:
        raise BusUnavailableError(f"Kafka did not acknowledge the frame within {settings.produce_timeout_s:g} s; "
                                  f"retry with the same device_frame_id ({exc})") from exc
    metrics.PRODUCE_SECONDS.labels(PATH).observe(time.perf_counter() - started)
    try:
        await run_in_threadpool(ledger.mark_produced, sensor_id, upload.device_frame_id, partition, offset)
    except LedgerError:  # the frame is in Kafka: answer 202 (a retry of it would be produced once more)
        log.exception("frame %s/%s produced at %d/%d but not recorded in the ledger", sensor_id,
                      upload.device_frame_id, partition, offset)
    return PushAccepted(sensor_id=sensor_id, sequence=reservation.sequence, partition=partition, offset=offset,
                        duplicate=False)


async def _health_loop(publisher: HealthPublisher, ledger: FrameLedger, clock: Clock, interval_s: float) -> None:
    """Every ``interval_s``: queue lost feeds and produce queued events; hourly, prune the ledger."""
    last_prune_ns = clock.now_ns()
    while True:
        await asyncio.sleep(interval_s)
        publisher.check()
        if publisher.pending:
            await run_in_threadpool(publisher.flush)
        if clock.now_ns() - last_prune_ns > 3600 * 10**9:
            last_prune_ns = clock.now_ns()
            try:
                await run_in_threadpool(ledger.prune, LEDGER_RETENTION_S)
            except LedgerError as exc:  # pruning is housekeeping: the next hour tries again
                log.warning("frame ledger not pruned: %s", exc)


def run_push_server(config: IbetConfig, registry: Registry) -> None:
    """Serve the push API (HTTPS when ``ingest.tls_certfile``/``tls_keyfile`` are set) until stopped."""
    import uvicorn

    from ibet.bus import open_bus
    from ibet.clock import SystemClock
    from ibet.db import make_engine, migrate
    from ibet.metrics import serve_metrics

    settings = config.ingest
    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        raise ConfigError("ingest.tls_certfile and ingest.tls_keyfile go together: set both for HTTPS, or neither")
    for tls_file in (settings.tls_certfile, settings.tls_keyfile):
        if tls_file is not None and not Path(tls_file).is_file():
            raise ConfigError(f"ingest TLS file {tls_file} does not exist")
    clock = SystemClock()
    engine = make_engine(config.database)
    migrate(engine)
    drones = {s.id: (s.sector_id, 1.0 / s.detection_rate_hz) for s in registry.sensors if s.kind == "drone"}
    health = FeedHealth(drones, settings.feed_lost_after_intervals, settings.feed_lost_min_s)
    if config.bus.kind == "memory":
        log.warning("bus.kind is 'memory': pushed frames stay inside this process; set bus.kind=kafka "
                    "(IBET_BUS__KIND=kafka) for the distributed pipeline")
    bus = open_bus(config.bus)
    producer = bus.producer("ibet-ingest-push")
    try:
        serve_metrics(config.metrics)
        app = create_push_app(settings, registry, producer, FrameLedger(engine, clock), clock, health,
                              registry_path=config.registry_file())
        uvicorn.Server(uvicorn_config(app, config.http, host=settings.host, port=settings.port,
                                      log_level=config.log_level.lower(),
                                      ssl_certfile=str(settings.tls_certfile) if settings.tls_certfile else None,
                                      ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None)).run()
    finally:
        producer.close()
        bus.close()
        engine.dispose()
