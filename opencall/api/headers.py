"""The security headers of every response: one policy, set in one place, on pages, files, JSON and errors alike.

The web app is one HTML page, one stylesheet, an SVG icon and same-origin scripts (the Socket.IO bundle and the
app's ES modules); it builds its DOM with ``createElement``/``textContent``, never from HTML strings. So the
Content-Security-Policy can allow exactly that and nothing else:

``default-src 'none'``
    Fail closed: every kind of load not named below (fonts, media, frames, objects, workers, manifests) is
    refused. Fonts are the system's (app.css); remote audio plays through ``srcObject`` (a
    MediaStream, which CSP does not govern) and the ring tones are WebAudio oscillators, so no ``media-src``.
``script-src 'self'``
    Only the server's own script files run: no inline ``<script>``, no ``on…=`` attributes, no ``javascript:``
    URLs, no ``eval``/``new Function``. Text a peer controls (display names, contact form) that ever slipped
    into the DOM as markup could not execute.
``style-src 'self'``
    app.css only; no ``<style>`` blocks or ``style="…"`` attributes. Scripts setting ``element.style``
    properties (the level meter) go through the CSSOM, which CSP allows.
``img-src 'self'``
    The icon. No ``data:``: nothing in the app uses it.
``connect-src 'self' ws(s)://<host>``
    The REST API, the client log and Socket.IO (polling and WebSocket), all on the page's own origin. CSP
    Level 3 lets ``'self'`` match ``ws:``/``wss:`` of the same host and port (Chromium, Firefox, Safari 16+);
    older Safari (iOS 15 phones) does not, so the WebSocket origin of the request's own Host is named too,
    whether the box was opened by IPv4 address or by name. A Host that is not a plain name[:port] is left out,
    IPv6 literals included: CSP's source grammar has none (Chromium reports ``wss://[fd00::1]`` as an invalid
    source), and there ``'self'`` alone has to do (on old Safari Socket.IO then stays on long-polling).
``base-uri 'none'``
    An injected ``<base>`` cannot re-point the page's relative script URLs.
``form-action 'self'``
    Forms submit to this server only.
``frame-ancestors 'none'``
    No other site may frame the app (clickjacking the Accept, Call or API-key buttons).

Beside it: ``Referrer-Policy: no-referrer`` (invite URLs carry their token in the path, ``/invite/<token>``;
no request, to this server or any other, names the page it came from), ``X-Content-Type-Options: nosniff``
(a file is only what its Content-Type says), ``Permissions-Policy`` (microphone and camera for this origin only,
as are autoplay and clipboard-write, which the app uses; the powerful features it does not use are off; only
names Chromium knows are listed, as it warns about the others — web-share keeps its default, self), and
``Cross-Origin-Opener-Policy: same-origin`` plus ``Cross-Origin-Resource-Policy: same-origin`` (a foreign page
that opens the app keeps no handle on its window, and cannot embed its responses). No HSTS:
docs/security.md explains why.
"""

from __future__ import annotations

import re

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

# The page's own Host as a CSP host-source (CSP3 §2.3.1): a DNS name or an IPv4 address, with an optional port.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?")

CSP_DIRECTIVES: tuple[tuple[str, str], ...] = (
    ("default-src", "'none'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self'"),
    ("connect-src", "'self'"),
    ("base-uri", "'none'"),
    ("form-action", "'self'"),
    ("frame-ancestors", "'none'"),
)

PERMISSIONS_POLICY = ", ".join((
    "microphone=(self)", "camera=(self)", "autoplay=(self)", "clipboard-write=(self)",
    "geolocation=()", "display-capture=()", "fullscreen=()", "payment=()", "usb=()", "serial=()", "hid=()",
    "midi=()", "accelerometer=()", "gyroscope=()", "magnetometer=()", "screen-wake-lock=()",
    "idle-detection=()", "publickey-credentials-get=()", "encrypted-media=()", "picture-in-picture=()",
    "xr-spatial-tracking=()",
))

STATIC_HEADERS: dict[str, str] = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def content_security_policy(scheme: str, host: str) -> str:
    """The CSP of a response to a request for ``scheme``://``host`` (the socket's origin is the page's own)."""
    socket_scheme = "wss" if scheme in ("https", "wss") else "ws"
    parts = []
    for name, value in CSP_DIRECTIVES:
        if name == "connect-src" and _PLAIN_HOST.fullmatch(host):
            value = f"{value} {socket_scheme}://{host}"
        parts.append(f"{name} {value}")
    return "; ".join(parts)


async def add_security_headers(request: Request, response: BaseHTTPResponse) -> None:
    """Response middleware: set the policy on ``response`` (errors included)."""
    response.headers["Content-Security-Policy"] = content_security_policy(request.scheme, request.host)
    for name, value in STATIC_HEADERS.items():
        response.headers[name] = value


def install(app: Sanic) -> None:
    """Add the security headers to every response of ``app``."""
    app.on_response(add_security_headers)
