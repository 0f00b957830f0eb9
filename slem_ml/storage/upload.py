"""One upload into the store (SPEC §8): readings in, touched invoices recomputed, the run stored — one
transaction.

:func:`store_upload` is what ``slem score`` and the app's upload do with a scored file when there is a
database: ingest every reading (:mod:`~slem_ml.storage.ingest`), recompute the billing of the (zone, local
date)s that changed (:mod:`~slem_ml.storage.rebill`), and store the run with the invoices as the store now
makes them (:mod:`~slem_ml.storage.store`: revisions, voids, audit). The result it returns carries those
invoices, with their stored revisions, in place of the file's own: the output folder shows the months as
they stand. When the upload is fresh (nothing stored around its days) and its invoices hold only its own
sessions, the store would make them again exactly as scoring did: the file's own lines and invoices stand,
and the billing is not done twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.orm import Session

from slem_ml.billing.holds import stuck_on_spans
from slem_ml.io import schema as S
from slem_ml.models.alerts import ALERT_ORDER
from slem_ml.scoring.result import ScoringResult
from slem_ml.storage.cleaning_store import month_cleaning, store_file_cleaning
from slem_ml.storage.ingest import IngestReport, ingest, record_corrections
from slem_ml.storage.payload import prepare
from slem_ml.storage.rebill import Rebilled, bill_fresh, rebill, reusable_zones, zone_names
from slem_ml.storage.service_days import record_client_days, stored_service_periods
from slem_ml.storage.store import StoredRun, store_payload, with_revisions
from slem_ml.storage.stored_invoices import current_invoices, stored_sessions
from slem_ml.storage.tables import ScoreRun

__all__ = ["Upload", "committed_runs", "store_upload"]


@dataclass(frozen=True)
class Upload:
    """What :func:`store_upload` did: the result to write, the run, and the store's counts."""

    result: ScoringResult  # invoices from the store, revisions applied
    stored: StoredRun
    readings: IngestReport
    rebilled: Rebilled


def store_upload(
    session: Session,
    result: ScoringResult,
    frames: Iterable[pd.DataFrame],
    *,
    cleaning: str,
    actor: str,
) -> Upload:
    """Ingest ``frames`` (the scored readings of ``result``, in one or more parts), rebill what changed and
    store the run, in ``session``'s transaction (the caller commits; see the module docstring)."""
    connection = session.connection()
    source = result.report.source
    file_cleaning = result.cleaning_sessions
    report = IngestReport.nothing()
    for frame in frames:
        report = report + ingest(connection, frame, cleaning=cleaning, source=source, actor=actor)
        record_client_days(connection, frame, result.site.site.timezone)
    fresh = report.fresh and result.sessions is not None
    if fresh:  # nothing stored around: the file's billing is it
        assert result.sessions is not None
        rebilled = bill_fresh(connection, result.sessions)
        store_file_cleaning(connection, result.cleaning_sessions)
        fresh = stored_sessions(connection, rebilled.invoice_ids) == len(result.sessions)
    else:
        rebilled = _rebill(connection, result, report)
    # the file's sessions are stored: released here when the caller handed ``result`` over (slem score)
    result = replace(result, sessions=None)
    cleaning = month_cleaning(connection, result.site, _months(result))
    wanted = rebilled.invoice_ids | frozenset(str(i) for i in result.invoices["invoice_id"])
    if rebilled.stuck_on is not None:
        # SPEC §8.5: stuck-on episodes from the store's timeline, not from this file's part of them
        mine = result.alerts["kind"].astype(str) == "stuck_on"
        mine &= result.alerts[S.ZONE_ID].isin(rebilled.zones)
        kept = [result.alerts[~mine], rebilled.stuck_on] if len(rebilled.stuck_on) else [result.alerts[~mine]]
        alerts = pd.concat(kept, ignore_index=True)
        result = replace(result, alerts=alerts.sort_values(ALERT_ORDER, kind="stable", ignore_index=True))
    if fresh and len(result.invoice_lines) and wanted == frozenset(map(str, result.invoices["invoice_id"])):
        # Its invoices hold only its own sessions (no other upload's, no decision, no stored stuck-on
        # alert around its days): the store would make them again as the file did (score: the same
        # sessions, lines, holds and invoices), so the file's stand.
        lines, invoices = result.invoice_lines, result.invoices
    else:
        result = replace(result, invoice_lines=result.invoice_lines.iloc[:0])  # freed before rebuilding
        own_stuck_on = stuck_on_spans(result.alerts)  # stored with the run below, needed for holds now
        lines, invoices = current_invoices(connection, result.site, wanted, stuck_on=own_stuck_on)
    periods = stored_service_periods(connection, invoices["invoice_id"].astype(str))
    result = replace(
        result, invoice_lines=lines, invoices=invoices, service_periods=periods, cleaning_sessions=cleaning
    )
    # the run keeps what its file found (the month's sessions as they stand are in the store)
    payload = prepare(replace(result, cleaning_sessions=file_cleaning))
    stored = store_payload(session, payload, actor, new_readings=report.added + report.corrected > 0)
    if stored.created:
        session.execute(
            update(ScoreRun)
            .where(ScoreRun.id == stored.run_id)
            .values(
                readings_added=report.added,
                readings_unchanged=report.unchanged,
                readings_corrected=report.corrected,
            )
        )
        record_corrections(connection, report, stored.run_id)
    result = replace(result, invoices=with_revisions(result.invoices, stored.revisions))
    return Upload(result, stored, report, rebilled)


def committed_runs(engine: Engine, runs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of these (run id, fingerprint) pairs are stored: what the sweep at start asks before it
    installs the files a kill left between a run's commit and their installation."""
    wanted = set(runs)
    if not wanted:
        return set()
    ids = sorted({run_id for run_id, _ in wanted})
    with engine.connect() as connection:
        rows = connection.execute(select(ScoreRun.id, ScoreRun.fingerprint).where(ScoreRun.id.in_(ids)))
        return {(run_id, fingerprint) for run_id, fingerprint in rows} & wanted


def _rebill(connection: Connection, result: ScoringResult, report: IngestReport) -> Rebilled:
    """Recompute the billing the upload changed: zones it appended to where nothing reaches into its days
    from before keep the file's own sessions (:func:`~slem_ml.storage.rebill.reusable_zones`); the rest
    are recomputed from the store."""
    reused = reusable_zones(result.site, report.after) if result.sessions is not None else set()
    own = Rebilled(frozenset(), 0, 0)
    if reused:
        zone_of = zone_names(connection)
        names = {zone_of[k] for k in reused}
        assert result.sessions is not None
        own = bill_fresh(connection, result.sessions[result.sessions[S.ZONE_ID].astype(str).isin(names)])
        cleaning = result.cleaning_sessions
        store_file_cleaning(connection, cleaning[cleaning[S.ZONE_ID].astype(str).isin(names)])
    rest = ~np.isin(report.changed_zone_key, np.array(sorted(reused), np.int64))
    rebilled = rebill(
        connection, result.site, report.changed_zone_key[rest], report.changed_t_ms[rest],
        cleaning_inferred=result.cleaning_source == "inferred",
        stuck_on=bool(result.model_versions),  # as the file's own alerts: only with models
    )  # fmt: skip
    return replace(rebilled, invoice_ids=rebilled.invoice_ids | own.invoice_ids)


def _months(result: ScoringResult) -> set[str]:
    """The local months (YYYY-MM) from the file's first reading to its last."""
    first, last = result.report.first_timestamp, result.report.last_timestamp
    if first is None or last is None:
        return set()
    tz = result.site.site.timezone
    months = pd.period_range(
        pd.Timestamp(first).tz_convert(tz).tz_localize(None),
        pd.Timestamp(last).tz_convert(tz).tz_localize(None),
        freq="M",
    )
    return {str(m) for m in months}
