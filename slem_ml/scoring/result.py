"""The result of scoring (SPEC §7): what :func:`slem_ml.scoring.score.score` returns and the adapters write,
store and show.

Frame layouts (one row each):

``ScoringResult.readings.frame``
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

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.readings import Note, NoteKind, ValidationReport

__all__ = ["ScoredReadings", "ScoringResult", "usage_ms"]


def usage_ms(readings: pd.DataFrame) -> dict[str, int]:
    """Covered time per usage class [ms], exact (integers add up the same in any order or batches);
    empty for a frame without the usage columns."""
    if S.USAGE_CLASS not in readings.columns or S.COVERED_MINUTES not in readings.columns:
        return {}
    ms = np.rint(readings[S.COVERED_MINUTES].to_numpy(dtype=float) * S.MS_PER_MINUTE).astype(np.int64)
    usage = readings[S.USAGE_CLASS]
    if isinstance(usage.dtype, pd.CategoricalDtype):  # compare small integer codes, not a million strings
        codes = usage.cat.codes.to_numpy()
        code_of = {str(name): code for code, name in enumerate(usage.cat.categories)}
        return {cls: int(ms[codes == code_of[cls]].sum()) if cls in code_of else 0 for cls in S.USAGE_CLASSES}
    values = usage.to_numpy()
    return {cls: int(ms[values == cls].sum()) for cls in S.USAGE_CLASSES}


@dataclass(frozen=True)
class ScoredReadings:
    """The scored readings of a run (SPEC §7 ``scored_readings``), wherever they are.

    Scored in one piece they are :attr:`frame`, in memory; scored in batches (:mod:`slem_ml.run.batched`)
    each batch has written its part to the Parquet folder :attr:`parts` and :attr:`frame` is None, so that
    memory follows the batch. :attr:`usage_ms` is known either way.
    """

    usage_ms: dict[str, int]  # [ms] covered time per usage class (SPEC §3.3)
    frame: pd.DataFrame | None = None
    parts: Path | None = None

    @classmethod
    def in_memory(cls, frame: pd.DataFrame) -> ScoredReadings:
        """Scored readings held in memory."""
        return cls(usage_ms(frame), frame=frame)

    @property
    def usage_minutes(self) -> dict[str, float]:
        """:attr:`usage_ms` in minutes, rounded to 3 decimals (SPEC §3.3)."""
        return {cls: round(total / S.MS_PER_MINUTE, 3) for cls, total in self.usage_ms.items()}


@dataclass(frozen=True)
class ScoringResult:
    """Everything ``slem score`` produces (SPEC §7); the adapters write, store and show these.

    Frozen: a later stage that changes something (revisions from the store, a note) makes a new result with
    :func:`dataclasses.replace`.
    """

    site: SiteConfig
    readings: ScoredReadings
    invoice_lines: pd.DataFrame
    invoices: pd.DataFrame
    cleaning_sessions: pd.DataFrame
    alerts: pd.DataFrame
    quarantine: pd.DataFrame
    report: ValidationReport
    timings: dict[str, float] = field(default_factory=dict)  # [s] per stage
    model_versions: dict[str, str] = field(default_factory=dict)
    notes: tuple[Note, ...] = ()  # what a user should know about this run (fallbacks, missing models)
    unknown_zones: tuple[str, ...] = ()  # zones the models never saw (scored with a fallback)
    #: where the readings' cleaning flags came from: "given" (the input), "inferred" (the session
    #: classifier, SPEC §4) or "none" (after-hours light is overtime)
    cleaning_source: str = "given"
    #: the overtime sessions behind ``invoice_lines`` in exact integers
    #: (:func:`slem_ml.billing.invoices.overtime_sessions`); None when not kept
    sessions: pd.DataFrame | None = None
    #: per invoice id, the first and last local date its client has readings in the month (SPEC §8)
    service_periods: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)

    @property
    def all_notes(self) -> tuple[Note, ...]:
        """:attr:`notes`, then the zones the models never saw (the first ten named)."""
        if not self.unknown_zones:
            return self.notes
        zones = sorted(self.unknown_zones)
        unseen = (
            f"{len(zones)} zone(s) the models never saw, scored from floor, building and calendar: "
            + ", ".join(zones[:10])
            + (" …" if len(zones) > 10 else "")
        )
        return (*self.notes, Note(NoteKind.UNSEEN_ZONES, unseen))
