"""``lm-explorer serve``: the app's web page served by a real process, stopped cleanly with SIGTERM; and without textual-serve."""

from __future__ import annotations

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

from tui import launcher

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch_page(url: str, server: subprocess.Popen, timeout: float = 60.0) -> str:
    """The page at ``url`` once the server answers (it is polled until then); fail if the server ends first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                return response.read().decode("utf-8")
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None:
                raise AssertionError(f"the server ended with {server.returncode}: {server.stderr.read()}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer from {url} within {timeout:.0f} s") from None
            time.sleep(0.1)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def test_serve_serves_the_app_page_on_localhost_and_stops_on_sigterm(tmp_path):
    pytest.importorskip("textual_serve", reason="the serve extra (textual-serve) is not installed")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "serve", "--port", str(port), "--checkpoints", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
    )
    try:
        page = fetch_page(f"http://127.0.0.1:{port}/", server)
        assert "lm-explorer" in page  # the app's title on textual-serve's page
        assert f"ws://127.0.0.1:{port}/ws" in page and "/static/" in page  # its terminal connects back to this server
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "No authentication" in err and "Traceback" not in err + out
    assert (tmp_path / "runs").is_dir()  # the options were checked (and the folder made) before serving


def test_serve_without_textual_serve_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # importing it now fails, as when it is not installed
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert launcher.main(["serve", "--checkpoints", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "error: lm-explorer serve needs textual-serve, which is not installed; install it with pip install 'lm-explorer[serve]'.\n"
    )


def test_serve_help_says_localhost_port_forward_and_no_authentication(capsys):
    with pytest.raises(SystemExit) as exit:
        launcher.main(["serve", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "127.0.0.1" in text and "no authentication" in text and "SSH port-forward" in text


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
