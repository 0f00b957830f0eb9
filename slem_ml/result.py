"""Typed results shared by the reader, the scoring orchestrator and the adapters (SPEC §7).

Frame layouts (one row each):

``ScoringResult.readings``
    The validated input (canonical names; ``timestamp`` tz-aware UTC) plus ``in_contract`` (bool), ``is_on``
    (bool), ``usage_class`` (str), ``covered_minutes`` (float, [min]), ``expected_power_w`` (float [W], the
    forecaster's expected mean power of the zone-hour), ``anomaly_score`` (float, higher = more anomalous),
    ``is_anomaly`` (boolean: a spike); without models the last three are NaN / NA.
``ScoringResult.invoice_lines``
    ``schema.INVOICE_LINE_COLUMNS``: ``date`` is a ``datetime.date``; ``start``/``end`` are
    ``pd.Timestamp`` in the site timezone; ``minutes`` ``Decimal`` [min, 3 dp, from exact ms];
    ``billable_minutes`` int [min]; ``energy_kwh`` and ``original_energy_kwh`` ``Decimal`` [kWh, 6 dp];
    ``hours_charge``, ``energy_charge``, ``amount`` ``Decimal`` [currency, 2 dp]; ``adjusted`` bool.
``ScoringResult.invoices``
    ``schema.INVOICE_COLUMNS``: ``period`` "YYYY-MM"; ``revision`` int (1 until storage says otherwise);
    ``billable_hours``, ``energy_kwh``, ``total`` ``Decimal``; ``content_hash`` sha256 hex.
``ScoringResult.cleaning_sessions``
    ``schema.CLEANING_COLUMNS`` plus ``client_id`` (at the session start); ``minutes`` and
    ``excess_minutes`` ``Decimal`` [min, 3 dp]; ``wasted_kwh`` ``Decimal`` [kWh, 6 dp]; ``savings``
    ``Decimal`` [currency].
``ScoringResult.alerts``
    ``schema.ALERT_COLUMNS`` plus ``status`` (open / resolved at the end of the data); empty without models.
``ScoringResult.quarantine``
    ``line`` (1-based source line), ``reason``, then the original columns as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from slem_ml.contracts import SiteConfig

__all__ = ["Readings", "ScoringResult", "ValidationReport"]


@dataclass(frozen=True)
class ValidationReport:
    """What the reader found (SPEC §1). ``rows_in == rows_valid + rows_quarantined + rows_duplicate``."""

    source: str  # file name as given
    input_sha256: str  # of the file's bytes ("" for an in-memory frame)
    file_format: str  # "csv" | "parquet" | "frame"
    columns: dict[str, str]  # canonical name -> header found in the file
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    rows_duplicate: int
    reasons: dict[str, int]  # quarantine reason -> count
    notes: tuple[str, ...] = ()  # things a user should know (delimiter sniffed, columns ignored, ...)
    first_timestamp: pd.Timestamp | None = None  # UTC
    last_timestamp: pd.Timestamp | None = None  # UTC
    zones: int = 0
    clients: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps as ISO 8601)."""
        out = dict(self.__dict__)
        out["notes"] = list(self.notes)
        for key in ("first_timestamp", "last_timestamp"):
            value = out[key]
            out[key] = None if value is None else value.isoformat()
        return out


@dataclass(frozen=True)
class Readings:
    """Validated readings: only the reader makes these, so the engine never sees unchecked input.

    ``frame`` is sorted by (zone_id, timestamp, line) and has the canonical columns with ``timestamp``
    tz-aware UTC [ms resolution], ``power_w`` float [W], ``cleaning_staff`` bool (all False with
    ``has_cleaning_flag`` False when the input had no such column), ``building``/``floor``/``zone`` filled.
    """

    frame: pd.DataFrame
    quarantine: pd.DataFrame
    report: ValidationReport
    has_cleaning_flag: bool


@dataclass
class ScoringResult:
    """Everything ``slem score`` produces (SPEC §7); the adapters write, store and show these."""

    site: SiteConfig
    readings: pd.DataFrame
    invoice_lines: pd.DataFrame
    invoices: pd.DataFrame
    cleaning_sessions: pd.DataFrame
    alerts: pd.DataFrame
    quarantine: pd.DataFrame
    report: ValidationReport
    timings: dict[str, float] = field(default_factory=dict)  # [s] per stage
    model_versions: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what a user should know about this run (unseen zones, fallbacks)
    #: A run scored in batches (:mod:`slem_ml.engine`): the scored readings are already written as Parquet
    #: parts in this folder and ``readings`` is empty; ``usage_minutes`` [min] sums them per usage class.
    readings_parts: Path | None = None
    unknown_zones: tuple[str, ...] = ()  # zones the models never saw (scored with a fallback)
    usage_minutes: dict[str, float] | None = None

    @property
    def all_notes(self) -> tuple[str, ...]:
        """:attr:`notes`, then the zones the models never saw (the first ten named)."""
        if not self.unknown_zones:
            return self.notes
        zones = sorted(self.unknown_zones)
        unseen = (
            f"{len(zones)} zone(s) the models never saw, scored from floor, building and calendar: "
            + ", ".join(zones[:10])
            + (" …" if len(zones) > 10 else "")
        )
        return (*self.notes, unseen)

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json`` (SPEC §7)."""
        from slem_ml.summary import build_summary

        return build_summary(self)
