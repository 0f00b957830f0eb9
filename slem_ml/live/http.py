"""HTTP ingest (SPEC §9): ``POST /api/v1/readings`` with a bearer token, as a FastAPI router.

The body is a JSON array or object of readings (``application/json``), one reading per line
(``application/x-ndjson``), or CSV with the SPEC §1 headers (``text/csv``). Every reading is stored,
counted as a duplicate or correction, or quarantined with its index in the body and the reason
(:func:`~slem_ml.live.batch.store_messages`, one transaction per request). The answer::

    {"accepted": n, "duplicates": n, "corrected": n, "quarantined": [{"index": i, "reason": "…"}]}

401 without a valid token (``slem tokens``), 413 over ``max_body_bytes``, 429 over the token's rate
(``limits``' moving window, ``Retry-After`` in seconds). ``slem serve`` includes it before the Gradio app
is mounted at ``/`` (:mod:`slem_ml.app.server`), with the site of its ``--contracts``.

The live detectors (:class:`~slem_ml.live.watch.LiveWatch`) run in each request's transaction, as in the MQTT
worker's batches; their alerts are stored and shown in the app (publishing them needs the broker of
``slem ingest``). The dates the readings touch are re-billed after the answer is sent, one pass at a time
(:class:`Rebiller`): requests that arrive during a pass are covered by the next one.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
import time
from typing import Any

import pandas as pd
from fastapi import APIRouter, BackgroundTasks, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine

from slem_ml.config.site import SiteConfig
from slem_ml.live.batch import rebill_queued, store_messages
from slem_ml.live.payloads import TOPIC_ROOT, Message
from slem_ml.live.watch import LiveWatch, run_detectors
from slem_ml.storage.database import write_session
from slem_ml.storage.tokens import note_use, token_named

__all__ = ["MAX_BODY_BYTES", "Rebiller", "readings_router"]

_log = logging.getLogger(__name__)

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


class Rebiller:
    """Re-bills the queued dates (:func:`~slem_ml.live.batch.rebill_queued`), one pass at a time: a call
    while a pass runs marks the queue dirty and returns, and the running pass goes round again."""

    def __init__(self, engine: Engine, site: SiteConfig) -> None:
        self.engine, self.site = engine, site
        self._running, self._dirty = threading.Lock(), threading.Event()

    def __call__(self) -> None:
        self._dirty.set()
        while self._dirty.is_set() and self._running.acquire(blocking=False):
            try:
                while self._dirty.is_set():
                    self._dirty.clear()
                    with write_session(self.engine) as session:
                        rebill_queued(session.connection(), self.site)
            except Exception as exc:  # the dates stay queued for the next pass (or an ingest worker)
                _log.warning("re-billing after HTTP ingest failed (%s); the dates stay queued", exc)
                return
            finally:
                self._running.release()


def readings_router(
    engine: Engine,
    site: SiteConfig,
    *,
    watch: LiveWatch | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    rate: str = "600/minute",
) -> APIRouter:
    """The ``/api/v1/readings`` route storing into ``engine`` for ``site`` (module docstring); ``watch``: the
    live detectors (default: the rules alone, no champion)."""
    router = APIRouter(prefix="/api/v1", tags=["ingest"])
    watch = watch if watch is not None else LiveWatch(site, None, actor="http")
    rebill = Rebiller(engine, site)
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
    async def readings(
        request: Request, background: BackgroundTasks, name: str = Depends(token)
    ) -> dict[str, Any]:
        """Store readings; answer what became of each (SPEC §9)."""
        body = await request.body()
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        received = dt.datetime.now(dt.UTC)
        answer = await run_in_threadpool(_store, engine, watch, body, kind, received, name)
        if answer["accepted"] or answer["corrected"]:
            background.add_task(rebill)  # after the answer is sent
        return answer

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
    engine: Engine, watch: LiveWatch, body: bytes, kind: str, received: dt.datetime, name: str
) -> dict[str, Any]:
    """Parse and store a request's body (on a worker thread, off the event loop); the §9 answer."""
    messages = _messages(body, kind, received)
    if not messages:
        raise HTTPException(400, "the body holds no readings")
    with write_session(engine) as session:
        connection = session.connection()
        done = store_messages(
            connection, watch.site, messages, sources=[f"http:{name}"] * len(messages),
            source=f"http:{name}", actor=f"token:{name}",
        )  # fmt: skip
        run_detectors(watch, connection, done.frames, _log.warning)
        note_use(connection, name)
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
