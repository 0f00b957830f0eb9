"""The content of ``summary.json`` (SPEC §7): counts, totals, provenance and timings of one scoring run.

Everything in it is plain JSON: Decimals are strings written exactly (``"123.45"``), instants ISO 8601
with the site's UTC offset. ``rows_in == rows_scored + rows_quarantined + rows_duplicate`` (SPEC §1).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pandas as pd

from slem_ml import __version__
from slem_ml.io.readings import Note, ValidationReport, note_texts
from slem_ml.scoring.result import ScoringResult

__all__ = ["build_summary", "report_facts"]

_ZERO = Decimal("0")


def build_summary(result: ScoringResult) -> dict[str, Any]:
    """What one scoring run did, as a JSON-ready dict (the content of ``summary.json``)."""
    site = result.site.site
    facts = report_facts(result.report, site.timezone, notes=(*result.report.notes, *result.all_notes))
    return {
        "slem_version": __version__,
        **{key: facts[key] for key in ("source", "input_sha256", "file_format")},
        "site": {"timezone": site.timezone, "currency": site.currency},
        **{
            key: value for key, value in facts.items() if key not in ("source", "input_sha256", "file_format")
        },
        "usage_minutes": result.readings.usage_minutes,
        "totals": _totals(result.invoices, result.invoice_lines, site.currency),
        "clients": _clients(result),
        "cleaning": _cleaning(result.cleaning_sessions),
        "alerts": _alerts(result.alerts),
        "model_versions": dict(sorted(result.model_versions.items())),
        "timings": {stage: round(float(sec), 3) for stage, sec in result.timings.items()},  # [s]
    }


def report_facts(
    report: ValidationReport, timezone: str, *, notes: tuple[Note, ...] | None = None
) -> dict[str, Any]:
    """The validation report as ``summary.json`` spells it (SPEC §1): counts, reasons, notes and period in
    site time. ``notes`` default to the report's own. :mod:`slem_ml.outputs.validation_text` shows it."""
    return {
        "source": report.source,
        "input_sha256": report.input_sha256,
        "file_format": report.file_format,
        "rows_in": report.rows_in,
        "rows_scored": report.rows_valid,
        "rows_quarantined": report.rows_quarantined,
        "rows_duplicate": report.rows_duplicate,
        "quarantine_reasons": dict(sorted(report.reasons.items())),
        "notes": note_texts(report.notes if notes is None else notes),
        "first_timestamp": _local_iso(report.first_timestamp, timezone),
        "last_timestamp": _local_iso(report.last_timestamp, timezone),
        "zones": report.zones,
        "clients_seen": report.clients,
    }


def _totals(invoices: pd.DataFrame, lines: pd.DataFrame, currency: str) -> dict[str, Any]:
    """Totals over all invoices (SPEC §3.7)."""
    adjusted = int(_column(lines, "adjusted").astype(bool).sum())
    return {"currency": currency, **_invoice_totals(invoices, lines), "adjusted_lines": adjusted}


def _clients(result: ScoringResult) -> dict[str, dict[str, Any]]:
    """Invoice totals per billed client."""
    invoices, lines = result.invoices, result.invoice_lines
    invoice_clients = _column(invoices, "client_id").astype(str)
    line_clients = _column(lines, "client_id").astype(str)
    ids = set(invoice_clients.unique()) | set(line_clients.unique())
    out: dict[str, dict[str, Any]] = {}
    for client_id in sorted(ids):
        contract = result.site.clients.get(client_id)
        out[client_id] = {
            "name": contract.name if contract is not None else client_id,
            **_invoice_totals(invoices[invoice_clients == client_id], lines[line_clients == client_id]),
        }
    return out


def _invoice_totals(invoices: pd.DataFrame, lines: pd.DataFrame) -> dict[str, Any]:
    return {
        "invoices": len(invoices),
        "lines": len(lines),
        "billable_hours": _sum(_column(invoices, "billable_hours")),
        "energy_kwh": _sum(_column(invoices, "energy_kwh")),
        "amount": _sum(_column(invoices, "total")),
    }


def _cleaning(sessions: pd.DataFrame) -> dict[str, Any]:
    """Cleaning findings (SPEC §4)."""
    if sessions.empty:
        return {"sessions": 0, "flagged": 0, "inferred": 0, "wasted_kwh": "0", "savings": "0"}
    return {
        "sessions": len(sessions),
        "flagged": int(sessions["flagged"].astype(bool).sum()),
        "inferred": int(sessions["inferred"].astype(bool).sum()),
        "wasted_kwh": _sum(sessions["wasted_kwh"]),
        "savings": _sum(sessions["savings"]),
    }


def _alerts(alerts: pd.DataFrame) -> dict[str, Any]:
    kinds = _column(alerts, "kind").value_counts()
    return {"count": len(alerts), "by_kind": {str(k): int(n) for k, n in sorted(kinds.items())}}


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or an empty one for an empty frame that was built without columns."""
    if name in frame.columns:
        return frame[name]
    if frame.empty:
        return pd.Series(dtype="object")
    raise KeyError(f"missing column {name!r}")


def _sum(values: Iterable[Any]) -> str:
    """Exact sum of Decimals as text; a sum of nothing is ``"0"``."""
    column = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    present = column[column.notna().to_numpy(dtype=bool)].tolist()  # one vectorised test, not one a cell
    total = sum(map(Decimal, present), _ZERO)
    return format(total, "f")


def _local_iso(value: pd.Timestamp | None, timezone: str) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).tz_convert(timezone).isoformat()
