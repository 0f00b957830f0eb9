"""Live messages into the readings store (SPEC §9): one transaction per batch of messages.

:func:`store_messages` parses every message (:mod:`~slem_ml.live.payloads`), gives readings without a
client the leasing client (:class:`~slem_ml.config.leases.Leases`), validates them as a file is validated
(:func:`~slem_ml.io.reader.validate_parsed`), quarantines what fails with its reason, ingests the rest
(:func:`~slem_ml.storage.ingest.ingest`: duplicates counted, corrections audited) and queues the (zone,
local date)s they touch for re-billing (:func:`queue_rebill`). The caller commits, then acknowledges the
messages: a message is acknowledged only once its readings are stored or quarantined.

Re-billing is a separate, later transaction (:func:`rebill_queued`): recomputing a day's sessions costs the
same whether one reading or a thousand changed, so a worker does it for the whole queue when the stream
lets it, not once per batch. The queue is committed with the readings, so a crash in between loses nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers
from slem_ml.io.reader import validate_parsed
from slem_ml.live.payloads import COLUMNS, Message, head_of, parse_message
from slem_ml.storage.ingest import IngestReport, ingest
from slem_ml.storage.rebill import Rebilled, rebill_days, touched_days
from slem_ml.storage.service_days import record_client_days
from slem_ml.storage.tables import LiveQuarantine, RebillQueue

__all__ = ["Stored", "quarantine_message", "queue_rebill", "rebill_queued", "store_messages"]

#: A live reading may be stamped this far [ms] ahead of its arrival (clocks drift); later is quarantined.
FUTURE_MS = 5 * 60_000
#: A live reading older than this [ms] is quarantined: a year back is a file to upload (``slem score``).
OLDEST_MS = 366 * 86_400_000
_NO_LEASE = "no client_id and no lease for this zone on that date (leases: in contracts.yaml)"


@dataclass
class Stored:
    """What :func:`store_messages` did with a batch; ``quarantined`` holds ``(message, item, reason)``."""

    accepted: int = 0  # readings added
    duplicates: int = 0  # already stored with the same values, or repeated within the batch
    corrected: int = 0  # stored with other values before: the new ones stand, the old are audited
    quarantined: list[tuple[int, int | None, str]] = field(default_factory=list)
    #: the valid readings, as validated frames (the live detectors' input)
    frames: list[pd.DataFrame] = field(default_factory=list)
    #: alerts the live detectors raised or resolved with this batch (set by the caller that runs them)
    alerts: list[dict] = field(default_factory=list)


def store_messages(
    connection: Connection,
    site: SiteConfig,
    messages: Sequence[Message],
    *,
    sources: Sequence[str],
    source: str,
    actor: str,
) -> Stored:
    """Store ``messages`` in the caller's transaction (module docstring). ``sources[i]`` names where
    message ``i`` came from for the quarantine (``mqtt:<topic>``, ``http:<token>``); ``source`` names the
    feed in the corrections audit."""
    out = Stored()
    rows: list[dict[str, Any]] = []
    origin: list[tuple[int, int | None]] = []
    problems: list[tuple[int, int | None, str]] = []
    heads: list[str] = []
    for m, message in enumerate(messages):
        parsed = parse_message(message)
        heads.append(parsed.head)
        problems += [(m, item, reason) for item, reason in parsed.problems]
        rows += parsed.rows
        origin += [(m, item) for item in parsed.items]
    if rows:
        arrival = np.array([_ms(m.received) for m in messages], np.int64)
        received = arrival[np.array([m for m, _ in origin], np.int64)]
        parts, bad = _validated(rows, received, site)
        problems += [(origin[i][0], origin[i][1], reason) for i, reason in bad]
        report = IngestReport.nothing()
        for frame, cleaning in parts:
            report = report + ingest(connection, frame, cleaning=cleaning, source=source, actor=actor)
            record_client_days(connection, frame, site.site.timezone)
            out.frames.append(frame)
        queue_rebill(connection, site, report)
        # the reader drops exact repeats within a part before ingest sees them: duplicates too
        out.duplicates = len(rows) - len(bad) - report.added - report.corrected
        out.accepted, out.corrected = report.added, report.corrected
    _quarantine(connection, messages, sources, heads, problems)
    out.quarantined = problems
    return out


def queue_rebill(connection: Connection, site: SiteConfig, report: IngestReport) -> int:
    """Queue the (zone, local date)s that ``report``'s changed readings touch; how many pairs."""
    if not len(report.changed_t_ms):
        return 0
    order = np.lexsort((report.changed_t_ms, report.changed_zone_key))
    pairs = touched_days(site, report.changed_zone_key[order], report.changed_t_ms[order])
    now = dt.datetime.now(dt.UTC)
    rows = [{"zone_key": int(z), "day": int(d), "queued_at": now} for z, d in pairs.tolist()]
    table = cast(Table, RebillQueue.__table__)
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
    return len(rows)


def rebill_queued(connection: Connection, site: SiteConfig, *, limit: int = 20_000) -> Rebilled:
    """Re-bill up to ``limit`` queued (zone, date)s and take them off the queue, in the caller's
    transaction."""
    table = cast(Table, RebillQueue.__table__)
    query = select(table.c.zone_key, table.c.day).order_by(table.c.zone_key, table.c.day).limit(limit)
    pairs = np.array(connection.execute(query).all(), dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        return Rebilled(frozenset(), 0, 0)
    done = rebill_days(connection, site, pairs)
    keys = [tuple(p) for p in pairs.tolist()]
    for at in range(0, len(keys), 400):
        connection.execute(
            delete(table).where(tuple_(table.c.zone_key, table.c.day).in_(keys[at : at + 400]))
        )
    return done


def quarantine_message(connection: Connection, message: Message, source: str, reason: str) -> None:
    """Quarantine a whole message that could not be stored for a reason of its own (``reason``)."""
    _quarantine(connection, [message], [source], [head_of(message)], [(0, None, reason)])


def _ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def _validated(
    rows: list[dict[str, Any]], received: np.ndarray, site: SiteConfig
) -> tuple[list[tuple[pd.DataFrame, str]], list[tuple[int, str]]]:
    """The valid readings of ``rows`` as validated frames (``line`` = row index): those that gave a
    cleaning flag and those that did not, each with how ingest should take its flags (a flag not given
    keeps a stored one); and the rest as ``(row index, reason)``."""
    raw = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for column in ("timestamp", "zone_id", "power_w"):
        raw[column] = raw[column].astype(str)
    client = raw["client_id"].astype(object).fillna("").astype(str)
    missing = (client == "").to_numpy()
    if missing.any() and site.leases:
        days = _local_days(raw["timestamp"][missing], site)
        client[missing] = site.leases.clients_of(raw["zone_id"].to_numpy()[missing], days)
    raw["client_id"] = client
    lines = np.arange(len(raw), dtype=np.int64)
    # the file rule (a day ahead of now: quarantined) judged by the batch's latest arrival, as below
    arrival = dt.datetime.fromtimestamp(int(received.max()) / 1000, dt.UTC)
    flagged = raw["cleaning_staff"].notna().to_numpy()
    raw["cleaning_staff"] = raw["cleaning_staff"].astype(str).str.lower()
    parts: list[tuple[pd.DataFrame, str]] = []
    bad: list[tuple[int, str]] = []
    for given, how in ((flagged, "given"), (~flagged, "none")):
        if not given.any():
            continue
        part = raw[given] if how == "given" else raw[given].drop(columns="cleaning_staff")
        headers = {c: c for c in part.columns}
        checked = validate_parsed(
            part.reset_index(drop=True), headers, lines[given], site, "live", "", "live", (), None,
            whole_file=False, now=arrival,
        )  # fmt: skip
        quarantine = checked.quarantine
        bad += [
            (int(i), _reason(str(r))) for i, r in zip(quarantine[S.LINE], quarantine["reason"], strict=True)
        ]
        frame = checked.frame
        t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
        arrived = received[frame[S.LINE].to_numpy()]
        future, old = t > arrived + FUTURE_MS, t < arrived - OLDEST_MS
        bad += [(int(i), "timestamp is in the future") for i in frame[S.LINE][future]]
        bad += [(int(i), "older than a year: upload it as a file (slem score)") for i in frame[S.LINE][old]]
        if future.any() or old.any():
            frame = frame[~(future | old)].reset_index(drop=True)
        if len(frame):
            parts.append((frame, how))
    return parts, bad


def _reason(text: str) -> str:
    return _NO_LEASE if text == "missing client_id" else text


def _local_days(stamps: pd.Series, site: SiteConfig) -> np.ndarray:
    """The local day number of each timestamp text: an offset converts, a naive one is local already."""
    parsed = pd.to_datetime(stamps, format="ISO8601", utc=True, errors="coerce")
    naive = ~stamps.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    utc_ms = parsed.to_numpy(dtype="datetime64[ms]").view(np.int64)
    days = local_day_numbers(utc_ms, site.site.timezone)
    wall = pd.to_datetime(stamps.str[:10], format="%Y-%m-%d", errors="coerce")
    wall_days = wall.to_numpy(dtype="datetime64[D]").view(np.int64)
    return np.where(naive.to_numpy(), wall_days, days)


def _quarantine(
    connection: Connection,
    messages: Sequence[Message],
    sources: Sequence[str],
    heads: list[str],
    problems: list[tuple[int, int | None, str]],
) -> None:
    if not problems:
        return
    rows = [
        {
            "received_at": messages[m].received,
            "source": sources[m][:300],
            "item": item,
            "reason": reason[:500],
            "head": heads[m],
        }
        for m, item, reason in problems
    ]
    connection.execute(insert(cast(Table, LiveQuarantine.__table__)), rows)
