"""TAK deliveries: a Cursor-on-Target event per alert, streamed to each partner's TAK server.

One :func:`alerts.formats.cot.cot_event` per track of the alert (``Alert.track_ids``), with the
track's uid ``ibet-<track id>``, so every update of the alert replaces the same marker on the
partner's map and a resend after a crash is harmless. The marker sits at the track's position with
its ce, course and speed: the track state the alert carries (``Alert.track``), or ``track_for``'s
(the latest state of a track) when given; without either, at the alert's position. An alert
without tracks gets one marker with the alert's uid. The marker goes stale ``stale_s`` after the
send, and at once (1 s) when the alert is resolved. Sensor-health alerts (a lost feed)
are not sent: a CoT marker would show a suspect at the camera; they are dead with that reason.

One persistent connection per TAK endpoint (``host:port``), plain TCP or TLS with a client
certificate (:func:`tak_tls_context`), shared by the partners that use that server. Before each
send the channel reads and discards what the server pushed (TAK servers send other users' events
and pings) and notices a connection the server has closed; a send on a connection that turns out
dead is tried once more on a fresh one. CoT streams have no acknowledgement, so "delivered" means
"written to a connection the server had not closed": at least once, and a repeat only replaces
the marker. Connection, TLS and timeout errors are retried; a partner without a TAK endpoint is dead.

With TLS 1.3 a server checks the client certificate after the client has finished its handshake;
the channel waits up to ``tls_settle_s`` on a new TLS 1.3 connection for the server's first
records (its session tickets or its refusal), so a refused certificate is a retry, not a silently
lost event (a server that sends nothing costs that wait once per connection).

    >>> channel = CotChannel({"rcmp": "tak.rcmp.example:8089"},                      # doctest: +SKIP
    ...                      ssl_context=tak_tls_context("ibet.pem", "ibet.key", "tak-ca.pem"))
    >>> deliver_due(outbox, {"cot": channel})  # doctest: +SKIP
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import tzinfo
from zoneinfo import ZoneInfo

from alerts.delivery import LinksFor, Outcome, SendResult
from alerts.formats import alert_version, xml_safe
from alerts.formats.cot import DEFAULT_STALE_S, cot_event
from alerts.outbox import DeliveryJob
from ibet.clock import ns_to_datetime_utc
from ibet.messages import Alert, AlertState, TrackUpdate
from ibet.registry import Registry

_MAX_REMEMBERED_SENDS = 10_000
_SEND_BUFFER_BYTES = 64 * 1024
RESOLVED_STALE_S = 1.0  # a resolved alert's marker goes stale at once (TAK clients then drop it)

CHANNEL = "cot"
TrackLookup = Callable[[str], TrackUpdate | None]
"""The latest state of a track by its id, or None when it is not known."""
Endpoint = tuple[str, int]

_HOST_PORT = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)):(\d{1,5})$")
_MAX_DRAIN_READS = 1024  # a server that never stops talking cannot keep a send waiting


def parse_host_port(text: str) -> Endpoint:
    """``"host:port"`` (``"[::1]:8087"`` for IPv6) -> ``(host, port)``; ValueError naming the text.

    >>> parse_host_port("tak.rcmp.example:8089")
    ('tak.rcmp.example', 8089)
    """
    match = _HOST_PORT.match(text) if isinstance(text, str) else None
    if not match or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"TAK endpoint {text!r} is not 'host:port' with a port in 1..65535")
    return match.group(1) or match.group(2), int(match.group(3))


def tak_tls_context(certfile: str, keyfile: str | None = None, cafile: str | None = None, *,
                    password: str | None = None, check_hostname: bool = True) -> ssl.SSLContext:
    """Client TLS context for a TAK server: our certificate chain and key (PEM), the CA that signed
    the server's certificate (default: the system's), and whether its name must match the host
    (TAK servers' certificates often carry a CN that is not their host name)."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = check_hostname
    context.load_cert_chain(certfile, keyfile, password)
    return context


class CotChannel:
    """CoT events over TCP or TLS to each partner's TAK server.

    ``endpoints``: ``{partner_id: "host:port"}``, checked here (ValueError names the partner).
    ``ssl_context``: TLS for every endpoint (see :func:`tak_tls_context`); None for plain TCP.
    ``track_for``: the latest state of a track (see :data:`TrackLookup`), for the marker's
    position, ce, course and speed; an error in it is a retry. ``ground_hae_m``:
    ``{sector_id: ground height above the WGS-84 ellipsoid, m}``. ``stale_s``: marker lifetime.
    ``exercise``: opex ``e`` and ``[EXERCISE]`` remarks on every alert (an alert with
    ``exercise`` set is marked anyway). ``timeout_s``: connect and send timeout.
    """

    name = CHANNEL

    def __init__(
        self,
        endpoints: Mapping[str, str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        track_for: TrackLookup | None = None,
        ground_hae_m: Mapping[str, float] | None = None,
        zones: Mapping[str, tzinfo] | None = None,
        stale_s: float = DEFAULT_STALE_S,
        exercise: bool = False,
        timeout_s: float = 10.0,
        tls_settle_s: float = 0.5,
        read_links_for: LinksFor | None = None,
    ):
        self.endpoints: dict[str, Endpoint] = {}
        for partner, text in endpoints.items():
            try:
                self.endpoints[partner] = parse_host_port(text)
            except ValueError as exc:
                raise ValueError(f"partner {partner!r}: {exc}") from None
        if not stale_s > 0 or not timeout_s > 0 or not tls_settle_s >= 0:
            raise ValueError(f"stale_s and timeout_s must be > 0 and tls_settle_s >= 0, "
                             f"got {stale_s!r}, {timeout_s!r}, {tls_settle_s!r}")
        self.ssl_context = ssl_context
        self.track_for = track_for
        self.ground_hae_m = dict(ground_hae_m or {})
        self.zones = dict(zones or {})
        self.stale_s, self.exercise = stale_s, exercise
        self.timeout_s, self.tls_settle_s = timeout_s, tls_settle_s
        self.read_links_for = read_links_for
        self._connections: dict[Endpoint, socket.socket] = {}
        self._sent: OrderedDict[tuple[Endpoint, str, str], str] = OrderedDict()  # what each TAK server has
        self._lock = threading.Lock()
        self._endpoint_locks: dict[Endpoint, threading.Lock] = {}

    @classmethod
    def from_registry(cls, registry: Registry, **options) -> CotChannel:
        """A channel to every partner with a ``tak_endpoint``, with the sectors' ground heights and
        time zones; ``options`` as for the constructor."""
        endpoints = {p.id: p.contacts.tak_endpoint for p in registry.partners if p.contacts.tak_endpoint}
        ground = {s.id: s.ground_elev_m for s in registry.sectors}
        zones = {s.id: ZoneInfo(s.timezone) for s in registry.sectors}
        return cls(endpoints, ground_hae_m=options.pop("ground_hae_m", ground), zones=options.pop("zones", zones),
                   **options)

    def events(self, alert: Alert, now_ns: int, partner_id: str | None = None) -> list[bytes]:
        """The CoT events for ``alert`` sent at ``now_ns`` (ns since the epoch): one per track. The
        track's state is the one the alert carries (or ``track_for``'s); a resolved alert's markers
        go stale at once. With ``partner_id`` (and ``read_links_for``), that partner's signed links
        to the alert's page and snapshot."""
        now = ns_to_datetime_utc(now_ns)
        stale_s = RESOLVED_STALE_S if alert.state is AlertState.RESOLVED else self.stale_s
        links = self.read_links_for(alert, partner_id) if self.read_links_for is not None and partner_id else None
        options = dict(ground_hae_m=self.ground_hae_m.get(alert.sector_id), exercise=self.exercise or alert.exercise,
                       zone=self.zones.get(alert.sector_id), links=links)
        if not alert.track_ids:
            return [cot_event(now, stale_s, alert=alert, **options)]
        events = []
        for track_id in alert.track_ids:
            track = self.track_for(track_id) if self.track_for is not None else None
            if (track is None or track.track_id != track_id) and alert.track is not None:
                track = alert.track
            if track is not None and track.track_id == track_id:
                events.append(cot_event(now, stale_s, track=track, alert=alert, **options))
            else:
                events.append(_with_uid(cot_event(now, stale_s, alert=alert, **options), f"ibet-{track_id}"))
        return events

    def send(self, job: DeliveryJob, now_ns: int) -> SendResult:
        """Stream ``job``'s alert to its partner's TAK server, one CoT event per track; once per TAK
        server and alert version, however many partners share that server."""
        endpoint = self.endpoints.get(job.partner_id)
        if endpoint is None:
            return SendResult(Outcome.DEAD, f"no TAK endpoint configured for partner {job.partner_id!r}")
        if job.alert.kind == "sensor_health":
            return SendResult(Outcome.DEAD, "sensor-health alerts are not sent as CoT: a marker would show a suspect "
                                            "at the camera")
        sent_key = (endpoint, job.alert.alert_id, alert_version(job.alert))
        with self._lock:
            already = self._sent.get(sent_key)
        if already is not None:
            return SendResult(Outcome.DELIVERED, f"already on TAK server {_text(endpoint)} (sent for {already})")
        result = self._stream(endpoint, job.alert, now_ns, job.partner_id)
        if result.outcome is Outcome.DELIVERED:
            with self._lock:
                self._sent[sent_key] = job.partner_id
                while len(self._sent) > _MAX_REMEMBERED_SENDS:
                    self._sent.popitem(last=False)
        return result

    def refresh(self, alert: Alert, now_ns: int) -> list[SendResult]:
        """Send ``alert``'s markers again to every TAK server of its routed partners (a keep-alive, so
        an open alert's markers do not go stale on the partners' maps)."""
        if alert.kind == "sensor_health":
            return []
        endpoints: dict[Endpoint, str] = {}  # each TAK server, with the first routed partner on it (its links)
        for partner in alert.routed_partner_ids:
            if partner in self.endpoints:
                endpoints.setdefault(self.endpoints[partner], partner)
        return [self._stream(endpoint, alert, now_ns, partner) for endpoint, partner in endpoints.items()]

    def _stream(self, endpoint: Endpoint, alert: Alert, now_ns: int, partner_id: str | None = None) -> SendResult:
        sharing = [p for p in alert.routed_partner_ids if self.endpoints.get(p) == endpoint]
        if len(sharing) > 1:  # a TAK server of several agencies: a link signed for one would serve them all
            partner_id = None
        events = self.events(alert, now_ns, partner_id)
        data = b"".join(events)
        where = _text(endpoint)
        with self._lane_lock(endpoint):  # one send at a time per TAK server; other servers go on meanwhile
            try:
                reused = self._send(endpoint, data)
            except TimeoutError:
                self._drop(endpoint)
                return SendResult(Outcome.RETRY, f"TAK server {where} did not take {len(data)} bytes in "
                                                 f"{self.timeout_s:g} s (timed out: not reading, or unreachable)")
            except OSError as exc:  # refused, reset, TLS refused (ssl.SSLError is an OSError)
                self._drop(endpoint)
                return SendResult(Outcome.RETRY, f"cannot send to TAK server {where}: {type(exc).__name__}: {exc}")
        return SendResult(Outcome.DELIVERED, f"{len(events)} event(s), {len(data)} bytes to {where} "
                                                f"({'open' if reused else 'new'} connection)")

    def lane(self, job: DeliveryJob) -> Endpoint | str:
        """Deliveries to one TAK server go one after another (see ``alerts.delivery.lane_of``), so
        partners sharing it get each version once and a server that hangs holds up only itself."""
        return self.endpoints.get(job.partner_id) or job.partner_id

    def _lane_lock(self, endpoint: Endpoint) -> threading.Lock:
        with self._lock:
            return self._endpoint_locks.setdefault(endpoint, threading.Lock())

    def close(self) -> None:
        """Close every connection (the next send opens a new one)."""
        with self._lock:
            for endpoint in list(self._connections):
                self._drop(endpoint)

    def __enter__(self) -> CotChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, endpoint: Endpoint, data: bytes) -> bool:
        """Write ``data`` on the endpoint's connection; True when an open connection took it."""
        sock = self._connections.get(endpoint)
        if sock is not None:
            if not _drain_and_check_open(sock):
                self._drop(endpoint)
            else:
                try:
                    sock.sendall(data)
                    return True
                except TimeoutError:
                    self._drop(endpoint)  # open, but not taking data: it is not reading (no fresh try:
                    raise  # a new connection would only park more markers in its buffers)
                except OSError:
                    self._drop(endpoint)  # it died since the check: one more try on a fresh connection
        sock = self._connect(endpoint)
        sock.sendall(data)
        return False

    def _connect(self, endpoint: Endpoint) -> socket.socket:
        host, port = endpoint
        sock = socket.create_connection((host, port), timeout=self.timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # a bounded send buffer: a server that stops reading makes sends time out (retry) soon,
            # instead of ibet counting megabytes parked in its own kernel as delivered
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER_BYTES)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=host)
                if sock.version() == "TLSv1.3":  # before 1.3 the handshake itself includes the server's verdict
                    select.select([sock], [], [], self.tls_settle_s)  # the server's tickets, or its refusal
                if not _drain_and_check_open(sock, raise_errors=True):
                    raise ConnectionResetError(f"TAK server {host}:{port} closed the connection after the TLS handshake")
        except BaseException:
            sock.close()
            raise
        self._connections[endpoint] = sock
        return sock

    def _drop(self, endpoint: Endpoint) -> None:
        sock = self._connections.pop(endpoint, None)
        if sock is not None:
            sock.close()


def _drain_and_check_open(sock: socket.socket, raise_errors: bool = False) -> bool:
    """Read and discard what the server has sent; False when it has closed the connection
    (or, unless ``raise_errors``, when reading fails: the connection is unusable either way)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        for _ in range(_MAX_DRAIN_READS):
            try:
                if not sock.recv(65536):
                    return False
            except (BlockingIOError, ssl.SSLWantReadError):
                return True
            except OSError:
                if raise_errors:
                    raise
                return False
        return True
    finally:
        sock.settimeout(timeout)


def _with_uid(data: bytes, uid: str) -> bytes:
    """A CoT event of ours (trusted XML) with its uid replaced: the marker of a track whose state
    is not at hand is still the track's."""
    root = ET.fromstring(data)
    root.set("uid", xml_safe(uid))
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _text(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
