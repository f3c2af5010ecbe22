"""Errors raised by ingest, named for where they come from.

Every refusal of a pushed frame is an :class:`IngestError`: it carries the HTTP status the push
API answers with and a short ``reason`` code, which is both the ``reason`` label of the metric
``ibet_ingest_frames_rejected`` and the ``error`` field of the JSON body::

    {"error": "frame_too_large", "detail": "frame is 9437184 bytes; the limit is 8388608 bytes ..."}
"""

from __future__ import annotations

from ibet.exceptions import IbetError


class IngestError(IbetError):
    """A frame refused by ingest: ``status_code`` (HTTP), ``reason`` (metric label), message (detail)."""

    status_code: int = 400
    reason: str = "bad_request"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers of the answer (none unless a subclass says so)."""
        return {}


# The upload itself
class MalformedUploadError(IngestError):
    """The request is not the multipart form the API takes (a part missing, given twice, or unparsable)."""

    reason = "malformed_upload"


class EmptyFrameError(IngestError):
    """The request body or its ``frame`` part is empty."""

    reason = "empty_body"


class NotJpegError(IngestError):
    """The frame does not start with the JPEG marker (a PNG, for example)."""

    status_code = 415
    reason = "not_jpeg"


class TruncatedJpegError(IngestError):
    """The JPEG has no end-of-image marker (FF D9): the upload was cut short."""

    reason = "truncated_jpeg"


class CorruptJpegError(IngestError):
    """The JPEG has both markers but cannot be decoded."""

    reason = "corrupt_jpeg"


class FrameTooLargeError(IngestError):
    """The frame (or the whole request) is larger than the configured limit."""

    status_code = 413
    reason = "frame_too_large"

    def __init__(self, size_bytes: int | None, limit_bytes: int, what: str = "frame", allowance_bytes: int = 0):
        self.size_bytes, self.limit_bytes = size_bytes, limit_bytes
        size = f"is {size_bytes} bytes" if size_bytes is not None else f"is over {limit_bytes + allowance_bytes} bytes"
        extra = f" (a request may add {allowance_bytes // 1024} KiB for telemetry and form)" if allowance_bytes else ""
        super().__init__(f"{what} {size}; frames are limited to {limit_bytes} bytes ({limit_bytes / 2**20:.2f} MiB, "
                         f"ingest.max_frame_bytes){extra}")


# Telemetry
class BadTelemetryError(IngestError):
    """Telemetry JSON, or the capture time, is malformed or out of range; ``field`` names what is wrong."""

    status_code = 422
    reason = "bad_telemetry"

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")


class BadKlvError(IngestError):
    """The MISB ST 0601 KLV packet is truncated, fails its checksum or holds invalid values."""

    status_code = 422
    reason = "bad_klv"


# Who is pushing
class UnknownDeviceError(IngestError):
    """The sensor id in the path is not a drone of the registry."""

    status_code = 404
    reason = "unknown_device"


class UnauthorizedError(IngestError):
    """No bearer token, a token that matches no enrolled drone, or a drone that is not enrolled."""

    status_code = 401
    reason = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="ibet-ingest"'}


class WrongDeviceError(IngestError):
    """A valid token of one drone used to push as another."""

    status_code = 403
    reason = "wrong_device"

    def __init__(self, token_owner: str, claimed: str):
        self.token_owner, self.claimed = token_owner, claimed
        super().__init__(f"device {token_owner} may only push as itself, not as {claimed}")


class RateLimitedError(IngestError):
    """The device pushes faster than ``ingest.rate_limit_fps`` (burst ``rate_limit_burst``)."""

    status_code = 429
    reason = "rate_limited"

    def __init__(self, sensor_id: str, retry_after_s: float, rate_fps: float, burst: int):
        self.retry_after_s = retry_after_s
        super().__init__(f"{sensor_id} pushes faster than {rate_fps:g} frames/s (burst {burst}); "
                         f"retry after {retry_after_s:.2f} s")

    def headers(self) -> dict[str, str]:
        # Retry-After takes whole seconds; round up so a client that obeys it is let in.
        return {"Retry-After": str(max(1, -int(-self.retry_after_s // 1)))}



class AuthThrottledError(IngestError):
    """The client has failed to authenticate too often recently (``ingest.auth_max_failures``)."""

    status_code = 429
    reason = "auth_throttled"

    def __init__(self, retry_after_s: float, max_failures: int, window_s: float):
        self.retry_after_s = retry_after_s
        super().__init__(f"{max_failures} failed authentications from this client within {window_s:g} s; "
                         f"retry after {retry_after_s:.0f} s with the device's own token")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, -int(-self.retry_after_s // 1)))}


# Retries and the bus
class FrameIdReusedError(IngestError):
    """A ``device_frame_id`` already accepted with different bytes: answered 409, never dropped silently."""

    status_code = 409
    reason = "frame_id_reused"


class BusUnavailableError(IngestError):
    """Kafka did not acknowledge the frame in time; the device should retry (same device_frame_id)."""

    status_code = 503
    reason = "bus_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


# Credentials (the CLI, not the push API)
class CredentialError(IbetError):
    """A drone cannot be enrolled, rotated or revoked: unknown sensor, not a drone, wrong state."""


class LedgerError(IngestError):
    """The frame ledger's database (sequence numbers, retry de-duplication) failed; the device should retry."""

    status_code = 503
    reason = "ledger_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}
