"""``slem serve --ssl-certfile F --ssl-keyfile F`` serves the app and the ingest API over HTTPS (SPEC §11).

A real ``slem serve`` on a free port with a self-signed certificate made here by ``openssl`` (the README's
command, for ``localhost`` and 127.0.0.1), a user and the sample contracts; clients trust only that
certificate. It listens on 0.0.0.0, so the same run shows that TLS spares it the plain-HTTP warning, which a
second, plain server on 0.0.0.0 prints (that one also shows the forwarded headers of a TLS reverse proxy
honoured). The CLI's refusals (one option alone, a file it cannot use) are one line and exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from slem_ml.app.server import load_tls
from slem_ml.cli.serve import PLAIN_HTTP_WARNING
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.errors import SlemError
from slem_ml.storage import open_database
from slem_ml.storage.tokens import add_token
from slem_ml.storage.users import add_user

USER, PASSWORD = "mia", "a-long-test-passphrase"


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Served:
    url: str  # https://127.0.0.1:PORT
    port: int
    trust: ssl.SSLContext  # trusts the server's certificate only
    token: str
    stdout: Path
    stderr: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def make_certificate(folder: Path, name: str = "localhost") -> Pem:
    """A self-signed certificate and its unencrypted key, as the README makes them."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    pem = Pem(folder / "cert.pem", folder / "key.pem")
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pem.key),
         "-out", str(pem.cert), "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return pem


def slem_env(work: Path) -> dict[str, str]:
    return {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(work / "gradio")}


def database_with_a_user(work: Path) -> str:
    db = f"sqlite:///{work / 'slem.db'}"
    engine = open_database(db)
    try:
        add_user(engine, USER, PASSWORD, "manager")
    finally:
        engine.dispose()
    return db


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s (a SIGTERM that lands in a finaliser while the app is being built
    is swallowed by Python: the tests stop a server only once it answers)."""
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Pem:
    return make_certificate(tmp_path_factory.mktemp("pem"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pem: Pem) -> Iterator[Served]:
    """``slem serve`` with TLS on 0.0.0.0 and a free port, one user and the sample contracts."""
    work = tmp_path_factory.mktemp("serve_tls")
    db = database_with_a_user(work)
    engine = open_database(db)
    try:
        token = add_token(engine, "site-a", actor="test")
    finally:
        engine.dispose()
    port, stdout, stderr = free_port(), work / "stdout.log", work / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "serve", "--host", "0.0.0.0", "--port", str(port), "--db", db,
             "--contracts", str(SAMPLE_CONTRACTS), "--runs-dir", str(work / "runs"),
             "--ssl-certfile", str(pem.cert), "--ssl-keyfile", str(pem.key)],
            cwd=work, env=slem_env(work), stdout=out, stderr=err,
        )  # fmt: skip
    trust = ssl.create_default_context(cafile=str(pem.cert))
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, stdout.read_text() + stderr.read_text()
            try:
                httpx.get(f"{url}/api/openapi.json", verify=trust, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, stdout.read_text() + stderr.read_text()
                time.sleep(0.2)
        yield Served(url, port, trust, token, stdout, stderr)
    finally:
        stop(server)
        print(f"--- slem serve output ---\n{stdout.read_text()[-2000:]}\n{stderr.read_text()[-2000:]}")


def test_the_app_and_the_ingest_api_answer_over_https(served: Served) -> None:
    url, trust = served.url, served.trust
    schema = httpx.get(f"{url}/api/openapi.json", verify=trust, timeout=10)
    assert schema.status_code == 200 and list(schema.json()["paths"]) == ["/api/v1/readings"]
    page = httpx.get(f"{url}/", verify=trust, timeout=10)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    signed_in = httpx.post(
        f"{url}/login", data={"username": USER, "password": PASSWORD}, verify=trust, timeout=10
    )
    assert signed_in.status_code == 200 and signed_in.json() == {"success": True}
    config = httpx.get(f"{url}/config", cookies=signed_in.cookies, verify=trust, timeout=10)
    assert config.status_code == 200 and config.json()["root"].startswith("https://")
    start = time.time() - 3600
    body = [
        {"timestamp": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(start + 60 * i)),
         "zone_id": "HQ-F1-Z1", "client_id": "C001", "power_w": 40.0}
        for i in range(3)
    ]  # fmt: skip
    answer = httpx.post(
        f"{url}/api/v1/readings",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {served.token}"},
        verify=trust,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3


def test_it_prints_https_and_no_plain_http_warning(served: Served) -> None:
    assert f"slem serve — https://0.0.0.0:{served.port}  (Ctrl-C stops)" in served.stdout.read_text()
    assert "plain HTTP" not in served.stderr.read_text()


def test_plain_http_and_an_untrusted_client_are_refused(served: Served) -> None:
    with pytest.raises(httpx.TransportError):  # the server speaks TLS only: the plain request gets no answer
        httpx.get(f"http://127.0.0.1:{served.port}/api/openapi.json", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{served.url}/api/openapi.json", timeout=5)  # the system's CAs do not know this one


def test_plain_http_off_loopback_starts_with_one_warning(tmp_path: Path) -> None:
    """And behind a TLS reverse proxy (plain HTTP to slem, forwarded headers) the app links to https."""
    db = database_with_a_user(tmp_path)
    port, stdout, stderr = free_port(), tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "serve", "--host", "0.0.0.0", "--port", str(port), "--db", db,
             "--runs-dir", str(tmp_path / "runs")],
            cwd=tmp_path, env=slem_env(tmp_path), stdout=out, stderr=err,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:  # serving, so that SIGTERM stops it at once (one arriving while it starts may be lost: see stop)
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, stdout.read_text() + stderr.read_text()
            try:
                httpx.get(f"{url}/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, stdout.read_text() + stderr.read_text()
                time.sleep(0.2)
        # what the README's nginx and Caddy snippets send: the app builds its URLs on the proxy's address
        signed_in = httpx.post(f"{url}/login", data={"username": USER, "password": PASSWORD}, timeout=10)
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "slem.example"}
        behind = httpx.get(f"{url}/config", headers=forwarded, cookies=signed_in.cookies, timeout=10)
        assert behind.json()["root"] == "https://slem.example"
        direct = httpx.get(f"{url}/config", cookies=signed_in.cookies, timeout=10)
        assert direct.json()["root"] == url
    finally:
        stop(server)
    assert f"slem serve — http://0.0.0.0:{port}  (Ctrl-C stops)" in stdout.read_text()
    warnings = [line for line in stderr.read_text().splitlines() if "plain HTTP" in line]
    assert warnings == [
        "warning: serving plain HTTP on 0.0.0.0: passwords and tokens cross the network in clear; "
        "use --ssl-certfile/--ssl-keyfile or a reverse proxy with TLS (README)"
    ]
    assert warnings[0] == PLAIN_HTTP_WARNING.format(host="0.0.0.0")


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (["--ssl-certfile", "{cert}"], "error: --ssl-certfile needs --ssl-keyfile too"),
        (["--ssl-keyfile", "{key}"], "error: --ssl-keyfile needs --ssl-certfile too"),
        (
            ["--ssl-certfile", "{cert}", "--ssl-keyfile", "{missing}"],
            "error: cannot read the TLS key {missing}",
        ),
    ],
)
def test_the_cli_refuses_in_one_line_with_exit_2(
    tmp_path: Path, pem: Pem, options: list[str], line: str
) -> None:
    names = {"cert": pem.cert, "key": pem.key, "missing": tmp_path / "nowhere.pem"}
    done = subprocess.run(
        [sys.executable, "-m", "slem_ml", "serve", "--db", f"sqlite:///{tmp_path / 'slem.db'}",
         *(option.format(**names) for option in options)],
        cwd=tmp_path, env=slem_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(line.format(**names)), done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "slem.db").exists()  # refused before anything


def test_files_it_cannot_use_are_named(tmp_path: Path, pem: Pem) -> None:
    other = make_certificate(tmp_path / "other", "other.example")
    encrypted = tmp_path / "encrypted.pem"
    made = subprocess.run(
        ["openssl", "pkey", "-in", str(pem.key), "-aes256", "-passout", "pass:secret",
         "-out", str(encrypted)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert load_tls(pem.cert, pem.key).context.minimum_version == ssl.TLSVersion.TLSv1_2
    cases = [
        (tmp_path, pem.key, f"cannot read the TLS certificate {tmp_path}: Is a directory"),
        (pem.key, pem.key, f"the TLS certificate {pem.key} is not a PEM certificate"),
        (pem.cert, pem.cert, f"the TLS key {pem.cert} is not a PEM key"),
        (other.cert, pem.key, f"the TLS key {pem.key} is not the key of the certificate {other.cert}"),
        (pem.cert, encrypted, f"the TLS key {encrypted} is encrypted"),
    ]
    for cert, key, message in cases:
        with pytest.raises(SlemError) as refused:
            load_tls(cert, key)
        assert str(refused.value).startswith(message), str(refused.value)
