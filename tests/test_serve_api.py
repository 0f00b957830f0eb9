"""``slem serve`` serves the HTTP ingest API beside the app (SPEC §6, §9; slem_ml/app/server.py).

A real ``slem serve`` on a free port with its own SQLite database, a user (so the app asks to sign in) and
the sample contracts; a token made with :func:`~slem_ml.storage.tokens.add_token` in the same database.
The route's own behaviour in detail is tests/test_http_ingest.py's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from slem_ml.app.server import api_app, serve_in_background
from slem_ml.app.workspace import AppConfig
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.errors import SlemError
from slem_ml.live.http import MAX_BODY_BYTES
from slem_ml.storage import open_database
from slem_ml.storage.tables import ReadingBlock
from slem_ml.storage.tokens import add_token
from slem_ml.storage.users import add_user

USER, PASSWORD = "mia", "a-long-test-passphrase"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    """``slem serve --contracts`` (the sample's) with one user; its base URL and its database."""
    work = tmp_path_factory.mktemp("serve")
    db = f"sqlite:///{work / 'slem.db'}"
    engine = open_database(db)
    add_user(engine, USER, PASSWORD, "manager")
    port, log = free_port(), work / "serve.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(work / "gradio")}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db,
             "--contracts", str(SAMPLE_CONTRACTS), "--runs-dir", str(work / "runs")],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url, engine
    finally:
        server.terminate()
        server.wait(timeout=15)
        engine.dispose()
        print(f"--- slem serve output ---\n{log.read_text()[-3000:]}")  # shown by pytest on failure


def readings(n: int, minute: int = 0) -> list[dict[str, Any]]:
    """``n`` readings of one zone of the sample's client C001, a minute apart, starting an hour ago."""
    start = time.time() - 3600 + 60 * minute
    return [
        {"timestamp": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(start + 60 * i)),
         "zone_id": "HQ-F1-Z1", "client_id": "C001", "power_w": 40.0}
        for i in range(n)
    ]  # fmt: skip


def post(url: str, token: str | None, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/api/v1/readings", content=body, headers=headers, timeout=60)


def stored(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.coalesce(func.sum(ReadingBlock.n), 0))).scalar_one())


def test_readings_posted_with_a_token_are_stored(served: tuple[str, Engine]) -> None:
    url, engine = served
    token = add_token(engine, "site-a", actor="test")
    before = stored(engine)
    answer = post(url, token, json.dumps(readings(5)).encode())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 5, "duplicates": 0, "corrected": 0, "quarantined": []}
    assert stored(engine) == before + 5
    assert post(url, token, json.dumps(readings(5)).encode()).json()["duplicates"] == 5
    assert stored(engine) == before + 5


def test_no_token_a_bad_token_and_a_body_over_the_limit_are_refused(served: tuple[str, Engine]) -> None:
    url, engine = served
    token = add_token(engine, "site-b", actor="test")
    before = stored(engine)
    body = json.dumps(readings(3, minute=30)).encode()
    assert post(url, None, body).status_code == 401
    assert post(url, token + "x", body).status_code == 401
    big = b"[" + b" " * MAX_BODY_BYTES + body[1:]
    assert post(url, token, big).status_code == 413
    assert stored(engine) == before


def test_the_api_is_described_and_the_app_is_still_at_the_root(served: tuple[str, Engine]) -> None:
    url, _ = served
    schema = httpx.get(f"{url}/api/openapi.json", timeout=10).json()
    assert list(schema["paths"]) == ["/api/v1/readings"]  # the API only, none of the app's endpoints
    assert httpx.get(f"{url}/api/docs", timeout=10).status_code == 200
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    signed_in = httpx.post(f"{url}/login", data={"username": USER, "password": PASSWORD}, timeout=10)
    assert signed_in.status_code == 200 and signed_in.json() == {"success": True}
    config = httpx.get(f"{url}/config", cookies=signed_in.cookies, timeout=10)
    assert config.status_code == 200 and config.json()["title"].startswith("slem")


def test_the_apps_own_description_is_not_open_without_sign_in(served: tuple[str, Engine]) -> None:
    url, _ = served
    assert httpx.get(f"{url}/openapi.json", timeout=10).status_code == 404
    assert httpx.get(f"{url}/docs", timeout=10).status_code == 404
    assert httpx.get(f"{url}/gradio_api/openapi.json", timeout=10).status_code == 401
    assert httpx.get(f"{url}/config", timeout=10).status_code == 401


def test_without_contracts_there_is_no_ingest_route(tmp_path: Path) -> None:
    app = api_app(AppConfig(database_url=f"sqlite:///{tmp_path / 'slem.db'}"))
    running = serve_in_background(app, host="127.0.0.1", port=0)
    try:
        assert httpx.get(f"{running.url}/api/openapi.json", timeout=10).json()["paths"] == {}
        assert post(running.url, "x", b"[]").status_code == 404
    finally:
        running.close()
    assert not running.thread.is_alive()


def test_an_address_in_use_is_one_clear_error(tmp_path: Path) -> None:
    app = api_app(AppConfig(database_url=f"sqlite:///{tmp_path / 'slem.db'}"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SlemError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            serve_in_background(app, host="127.0.0.1", port=port)
