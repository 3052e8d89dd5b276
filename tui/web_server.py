"""textual-serve's web server with a token and an Origin check, as Jupyter guards its notebooks.

Plain textual-serve starts an app for any WebSocket on ``/ws``, from any web page the researcher's browser
has open (and from any user of the machine). :class:`GuardedServer` refuses, with 403:

- the page ``/`` without ``?token=<token>``, and a WebSocket without the token (``/ws?token=<token>``, or
  ``/ws/<token>``, the address the served page itself connects to: its script appends ``?width=…`` to
  the address it is given, so the token goes in the path);
- a WebSocket whose ``Origin`` header is present and is not the served origin (the public URL's, and,
  when that is a loopback name, its other loopback spellings at the same port: a page opened at
  ``http://localhost:8000`` connects to ``ws://127.0.0.1:8000``).

Tokens are compared in constant time (``hmac.compare_digest``). ``/static`` (textual-serve's script and
fonts) stays open, and so does ``/download/<key>``, whose key the app makes per file.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

from engine.errors import UserError

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,}")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
TOKEN_ROUTES = ("index", "websocket", "websocket_token")
WEBSOCKET_ROUTES = ("websocket", "websocket_token")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A fresh random token (32 bytes, URL-safe base64)."""
    return secrets.token_urlsafe(32)


def check_token(token: str) -> str:
    """``token`` if it can go in a URL and is long enough to guess never; else a :class:`UserError`."""
    if not TOKEN_PATTERN.fullmatch(token):
        raise UserError("--token must be at least 16 letters, digits, '-' or '_'; leave it out and lm-explorer serve makes one.")
    return token


def allowed_origins(public_url: str) -> frozenset[str]:
    """The ``Origin`` values a browser sends from the served page: the public URL's, and its loopback aliases."""
    parts = urlsplit(public_url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    host = f"[{host}]" if ":" in host else host
    names = LOOPBACK_NAMES if host in LOOPBACK_NAMES else (host,)
    return frozenset(f"{scheme}://{name}{port}" for name in names)


class GuardedServer(Server):
    """textual-serve's :class:`Server`; its page and WebSocket need ``token``, its WebSocket the served Origin."""

    def __init__(self, command: str, *, token: str, **options: Any) -> None:
        super().__init__(command, **options)
        self.token = token
        self.origins = allowed_origins(self.public_url)

    def url(self) -> str:
        """The address to open: the public URL with the token."""
        return f"{self.public_url.rstrip('/')}/?token={self.token}"

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_get("/ws/{token}", self.handle_websocket, name="websocket_token")
        app.middlewares.append(self.guard)
        return app

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """403 for the page or a WebSocket without the token, and for a WebSocket from a foreign Origin."""
        route = request.match_info.route.name
        if route in TOKEN_ROUTES:
            given = request.match_info.get("token") or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                raise web.HTTPForbidden(text="lm-explorer: open the address with ?token=… that lm-explorer serve printed.\n")
        if route in WEBSOCKET_ROUTES:
            origin = request.headers.get("Origin")
            if origin is not None and origin.lower() not in self.origins:
                raise web.HTTPForbidden(text=f"lm-explorer: WebSocket from origin {origin!r} refused.\n")
        response = await handler(request)
        if route == "index":
            response.headers["Referrer-Policy"] = "no-referrer"  # the page's address holds the token
            response.headers["Cache-Control"] = "no-store"
        return response

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """textual-serve's page, whose terminal connects to ``/ws/<token>``."""
        context = await Server.handle_index.__wrapped__(self, request)  # type: ignore[attr-defined]
        context["app_websocket_url"] = f"{context['app_websocket_url']}/{self.token}"
        return aiohttp_jinja2.render_template("app_index.html", request, context)
