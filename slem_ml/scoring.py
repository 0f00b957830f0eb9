"""The orchestrator: validated readings in, every output of SPEC §7 out.

``score(readings, site) -> ScoringResult`` is the one function the CLI, the app and the Dask runner call.
It does no I/O; writing and storing are the adapters' job (:mod:`slem_ml.outputs`, :mod:`slem_ml.storage`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from slem_ml import schema as S
from slem_ml.billing import build_invoices, invoice_lines
from slem_ml.cleaning import cleaning_sessions
from slem_ml.contracts import SiteConfig
from slem_ml.coverage import ReadingCoverage, compute_coverage
from slem_ml.result import Readings, ScoringResult

__all__ = ["Progress", "score"]

#: Called with (stage name, fraction done 0..1); the CLI draws a progress line with it.
Progress = Callable[[str, float], None]


def _silent(stage: str, fraction: float) -> None:
    """The default progress callback: says nothing."""


def score(readings: Readings, site: SiteConfig, *, progress: Progress = _silent) -> ScoringResult:
    """Bill overtime, find cleaning waste and classify every reading (SPEC §3, §4, §7)."""
    timings: dict[str, float] = {}
    frame = readings.frame

    clock = time.perf_counter()
    progress("coverage", 0.0)
    coverage = compute_coverage(frame, site)
    timings["coverage_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("billing", 0.4)
    lines = invoice_lines(frame, coverage, site)
    invoices = build_invoices(lines, site)
    timings["billing_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("cleaning", 0.7)
    cleaning = cleaning_sessions(frame, coverage, site)
    timings["cleaning_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("readings", 0.9)
    scored = _scored_readings(frame, coverage)
    timings["readings_s"] = time.perf_counter() - clock
    progress("scored", 1.0)

    return ScoringResult(
        site=site,
        readings=scored,
        invoice_lines=lines,
        invoices=invoices,
        cleaning_sessions=cleaning,
        alerts=pd.DataFrame({c: pd.Series(dtype=object) for c in S.ALERT_COLUMNS}),
        quarantine=readings.quarantine,
        report=readings.report,
        timings=timings,
    )


def _scored_readings(frame: pd.DataFrame, coverage: ReadingCoverage) -> pd.DataFrame:
    """The input columns plus the per-reading classes (SPEC §7 ``scored_readings``)."""
    names = np.array(S.USAGE_CLASSES, dtype=object)
    scored = frame.assign(
        **{
            S.IN_CONTRACT: coverage.in_contract,
            S.IS_ON: coverage.is_on,
            S.USAGE_CLASS: pd.Categorical.from_codes(coverage.usage, categories=list(names)),
            S.COVERED_MINUTES: coverage.covered_ms / S.MS_PER_MINUTE,
            S.EXPECTED_POWER_W: np.nan,
            S.ANOMALY_SCORE: np.nan,
            S.IS_ANOMALY: pd.arrays.BooleanArray(
                np.zeros(len(frame), dtype=bool), np.ones(len(frame), dtype=bool)
            ),
        }
    )
    return scored
