"""Security headers on every console response: a Content-Security-Policy that allows script and style
only from the console itself (no inline ``<script>``, ``style=`` or ``on...=``), no framing, no MIME
sniffing and no referrer sent to other sites.

The pages keep to it: their JavaScript is in ``console/static`` and reads what the server tells it from
``data-`` attributes. A response that sets its own policy keeps it: the printable case report, which
must stay one self-contained file, allows its one inline stylesheet by hash (:func:`style_hash`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(style_hashes: Iterable[str] = ()) -> str:
    """The console's policy; ``style_hashes`` (from :func:`style_hash`) allow those inline stylesheets too."""
    style_src = " ".join(("'self'", *style_hashes))
    return ("default-src 'self'; script-src 'self'; "
            f"style-src {style_src}; img-src 'self' data: blob:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'")


def style_hash(css: str) -> str:
    """The CSP source that allows the inline ``<style>`` whose text is exactly ``css``."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return f"'sha256-{digest}'"


HEADERS = {
    "Content-Security-Policy": content_security_policy(),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware: adds :data:`HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
