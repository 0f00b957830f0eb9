"""Sign-in, sessions, uploads, downloads and file permissions (SPEC §11, issue 15 items 1 and 2).

The throttle's arithmetic on a clock of the test's own; the rest against a real server (the app and the API
as ``slem serve`` runs them, in this process, on a free port) with users in a SQLite database, signing in
through Gradio's own ``POST /login`` from two loopback addresses (127.0.0.1 and 127.0.0.2).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from slem_ml.app.files import Downloads, files_router
from slem_ml.app.signin import FAILURES, LOCK_S, WINDOW_S, Throttle
from slem_ml.app.workspace import AppConfig
from slem_ml.cli.models import PASSWORD_IN_ARGV_WARNING
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.errors import SlemError
from slem_ml.storage import open_database
from slem_ml.storage.tables import AuditEntry
from slem_ml.storage.users import add_user
from tests.test_cli import SAMPLE, needs_sample
from tests.test_cli import slem as run_slem

PASSWORD = "a-long-test-passphrase"
USERS = {"mgr": ("manager", None), "view": ("viewer", "C001"), "eve": ("viewer", None)}


# --- the throttle --------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_lock_a_key_for_15_minutes_and_the_next_lock_lasts_twice_as_long() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    key = [("user name", "mgr")]
    for _ in range(FAILURES - 1):
        assert throttle.failed(key) == [] and throttle.locked(key) is None
    started = throttle.failed(key)  # the fifth
    assert [(lock.kind, lock.value, lock.remaining_s) for lock in started] == [("user name", "mgr", LOCK_S)]
    clock.now += LOCK_S - 1
    lock = throttle.locked(key)
    assert lock is not None and lock.remaining_s == 1 and "try again in 1 min" in lock.reason()
    clock.now += 1
    assert throttle.locked(key) is None  # served
    for _ in range(FAILURES):
        throttle.failed(key)
    lock = throttle.locked(key)
    assert lock is not None and lock.remaining_s == 2 * LOCK_S  # doubling
    clock.now += 2 * LOCK_S
    throttle.succeeded(key[0])  # the right password: the history is forgotten
    for _ in range(FAILURES):
        throttle.failed(key)
    assert throttle.locked(key).remaining_s == LOCK_S  # type: ignore[union-attr]


def test_failures_further_apart_than_the_window_never_lock() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    key = [("address", "10.0.0.9")]
    for _ in range(3 * FAILURES):
        assert throttle.failed(key) == []
        clock.now += WINDOW_S / (FAILURES - 1) + 1  # never 5 within 15 minutes
    assert throttle.locked(key) is None


# --- a real server -------------------------------------------------------------------------------------


def start_server(work: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str, AppConfig]:
    """``slem serve`` (the sample's contracts) with the users of :data:`USERS`, on a free port."""
    config = AppConfig(
        database_url=f"sqlite:///{work / 'slem.db'}", contracts=SAMPLE_CONTRACTS, runs_dir=work / "runs"
    )
    engine = open_database(config.database_url)
    for name, (role, client_id) in USERS.items():
        add_user(engine, name, PASSWORD, role, client_id=client_id)
    engine.dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = work / "serve.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "MLFLOW_DISABLE_TELEMETRY": "true"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "serve", "--port", str(port), "--db", config.database_url,
             "--contracts", str(SAMPLE_CONTRACTS), "--runs-dir", str(config.runs_dir),
             "--models-dir", str(work / "models"), "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
             *extra],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, log.read_text()
        try:
            httpx.get(url, timeout=2)
            return server, url, config
        except httpx.TransportError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, AppConfig]]:
    server, url, config = start_server(tmp_path)
    try:
        yield url, config
    finally:
        server.terminate()
        server.wait(15)


def client(url: str, address: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(
        base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=30, follow_redirects=False
    )


def sign_in(http: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/login", data={"username": name, "password": password})


def audit(config: AppConfig, wait_for: int) -> list[tuple[str, str, str]]:
    """The sign-in entries of the audit log (action, name, address), once ``wait_for`` are written."""
    engine = open_database(config.database_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(AuditEntry.action, AuditEntry.entity_id, AuditEntry.detail)
                    .where(AuditEntry.action.like("user.sign%"))
                    .order_by(AuditEntry.id)
                ).all()
            if len(rows) >= wait_for or time.monotonic() > deadline:
                return [(action, name, detail["address"]) for action, name, detail in rows]
            time.sleep(0.2)
    finally:
        engine.dispose()


def test_guessing_locks_the_name_out_with_the_reason_and_every_attempt_is_audited(
    served: tuple[str, AppConfig],
) -> None:
    url, config = served
    with client(url) as guesser, client(url, "127.0.0.2") as other:
        for n in range(FAILURES):
            assert sign_in(guesser, "mgr", f"guess-{n}").status_code == 400
        refused = sign_in(guesser, "mgr")  # the right password, too late
        assert refused.status_code == 429
        assert "too many failed sign-ins" in refused.json()["detail"]
        assert 14 * 60 < int(refused.headers["Retry-After"]) <= LOCK_S
        assert "access-token" not in refused.headers.get("set-cookie", "")
        # the name is locked from any address; another name from another address is not
        assert sign_in(other, "mgr").status_code == 429
        assert sign_in(other, "eve").status_code == 200
        # the guesser's address is locked too, whatever name it tries next
        assert sign_in(guesser, "eve").status_code == 429
    entries = audit(config, FAILURES + 4)
    assert entries == [
        *[("user.sign_in_failed", "mgr", "127.0.0.1")] * FAILURES,
        ("user.sign_in_refused", "mgr", "127.0.0.1"),
        ("user.sign_in_refused", "mgr", "127.0.0.2"),
        ("user.signed_in", "eve", "127.0.0.2"),
        ("user.sign_in_refused", "eve", "127.0.0.1"),
    ]


def test_a_session_ends_after_its_hours_and_sign_out_ends_it_at_once(tmp_path: Path) -> None:
    server, url, _ = start_server(tmp_path, "--session-hours", str(2 / 3600))
    try:
        with client(url) as http:
            assert sign_in(http, "mgr").status_code == 200
            assert http.get("/gradio_api/user").json() == "mgr"
            time.sleep(2.5)
            assert http.get("/gradio_api/user").json() is None  # expired: asked to sign in again
            assert sign_in(http, "mgr").status_code == 200
            assert http.get("/gradio_api/user").json() == "mgr"
            assert http.get("/logout").status_code == 302
            assert http.get("/gradio_api/user").json() is None
    finally:
        server.terminate()
        server.wait(15)


def test_uploads_are_refused_over_http_to_roles_that_may_not_upload(served: tuple[str, AppConfig]) -> None:
    url, config = served
    cache = config.runs_dir / ".gradio-uploads"
    files = {"files": ("readings.csv", b"timestamp,zone_id,power_w\n" * 1000, "text/csv")}
    with client(url) as viewer, client(url) as manager, client(url) as nobody:
        assert sign_in(viewer, "eve").status_code == 200
        assert sign_in(manager, "mgr").status_code == 200
        refused = viewer.post("/gradio_api/upload", files=files)
        assert refused.status_code == 403 and "may not upload" in refused.json()["detail"]
        assert nobody.post("/gradio_api/upload", files=files).status_code == 403
        assert not [p for p in cache.rglob("*") if p.is_file()], "a refused upload left a file"
        stored = manager.post("/gradio_api/upload", files=files)
        assert stored.status_code == 200
        (path,) = stored.json()
        assert Path(path).is_relative_to(cache) and Path(path).read_bytes() == files["files"][1]
        # the cache is the service's own, and what it holds is for uploaders only
        assert stat.S_IMODE(cache.stat().st_mode) == 0o700
        assert viewer.get(f"/gradio_api/file={path}").status_code == 403
        assert manager.get(f"/gradio_api/file={path}").status_code == 200


# --- downloads -----------------------------------------------------------------------------------------


def test_a_download_goes_only_to_its_user_and_is_checked_again_when_fetched(tmp_path: Path) -> None:
    downloads = Downloads()
    app = FastAPI()
    app.include_router(files_router(downloads, lambda request: request.headers.get("x-user")))
    invoice = tmp_path / "INV-C001-202501.pdf"
    invoice.write_bytes(b"%PDF-1.4 the invoice")
    allowed = {"mgr": True}

    def make() -> Path:
        if not allowed["mgr"]:
            raise SlemError("mgr may no longer see INV-C001-202501")
        return invoice

    link, path = downloads.offer("mgr", make)
    assert path == invoice and link.startswith("files/") and link.endswith("/INV-C001-202501.pdf")
    web = TestClient(app)
    got = web.get(f"/{link}", headers={"x-user": "mgr"})
    assert got.status_code == 200 and got.content == invoice.read_bytes()
    assert "no-store" in got.headers["cache-control"]
    assert web.get(f"/{link}", headers={"x-user": "view"}).status_code == 403  # another user: never
    assert web.get(f"/{link}").status_code == 403  # nobody signed in
    allowed["mgr"] = False  # e.g. the account was changed since the link was shown
    refused = web.get(f"/{link}", headers={"x-user": "mgr"})
    assert refused.status_code == 403 and "no longer" in refused.json()["detail"]
    assert web.get("/files/made-up/INV-C001-202501.pdf", headers={"x-user": "mgr"}).status_code == 404


def test_an_expired_link_says_so() -> None:
    clock = Clock()
    downloads = Downloads(ttl_s=60, clock=clock)
    link, _ = downloads.offer("mgr", lambda: Path(__file__))
    clock.now += 61
    with pytest.raises(LookupError, match="expired"):
        downloads.fetch(link.split("/")[1], "mgr")


# --- files on disk and the command line ----------------------------------------------------------------


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}


@needs_sample
def test_the_database_and_every_output_are_their_owners_only(tmp_path: Path) -> None:
    done = run_slem(
        "score", str(SAMPLE), "--contracts", str(SAMPLE_CONTRACTS), "--out", str(tmp_path / "out"),
        "--models-dir", str(tmp_path / "none"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = modes(tmp_path / "out") | {"slem.db": stat.S_IMODE((tmp_path / "slem.db").stat().st_mode)}
    assert len(made) > 8
    shared = {name: oct(mode) for name, mode in made.items() if mode & 0o077}
    assert shared == {}, f"readable by others: {shared}"


def test_a_password_in_db_works_with_a_warning_and_the_environment_needs_none(tmp_path: Path) -> None:
    quiet = run_slem("users", "list", cwd=tmp_path)  # the runner gives $SLEM_DATABASE_URL
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    pg = "postgresql://postgres:not-a-secret@127.0.0.1:1/test"  # nothing listens on port 1
    loud = run_slem("users", "list", "--db", pg, cwd=tmp_path)
    assert PASSWORD_IN_ARGV_WARNING in loud.stderr.replace("\n", " ")
    assert loud.returncode == 2 and "not-a-secret" not in loud.stderr  # the error line hides it too
