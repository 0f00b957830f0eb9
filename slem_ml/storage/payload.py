"""A :class:`~slem_ml.scoring.result.ScoringResult` turned into database rows, checked before anything is
written.

Every value is converted to what its column holds (``Decimal`` with the column's scale, UTC ``datetime``,
``date``, ``int``, ``float``, ``bool``). A malformed result is refused with a ``ValueError`` naming the table,
row and column — a float where money belongs, a naive timestamp, an invoice whose total is not the sum of its
lines — so that a bad result never reaches the database, and the message says where the bug is.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, overload

import numpy as np
import pandas as pd
import sqlalchemy

from slem_ml import __version__
from slem_ml.io import schema as S
from slem_ml.scoring.result import ScoringResult
from slem_ml.storage import columns as C
from slem_ml.storage.columns import Spec, cents, checked_columns
from slem_ml.storage.types import to_utc

__all__ = [
    "ColumnRows",
    "InvoiceLines",
    "InvoicePayload",
    "RunPayload",
    "cleaning_stored",
    "invoice_payloads",
    "prepare",
]

Row = dict[str, Any]


#: Invoice lines converted at once: an invoice of a million lines is never a million dicts at once.
LINE_CHUNK = 50_000
#: Up to this many lines in all, the stored columns made while checking are kept for the insert (about
#: 1 kB a line); more are converted again, :data:`LINE_CHUNK` at a time, as they are inserted.
KEPT_LINES = 100_000


class InvoiceLines:
    """One invoice's rows for ``invoice_lines`` (``line_no`` from 1), converted from its lines frame
    :data:`LINE_CHUNK` at a time as they are read. :func:`invoice_payloads` has checked every value, so
    reading them cannot fail."""

    def __init__(self, frame: pd.DataFrame, kept: dict[str, list[Any]] | None = None) -> None:
        self.frame = frame
        self.kept = kept  # the stored columns, when invoice_payloads kept them

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Row]:
        for start in range(0, len(self.frame), LINE_CHUNK):
            yield from self._converted(start, start + LINE_CHUNK)

    def __getitem__(self, index: int) -> Row:
        index = range(len(self.frame))[index]  # IndexError as a sequence's
        return self._converted(index, index + 1)[0]

    def stored(self) -> Iterator[dict[str, list[Any]]]:
        """The lines as stored columns (:func:`~slem_ml.storage.columns.checked_columns`, ``line_no`` from 1),
        :data:`LINE_CHUNK` at a time, for :func:`~slem_ml.storage.bulk.insert_columns`."""
        for start in range(0, len(self.frame), LINE_CHUNK):
            stop = min(start + LINE_CHUNK, len(self.frame))
            if self.kept is not None:
                out = {key: column[start:stop] for key, column in self.kept.items()}
            else:
                part = self.frame.iloc[start:stop]
                columns = checked_columns(part, "invoice_lines", _LINE, _LINE_DEFAULTS, start + 1, rows=False)
                out = {key: stored for key, (_, stored) in columns.items() if key not in _LINE_CONTEXT}
            yield out | {"line_no": list(range(start + 1, stop + 1))}

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
    cleaning: Sequence[Row]  # rows made as they are read (:class:`ColumnRows`)
    alerts: tuple[Row, ...]
    fingerprint: str
    #: ``cleaning`` as stored columns (:func:`~slem_ml.storage.columns.checked_columns`), for a bulk insert
    cleaning_stored: Mapping[str, list[Any]] | None = None


def prepare(result: ScoringResult) -> RunPayload:
    """Check and convert ``result``; raises ``ValueError`` on the first malformed value."""
    timezone = result.site.site.timezone
    currency = result.site.site.currency
    invoices = invoice_payloads(result.invoices, result.invoice_lines, timezone)
    cleaning_columns = _columns(result.cleaning_sessions, "cleaning_sessions", _CLEANING)
    cleaning = ColumnRows(cleaning_columns)
    alert_columns = _columns(result.alerts, "alerts", _ALERT)
    alerts = tuple(_as_rows(alert_columns))
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
    fingerprint = _fingerprint(
        run, invoices, _canonical_rows(cleaning_columns), _canonical_rows(alert_columns)
    )
    stored = {key: column for key, (_, column) in cleaning_columns.items()}
    return RunPayload(run, invoices, cleaning, alerts, fingerprint, stored)


_Spec = Spec
_text, _money, _quantity, _hours, _date = C.text, C.money, C.quantity, C.hours, C.date
_minutes, _score, _whole, _flag, _period = C.minutes, C.score, C.whole, C.flag, C.period
_sha256, _status, _line_status = C.sha256, C.alert_status, C.line_status

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
    """Checked, converted rows (:func:`~slem_ml.storage.columns.checked_columns`). ``first``: the number of
    the frame's first row, in messages."""
    return _as_rows(_columns(frame, table, spec, defaults, first))


def _columns(
    frame: pd.DataFrame, table: str, spec: _Spec, defaults: Row = _DEFAULTS, first: int = 1
) -> dict[str, C.Column]:
    """:func:`~slem_ml.storage.columns.checked_columns`, none for an empty frame."""
    return {} if frame.empty else checked_columns(frame, table, spec, defaults, first)


class ColumnRows(Sequence[Row]):
    """Checked columns (:func:`~slem_ml.storage.columns.checked_columns`) read as rows, each made when it is
    read: storing a run needs only their count and stored form."""

    def __init__(self, columns: Mapping[str, C.Column]) -> None:
        self.columns = columns
        self.length = len(next(iter(columns.values()))[0]) if columns else 0

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            return [self[i] for i in range(self.length)[index]]
        index = range(self.length)[index]  # IndexError as a sequence's
        return {key: values[index] for key, (values, _) in self.columns.items()}

    def __iter__(self) -> Iterator[Row]:
        return iter(_as_rows(self.columns))


def _as_rows(columns: Mapping[str, C.Column]) -> list[Row]:
    keys = list(columns)
    values = (v for v, _ in columns.values())
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]


def cleaning_stored(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A cleaning sessions frame checked (``ValueError`` when malformed) into stored columns for
    :func:`~slem_ml.storage.bulk.insert_columns`, with ``client_id`` when the frame has it."""
    out = {key: column for key, (_, column) in _columns(frame, "cleaning_sessions", _CLEANING).items()}
    if S.CLIENT_ID in frame.columns and out:
        out[S.CLIENT_ID] = frame[S.CLIENT_ID].astype(str).tolist()
    return out


def invoice_payloads(
    invoices: pd.DataFrame, lines: pd.DataFrame, timezone: str
) -> tuple[InvoicePayload, ...]:
    """Checked, converted rows of ``invoices`` and their ``lines`` (``ValueError`` when malformed).

    The lines are checked :data:`LINE_CHUNK` at a time, vectorised, and kept as frames
    (:class:`InvoiceLines`), not as rows: memory stays bounded whatever the number of lines."""
    heads = _rows(invoices, "invoices", _INVOICE, _INVOICE_DEFAULTS)
    sums: dict[str, _LineSums] = {}
    kept: dict[str, list[Any]] | None = {} if len(lines) <= KEPT_LINES else None
    for start in range(0, len(lines), LINE_CHUNK):
        part = lines.iloc[start : start + LINE_CHUNK]
        checked = checked_columns(part, "invoice_lines", _LINE, _LINE_DEFAULTS, first=start + 1, rows=False)
        _LineSums.add(sums, checked)
        for key, (_, stored) in checked.items():
            if kept is not None and key not in _LINE_CONTEXT:
                kept.setdefault(key, []).extend(stored)
    positions = lines.groupby(lines["invoice_id"].astype(str), sort=False).indices if len(lines) else {}
    seen: set[str] = set()
    out: list[InvoicePayload] = []
    arrays: dict[str, np.ndarray] | None = None
    for head in heads:
        invoice_id = head["invoice_id"]
        if invoice_id in seen:
            raise ValueError(f"invoices: {invoice_id} appears twice")
        seen.add(invoice_id)
        sums.get(invoice_id, _LineSums()).check(head)
        at = positions.get(invoice_id, np.zeros(0, dtype=np.int64))
        whole = len(at) == len(lines)
        own = lines if whole else lines.take(at)
        arrays = arrays if arrays is not None or whole else _arrays(kept)
        mine = kept if whole or not kept else {k: v[at].tolist() for k, v in (arrays or {}).items()}
        out.append(InvoicePayload(head | {"timezone": timezone}, InvoiceLines(own, mine)))
    orphans = sorted(set(sums) - seen)
    if orphans:
        raise ValueError(f"invoice_lines: lines for {', '.join(orphans)} without an invoice")
    return tuple(out)


def _arrays(kept: dict[str, list[Any]] | None) -> dict[str, np.ndarray]:
    """Kept stored columns as object arrays, to take each invoice's lines from."""
    arrays = {}
    for key, values in (kept or {}).items():
        arrays[key] = np.empty(len(values), dtype=object)
        arrays[key][:] = values
    return arrays


class _LineSums:
    """What an invoice's header must agree with, summed over its lines (SPEC §3.7, §8.4)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0  # [cent] the billed and released lines
        self.held = 0  # [cent]
        self.context: set[tuple[str, Any]] = set()  # (client_id | currency, value)

    @staticmethod
    def add(sums: dict[str, _LineSums], columns: dict[str, C.Column]) -> None:
        """Add checked lines (:func:`~slem_ml.storage.columns.checked_columns`) to their invoices' sums."""
        if not columns or not len(columns["invoice_id"][0]):
            return
        status = pd.Series(columns["status"][0], dtype=object)
        amount = cents(columns["amount"][1])  # < 10**14 each: a chunk's sum fits in int64
        frame = pd.DataFrame(
            {
                "invoice_id": columns["invoice_id"][0],
                "total": np.where(status.isin(("billed", "released")).to_numpy(), amount, 0),
                "held": np.where((status == "held").to_numpy(), amount, 0),
                "client_id": columns["client_id"][0],
                "currency": columns["currency"][0],
            }
        )
        grouped = frame.groupby("invoice_id", sort=False)
        agg = grouped[["total", "held"]].sum().join(grouped.size().rename("count"))
        for invoice_id, total, held, count in agg.itertuples():
            line = sums.setdefault(invoice_id, _LineSums())
            line.count += int(count)
            line.total += int(total)
            line.held += int(held)
        for key in ("client_id", "currency"):
            pairs = frame[["invoice_id", key]].drop_duplicates()
            for invoice_id, value in pairs.itertuples(index=False):
                sums[invoice_id].context.add((key, value))

    def check(self, head: Row) -> None:
        invoice_id = head["invoice_id"]
        total, held = Decimal(self.total).scaleb(-2), Decimal(self.held).scaleb(-2)
        if head["lines"] != self.count:
            raise ValueError(
                f"invoices: {invoice_id} says {head['lines']} lines, invoice_lines has {self.count}"
            )
        if total != head["total"]:
            raise ValueError(
                f"invoices: {invoice_id} total {head['total']} is not the sum of its billed lines {total}"
            )
        if held != head["held_total"]:
            raise ValueError(f"invoices: {invoice_id} held_total {head['held_total']} is not {held}")
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


def _canonical_rows(columns: Mapping[str, C.Column]) -> list[str]:
    """:func:`_canonical` of each row of checked ``columns``, made a column at a time."""
    return C.json_rows({key: values for key, (values, _) in columns.items()})


def _fingerprint(
    run: Row, invoices: tuple[InvoicePayload, ...], cleaning: list[str], alerts: list[str]
) -> str:
    """What makes two runs "the identical run": same input, same counts, same outputs (in any row order).

    Timings, versions, the source's name and the actor are left out: the same file scored again by the same
    code, under another name or at another speed, is the same run.
    """
    keys = ("input_sha256", "rows_in", "rows_scored", "rows_quarantined", "rows_duplicate")
    content = {
        "run": [run[key] for key in keys],
        "invoices": sorted([inv.invoice_id, inv.content_hash] for inv in invoices),
        "cleaning": sorted(cleaning),  # _canonical of each row
        "alerts": sorted(alerts),
    }
    return hashlib.sha256(_canonical(content).encode()).hexdigest()
