"""Helpers for the scripts that drive the app in a browser (``screenshots.py``, ``bench_app.py``).

:func:`serving` starts a real ``slem serve`` in a working folder on a free loopback port and stops it on
exit; :func:`browser` opens Debian's ``/usr/bin/chromium`` through Playwright (no browser download).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slem_ml.config import SAMPLE_CONTRACTS

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = SAMPLE_CONTRACTS
CHROMIUM = Path("/usr/bin/chromium")

__all__ = ["CHROMIUM", "CONTRACTS", "REPO", "browser", "env", "serving", "slem"]


def env(work: Path) -> dict[str, str]:
    """The environment of every slem process: no telemetry, Gradio's upload cache inside ``work``."""
    return {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(work / "gradio"),
    }


def slem(*args: str, cwd: Path, stdin: str | None = None) -> str:
    """Run ``python -m slem_ml ARGS`` in ``cwd``; its standard output, or exit with its error."""
    done = subprocess.run(
        [sys.executable, "-m", "slem_ml", *args],
        cwd=cwd,
        env=env(cwd),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"slem {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(work: Path, *args: str, timeout: float = 300) -> Iterator[str]:
    """``slem serve ARGS`` in ``work`` (output in ``work/serve.log``); yields its URL once it answers."""
    port = _free_port()
    log = work / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=work,
            env=env(work),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout  # --readings scores before serving
        while True:
            if server.poll() is not None:
                raise SystemExit(f"slem serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise SystemExit(f"slem serve did not answer within {timeout:.0f} s") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def browser() -> Iterator[Any]:
    """Headless Chromium (Playwright's ``Browser``); exits with a message when it is not installed."""
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
