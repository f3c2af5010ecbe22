"""CAP deliveries: each alert version as an OASIS CAP 1.2 message POSTed to the partner's CAP URL.

The body is :func:`alerts.formats.cap.cap_alert`: ``Alert`` for the alert as raised, ``Update``
for every later version and ``Cancel`` once it is resolved (:func:`cap_msg_type`), both
referencing the first ``Alert``; status ``Exercise`` in exercise mode. A retried message is
byte-identical (its identifier and sent time come from the alert version), so the partner can
drop the repeat; it also carries the webhook headers: ``Idempotency-Key``
(:func:`cap_idempotency_key`), ``X-Ibet-Timestamp`` and ``X-Ibet-Signature`` (HMAC-SHA256 over
``"<timestamp>." + body``, :func:`alerts.formats.webhook.sign`), which a receiver checks with
:func:`alerts.formats.webhook.verify_webhook`.

Answers are classified as for webhooks (:func:`classify_http_response`): 2xx and 409 delivered;
408/425/429, 5xx, timeouts and connection errors retried; any other status dead, as is a
partner without a CAP URL.

    >>> channel = CapChannel(httpx.Client(timeout=10.0), {"hsi": (url, secret)}, sender="ibet.pacific")  # doctest: +SKIP
    >>> deliver_due(outbox, {"cap": channel})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx

from alerts.delivery import LinksFor, Outcome, SendResult, post_bounded
from alerts.formats import alert_version, is_update
from alerts.formats.cap import DEFAULT_EXPIRES_S, MsgType, area_radius_m, cap_alert, cap_identifier
from alerts.formats.cot import circular_error_m
from alerts.formats.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from alerts.outbox import DeliveryJob
from ibet.ids import delivery_key
from ibet.messages import Alert, AlertState, BorderEvent, TrackUpdate
from ibet.registry import Registry

CHANNEL = "cap"
CONTENT_TYPE = "application/cap+xml"
AlertContext = Callable[[Alert], tuple[TrackUpdate | None, BorderEvent | None]]
"""The latest track and/or the border event an alert is about (either may be None)."""

RETRYABLE_4XX = frozenset({408, 425, 429})  # timeout, too early, rate limited: the partner asks to come back
_MAX_DETAIL_CHARS = 300


def cap_msg_type(alert: Alert) -> MsgType:
    """``Alert`` for the version an alert was raised in, ``Cancel`` once resolved, else ``Update``."""
    if not is_update(alert):
        return "Alert"
    return "Cancel" if alert.state is AlertState.RESOLVED else "Update"


def cap_idempotency_key(alert: Alert, partner_id: str) -> str:
    """``dlv-<16 hex>.<alert version>``: the delivery key of (alert, partner, ``cap``) and the
    version; the same for retries, new per state. Use it as the outbox key of CAP deliveries."""
    return f"{delivery_key(alert.alert_id, partner_id, CHANNEL)}.{alert_version(alert)}"


def classify_http_response(status: int, where: str, text: str = "") -> SendResult:
    """Delivered for 2xx and 409 (the receiver already has this idempotency key), retry for
    408/425/429 and 5xx, dead for any other status (a refusal, an unexpected redirect)."""
    detail = f"HTTP {status} from {where}: {text[:_MAX_DETAIL_CHARS]}".rstrip(": ")
    if 200 <= status < 300 or status == 409:
        return SendResult(Outcome.DELIVERED, detail)
    if status >= 500 or status in RETRYABLE_4XX:
        return SendResult(Outcome.RETRY, detail)
    return SendResult(Outcome.DEAD, detail)


def classify_http_error(exc: httpx.HTTPError, where: str) -> SendResult:
    """Retry for a timeout or a transport error (refused, reset, DNS, TLS); dead for anything
    else httpx raises before an answer (an invalid URL or request: retrying cannot fix it)."""
    if isinstance(exc, httpx.TimeoutException):
        return SendResult(Outcome.RETRY, f"timeout posting to {where}: {type(exc).__name__}")
    if isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol):
        return SendResult(Outcome.RETRY, f"cannot reach {where}: {type(exc).__name__}: {exc}"[:_MAX_DETAIL_CHARS])
    return SendResult(Outcome.DEAD, f"cannot post to {where}: {type(exc).__name__}: {exc}"[:_MAX_DETAIL_CHARS])


class CapChannel:
    """Signed CAP 1.2 POSTs to each partner's CAP URL.

    ``endpoints``: ``{partner_id: (url, secret)}``, checked here (ValueError names the partner).
    ``sender``: the CAP sender id agreed with the partners (no spaces, commas, ``<`` or ``&``).
    ``context_for``: the track/event of an alert, for the CAP event name, certainty and area
    radius (95 % of the track's position error); an error in it is a retry. Without it they come
    from what the alert carries (its event type, confidence and track), as in production.
    ``expires_s``: CAP expires this long after the send. ``exercise``: CAP
    status Exercise for every alert (an alert with ``exercise`` set is an Exercise anyway).
    """

    name = CHANNEL

    def __init__(self, client: httpx.Client, endpoints: Mapping[str, tuple[str, bytes | str]], sender: str, *,
                 context_for: AlertContext | None = None, exercise: bool = False,
                 expires_s: float = DEFAULT_EXPIRES_S, read_links_for: LinksFor | None = None,
                 lane_concurrency: int = 8):
        self.client = client
        self.lane_concurrency = lane_concurrency  # POSTs in flight at once per partner
        self.endpoints: dict[str, tuple[str, bytes]] = {}
        for partner, (url, secret) in endpoints.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"partner {partner!r}: CAP URL {url!r} is not an http:// or https:// URL with a host")
            secret = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            if not secret:
                raise ValueError(f"partner {partner!r}: the CAP signing secret must not be empty")
            self.endpoints[partner] = (url, secret)
        _check_sender(sender)
        self.sender = sender
        self.context_for = context_for
        self.exercise, self.expires_s = exercise, expires_s
        self.read_links_for = read_links_for

    @classmethod
    def from_registry(cls, registry: Registry, client: httpx.Client, secrets: Mapping[str, bytes | str], sender: str,
                      **options) -> CapChannel:
        """A channel to every partner with a ``cap_url`` in the registry; ``secrets``:
        ``{partner_id: signing secret}`` (a partner with a CAP URL and no secret is a ValueError);
        ``options`` as for the constructor."""
        urls = {p.id: p.contacts.cap_url for p in registry.partners if p.contacts.cap_url}
        missing = sorted(set(urls) - set(secrets))
        if missing:
            raise ValueError(f"no CAP signing secret for partner(s) {', '.join(map(repr, missing))} that have a cap_url")
        return cls(client, {partner: (url, secrets[partner]) for partner, url in urls.items()}, sender, **options)

    def request(self, alert: Alert, partner_id: str, secret: bytes, timestamp_s: int) -> tuple[dict[str, str], bytes]:
        """Headers and CAP body of the POST delivering ``alert`` to ``partner_id``, signed at ``timestamp_s``."""
        track, event = self.context_for(alert) if self.context_for is not None else (None, None)
        radius_m = circular_error_m(track.position_cov_m2, 0.95) if track is not None else area_radius_m(alert)
        links = self.read_links_for(alert, partner_id) if self.read_links_for is not None else None
        body = cap_alert(alert, self.sender, self.exercise or alert.exercise, cap_msg_type(alert), event=event,
                         radius_m=radius_m, expires_s=self.expires_s, links=links)
        headers = {
            "Content-Type": CONTENT_TYPE,
            IDEMPOTENCY_HEADER: f'"{cap_idempotency_key(alert, partner_id)}"',
            TIMESTAMP_HEADER: str(timestamp_s),
            SIGNATURE_HEADER: sign(secret, timestamp_s, body),
        }
        return headers, body

    def send(self, job: DeliveryJob, now_ns: int) -> SendResult:
        """POST ``job``'s alert as CAP to its partner, signed at ``now_ns``, and classify the answer."""
        endpoint = self.endpoints.get(job.partner_id)
        if endpoint is None:
            return SendResult(Outcome.DEAD, f"no CAP URL configured for partner {job.partner_id!r}")
        url, secret = endpoint
        headers, body = self.request(job.alert, job.partner_id, secret, now_ns // 1_000_000_000)
        try:
            status, text = post_bounded(self.client, url, body, headers)
        except httpx.HTTPError as exc:
            return classify_http_error(exc, url)
        result = classify_http_response(status, url, text)
        if result.outcome is Outcome.DELIVERED:
            identifier = cap_identifier(job.alert, cap_msg_type(job.alert))
            return SendResult(Outcome.DELIVERED, f"{identifier}: {result.detail}"[:_MAX_DETAIL_CHARS])
        return result


def _check_sender(sender: str) -> None:
    """The CAP rule for a sender id (ValueError naming it), checked once at construction."""
    if not sender or any(c.isspace() or c in ",<&" for c in sender):
        raise ValueError(f"CAP sender {sender!r} must be non-empty without spaces, commas, '<' or '&'")
