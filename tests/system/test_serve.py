"""``lm-explorer serve``: a real server process guards its page and WebSocket with a token and an Origin check, and stops
cleanly on SIGTERM; its token option, help, a taken port, and no textual-serve."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engine.errors import UserError
from tui import launcher

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, server: subprocess.Popen, timeout: float = 60.0) -> tuple[int, str]:
    """The status and text at ``url`` once the server answers (it is polled until then); fail if the server ends first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8")
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None:
                raise AssertionError(f"the server ended with {server.returncode}: {server.stderr.read()}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer from {url} within {timeout:.0f} s") from None
            time.sleep(0.1)


async def websocket_status(url: str, origin: str) -> int:
    """The HTTP status a WebSocket handshake to ``url`` with ``Origin: origin`` gets (101 when accepted)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers={"Origin": origin}):
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


async def app_screen_shows(url: str, origin: str, text: bytes, timeout: float = 60.0) -> bytes:
    """What the app sends over an accepted WebSocket until its screen shows ``text`` (its process started and drew)."""
    import aiohttp

    received = b""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers={"Origin": origin}) as websocket:
        while text not in received:
            message = await websocket.receive(timeout=timeout)
            assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), (message, received[-500:])
            if message.type == aiohttp.WSMsgType.BINARY:
                received += message.data
    return received


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def start_serve(tmp_path: Path, port: int) -> subprocess.Popen:
    """A real ``lm-explorer serve`` on ``port`` over ``tmp_path/runs``, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "serve", "--port", str(port), "--checkpoints", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )


def test_serve_guards_the_page_and_websocket_with_its_token_and_origin_and_stops_on_sigterm(tmp_path):
    pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_serve(tmp_path, port)
    try:
        first_line = server.stderr.readline()
        assert first_line.startswith(f"Open {base}/?token="), first_line
        token = first_line.strip().split("?token=", 1)[1]
        assert len(token) >= 40  # secrets.token_urlsafe(32)
        assert fetch(f"{base}/", server)[0] == 403
        assert fetch(f"{base}/?token={token[:-1]}", server)[0] == 403
        status, page = fetch(f"{base}/?token={token}", server)
        assert status == 200 and "lm-explorer" in page  # the app's title on textual-serve's page
        assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws/{token}"' in page  # its terminal brings the token

        async def handshakes() -> tuple[int, int, int, int, bytes]:
            return (
                await websocket_status(f"ws://127.0.0.1:{port}/ws/{token}", "http://evil.example"),
                await websocket_status(f"ws://127.0.0.1:{port}/ws?token={token}", f"http://127.0.0.1:{port + 1}"),
                await websocket_status(f"ws://127.0.0.1:{port}/ws", base),
                await websocket_status(f"ws://127.0.0.1:{port}/ws/{'A' * len(token)}", base),
                await app_screen_shows(
                    f"ws://127.0.0.1:{port}/ws/{token}?width=100&height=30", f"http://localhost:{port}", b"Setup"
                ),
            )

        foreign, other_port, no_token, wrong_token, output = asyncio.run(handshakes())
        assert (foreign, other_port, no_token, wrong_token) == (403, 403, 403, 403)
        assert output.startswith(b"\x1b")  # the app's terminal output: escape sequences, then its Setup tab
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "Traceback" not in err + out and token not in err  # the address with the token is printed once
    assert (tmp_path / "runs").is_dir()  # the options were checked (and the folder made) before serving


def children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.1)


CLIENT = """
import asyncio, sys
import aiohttp

async def main(url, origin):
    received = b""
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers={"Origin": origin}) as websocket:
        while b"Setup" not in received:
            message = await websocket.receive(timeout=120)
            assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
            if message.type == aiohttp.WSMsgType.BINARY:
                received += message.data
        print("shown", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


def serve_with_a_tab(tmp_path: Path) -> tuple[subprocess.Popen, subprocess.Popen, int]:
    """A real ``lm-explorer serve`` and a browser-tab client process whose app has drawn its screen; and the app's pid."""
    port = free_port()
    server = start_serve(tmp_path, port)
    token = server.stderr.readline().strip().split("?token=", 1)[1]
    fetch(f"http://127.0.0.1:{port}/?token={token}", server)  # it listens
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, f"ws://127.0.0.1:{port}/ws/{token}?width=100&height=30", f"http://127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout.readline() == "shown\n"
    (app,) = children(server.pid)
    return server, client, app


def end(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.parametrize("how", ["client killed", "server stopped", "server killed"])
def test_a_served_app_ends_when_its_client_or_the_server_goes_without_a_goodbye(tmp_path, how):
    """A browser tab that vanishes (SIGKILL: no WebSocket close), ``serve`` stopped with SIGTERM while a tab is
    open, or ``serve`` killed outright: each time the tab's app process ends, and nothing is left running."""
    pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")
    server, client, app = serve_with_a_tab(tmp_path)
    try:
        if how == "client killed":
            client.kill()
            wait_until(lambda: not alive(app), 30, "the app of a vanished tab should end")
            assert server.poll() is None  # the server serves on
        elif how == "server stopped":
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=15) == 0  # textual-serve alone waited on the open tab
            assert not alive(app)
        else:
            server.kill()
            wait_until(lambda: not alive(app), 30, "an app whose server was killed should end")
    finally:
        end(client, server)
        if alive(app):
            os.kill(app, signal.SIGKILL)


def test_a_tab_app_that_ignores_quit_and_sighup_is_killed(monkeypatch):
    """The end of a tab escalates: quit, then SIGHUP, then SIGKILL, so even an app stuck for good does not outlive it."""
    pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")
    from textual_serve.download_manager import DownloadManager

    from tui import web_server

    stuck = f"{sys.executable} -c 'import signal, time; signal.signal(signal.SIGHUP, signal.SIG_IGN); time.sleep(600)'"

    async def nothing(*_: object) -> None:
        return None

    async def start_and_stop() -> tuple[int, float, int | None]:
        tab = web_server.TabApp(stuck, write_bytes=nothing, write_str=nothing, close=nothing, download_manager=DownloadManager())
        await tab.start(80, 24)
        began = time.monotonic()
        await tab.stop()
        return tab._process.pid, time.monotonic() - began, tab._process.returncode

    monkeypatch.setattr(web_server, "QUIT_WAIT_S", 0.5)
    monkeypatch.setattr(web_server, "HANGUP_WAIT_S", 0.5)
    pid, took, code = asyncio.run(start_and_stop())
    assert code == -signal.SIGKILL and not alive(pid)
    assert took < 10


def test_serve_token_is_given_or_refused_and_origins_are_the_served_ones(tmp_path):
    pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")
    from tui.web_server import allowed_origins, check_token

    assert check_token("a" * 16) == "a" * 16
    for bad in ("short", "x" * 20 + "&next=/", "x" * 20 + " "):
        with pytest.raises(UserError, match="--token must be at least 16"):
            check_token(bad)
    assert launcher.main(["serve", "--token", "short", "--checkpoints", str(tmp_path)]) == 2
    assert allowed_origins("http://127.0.0.1:8000") == {
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
    }
    assert allowed_origins("https://Lab.Example/") == {"https://lab.example"}
    assert allowed_origins("http://gpu-box:9000") == {"http://gpu-box:9000"}


def test_serve_without_textual_serve_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # importing it now fails, as when it is not installed
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert launcher.main(["serve", "--checkpoints", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: lm-explorer serve needs textual-serve, which is not installed; install it with pip install 'lm-explorer[serve]'.\n"
    )


def test_serve_help_says_localhost_port_forward_token_and_what_it_does_not_protect(capsys):
    with pytest.raises(SystemExit) as exit:
        launcher.main(["serve", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "127.0.0.1" in text and "SSH port-forward" in text and "--token" in text
    assert "random token" in text and "Origin check" in text and "no TLS" in text


def test_serve_refuses_a_port_that_is_taken(tmp_path):
    pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tui.launcher", "serve", "--port", str(port), "--checkpoints", str(tmp_path)],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    err = done.stderr.splitlines()[-1]
    assert err.startswith(f"error: Cannot listen on 127.0.0.1:{port} (") and err.endswith(
        "give --port another number, or stop what uses it."
    )


FLOOD = """
import os, sys, time
with open(sys.argv[1], "w") as file:
    file.write(str(os.getpid()))
out = sys.stdout.buffer
out.write(b"__GANGLION__\\n")
frame = b"x" * 65536
for _ in range(2000):  # 128 MB of screen: more than any socket's buffers hold
    out.write(b"D" + len(frame).to_bytes(4, "big") + frame)
out.flush()
time.sleep(600)
"""


def test_a_browser_that_stops_taking_output_gets_its_connection_dropped_and_its_app_ended(tmp_path, monkeypatch):
    """The page's socket stalls (it reads nothing while the app draws): after SEND_WAIT_S the server drops the
    connection, so the page says the session ended instead of freezing, and the tab's app process ends."""
    pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")
    import aiohttp
    from aiohttp import web

    from tui import web_server

    for name in ("SEND_WAIT_S", "QUIT_WAIT_S", "HANGUP_WAIT_S"):
        monkeypatch.setattr(web_server, name, 0.5)
    script, pid_file = tmp_path / "flood.py", tmp_path / "app.pid"
    script.write_text(FLOOD)
    port = free_port()
    server = web_server.GuardedServer(f"{sys.executable} {script} {pid_file}", token="t" * 32, port=port)

    async def stalled_tab() -> tuple[aiohttp.WSMsgType, int]:
        runner = web.AppRunner(await server._make_app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(
                    f"ws://127.0.0.1:{port}/ws/{'t' * 32}", headers={"Origin": f"http://127.0.0.1:{port}"}
                ) as websocket,
            ):
                deadline = time.monotonic() + 60
                while not pid_file.exists() or server.tabs:  # nothing read meanwhile: the socket's buffers fill
                    assert time.monotonic() < deadline, "the stalled tab should end within 60 s"
                    await asyncio.sleep(0.1)
                while (message := await websocket.receive(timeout=60)).type == aiohttp.WSMsgType.BINARY:
                    pass  # what the buffers held, then the end
                return message.type, int(pid_file.read_text())
        finally:
            await runner.cleanup()

    end, pid = asyncio.run(stalled_tab())
    assert end in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert not alive(pid)
