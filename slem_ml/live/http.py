"""HTTP ingest (SPEC §9): ``POST /api/v1/readings`` with a bearer token, as a FastAPI router.

The body is a JSON array or object of readings (``application/json``), one reading per line
(``application/x-ndjson``), or CSV with the SPEC §1 headers (``text/csv``). Every reading is stored,
counted as a duplicate or correction, or quarantined with its index in the body and the reason
(:func:`~slem_ml.live.batch.store_messages`, one transaction per request). The answer::

    {"accepted": n, "duplicates": n, "corrected": n, "quarantined": [{"index": i, "reason": "…"}]}

401 without a valid token (``slem tokens``), 413 over ``max_body_bytes``, 429 over the token's rate
(``limits``' moving window, ``Retry-After`` in seconds). ``slem serve`` does not mount it yet (issue 13):
it is to be included before the Gradio app is mounted at ``/``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from typing import Any

import pandas as pd
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine

from slem_ml.config.site import SiteConfig
from slem_ml.live.batch import store_messages
from slem_ml.live.payloads import TOPIC_ROOT, Message
from slem_ml.storage.database import write_session
from slem_ml.storage.tokens import note_use, token_named

__all__ = ["MAX_BODY_BYTES", "readings_router"]

MAX_BODY_BYTES = 10 * 1024 * 1024  # a request's body at most [bytes]
_CSV = "timestamp,zone_id,power_w[,client_id,cleaning_staff]"
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "a reading a line"}},
            "text/csv": {"schema": {"type": "string", "description": _CSV}},
        },
    }
}


def readings_router(
    engine: Engine, site: SiteConfig, *, max_body_bytes: int = MAX_BODY_BYTES, rate: str = "600/minute"
) -> APIRouter:
    """The ``/api/v1/readings`` route storing into ``engine`` for ``site`` (module docstring)."""
    router = APIRouter(prefix="/api/v1", tags=["ingest"])
    limiter, limit = MovingWindowRateLimiter(MemoryStorage()), parse(rate)

    def token(authorization: str | None = Header(default=None)) -> str:
        scheme, _, secret = (authorization or "").partition(" ")
        name = token_named(engine, secret.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            raise HTTPException(
                401, "a valid bearer token is needed (slem tokens add NAME)", {"WWW-Authenticate": "Bearer"}
            )
        if not limiter.hit(limit, "token", name):
            reset = limiter.get_window_stats(limit, "token", name).reset_time
            wait = str(max(1, int(reset - time.time())))
            raise HTTPException(429, f"token {name!r} is over its rate of {rate}", {"Retry-After": wait})
        return name

    @router.post("/readings", max_body_size=max_body_bytes, openapi_extra=_BODY_DOC)
    async def readings(request: Request, name: str = Depends(token)) -> dict[str, Any]:
        """Store readings; answer what became of each (SPEC §9)."""
        body = await request.body()
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        received = dt.datetime.now(dt.UTC)
        return await run_in_threadpool(_store, engine, site, body, kind, received, name)

    return router


def _messages(body: bytes, kind: str, received: dt.datetime) -> list[Message]:
    """The body as messages for :func:`~slem_ml.live.batch.store_messages`: one for a JSON document, one a
    line for NDJSON; CSV becomes one JSON array."""
    if kind in ("application/x-ndjson", "application/ndjson"):
        return [Message(TOPIC_ROOT, line, received) for line in body.splitlines() if line.strip()]
    if kind in ("text/csv", "application/csv"):
        return [Message(TOPIC_ROOT, _csv_as_json(body), received)]
    if kind not in ("application/json", ""):
        raise HTTPException(415, f"send application/json, application/x-ndjson or text/csv, not {kind}")
    return [Message(TOPIC_ROOT, body, received)]


def _csv_as_json(body: bytes) -> bytes:

    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the CSV cannot be read: {exc}") from None
    return json.dumps(frame.to_dict("records")).encode()  # every value a text: checked as a file's is


def _store(
    engine: Engine, site: SiteConfig, body: bytes, kind: str, received: dt.datetime, name: str
) -> dict[str, Any]:
    """Parse and store a request's body (on a worker thread, off the event loop); the §9 answer."""
    messages = _messages(body, kind, received)
    if not messages:
        raise HTTPException(400, "the body holds no readings")
    with write_session(engine) as session:
        done = store_messages(
            session.connection(), site, messages, sources=[f"http:{name}"] * len(messages),
            source=f"http:{name}", actor=f"token:{name}",
        )  # fmt: skip
        note_use(session.connection(), name)
    one_document = kind not in ("application/x-ndjson", "application/ndjson")
    quarantined = [
        {"index": item if one_document else message, "reason": reason}
        for message, item, reason in done.quarantined
    ]
    return {
        "accepted": done.accepted,
        "duplicates": done.duplicates,
        "corrected": done.corrected,
        "quarantined": sorted(quarantined, key=lambda q: (q["index"] is None, q["index"] or 0)),
    }
