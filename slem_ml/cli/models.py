"""``slem train`` and ``slem forecast`` (SPEC §6), and the options every model-using command shares.

Registered on :data:`slem_ml.cli.main.app`; thin adapters like the rest of the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from slem_ml.cli.progress import ProgressLine
from slem_ml.errors import SlemError

__all__ = [
    "DEFAULT_MODELS_DIR",
    "PASSWORD_IN_ARGV_WARNING",
    "Db",
    "ModelsDir",
    "TrackingUri",
    "forecast",
    "train",
]

DEFAULT_MODELS_DIR = "models"
TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)."),
]
ModelsDir = Annotated[Path, typer.Option(help="Exported champion bundle (joblib + manifest.json).")]
PASSWORD_IN_ARGV_WARNING = (
    "warning: the password in --db is visible to every user of this machine (ps, /proc); set "
    "SLEM_DATABASE_URL instead, or leave the password out of the URL and keep it in a PostgreSQL "
    "password file (~/.pgpass or $PGPASSFILE, mode 0600)"
)


def warn_password(url: str | None) -> str | None:
    """``--db``'s callback: a URL with a password in it works, with a warning (SPEC §11)."""
    if url and "://" in url:
        credentials = url.split("://", 1)[1].split("@", 1)
        if len(credentials) == 2 and ":" in credentials[0]:
            typer.echo(PASSWORD_IN_ARGV_WARNING, err=True)
    return url


Db = Annotated[
    str | None,
    typer.Option(
        help="Database URL (default $SLEM_DATABASE_URL or sqlite:///slem.db). Keep passwords out of it: "
        "use $SLEM_DATABASE_URL or ~/.pgpass.",
        callback=warn_password,
    ),
]


def train(
    readings: Annotated[Path, typer.Argument(help="CSV or Parquet file of readings (weeks of history).")],
    contracts: Annotated[
        Path, typer.Option(help="Site configuration (the sample's: slem_ml/data/contracts.yaml).")
    ],
    tracking_uri: TrackingUri = None,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
    if_no_champion: Annotated[
        bool, typer.Option("--if-no-champion", help="Train only when no champion can be loaded.")
    ] = False,
) -> None:
    """Fit every model, log the run to MLflow, promote a champion if it is better, export it."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, scikit-learn or LightGBM)
    from slem_ml.config.site import load_site
    from slem_ml.models.registry import find_champion
    from slem_ml.run.train_job import train_file

    site = load_site(contracts)
    if if_no_champion:
        champion = find_champion(tracking_uri, models_dir, required=False)
        if champion.bundle is not None:
            typer.echo(f"slem train — a champion is already in place ({champion.source}); nothing trained")
            return
    clock = time.perf_counter()
    done = train_file(
        readings, site, tracking_uri=tracking_uri, models_dir=models_dir, progress=ProgressLine()
    )
    run, outcome, report = done.run, done.outcome, done.report
    m = run.backtest.metrics
    typer.echo(f"slem train — {report.source}: {report.rows_valid:,} readings")
    typer.echo(f"  strategy: {run.strategy_reason}")
    days = 7 * max(1, round(run.backtest.forecasts["hour_start"].dt.floor("D").nunique() / 7))
    typer.echo(
        f"  backtest (last {days} days): WAPE {m['model_wape']:.3f} vs seasonal-naive "
        f"{m['seasonal_naive_wape']:.3f}, 4-week median {m['how_median_4w_wape']:.3f} and 12-week profile "
        f"{m['profile_wape']:.3f}; 80 % interval coverage {m['coverage']:.2f} (lit hours "
        f"{m['coverage_lit']:.2f}, dark {m['coverage_dark']:.2f}); Brier {m['brier']:.3f}"
    )
    typer.echo(
        f"  building totals: CV(RMSE) {m['building_model_cv_rmse']:.3f}, NMBE {m['building_model_nmbe']:+.3f}"
    )
    typer.echo(
        f"  session classifier: {'fitted' if run.bundle.sessions is not None else 'none (no cleaning flag)'}"
    )
    typer.echo(f"  MLflow run {outcome.run_id}, registered version {outcome.version}")
    typer.echo(f"  champion: {outcome.reason}")
    if outcome.exported_to is not None:
        typer.echo(f"  exported to {outcome.exported_to}/")
    typer.echo(f"  took {time.perf_counter() - clock:.1f} s")


def forecast(
    readings: Annotated[Path, typer.Argument(help="CSV or Parquet file of recent readings.")],
    contracts: Annotated[Path, typer.Option(help="Site configuration.")],
    out: Annotated[Path, typer.Option(help="Directory for forecasts.csv, occupancy.csv and the peak hours.")],
    days: Annotated[int, typer.Option(min=1, max=366, help="Days to forecast after the last reading.")] = 7,
    tracking_uri: TrackingUri = None,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
) -> None:
    """Hourly forecasts per zone after the end of the readings, with the peak hours per zone and building
    and the expected occupancy (the on-probability) per zone-hour with its peak hours."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.config.site import load_site
    from slem_ml.io.reader import read_readings
    from slem_ml.models.forecast import forecast as make_forecast
    from slem_ml.models.registry import find_champion
    from slem_ml.outputs.forecast_outputs import write_forecast
    from slem_ml.outputs.writer import check_writable

    check_writable(out)
    site = load_site(contracts)
    champion = find_champion(tracking_uri, models_dir, required=True)
    bundle, source = champion.bundle, champion.source
    assert bundle is not None
    validated = read_readings(readings, site)
    if validated.report.rows_valid == 0:
        raise SlemError(f"{readings}: no valid readings to forecast from")
    result = make_forecast(validated, site, bundle.forecaster, days=days)
    written = write_forecast(result, out, site)
    table = result.forecasts
    typer.echo(f"slem forecast — {validated.report.source}, models from {source}")
    typer.echo(
        f"  {table['zone_id'].nunique()} zones × {days * 24} hours from "
        f"{table['timestamp'].min().isoformat()} to {table['timestamp'].max().isoformat()}"
    )
    for row in result.building_peaks[result.building_peaks["rank"] == 1].itertuples(index=False):
        typer.echo(f"  peak {row.building}: {row.timestamp.isoformat()} at {row.expected_power_w:,.0f} W")
    busiest = result.building_occupancy_peaks
    for row in busiest[busiest["rank"] == 1].itertuples(index=False):
        typer.echo(
            f"  peak occupancy {row.building}: {row.timestamp.isoformat()}, "
            f"{row.expected_occupied_zones:,.1f} zones in use expected ({row.expected_occupancy:.0%})"
        )
    if result.unknown_zones:
        typer.echo(
            f"  note: {len(result.unknown_zones)} zone(s) new to the models, forecast from floor and building"
        )
    typer.echo(f"  results: {out}/ ({', '.join(p.name for p in written.values())})")


def cli_actor() -> str:
    """Who the audit log names for a change made at the command line: ``cli:<login>``."""
    import getpass  # lazy: only commands that change something name their user

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
