"""The orchestrator: validated readings in, every output of SPEC §7 out.

``score(readings, site, models=bundle) -> ScoringResult`` is the one function the CLI, the app and the
Dask runner call. It does no I/O; writing and storing are the adapters' job (:mod:`slem_ml.outputs.writer`,
:mod:`slem_ml.storage`). Without ``models`` the model columns stay empty (NaN/NA), no alerts are raised and
nothing is adjusted: the billing of SPEC §3.1–3.8 alone.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from slem_ml.billing.cleaning import cleaning_sessions
from slem_ml.billing.coverage import OVERTIME, ReadingCoverage, classified_readings, compute_coverage
from slem_ml.billing.holds import apply_holds, stuck_on_spans
from slem_ml.billing.invoices import (
    billed_power_mw,
    build_invoices,
    lines_from_sessions,
    overtime_sessions,
    service_periods,
)
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.readings import Note, NoteKind, Readings
from slem_ml.models.bundle import ModelBundle
from slem_ml.models.inference import billed_power_w, expected_power, infer_cleaning
from slem_ml.progress import Progress, no_progress
from slem_ml.scoring.result import ScoredReadings, ScoringResult

__all__ = ["score"]


def score(
    readings: Readings,
    site: SiteConfig,
    *,
    models: ModelBundle | None = None,
    progress: Progress = no_progress,
    data_end_ms: int | None = None,
    site_hours: np.ndarray | None = None,
) -> ScoringResult:
    """Bill overtime, find cleaning waste, classify every reading and raise alerts (SPEC §3, §4, §5, §7).

    ``data_end_ms`` [UTC ms]: the last valid reading of the whole input when ``readings`` is a batch of its
    zones (:mod:`~slem_ml.run.batched`), so that a zone silent until the end drops out as it would in one
    piece; ``site_hours`` the UTC hours in which the whole input has readings
    (:func:`slem_ml.models.alerts.active_hours`), so that a zone's silence is judged against the site's.
    """
    timings: dict[str, float] = {}
    frame = readings.frame
    notes: list[Note] = []
    inferred = False
    clock = time.perf_counter()
    if models is not None and not readings.has_cleaning_flag and models.sessions is not None and len(frame):
        progress("cleaning inference", 0.0)
        frame = infer_cleaning(frame, site, models.sessions)  # SPEC §4: the classifier decides
        inferred = True
        timings["cleaning_inference_s"] = time.perf_counter() - clock
    elif models is not None and not readings.has_cleaning_flag and models.sessions is None:
        notes.append(
            Note(
                NoteKind.CLEANING,
                "no cleaning flag in the input and no session classifier: after-hours light is overtime",
            )
        )

    clock = time.perf_counter()
    progress("coverage", 0.1)
    coverage = compute_coverage(frame, site)
    scored = _scored_readings(frame, coverage)
    timings["coverage_s"] = time.perf_counter() - clock

    billed = None
    unknown: tuple[str, ...] = ()
    alerts = pd.DataFrame({c: pd.Series(dtype=object) for c in (*S.ALERT_COLUMNS, "status")})
    if models is not None and len(frame):
        # lazy: the detectors import scikit-learn (about 1 s), which scoring without models never needs
        from slem_ml.models.anomaly import maintenance_alerts

        clock = time.perf_counter()
        progress("models", 0.3)
        expected, unknown = expected_power(frame, coverage.is_on, site, models.forecaster)
        scored[S.EXPECTED_POWER_W] = expected
        findings = maintenance_alerts(
            scored, site, models.spike, models.drift, data_end_ms=data_end_ms, site_hours=site_hours
        )
        scored[S.ANOMALY_SCORE] = findings.anomaly_score
        scored[S.IS_ANOMALY] = pd.arrays.BooleanArray(
            np.asarray(findings.is_anomaly, dtype=bool), np.zeros(len(frame), dtype=bool)
        )
        billed_w = billed_power_w(
            frame, findings.is_anomaly & (coverage.usage == OVERTIME), findings.reference_w
        )
        scored[S.BILLED_POWER_W] = billed_w
        billed = billed_power_mw(frame[S.POWER_W].to_numpy(dtype=float), billed_w)
        alerts = findings.alerts
        if findings.short_history:
            short = findings.short_history
            notes.append(
                Note(
                    NoteKind.MODELS,
                    f"drift not judged for {len(short)} zone(s) with fewer than "
                    f"{models.drift.min_history()} complete lit days here: "
                    + ", ".join(short[:10])
                    + (" …" if len(short) > 10 else ""),
                )
            )
        timings["models_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("billing", 0.5)
    sessions = overtime_sessions(frame, coverage, site, billed_power_mw=billed)
    # SPEC §8.4: overtime during a stuck_on episode waits for a person
    lines = apply_holds(lines_from_sessions(sessions, site), stuck_on_spans(alerts))
    invoices = build_invoices(lines, site)
    timings["billing_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("cleaning", 0.8)
    cleaning = cleaning_sessions(frame, coverage, site, inferred=inferred)
    timings["cleaning_s"] = time.perf_counter() - clock
    progress("scored", 1.0)

    return ScoringResult(
        site=site,
        readings=ScoredReadings.in_memory(scored),
        invoice_lines=lines,
        invoices=invoices,
        sessions=sessions,
        service_periods=service_periods(frame, site),
        cleaning_sessions=cleaning,
        alerts=alerts,
        quarantine=readings.quarantine,
        report=readings.report,
        timings=timings,
        model_versions={}
        if models is None
        else {"models": models.version, "strategy": models.manifest.get("strategy", "")},
        notes=tuple(notes),
        unknown_zones=unknown,
        cleaning_source="given" if readings.has_cleaning_flag else "inferred" if inferred else "none",
    )


def _scored_readings(frame: pd.DataFrame, coverage: ReadingCoverage) -> pd.DataFrame:
    """The input columns plus the per-reading classes (SPEC §7 ``scored_readings``); model columns empty."""
    scored = classified_readings(frame, coverage).assign(
        **{
            S.EXPECTED_POWER_W: np.nan,
            S.ANOMALY_SCORE: np.nan,
            S.BILLED_POWER_W: np.nan,
            S.IS_ANOMALY: pd.arrays.BooleanArray(
                np.zeros(len(frame), dtype=bool), np.ones(len(frame), dtype=bool)
            ),
        }
    )
    return scored
