"""``slem ingest`` (SPEC §9): the live MQTT worker."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from slem_ml.cli.models import DEFAULT_MODELS_DIR, Db, ModelsDir, TrackingUri
from slem_ml.config import SAMPLE_CONTRACTS

__all__ = ["ingest", "simulate"]


def ingest(
    mqtt: Annotated[str, typer.Option(help="The broker: mqtt://HOST[:PORT].")] = "mqtt://127.0.0.1:1883",
    topic: Annotated[str, typer.Option(help="Topic filter of the readings.")] = "slem/readings/#",
    contracts: Annotated[Path, typer.Option(help="The site's contracts (and leases:).")] = SAMPLE_CONTRACTS,
    db: Db = None,
    share: Annotated[
        str | None,
        typer.Option(help="Share the subscription with other workers of this group ($share/GROUP/…)."),
    ] = None,
    client_id: Annotated[
        str, typer.Option(help="MQTT client id: the broker keeps this worker's session under it.")
    ] = "slem-ingest",
    batch: Annotated[int, typer.Option(min=1, help="Most messages stored in one transaction.")] = 5_000,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
    tracking_uri: TrackingUri = None,
) -> None:
    """Store live readings from an MQTT broker until stopped (SIGTERM or Ctrl-C); bad messages are
    quarantined, never fatal. The live detectors raise alerts and publish them on slem/alerts/<zone_id>;
    spike and drift need a champion model (`slem train`)."""
    # lazy: the command's own imports keep `slem --help` fast (no NumPy, pandas, SQLAlchemy or paho)
    import numpy as np

    # lazy: as above
    from slem_ml.config.site import load_site
    from slem_ml.live.watch import LiveWatch
    from slem_ml.live.worker import IngestWorker, parse_broker, stop_on_signals
    from slem_ml.models.registry import find_champion
    from slem_ml.storage import database_url, open_database

    broker = parse_broker(mqtt)
    site = load_site(contracts)
    engine = open_database(database_url(db))
    champion = find_champion(tracking_uri, models_dir, required=False)
    watch = LiveWatch(site, champion.bundle)
    if watch.off:
        typer.echo(
            f"ingest: {' and '.join(watch.off)} detectors off ({champion.source}); stuck_on and dropout run",
            err=True,
        )
    else:
        typer.echo(f"ingest: all four detectors on, models from {champion.source}", err=True)
    stop = threading.Event()
    stop_on_signals(stop)
    worker = IngestWorker(
        broker, engine, site, topic=topic, share=share, client_id=client_id, batch_messages=batch,
        watch=watch, log=lambda line: typer.echo(line, err=True),
    )  # fmt: skip
    try:
        totals = worker.run(stop)
    finally:
        engine.dispose()
    lag = ""
    if totals.lags_ms:
        p50, p95 = (float(q) for q in np.percentile(totals.lags_ms, [50, 95]))
        lag = f"; arrival to commit: lag p50 {p50:.0f} ms, p95 {p95:.0f} ms"
    typer.echo(
        f"ingest: stopped after {totals.messages:,} messages: {totals.accepted:,} readings stored, "
        f"{totals.duplicates:,} duplicates, {totals.corrected:,} corrected, "
        f"{totals.quarantined:,} quarantined, {totals.alerts:,} alerts raised or resolved{lag}"
    )


def simulate(
    mqtt: Annotated[str, typer.Option(help="The broker: mqtt://HOST[:PORT].")] = "mqtt://127.0.0.1:1883",
    contracts: Annotated[Path, typer.Option(help="The site's contracts.")] = SAMPLE_CONTRACTS,
    zones: Annotated[int, typer.Option(min=1, max=5_000, help="Zones of the simulated building.")] = 40,
    step_minutes: Annotated[int, typer.Option(min=1, max=60, help="Minutes between a zone's readings.")] = 1,
    speed: Annotated[
        float, typer.Option(min=1, help="How much faster than real time the past hours go.")
    ] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of the generated building.")] = 7,
) -> None:
    """Publish a generated building's readings of today to the broker: the hours already past at SPEED
    times real time, then live, until the day ends or Ctrl-C (a demo feed for `slem ingest`)."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, SQLAlchemy or paho)
    from slem_ml.config.site import load_site
    from slem_ml.live.simulate import simulate as run
    from slem_ml.live.worker import parse_broker, stop_on_signals

    broker, site = parse_broker(mqtt), load_site(contracts)
    stop = threading.Event()
    stop_on_signals(stop)
    run(broker, site, stop, zones=zones, step_minutes=step_minutes, speed=speed, seed=seed,
        log=lambda line: typer.echo(line, err=True))  # fmt: skip
