"""URLs in logs and errors: without their secrets."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

_SECRET_PARAMS = ("passphrase", "password", "pass", "token", "streamid")


def secret_params(url: str) -> list[str]:
    """The query parameters of ``url`` that carry a secret (``passphrase``, ``token``, ...).

    >>> secret_params("srt://10.0.0.9:9000?mode=caller&passphrase=s3cret-pass")
    ['passphrase']
    """
    return [k for k, _ in parse_qsl(urlsplit(url).query) if k.lower() in _SECRET_PARAMS]


def redact(url: str) -> str:
    """``url`` without a password (SRT passphrases, RTSP/RTMP credentials, tokens in the query).

    >>> redact("srt://10.0.0.9:9000?mode=caller&passphrase=s3cret-pass")
    'srt://10.0.0.9:9000?mode=caller&passphrase=***'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = "&".join(f"{k}=***" if k.lower() in _SECRET_PARAMS else f"{k}={v}" for k, v in parse_qsl(parts.query))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
