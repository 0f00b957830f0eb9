"""A :class:`~slem_ml.scoring.result.ScoringResult` turned into database rows, checked before anything is
written.

Every value is converted to what its column holds (``Decimal`` with the column's scale, UTC ``datetime``,
``date``, ``int``, ``float``, ``bool``). A malformed result is refused with a ``ValueError`` naming the table,
row and column — a float where money belongs, a naive timestamp, an invoice whose total is not the sum of its
lines — so that a bad result never reaches the database, and the message says where the bug is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import platform
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy

from slem_ml import __version__
from slem_ml.io import schema as S
from slem_ml.io.schema import LINE_STATUSES
from slem_ml.scoring.result import ScoringResult
from slem_ml.storage.tables import ALERT_STATUSES
from slem_ml.storage.types import to_exact_decimal, to_utc

__all__ = ["InvoiceLines", "InvoicePayload", "RunPayload", "cleaning_rows", "invoice_payloads", "prepare"]

Row = dict[str, Any]
Converter = Callable[[Any], Any]


#: Invoice lines converted at once: an invoice of a million lines is never a million dicts at once.
LINE_CHUNK = 50_000


class InvoiceLines:
    """One invoice's rows for ``invoice_lines`` (``line_no`` from 1), converted from its lines frame
    :data:`LINE_CHUNK` at a time as they are read. :func:`invoice_payloads` has checked every value, so
    reading them cannot fail."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Row]:
        for start in range(0, len(self.frame), LINE_CHUNK):
            yield from self._converted(start, start + LINE_CHUNK)

    def __getitem__(self, index: int) -> Row:
        index = range(len(self.frame))[index]  # IndexError as a sequence's
        return self._converted(index, index + 1)[0]

    def _converted(self, start: int, stop: int) -> list[Row]:
        rows = _rows(self.frame.iloc[start:stop], "invoice_lines", _LINE, _LINE_DEFAULTS)
        return [
            {k: v for k, v in row.items() if k not in _LINE_CONTEXT} | {"line_no": n}
            for n, row in enumerate(rows, start=start + 1)
        ]


@dataclass(frozen=True)
class InvoicePayload:
    """One invoice: ``row`` for ``invoices`` (no revision yet), ``lines`` for ``invoice_lines``."""

    row: Row
    lines: InvoiceLines | tuple[Row, ...]

    @property
    def invoice_id(self) -> str:
        return str(self.row["invoice_id"])

    @property
    def content_hash(self) -> str:
        return str(self.row["content_hash"])


@dataclass(frozen=True)
class RunPayload:
    """Everything :func:`~slem_ml.storage.store.store_result` writes for one run."""

    run: Row
    invoices: tuple[InvoicePayload, ...]
    cleaning: tuple[Row, ...]
    alerts: tuple[Row, ...]
    fingerprint: str


def prepare(result: ScoringResult) -> RunPayload:
    """Check and convert ``result``; raises ``ValueError`` on the first malformed value."""
    timezone = result.site.site.timezone
    currency = result.site.site.currency
    invoices = invoice_payloads(result.invoices, result.invoice_lines, timezone)
    cleaning = tuple(_rows(result.cleaning_sessions, "cleaning_sessions", _CLEANING))
    alerts = tuple(_rows(result.alerts, "alerts", _ALERT))
    report = result.report
    run: Row = {
        "input_sha256": report.input_sha256,
        "source": report.source[:500],
        "timezone": timezone,
        "currency": currency,
        "rows_in": report.rows_in,
        "rows_scored": report.rows_valid,
        "rows_quarantined": report.rows_quarantined,
        "rows_duplicate": report.rows_duplicate,
        "first_timestamp": None if report.first_timestamp is None else to_utc(report.first_timestamp),
        "last_timestamp": None if report.last_timestamp is None else to_utc(report.last_timestamp),
        "timings": {str(k): _json_float(v) for k, v in result.timings.items()},
        "versions": _versions(result.model_versions),
    }
    fingerprint = _fingerprint(run, invoices, cleaning, alerts)
    return RunPayload(run, invoices, cleaning, alerts, fingerprint)


# --- converters ---------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("is empty")
    return text


def _money(value: Any) -> Decimal:
    return to_exact_decimal(value, 14, 2)


def _quantity(value: Any) -> Decimal:
    return to_exact_decimal(value, 18, 6)


def _hours(value: Any) -> Decimal:
    # Billable hours are billable_minutes / 60, a display figure: 1/6 h would never be exact.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")
    return to_exact_decimal(Decimal(value).quantize(Decimal("0.000001"), ROUND_HALF_UP), 18, 6)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _minutes(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a duration in minutes")
    return number


def _score(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite score")
    return number


def _whole(value: Any) -> int:
    if isinstance(value, bool) or float(value) != int(value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _flag(value: Any) -> bool:
    if isinstance(value, str) or value not in (True, False):
        raise ValueError(f"{value!r} is not true/false")
    return bool(value)


def _period(value: Any) -> str:
    text = str(value)
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise ValueError(f"{value!r} is not a period YYYY-MM")
    return text


def _sha256(value: Any) -> str:
    text = str(value)
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"{value!r} is not a sha256 hex digest")
    return text


def _status(value: Any) -> str:
    if value not in ALERT_STATUSES:
        raise ValueError(f"{value!r} is not one of {', '.join(ALERT_STATUSES)}")
    return str(value)


def _line_status(value: Any) -> str:
    if value not in LINE_STATUSES:
        raise ValueError(f"{value!r} is not one of {', '.join(LINE_STATUSES)}")
    return str(value)


# frame column -> (row key, converter, required)
_Spec = Mapping[str, tuple[str, Converter, bool]]

_INVOICE: _Spec = {
    "invoice_id": ("invoice_id", _text, True),
    "client_id": ("client_id", _text, True),
    "period": ("period", _period, True),
    "lines": ("lines", _whole, True),
    "billable_hours": ("billable_hours", _hours, True),
    "energy_kwh": ("energy_kwh", _quantity, True),
    "total": ("total", _money, True),
    "currency": ("currency", _text, True),
    "content_hash": ("content_hash", _sha256, True),
    "held_total": ("held_total", _money, False),
}
_LINE: _Spec = {
    "invoice_id": ("invoice_id", _text, True),
    "client_id": ("client_id", _text, True),
    "currency": ("currency", _text, True),
    "zone_id": ("zone_id", _text, True),
    "date": ("date", _date, True),
    "start": ("start_at", to_utc, True),
    "end": ("end_at", to_utc, True),
    "minutes": ("minutes", _minutes, True),
    "billable_minutes": ("billable_minutes", _whole, True),
    "energy_kwh": ("energy_kwh", _quantity, True),
    "hours_charge": ("hours_charge", _money, True),
    "energy_charge": ("energy_charge", _money, True),
    "amount": ("amount", _money, True),
    "adjusted": ("adjusted", _flag, False),
    "original_energy_kwh": ("original_energy_kwh", _quantity, False),
    "status": ("status", _line_status, False),
}
_LINE_CONTEXT = ("invoice_id", "client_id", "currency")  # checked against the invoice, not stored per line
_CLEANING: _Spec = {
    "zone_id": ("zone_id", _text, True),
    "building": ("building", _text, True),
    "floor": ("floor", _text, True),
    "date": ("date", _date, True),
    "start": ("start_at", to_utc, True),
    "end": ("end_at", to_utc, True),
    "minutes": ("minutes", _minutes, True),
    "flagged": ("flagged", _flag, True),
    "excess_minutes": ("excess_minutes", _minutes, True),
    "wasted_kwh": ("wasted_kwh", _quantity, True),
    "savings": ("savings", _money, True),
    "inferred": ("inferred", _flag, False),
}
_ALERT: _Spec = {
    "alert_id": ("alert_id", _text, True),
    "zone_id": ("zone_id", _text, True),
    "kind": ("kind", _text, True),
    "severity": ("severity", _text, True),
    "detected_at": ("detected_at", to_utc, True),
    "first_seen": ("first_seen", to_utc, True),
    "last_seen": ("last_seen", to_utc, True),
    "score": ("score", _score, False),
    "detail": ("detail", str, False),
    "status": ("status", _status, False),  # absent until the models layer tracks it
}
_DEFAULTS: Row = {"adjusted": False, "inferred": False, "detail": ""}
_LINE_DEFAULTS: Row = {**_DEFAULTS, "status": "billed"}  # results from before held lines (SPEC §8.4)
_INVOICE_DEFAULTS: Row = {**_DEFAULTS, "held_total": Decimal("0.00")}


def _rows(
    frame: pd.DataFrame, table: str, spec: _Spec, defaults: Row = _DEFAULTS, first: int = 1
) -> list[Row]:
    """Checked, converted rows; column by column, so that missing values and instants are found vectorised.
    ``first``: the number of the frame's first row, in messages."""
    if frame.empty:
        return []
    missing = [col for col, (_, _, required) in spec.items() if required and col not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {', '.join(missing)}")
    columns: dict[str, list[Any]] = {}
    for column, (key, convert, required) in spec.items():
        if column not in frame.columns:
            columns[key] = [defaults.get(key)] * len(frame)
            continue
        series = frame[column]
        absent = series.isna().to_numpy()
        if required and absent.any():
            raise ValueError(f"{table} row {int(np.argmax(absent)) + first}: {column} is missing")
        if convert is to_utc and isinstance(series.dtype, pd.DatetimeTZDtype):
            columns[key] = list(series.dt.tz_convert("UTC").dt.to_pydatetime())
            continue
        values: list[Any] = []
        for number, (value, gone) in enumerate(zip(series.tolist(), absent, strict=True), start=first):
            if gone:
                values.append(defaults.get(key))
                continue
            try:
                values.append(convert(value))
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise ValueError(f"{table} row {number}: {column}: {exc}") from None
        columns[key] = values
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def cleaning_rows(frame: pd.DataFrame) -> list[Row]:
    """Checked, converted rows of a cleaning sessions frame (``ValueError`` when malformed), with
    ``client_id`` when the frame has it."""
    rows = _rows(frame, "cleaning_sessions", _CLEANING)
    if S.CLIENT_ID in frame.columns and rows:
        for row, client in zip(rows, frame[S.CLIENT_ID].astype(str).tolist(), strict=True):
            row[S.CLIENT_ID] = client
    return rows


def invoice_payloads(
    invoices: pd.DataFrame, lines: pd.DataFrame, timezone: str
) -> tuple[InvoicePayload, ...]:
    """Checked, converted rows of ``invoices`` and their ``lines`` (``ValueError`` when malformed).

    The lines are checked :data:`LINE_CHUNK` at a time and kept as frames (:class:`InvoiceLines`), not as
    rows: memory stays bounded whatever the number of lines."""
    heads = _rows(invoices, "invoices", _INVOICE, _INVOICE_DEFAULTS)
    sums: dict[str, _LineSums] = {}
    for start in range(0, len(lines), LINE_CHUNK):
        part = lines.iloc[start : start + LINE_CHUNK]
        for line in _rows(part, "invoice_lines", _LINE, _LINE_DEFAULTS, first=start + 1):
            sums.setdefault(line["invoice_id"], _LineSums()).add(line)
    positions = lines.groupby(lines["invoice_id"].astype(str), sort=False).indices if len(lines) else {}
    seen: set[str] = set()
    out: list[InvoicePayload] = []
    for head in heads:
        invoice_id = head["invoice_id"]
        if invoice_id in seen:
            raise ValueError(f"invoices: {invoice_id} appears twice")
        seen.add(invoice_id)
        sums.get(invoice_id, _LineSums()).check(head)
        at = positions.get(invoice_id, np.zeros(0, dtype=np.int64))
        own = lines if len(at) == len(lines) else lines.take(at)
        out.append(InvoicePayload(head | {"timezone": timezone}, InvoiceLines(own)))
    orphans = sorted(set(sums) - seen)
    if orphans:
        raise ValueError(f"invoice_lines: lines for {', '.join(orphans)} without an invoice")
    return tuple(out)


class _LineSums:
    """What an invoice's header must agree with, summed over its lines (SPEC §3.7, §8.4)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = Decimal("0.00")  # the billed and released lines
        self.held = Decimal("0.00")
        self.context: set[tuple[str, Any]] = set()  # (client_id | currency, value)

    def add(self, line: Row) -> None:
        self.count += 1
        if line["status"] in ("billed", "released"):
            self.total += line["amount"]
        elif line["status"] == "held":
            self.held += line["amount"]
        self.context.add(("client_id", line["client_id"]))
        self.context.add(("currency", line["currency"]))

    def check(self, head: Row) -> None:
        invoice_id = head["invoice_id"]
        if head["lines"] != self.count:
            raise ValueError(
                f"invoices: {invoice_id} says {head['lines']} lines, invoice_lines has {self.count}"
            )
        if self.total != head["total"]:
            raise ValueError(
                f"invoices: {invoice_id} total {head['total']} is not the sum of its billed lines "
                f"{self.total}"
            )
        if self.held != head["held_total"]:
            raise ValueError(f"invoices: {invoice_id} held_total {head['held_total']} is not {self.held}")
        for key, value in sorted(self.context, key=str):
            if value != head[key]:
                raise ValueError(
                    f"invoice_lines: a line of {invoice_id} has {key} {value}, the invoice {head[key]}"
                )


def _json_float(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None  # JSON (and PostgreSQL) have no NaN


def _versions(model_versions: Mapping[str, str]) -> Row:
    return {
        "slem": __version__,
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "models": {str(k): str(v) for k, v in model_versions.items()},
    }


def _canonical(row: Row) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _fingerprint(
    run: Row, invoices: tuple[InvoicePayload, ...], cleaning: tuple[Row, ...], alerts: tuple[Row, ...]
) -> str:
    """What makes two runs "the identical run": same input, same counts, same outputs (in any row order).

    Timings, versions, the source's name and the actor are left out: the same file scored again by the same
    code, under another name or at another speed, is the same run.
    """
    keys = ("input_sha256", "rows_in", "rows_scored", "rows_quarantined", "rows_duplicate")
    content = {
        "run": [run[key] for key in keys],
        "invoices": sorted([inv.invoice_id, inv.content_hash] for inv in invoices),
        "cleaning": sorted(_canonical(row) for row in cleaning),
        "alerts": sorted(_canonical(row) for row in alerts),
    }
    return hashlib.sha256(_canonical(content).encode()).hexdigest()
