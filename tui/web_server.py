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

Each browser tab's app process ends with its tab, however the tab goes (:class:`TabApp`): textual-serve
asked the app to quit and then waited for it forever, and stopped reading its output once the browser
stopped taking it, so an app whose client vanished mid-write blocked on a full pipe and outlived the
server. Here the app's output is drained whether or not the browser still takes it, a browser that takes
none for :data:`SEND_WAIT_S` has its connection dropped (its page says the session ended), a quit that is not
obeyed within :data:`QUIT_WAIT_S` is followed by SIGHUP (the app's "terminal gone": it exits, runs train
on) and, :data:`HANGUP_WAIT_S` later, SIGKILL; the app is started without a shell in between, so the
signals reach it; and the server ends every tab's app the same way when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import secrets
import shlex
import signal
from asyncio.subprocess import PIPE, Process
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from engine.errors import UserError

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,}")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
TOKEN_ROUTES = ("index", "websocket", "websocket_token")
WEBSOCKET_ROUTES = ("websocket", "websocket_token")

QUIT_WAIT_S = 5.0
HANGUP_WAIT_S = 5.0  # the app's own watchdog ends it 3 s after SIGHUP (tui.app.HANGUP_EXIT_S)
SEND_WAIT_S = 10.0  # a browser that takes no frame for this long is gone

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("lm-explorer.serve")


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


class TabApp(AppService):
    """One browser tab's app process, which ends when the tab goes, whether or not the browser said goodbye."""

    client_gone = False
    stalled = False  # the browser took no frame for SEND_WAIT_S

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        """The app itself as the child (textual-serve ran it under ``sh -c``, which signals do not pass)."""
        self._process = process = await asyncio.create_subprocess_exec(
            *shlex.split(self.command), stdin=PIPE, stdout=PIPE, stderr=PIPE, env=self._build_environment(width, height)
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def on_data(self, payload: bytes) -> None:
        """Forward the app's output to the browser while it takes it; once it stops, drain and drop it.

        A browser that took no frame for :data:`SEND_WAIT_S` has its connection dropped (its page then says
        "Session ended", instead of showing a screen frozen for good); the tab's app ends with it.
        """
        if self.client_gone:
            return
        try:
            await asyncio.wait_for(self.remote_write_bytes(payload), SEND_WAIT_S)
        except (ConnectionError, RuntimeError, asyncio.TimeoutError) as error:
            self.client_gone = True
            self.stalled = isinstance(error, asyncio.TimeoutError)
            if self.stalled:
                await self.remote_close()

    async def stop(self) -> None:
        """Ask the app to quit; SIGHUP it if it does not within ``QUIT_WAIT_S``, SIGKILL it ``HANGUP_WAIT_S`` later."""
        process = self._process
        if process is None or self._task is None:
            return
        self.client_gone = True
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        await self.send_meta({"type": "quit"})
        for next_signal, wait_s in ((signal.SIGHUP, QUIT_WAIT_S), (signal.SIGKILL, HANGUP_WAIT_S)):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), wait_s)
                break
            log.warning("The app of a browser tab (process %d) did not end; sending it %s.", process.pid, next_signal.name)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(next_signal)
        await process.wait()
        await self._task  # its output ends with the process
        self._task = None


class GuardedServer(Server):
    """textual-serve's :class:`Server`; its page and WebSocket need ``token``, its WebSocket the served Origin.

    ``tabs`` holds each connected tab's WebSocket and app, so that stopping the server ends them.
    """

    def __init__(self, command: str, *, token: str, **options: Any) -> None:
        super().__init__(command, **options)
        self.token = token
        self.origins = allowed_origins(self.public_url)
        self.tabs: dict[web.WebSocketResponse, TabApp] = {}

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

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One tab: start its app, relay until either side goes, then end the app (:meth:`TabApp.stop`)."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        await websocket.prepare(request)

        async def close() -> None:
            """The app said it exits: a close frame. The browser took no frame for ``SEND_WAIT_S``: the connection is
            dropped, as a close frame would wait behind what it did not take (the page sees the end either way)."""
            if tab.stalled and request.transport is not None:
                request.transport.abort()
            else:
                await websocket.close()

        tab = TabApp(
            self.command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=close,
            download_manager=self.download_manager,
            debug=self.debug,
        )
        self.tabs[websocket] = tab
        try:
            await tab.start(width, height)
            await self._process_messages(websocket, tab)
        except Exception as error:  # a browser's bad message or a failed start: that tab ends, the server goes on
            log.exception(error)
        finally:
            await asyncio.shield(self._end_tab(websocket))
        return websocket

    async def _end_tab(self, websocket: web.WebSocketResponse) -> None:
        tab = self.tabs.pop(websocket, None)
        if tab is not None:
            await tab.stop()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await websocket.close()

    async def on_shutdown(self, app: web.Application) -> None:
        """The server stops: end every tab's app, together."""
        await asyncio.gather(*(self._end_tab(websocket) for websocket in list(self.tabs)))
