"""Scoring an input in batches of zones, on this machine or on a Dask cluster, with the same answers.

:func:`score_in_batches` plans the batches (:mod:`slem_ml.run.batches`), then works in two passes:

1. every batch is read and validated to find the end of the whole input (a zone silent until then has
   dropped out, whichever batch it is in);
2. every batch is read again (on Dask with at most two batches a worker: kept from pass 1 instead),
   scored (:func:`slem_ml.scoring.score.score`), and its scored readings written as a Parquet part; only its
   small results (invoice lines, cleaning sessions, alerts, quarantine, counts) come back.

Then the batches are put together exactly as one piece would be: lines, sessions and alerts sorted by the
keys :mod:`~slem_ml.billing.invoices`, :mod:`~slem_ml.billing.cleaning` and :mod:`~slem_ml.models.alerts` sort
by, invoices built
from all lines. Locally, batches run one after another, so peak memory is one batch's. With Dask each batch
is a task; the models go to every worker once (``scatter(broadcast=True)``), and workers read the input and
write parts themselves, so input and output must be on storage every worker sees.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.billing.cleaning import SESSION_ORDER
from slem_ml.billing.invoices import LINE_ORDER, build_invoices
from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.reader import no_known_client
from slem_ml.io.readings import Note, Readings, ValidationReport
from slem_ml.models.alerts import ALERT_ORDER, active_hours
from slem_ml.models.bundle import ModelBundle
from slem_ml.outputs.writer import write_readings
from slem_ml.progress import Progress, no_progress
from slem_ml.run.batches import BATCH_ROWS, BatchPlan, input_headers, plan_batches, read_batch
from slem_ml.scoring.result import ScoredReadings, ScoringResult
from slem_ml.scoring.score import score

__all__ = ["BatchOutcome", "dask_client", "merge", "score_in_batches"]


@dataclass(frozen=True)
class BatchOutcome:
    """What one scored batch sends back (small: no readings)."""

    report: ValidationReport
    clients: frozenset[str]
    lines: pd.DataFrame
    sessions: pd.DataFrame | None
    cleaning: pd.DataFrame
    alerts: pd.DataFrame
    quarantine: pd.DataFrame
    usage_ms: dict[str, int]  # exact covered time per usage class
    timings: dict[str, float]
    notes: tuple[Note, ...]
    unknown_zones: tuple[str, ...]
    model_versions: dict[str, str] = field(default_factory=dict)
    cleaning_source: str = "given"
    service_periods: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)


def score_in_batches(
    path: str | Path,
    site: SiteConfig,
    *,
    models: ModelBundle | None,
    parts: Path,
    spill: Path,
    batch_rows: int = BATCH_ROWS,
    client: Any = None,
    progress: Progress = no_progress,
) -> ScoringResult:
    """Score ``path`` batch by batch; scored readings go to ``parts/part-NNNNN.parquet``.

    ``client``: a ``dask.distributed.Client`` to run the batches on (None: here, one after another).
    ``spill`` holds a CSV's batch files. Raises :class:`InputError` for unusable input.
    """
    clock = time.perf_counter()
    # the session classifier compares a building's zones: it runs where the input has no cleaning flag
    classifier = models is not None and models.sessions is not None
    by_building = classifier and S.CLEANING_STAFF not in input_headers(Path(path))
    plan = plan_batches(path, batch_rows=batch_rows, by_building=by_building, spill_dir=spill)
    plan_s = time.perf_counter() - clock
    parts.mkdir(parents=True, exist_ok=True)
    progress("reading", 0.05)
    if client is None:
        outcomes = _score_here(plan, site, models, parts, progress)
    else:
        outcomes = _score_on_dask(client, plan, site, models, parts, progress)
    result = merge(plan, site, [o for o in outcomes if o is not None], parts)
    return replace(result, timings={"plan_s": plan_s, **result.timings, "batches": float(plan.batches)})


def _score_here(
    plan: BatchPlan, site: SiteConfig, models: ModelBundle | None, parts: Path, progress: Progress
) -> list[BatchOutcome | None]:
    """One batch after another, read twice (to find the input's end, then to score): one batch in memory."""
    probes = []
    for index in range(plan.batches):
        probes.append(_probe(read_batch(plan, index, site)))
        progress("reading", 0.05 + 0.2 * (index + 1) / plan.batches)
    end = _data_end(plan, probes)
    outcomes = []
    for index in range(plan.batches):
        clock = time.perf_counter()
        readings = read_batch(plan, index, site)
        read_s = time.perf_counter() - clock
        outcomes.append(_score_batch(readings, index, site, models, end, str(parts), read_s))
        progress("scoring", 0.25 + 0.45 * (index + 1) / plan.batches)
    return outcomes


def _score_on_dask(
    client: Any,
    plan: BatchPlan,
    site: SiteConfig,
    models: ModelBundle | None,
    parts: Path,
    progress: Progress,
) -> list[BatchOutcome | None]:
    """Every batch a task. With up to two batches a worker each is read once and kept on its worker until
    scored; with more, each worker reads its batches twice, as the local engine does, so that a worker
    holds one batch at a time whatever the input's size."""
    from dask.distributed import as_completed  # lazy: Dask takes 1-2 s to import; only --engine dask

    shared_plan = client.scatter(plan, broadcast=True)  # once per worker, not once per task
    keep = plan.batches <= 2 * max(1, len(client.scheduler_info()["workers"]))
    if keep:
        batches = [
            client.submit(read_batch, shared_plan, index, site, pure=False) for index in range(plan.batches)
        ]
        probes = [client.submit(_probe, batch, pure=False) for batch in batches]
    else:
        probes = [
            client.submit(_read_probe, shared_plan, index, site, pure=False) for index in range(plan.batches)
        ]
    # the models go out while the batches are read, once per worker
    shared_models = client.scatter(models, broadcast=True) if models is not None else None
    end = _data_end(plan, client.gather(probes))
    progress("reading", 0.25)
    futures = [
        client.submit(_score_batch, batch, index, site, shared_models, end, str(parts), pure=False)
        if keep
        else client.submit(_read_score, shared_plan, index, site, shared_models, end, str(parts), pure=False)
        for index, batch in enumerate(batches if keep else range(plan.batches))
    ]
    for done, _ in enumerate(as_completed(futures), start=1):
        progress("scoring", 0.25 + 0.45 * done / plan.batches)
    outcomes: list[BatchOutcome | None] = client.gather(futures)
    del futures  # releases the batches on the workers
    return outcomes


def _read_probe(plan: BatchPlan, index: int, site: SiteConfig) -> Probe:
    """Pass 1 of a batch read and dropped again."""
    return _probe(read_batch(plan, index, site))


def _read_score(
    plan: BatchPlan,
    index: int,
    site: SiteConfig,
    models: ModelBundle | None,
    span: InputSpan,
    parts: str,
) -> BatchOutcome | None:
    """Pass 2 of a batch: read it again and score it."""
    clock = time.perf_counter()
    readings = read_batch(plan, index, site)
    return _score_batch(readings, index, site, models, span, parts, time.perf_counter() - clock)


#: What pass 1 learns of a batch: its last valid reading [UTC ms], how many rows it quarantined, of those
#: how many per client the contracts do not know, and the UTC hours it has readings in.
Probe = tuple[int | None, int, dict[str, int], np.ndarray]


def _probe(readings: Readings | None) -> Probe:
    if readings is None:
        return None, 0, {}, np.empty(0, np.int64)
    report = readings.report
    last = report.last_timestamp
    last_ms = None if last is None else int(last.to_datetime64().astype("datetime64[ms]").astype(np.int64))
    t_ms = readings.frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    return last_ms, report.rows_quarantined, dict(report.unknown_clients), active_hours(t_ms)


@dataclass(frozen=True)
class InputSpan:
    """What every batch needs of the whole input: its last valid reading [UTC ms] and its active hours."""

    end_ms: int | None
    hours: np.ndarray


def _data_end(plan: BatchPlan, probes: list[Probe]) -> InputSpan:
    """The last valid reading of the whole input [UTC ms] (``None`` when no row is valid), and the hours it
    has readings in.

    The file-wide check of reading in one piece: when every row is quarantined for a client the contracts
    do not know, the contracts file is the likely mistake, and the input is refused as a whole."""
    hours = np.unique(np.concatenate([p[3] for p in probes])) if probes else np.empty(0, np.int64)
    found = [p[0] for p in probes if p[0] is not None]
    if found:
        return InputSpan(max(found), hours)
    quarantined = sum(p[1] for p in probes)
    unknown: Counter[str] = Counter()
    for probe in probes:
        unknown.update(probe[2])
    if unknown and unknown.total() == quarantined:
        raise no_known_client(plan.source, unknown)
    return InputSpan(None, hours)


def _score_batch(
    readings: Readings | None,
    index: int,
    site: SiteConfig,
    models: ModelBundle | None,
    span: InputSpan,
    parts: str,
    read_s: float = 0.0,
) -> BatchOutcome | None:
    """Score batch ``index``'s validated readings; write its scored readings as a Parquet part."""
    if readings is None:
        return None
    result = score(readings, site, models=models, data_end_ms=span.end_ms, site_hours=span.hours)
    clock = time.perf_counter()
    write_readings(result.readings.frame, site, Path(parts) / f"part-{index:05d}.parquet")
    clients = frozenset(str(c) for c in readings.frame[S.CLIENT_ID].unique())
    return BatchOutcome(
        report=readings.report,
        clients=clients,
        lines=result.invoice_lines,
        sessions=result.sessions,
        cleaning=result.cleaning_sessions,
        alerts=result.alerts,
        quarantine=result.quarantine,
        usage_ms=result.readings.usage_ms,
        timings={"read_s": read_s, **result.timings, "write_parts_s": time.perf_counter() - clock},
        notes=result.notes,
        unknown_zones=result.unknown_zones,
        model_versions=result.model_versions,
        cleaning_source=result.cleaning_source,
        service_periods=result.service_periods,
    )


def merge(plan: BatchPlan, site: SiteConfig, outcomes: list[BatchOutcome], parts: Path) -> ScoringResult:
    """The batches' results as one :class:`ScoringResult`; the scored readings are the Parquet ``parts``."""
    reports = [o.report for o in outcomes]
    reasons: Counter[str] = Counter()
    for report in reports:
        reasons.update(report.reasons)
    notes = list(dict.fromkeys(n for r in reports for n in r.notes))
    firsts = [r.first_timestamp for r in reports if r.first_timestamp is not None]
    lasts = [r.last_timestamp for r in reports if r.last_timestamp is not None]
    report = ValidationReport(
        source=plan.source,
        input_sha256=plan.digest,
        file_format=plan.kind,
        columns=dict(plan.headers),
        rows_in=sum(r.rows_in for r in reports),
        rows_valid=sum(r.rows_valid for r in reports),
        rows_quarantined=sum(r.rows_quarantined for r in reports),
        rows_duplicate=sum(r.rows_duplicate for r in reports),
        reasons=dict(reasons),
        notes=tuple(notes),
        first_timestamp=min(firsts) if firsts else None,
        last_timestamp=max(lasts) if lasts else None,
        zones=sum(r.zones for r in reports),  # batches hold disjoint zones
        clients=len(frozenset().union(*(o.clients for o in outcomes))),
        unknown_clients=dict(sum((Counter(r.unknown_clients) for r in reports), Counter())),
    )
    expected = plan.rows + len(plan.malformed)
    if report.rows_in != expected:  # every input row is scored, quarantined or a duplicate
        raise RuntimeError(f"batches account for {report.rows_in:,} rows of {expected:,}")
    lines = _concat([o.lines for o in outcomes], LINE_ORDER)
    usage: Counter[str] = Counter()
    timings: Counter[str] = Counter()
    for outcome in outcomes:
        usage.update(outcome.usage_ms)
        timings.update(outcome.timings)
    return ScoringResult(
        site=site,
        readings=ScoredReadings(dict(usage), parts=parts),
        invoice_lines=lines,
        invoices=build_invoices(lines, site),
        sessions=None
        if any(o.sessions is None for o in outcomes)
        else pd.concat([o.sessions for o in outcomes], ignore_index=True)
        if outcomes
        else None,
        cleaning_sessions=_concat([o.cleaning for o in outcomes], SESSION_ORDER),
        alerts=_concat([o.alerts for o in outcomes], ALERT_ORDER),
        quarantine=_concat([o.quarantine for o in outcomes], [S.LINE]),
        report=report,
        timings=dict(timings),
        model_versions=outcomes[0].model_versions if outcomes else {},
        notes=tuple(dict.fromkeys(n for o in outcomes for n in o.notes)),
        unknown_zones=tuple(sorted({z for o in outcomes for z in o.unknown_zones})),
        cleaning_source=outcomes[0].cleaning_source if outcomes else "given",
        service_periods=_merge_periods([o.service_periods for o in outcomes]),
    )


def _merge_periods(
    parts: list[dict[str, tuple[dt.date, dt.date]]],
) -> dict[str, tuple[dt.date, dt.date]]:
    """Service periods of batches of zones: the earliest first and the latest last date of each."""
    out: dict[str, tuple[dt.date, dt.date]] = {}
    for part in parts:
        for invoice_id, (first, last) in part.items():
            known = out.get(invoice_id, (first, last))
            out[invoice_id] = (min(known[0], first), max(known[1], last))
    return out


def _concat(frames: list[pd.DataFrame], order: list[str]) -> pd.DataFrame:
    """Frames of the batches as one, in the order one piece would have (stable sort on ``order``)."""
    full = [f for f in frames if len(f)]
    if not full:
        return frames[0] if frames else pd.DataFrame()
    out = pd.concat(full, ignore_index=True) if len(full) > 1 else full[0]
    return out.sort_values(order, kind="stable", ignore_index=True)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, *, workers: int | None = None) -> Iterator[Any]:
    """A Dask client of the scheduler at ``scheduler`` (``tcp://HOST:8786``), or of a LocalCluster sized to
    this machine (``workers`` single-threaded worker processes, default one per core); closed on exit.

    Raises :class:`SlemError` when the scheduler cannot be reached."""
    # lazy: Dask takes 1-2 s to import; only --engine dask needs it (it also loads its config defaults)
    import dask
    from dask.distributed import Client, LocalCluster

    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold: every large
    # NumPy temporary is then mapped and unmapped afresh, and slem's steps ran 4x slower in a worker.
    environ = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    dask.config.set(
        {
            "dataframe.convert-string": False,
            "distributed.nanny.pre-spawn-environ": {
                k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"
            },
        }
    )
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SlemError(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc})") from None
        with client:
            yield client
        return
    count = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"SLEM_THREADS": "1"},  # one task at a time per worker: one thread each
            preload=["slem_ml.run.dask_preload"],  # workers import LightGBM while the client starts
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
