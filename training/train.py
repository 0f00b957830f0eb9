"""Training entry point for the data team: ``slem train`` with the hyperparameters exposed.

    .venv/bin/python training/train.py READINGS --contracts C [--tracking-uri U] \
        [--strategy global|per_zone|both] [--n-estimators 100] [--learning-rate 0.15] [--num-leaves 63] \
        [--backtest-days 14] [--jobs 0]

It runs the same job as ``slem train`` — :func:`slem_ml.run.train_job.train_file`: read, fit every model,
log to MLflow — so every run lands in the same MLflow store, is registered,
and takes the ``champion`` alias only when it beats the current champion on the same backtest weeks. Compare
runs in the MLflow UI: ``.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slem_ml.cli.main import run_app
from slem_ml.errors import SlemError


def main(
    readings: Annotated[Path, typer.Argument(help="CSV or Parquet file of readings (≥ 21 days).")],
    contracts: Annotated[
        Path, typer.Option(help="Site configuration (the sample's: slem_ml/data/contracts.yaml).")
    ],
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    models_dir: Annotated[Path, typer.Option(help="Where the champion is exported.")] = Path("models"),
    strategy: Annotated[str, typer.Option(help="global, per_zone or both (the backtest decides).")] = "both",
    n_estimators: Annotated[int, typer.Option(min=10, help="Trees of the point model.")] = 100,
    learning_rate: Annotated[float, typer.Option(min=0.001, max=1.0, help="LightGBM learning rate.")] = 0.15,
    num_leaves: Annotated[int, typer.Option(min=2, help="Leaves per tree.")] = 63,
    backtest_days: Annotated[int, typer.Option(min=7, help="Days of rolling-origin backtest.")] = 14,
    jobs: Annotated[int, typer.Option(min=0, help="Models fitted at once (0: one per core).")] = 0,
) -> None:
    """Train with the given settings and log the run to MLflow (see the module docstring)."""
    # lazy: keeps `--help` free of scikit-learn, LightGBM and MLflow
    from slem_ml.config.site import load_site
    from slem_ml.models.training import TrainingConfig
    from slem_ml.run.train_job import train_file

    strategies = {"both": ("global", "per_zone"), "global": ("global",), "per_zone": ("per_zone",)}
    if strategy not in strategies:
        raise SlemError(f"--strategy must be global, per_zone or both, not {strategy!r}")
    site = load_site(contracts)
    config = TrainingConfig(
        strategies=strategies[strategy],
        backtest_days=backtest_days,
        forecaster={
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "n_jobs": jobs or None,
        },
    )
    done = train_file(readings, site, tracking_uri=tracking_uri, models_dir=models_dir, config=config)
    run, outcome = done.run, done.outcome
    metrics = run.backtest.metrics
    typer.echo(f"{run.strategy_reason}")
    typer.echo(
        f"backtest WAPE {metrics['model_wape']:.3f} (seasonal-naive {metrics['seasonal_naive_wape']:.3f}); "
        f"MLflow run {outcome.run_id}, version {outcome.version}; champion: {outcome.reason}"
    )


if __name__ == "__main__":
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(main)
    run_app(app, None, prog_name="training/train.py")
