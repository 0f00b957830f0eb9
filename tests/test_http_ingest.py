"""HTTP ingest (SPEC §9; slem_ml/live/http.py): a real server on a free port, a real HTTP client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, func, select

from slem_ml.config.site import parse_site
from slem_ml.live.http import readings_router
from slem_ml.storage.tables import ApiToken, LiveQuarantine, ReadingBlock
from slem_ml.storage.tokens import add_token, revoke_token

SITE = parse_site(
    {
        "site": {"timezone": "Europe/Berlin", "currency": "EUR"},
        "clients": {"C001": {"hours": {"mon-fri": "08:00-18:00"}}},
        "leases": [{"zone": "HQ-*", "client": "C001"}],
    }
)


START = time.time() - 3600  # one instant for the whole module: a test's posts must not straddle a minute


def reading(minute: int, **extra: Any) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(START + 60 * minute))
    return {"timestamp": stamp, "zone_id": "HQ-F1-Z1", "power_w": 40.0, **extra}


@pytest.fixture
def served(engine: Engine) -> Iterator[tuple[str, str]]:
    """The router on a real server (small limits to test them); the base URL and a valid token."""
    app = FastAPI(openapi_url="/api/openapi.json")
    app.include_router(readings_router(engine, SITE, max_body_bytes=20_000, rate="5/minute"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", add_token(engine, "site-a", actor="test")
    server.should_exit = True
    thread.join(10)


def post(url: str, token: str | None, body: bytes | str, kind: str = "application/json") -> httpx.Response:
    headers = {"Content-Type": kind}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/api/v1/readings", content=body, headers=headers, timeout=30)


def stored(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.coalesce(func.sum(ReadingBlock.n), 0))).scalar_one())


def test_a_json_array_is_stored_and_each_bad_reading_named_by_its_index(
    served: tuple[str, str], engine: Engine
) -> None:
    url, token = served
    body = ["oops", reading(1, power_w="x"), reading(2, client_id="C404"), reading(0), reading(3)]
    answer = post(url, token, json.dumps(body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "accepted": 2,
        "duplicates": 0,
        "corrected": 0,
        "quarantined": [
            {"index": 0, "reason": "a JSON str is not a reading object"},
            {"index": 1, "reason": "non-numeric power_w"},
            {"index": 2, "reason": "unknown client_id 'C404' (not in contracts)"},
        ],
    }
    again = post(url, token, json.dumps([reading(0), reading(3, power_w=0.0)]))
    assert again.json() == {"accepted": 0, "duplicates": 1, "corrected": 1, "quarantined": []}
    assert stored(engine) == 2
    with engine.connect() as connection:
        used = connection.execute(select(ApiToken.last_used_at)).scalar_one()
        sources = set(connection.execute(select(LiveQuarantine.source)).scalars())
    assert used is not None and sources == {"http:site-a"}


def test_ndjson_and_csv_bodies(served: tuple[str, str], engine: Engine) -> None:
    url, token = served
    lines = "\n".join([json.dumps(reading(0)), "{not json", json.dumps(reading(1))])
    answer = post(url, token, lines, "application/x-ndjson")
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2
    assert [q["index"] for q in answer.json()["quarantined"]] == [1]  # the line
    csv = "timestamp,zone_id,power_w\n" + "\n".join(
        f"{r['timestamp']},{r['zone_id']},{r['power_w']}" for r in [reading(5), reading(6)]
    )
    assert post(url, token, csv, "text/csv").json()["accepted"] == 2
    assert stored(engine) == 4


def test_no_or_a_bad_or_a_revoked_token_is_401(served: tuple[str, str], engine: Engine) -> None:
    url, token = served
    body = json.dumps([reading(0)])
    assert post(url, None, body).status_code == 401
    assert post(url, token + "x", body).status_code == 401
    refused = post(url, "slem_" + "a" * 43, body)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    revoke_token(engine, "site-a", actor="test")
    assert post(url, token, body).status_code == 401
    assert stored(engine) == 0


def test_a_body_over_the_limit_is_413_and_an_unknown_type_415(
    served: tuple[str, str], engine: Engine
) -> None:
    url, token = served
    big = json.dumps([reading(i % 50) for i in range(400)])
    assert len(big) > 20_000
    assert post(url, token, big).status_code == 413
    assert post(url, token, "<xml/>", "application/xml").status_code == 415
    assert stored(engine) == 0


def test_a_token_over_its_rate_is_429_with_retry_after(served: tuple[str, str]) -> None:
    url, token = served
    codes = [post(url, token, json.dumps([reading(i)])).status_code for i in range(6)]
    assert codes == [200] * 5 + [429]
    late = post(url, token, json.dumps([reading(9)]))
    assert late.status_code == 429 and 1 <= int(late.headers["retry-after"]) <= 60


def test_the_route_is_described_in_openapi(served: tuple[str, str]) -> None:
    url, _ = served
    schema = httpx.get(f"{url}/api/openapi.json", timeout=10).json()
    route = schema["paths"]["/api/v1/readings"]["post"]
    assert set(route["requestBody"]["content"]) == {"application/json", "application/x-ndjson", "text/csv"}


def test_posted_readings_move_the_live_state_raise_alerts_and_are_re_billed(
    served: tuple[str, str], engine: Engine
) -> None:
    from slem_ml.storage.tables import Alert, BillingSession, LiveZone, RebillQueue  # lazy: this test only

    url, token = served
    saturday = "2026-12-05T{:02d}:{:02d}:00Z"  # no contracted hours: 13 h lit is stuck on and billed
    body = [
        {**reading(0), "timestamp": saturday.format(m // 60, m % 60), "power_w": 80.0}
        for m in range(0, 780, 10)
    ]
    assert post(url, token, json.dumps(body)).json()["accepted"] == len(body)
    with engine.connect() as connection:
        kinds = connection.execute(select(Alert.kind, Alert.status, Alert.run_id)).all()
        state = connection.execute(select(LiveZone.run_start_ms)).scalar_one()
    assert kinds == [("stuck_on", "open", None)] and state is not None

    def billed() -> bool:
        with engine.connect() as connection:
            queued = connection.execute(select(func.count()).select_from(RebillQueue)).scalar_one()
            sessions = connection.execute(select(func.count()).select_from(BillingSession)).scalar_one()
        return queued == 0 and sessions > 0

    deadline = time.monotonic() + 20
    while not billed() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert billed()  # re-billed after the answer, with no ingest worker running
