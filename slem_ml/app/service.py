"""The app's library calls: one function per thing a user does in the app, by user name.

``gradio_app.py`` maps each event to exactly one of these; they check who may see or do what
(:mod:`slem_ml.storage.users`), do the work through the library and return tables for people
(:func:`slem_ml.app.tables.for_people`: columns titled in words, money with the currency in the title and
thousands separators, kWh with sensible decimals, no content hashes) and Plotly figures. Problems a user
can fix raise :class:`~slem_ml.errors.SlemError` with one readable line, which the app shows as a message.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from slem_ml.app import analysis, charts
from slem_ml.app.access import require, user_of, view_of
from slem_ml.app.invoicing import DRAFT, LINE_SHOWN, invoices_shown, month_state
from slem_ml.app.maintenance import alerts_shown, open_alerts
from slem_ml.app.tables import for_people, kwh_text, scope_words
from slem_ml.app.views import LIVE_ONLY_RUN, RunView, periods, tiles
from slem_ml.app.workspace import AppConfig, champion_bundle, run_input
from slem_ml.app.workspace import upload as score_upload
from slem_ml.atomic import atomic_path
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.models.forecast import building_occupancy, occupancy_peaks
from slem_ml.models.registry import training_runs
from slem_ml.outputs.validation_text import validation_markdown
from slem_ml.outputs.writer import OUTPUT_FILES
from slem_ml.progress import Progress, no_progress
from slem_ml.run.pipeline import ScoredFile
from slem_ml.storage import invoice_history, open_database
from slem_ml.storage.months import month_bounds_ms
from slem_ml.storage.queries import upload_history
from slem_ml.storage.users import User, role_allows

__all__ = [
    "Dashboard",
    "dashboard",
    "forecast_for",
    "models_overview",
    "occupancy_for",
    "retrain",
    "run_file",
    "upload",
]


@dataclass(frozen=True)
class Dashboard:
    """Everything the tabs show for the latest run, limited to what the user may see."""

    user: User
    headline: str  # markdown: which run, who, when
    tiles: str  # markdown: the overview's figures
    energy_heatmap: go.Figure
    profile: go.Figure
    trend: go.Figure
    invoices: pd.DataFrame
    lines: pd.DataFrame
    overtime_chart: go.Figure
    cleaning: pd.DataFrame  # flagged sessions
    cleaning_ranking: pd.DataFrame
    cleaning_chart: go.Figure
    cleaning_hours: go.Figure
    alerts: pd.DataFrame  # open and ongoing
    zones: list[str]
    buildings: list[str]
    invoice_ids: list[str]
    downloads: list[Path]  # the run's CSVs and validation report (managers only)
    notes: str  # markdown: validation report and the run's notes
    period: str = ""  # the month shown, YYYY-MM
    periods: tuple[str, ...] = ()  # every month with data, newest first
    uploads: pd.DataFrame | None = None  # the upload history (runs), newest first
    changes: str = ""  # after an upload: what it changed
    targets: tuple[
        tuple[str, str], ...
    ] = ()  # the Forecast tab's choices: (words, value), zones then buildings


def upload(
    config: AppConfig,
    username: str | None,
    readings: str | Path | None,
    contracts: str | Path | None = None,
    progress: Progress = no_progress,
) -> Dashboard:
    """Score an uploaded file (see :func:`slem_ml.app.workspace.upload`) and show the new latest run."""
    if readings is None:
        raise SlemError("choose a readings file (CSV or Parquet) first")
    user = user_of(config, username)
    done = score_upload(config, user, readings, contracts=contracts, progress=progress)
    periods = sorted({str(p) for p in done.result.invoices["period"]}) if len(done.result.invoices) else []
    board = dashboard(config, username, periods[-1] if periods else None)
    assert board is not None  # a run was just stored
    return replace(board, changes=upload_changes(config, done))


def upload_changes(config: AppConfig, done: ScoredFile) -> str:
    """What an upload changed, in one line (SPEC §8 "each upload's result panel says what it changed"):
    ``added 2,500 readings, 0 corrected; INV-C001-202502 rev 2 (+442.48 EUR)``."""
    if done.upload is None:
        return ""
    readings = done.upload.readings
    text = f"added {readings.added:,} readings, {readings.corrected:,} corrected"
    if readings.unchanged:
        text += f", {readings.unchanged:,} already stored"
    stored = done.upload.stored
    if not stored.new_revisions:
        return text + "; no invoice changed"
    currency = done.result.site.site.currency
    engine = open_database(config.database_url)
    try:
        parts = []
        for invoice_id in stored.new_revisions:
            history = invoice_history(engine, invoice_id)
            new = history[-1]
            before = history[-2].total if len(history) > 1 else Decimal("0.00")
            change = new.total - before
            state = " void" if new.void else ""
            parts.append(f"{invoice_id} rev {new.revision}{state} ({change:+,.2f} {currency})")
    finally:
        engine.dispose()
    shown = ", ".join(parts[:5]) + (f" and {len(parts) - 5} more" if len(parts) > 5 else "")
    return f"{text}; {shown}"


def dashboard(config: AppConfig, username: str | None, period: str | None = None) -> Dashboard | None:
    """The month ``period`` (default: the latest with data) for ``username``; ``None`` when nothing was
    stored yet."""
    view = view_of(config, username, period)
    if view is None:
        return None
    t = tiles(view)
    cur = view.currency
    flagged = view.cleaning[view.cleaning["flagged"]]
    ranked = analysis.cleaning_ranking(view.cleaning)
    run = view.run
    counts = (  # a client sees nothing of the others, not even how many readings they had
        ""
        if view.user.client_id
        else f": {run.rows_scored:,} readings scored, {run.rows_quarantined:,} quarantined, "
        f"{run.rows_duplicate:,} duplicates"
    )
    year, month = (int(part) for part in view.period.split("-"))
    now = dt.datetime.now(dt.UTC)
    tz = view.site.site.timezone
    to_date = ""
    if month_state(view.period, tz, now) == DRAFT:  # SPEC §9: month to date
        ends = dt.datetime.fromtimestamp(month_bounds_ms(view.period, tz)[1] / 1000, view.site.site.tz)
        to_date = f" to date — invoices are **drafts** until the month is over ({ends:%Y-%m-%d %H:%M} {tz})"
    last = (
        "No upload yet: live readings only"
        if run.run_id == LIVE_ONLY_RUN
        else f"Last upload: run {run.run_id} — `{run.source}`, scored {run.created_at:%Y-%m-%d %H:%M} UTC by "
        f"{run.actor}{counts}"
    )
    headline = (
        f"**{calendar.month_name[month]} {year}**{to_date}, as everything stored for it stands. {last}. "
        f"Signed in as **{view.user.name}** ({view.user.role}"
        + (f", client {view.user.client_id}" if view.user.client_id else "")
        + ")."
    )
    energy, overtime = kwh_text([t.energy_kwh, t.overtime_kwh])
    buildings = sorted({str(b) for b in view.energy[S.BUILDING].unique()})
    tile_text = "\n".join(
        [
            "| Overtime | Cleaning over the limit | Open alerts | Energy |",
            "|---|---|---|---|",
            f"| **{t.overtime_hours:,.2f} h** · **{t.overtime_amount:,.2f} {cur}** "
            f"| **{t.cleaning_flagged:,} sessions** · save **{t.cleaning_savings:,.2f} {cur}** "
            f"| **{t.open_alerts:,}** | **{energy} kWh** ({overtime} kWh overtime) |",
        ]
    )
    return Dashboard(
        user=view.user,
        headline=headline,
        tiles=tile_text,
        energy_heatmap=charts.energy_heatmap(view.energy),
        profile=charts.profile_heatmap(view.energy),
        trend=charts.energy_trend(view.energy),
        invoices=invoices_shown(view.invoices, tz, now, cur),
        lines=for_people(view.lines, LINE_SHOWN, cur),
        overtime_chart=charts.overtime_by_client(view.lines, cur),
        cleaning=for_people(flagged, _CLEANING_SHOWN, cur),
        cleaning_ranking=for_people(ranked, _RANKING_SHOWN, cur),
        cleaning_chart=charts.cleaning_ranking(ranked, cur),
        cleaning_hours=charts.cleaning_by_hour(view.cleaning),
        alerts=alerts_shown(open_alerts(view.alerts), view.site.site.timezone),
        zones=list(view.zones),
        buildings=buildings,
        invoice_ids=[str(i) for i in view.invoices["invoice_id"]],
        downloads=_downloads(view),
        notes=_notes(view),
        period=view.period,
        periods=tuple(periods(config)),
        uploads=_uploads(config, view),
        targets=(
            *((z, z) for z in view.zones),
            *((scope_words(f"building:{b}"), f"building:{b}") for b in buildings),
        ),
    )


def forecast_for(
    config: AppConfig, username: str | None, target: str | None, days: int = 7
) -> tuple[go.Figure, pd.DataFrame]:
    """The next ``days`` of a zone or a building (``"building:HQ"``) with the band, and its peak hours:
    energy per hour [kWh] as on the Overview, beside the mean power [W] the forecaster predicts."""
    view = require(view_of(config, username))
    models = champion_bundle(config)
    if models is None:
        raise SlemError("no trained models: a data scientist can train them on the Models tab")
    result = analysis.forecast_view(view, models, days=days)
    table = result.forecasts
    if target and target.startswith("building:"):
        building = target.split(":", 1)[1]
        part = table[table[S.BUILDING] == building]
        summed = part.groupby(S.TIMESTAMP, as_index=False)[["expected_power_w", "lower_w", "upper_w"]].sum()
        peaks = result.building_peaks[result.building_peaks[S.BUILDING] == building]
        title = (
            f"{scope_words(target)}: next {days} days, {_total(summed)} kWh expected "
            "[kWh per hour] (band: zone bands added up)"
        )
        return charts.forecast_chart(summed, title), _peaks_shown(peaks, S.BUILDING)
    zone = target or (view.zones[0] if view.zones else "")
    if zone not in view.zones:
        raise SlemError(f"no zone {zone!r} in this run")
    part = table[table[S.ZONE_ID] == zone]
    peaks = result.zone_peaks[result.zone_peaks[S.ZONE_ID] == zone]
    title = f"Zone {zone}: next {days} days, {_total(part)} kWh expected [kWh per hour]"
    return charts.forecast_chart(part, title), _peaks_shown(peaks, S.ZONE_ID)


def occupancy_for(
    config: AppConfig, username: str | None, target: str | None, days: int = 7
) -> tuple[go.Figure, pd.DataFrame]:
    """The expected occupancy of a zone or a building (``"building:HQ"``) over the next ``days`` and its
    peak occupancy hours. A zone's is the forecaster's on-probability per hour (the chance it is in use);
    a building's the share of its zones (those the user may see) expected in use."""
    view = require(view_of(config, username))
    models = champion_bundle(config)
    if models is None:
        raise SlemError("no trained models: a data scientist can train them on the Models tab")
    table = analysis.forecast_view(view, models, days=days).forecasts
    if target and target.startswith("building:"):
        part = table[table[S.BUILDING] == target.split(":", 1)[1]]
        peaks = occupancy_peaks(part)[1]
        per_hour = building_occupancy(part)
        zones = int(per_hour["zones"].max()) if len(per_hour) else 0
        what = f"share of its {zones} zones in use"
        title = f"{scope_words(target)}: expected occupancy, next {days} days ({what})"
        return charts.occupancy_chart(per_hour, peaks, title), _occupancy_shown(peaks, S.BUILDING)
    zone = target or (view.zones[0] if view.zones else "")
    if zone not in view.zones:
        raise SlemError(f"no zone {zone!r} in this run")
    part = table[table[S.ZONE_ID] == zone].assign(expected_occupancy=lambda t: t["p_on"])
    peaks = occupancy_peaks(part)[0]
    title = f"Zone {zone}: expected occupancy, next {days} days (the chance it is in use)"
    return charts.occupancy_chart(part, peaks, title), _occupancy_shown(peaks, S.ZONE_ID)


def models_overview(config: AppConfig, username: str | None) -> tuple[str, pd.DataFrame]:
    """The champion's figures (markdown) and the latest training runs in the MLflow store."""

    user_of(config, username)
    models = champion_bundle(config)
    if models is None:
        champion = "**No champion yet.** A data scientist can train one below."
    else:
        m = models.manifest.get("metrics", {})
        champion = (
            f"**Champion: {models.version}** ({models.manifest.get('strategy', '')}) — backtest WAPE "
            f"{m.get('model_wape', float('nan')):.3f} vs seasonal-naive "
            f"{m.get('seasonal_naive_wape', float('nan')):.3f}; 80 % interval coverage "
            f"{m.get('coverage', float('nan')):.2f}; Brier {m.get('brier', float('nan')):.3f}; trained on "
            f"readings up to {str(models.manifest.get('trained_to', '?'))[:10]}."
        )
    return champion, for_people(training_runs(config.tracking_uri), _RUNS_SHOWN)


def retrain(config: AppConfig, username: str | None, progress: Progress = no_progress) -> str:
    """Train on the latest run's readings, log to MLflow, promote if better (data scientists, admins)."""
    # lazy: MLflow and the training stack, for retraining only
    from slem_ml.run.train_job import CannotTrainError, train_file

    view = require(view_of(config, username))
    if not role_allows(view.user, "retrain") or view.user.client_id is not None:
        raise SlemError(f"{view.user.name} ({view.user.role}) may not retrain models")
    source = run_input(view.folder)
    if source is None:
        raise SlemError("the latest run's readings are not kept by the app: upload them first")
    try:
        outcome = train_file(
            source,
            view.site,
            tracking_uri=config.tracking_uri,
            models_dir=config.models_dir,
            progress=progress,
        ).outcome
    except CannotTrainError as exc:  # named by the file the user uploaded, not the app's copy of it
        raise SlemError(f"cannot train on {view.run.source}: {exc.reason}") from None
    return f"MLflow run {outcome.run_id}, registered version {outcome.version}: {outcome.reason}"


# --- helpers ------------------------------------------------------------------------------------------


#: The validation report of a run, as the Upload tab offers it (markdown).
VALIDATION_REPORT = "validation_report.md"
_CLEANING_SHOWN = (
    "zone_id", "building", "floor", "start", "end", "minutes", "excess_minutes", "wasted_kwh", "savings",
    "inferred",
)  # fmt: skip
_RANKING_SHOWN = ("building", "floor", "sessions", "excess_hours", "wasted_kwh", "savings")
_RUNS_SHOWN = (
    "started (UTC)", "run_id", "strategy", "rows", "zones", "trained_to", "model_wape",
    "seasonal_naive_wape", "coverage", "brier", "promotion",
)  # fmt: skip
_UPLOAD_SHOWN = ("run", "uploaded (UTC)", "by", "file", "readings in", "added", "corrected", "quarantined")


def _total(forecasts: pd.DataFrame) -> str:
    """The forecast's energy over its hours [kWh]: each hour's mean power [W] × 1 h / 1000."""
    return kwh_text([forecasts["expected_power_w"].astype(float).sum() / 1000.0])[0]


def _occupancy_shown(peaks: pd.DataFrame, key: str) -> pd.DataFrame:
    """Peak occupancy hours for people: the chance of use [%] (and a building's zones expected in use)."""
    out = for_people(peaks, (key, "rank", "timestamp"))
    chance = peaks["expected_occupancy"].to_numpy(dtype=float)
    out["Expected occupancy [%]"] = [f"{v * 100:.0f}" for v in chance]
    if "expected_occupied_zones" in peaks:
        zones = peaks["expected_occupied_zones"].to_numpy(dtype=float)
        out["Zones in use expected"] = [f"{v:,.1f}" for v in zones]
    return out


def _peaks_shown(peaks: pd.DataFrame, key: str) -> pd.DataFrame:
    """Peak hours for people: the hour's mean power [W] and its energy [kWh] side by side."""
    kwh = peaks.assign(expected_kwh=peaks["expected_power_w"].astype(float) / 1000.0)
    return for_people(kwh, (key, "rank", "timestamp", "expected_kwh", "expected_power_w"))


def _uploads(config: AppConfig, view: RunView) -> pd.DataFrame:
    """The upload history: every stored run, newest first (a client sees none: runs bill every client)."""
    columns = list(_UPLOAD_SHOWN)
    if view.user.client_id is not None:
        return for_people(pd.DataFrame(columns=columns), columns)
    engine = open_database(config.database_url)
    try:
        runs = upload_history(engine)
    finally:
        engine.dispose()
    rows = [
        [r.run_id, f"{r.created_at:%Y-%m-%d %H:%M}", r.actor, r.source, r.rows_in,
         "" if r.readings_added is None else r.readings_added,
         "" if r.readings_corrected is None else r.readings_corrected, r.rows_quarantined]
        for r in runs
    ]  # fmt: skip
    return for_people(pd.DataFrame(rows, columns=columns), columns)


def _notes(view: RunView) -> str:
    summary = view.folder / OUTPUT_FILES["summary"]
    if not summary.exists() or view.user.client_id is not None:  # the notes name zones and clients
        return ""
    return validation_markdown(json.loads(summary.read_text(encoding="utf-8")))


def run_file(config: AppConfig, username: str | None, path: Path) -> Path:
    """``path``, one of a run's files that :attr:`Dashboard.downloads` offered, if ``username`` may still
    have it now: a manager or admin who sees every client (the files hold every client's rows)."""
    user = user_of(config, username)
    if not role_allows(user, "upload") or user.client_id is not None:
        raise SlemError(f"{user.name} ({user.role}) may not download a run's files")
    inside = path.resolve().is_relative_to(config.runs_dir.resolve())
    if not inside or not path.is_file():
        raise SlemError(f"{path.name} is no longer kept: reload the page")
    return path


def _downloads(view: RunView) -> list[Path]:
    """The latest run's CSVs (invoices, lines, cleaning sessions, alerts, quarantine) and its validation
    report, to managers and admins who see every client; nobody else (the files hold every client's rows)."""
    if not role_allows(view.user, "upload") or view.user.client_id is not None:
        return []
    kinds = ("invoices", "invoice_lines", "cleaning_sessions", "alerts", "quarantine")
    files = [
        view.folder / OUTPUT_FILES[kind] for kind in kinds if (view.folder / OUTPUT_FILES[kind]).exists()
    ]
    summary = view.folder / OUTPUT_FILES["summary"]
    report = view.folder / VALIDATION_REPORT
    if summary.exists() and not report.exists():  # written once per run, whole
        text = validation_markdown(json.loads(summary.read_text(encoding="utf-8")))
        with atomic_path(report) as staging:
            staging.write_text(text + "\n", encoding="utf-8")
    return files + ([report] if report.exists() else [])
