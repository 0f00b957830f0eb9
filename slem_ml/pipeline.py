"""A readings file in, every output written and the run stored: what ``slem score`` and the app's upload do.

:func:`score_file` is the one way to run the whole job (SPEC §6–§7): read and validate, score with the
champion models when there are any, write the output folder and store the run in one transaction — a run is
never stored without its files, and a failure leaves the previous outputs in place. The store runs in a
forked child while the files are written where that is safe (:func:`slem_ml.forked.can_fork`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slem_ml.bundle import ModelBundle
from slem_ml.contracts import SiteConfig
from slem_ml.errors import InputError, SlemError
from slem_ml.result import ScoringResult
from slem_ml.scoring import Progress, no_progress

__all__ = ["ModelsLoader", "ScoredFile", "score_file"]

#: Returns the champion bundle (or None) and where it came from / why there is none.
ModelsLoader = Callable[[], tuple[ModelBundle | None, str]]


@dataclass(frozen=True)
class ScoredFile:
    """The result of :func:`score_file`: the scoring result (revisions applied), the stored run, the files."""

    result: ScoringResult
    run_id: int
    created: bool  # False: the identical run was already stored
    written: dict[str, Path]  # output name -> path


def score_file(
    path: str | Path,
    site: SiteConfig,
    *,
    out: str | Path,
    database_url: str,
    models: ModelsLoader,
    actor: str = "slem",
    progress: Progress = no_progress,
    engine: str = "local",
    scheduler: str | None = None,
    batch_rows: int | None = None,
) -> ScoredFile:
    """Score the readings in ``path`` (a CSV or Parquet file, or a folder of Parquet files) and write
    ``out`` and the database (``database_url``).

    ``engine="local"`` scores an input of up to ``batch_rows`` readings (default
    :data:`slem_ml.batches.BATCH_ROWS`) in one piece and a larger one (or a folder) batch by batch, so that
    memory stays bounded; ``engine="dask"`` scores the batches on a Dask cluster (``scheduler`` address, or
    a LocalCluster on this machine) with the same results (:mod:`slem_ml.engine`). ``models`` is called
    once the input has been read (the CLI loads them in a thread meanwhile). Progress goes to
    ``progress(stage, fraction 0..1)``. Raises :class:`~slem_ml.errors.SlemError` for unusable input,
    output folder or database, before anything is written.
    """
    from slem_ml.batches import BATCH_ROWS, input_rows
    from slem_ml.outputs import check_writable

    if engine not in ("local", "dask"):
        raise SlemError(f"engine {engine!r}: use 'local' or 'dask'")
    check_writable(out)
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    rows = batch_rows or BATCH_ROWS
    if engine == "local" and path.is_file() and input_rows(path) <= rows:
        result, bundle, source = _score_whole(path, site, models, progress)
        return _finish(
            result, bundle, source, out=out, database_url=database_url, actor=actor, progress=progress
        )
    Path(out).absolute().parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{Path(out).name}.batches-", dir=Path(out).absolute().parent))
    try:
        result, bundle, source = _score_batched(
            path, site, models, progress, scratch, rows, engine, scheduler
        )
        return _finish(
            result, bundle, source, out=out, database_url=database_url, actor=actor, progress=progress
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _score_whole(
    path: Path, site: SiteConfig, models: ModelsLoader, progress: Progress
) -> tuple[ScoringResult, ModelBundle | None, str]:
    """Read and score the input in one piece (the fastest way while it fits in memory easily)."""
    from slem_ml.reader import read_readings
    from slem_ml.scoring import score

    progress("reading", 0.05)
    clock = time.perf_counter()
    validated = read_readings(path, site)
    read_s = time.perf_counter() - clock

    def scoring_progress(stage: str, fraction: float) -> None:
        progress(stage, 0.3 + 0.4 * min(fraction, 0.99))

    progress("models", 0.25)
    bundle, source = models()
    result = score(validated, site, models=bundle, progress=scoring_progress)
    result.timings = {"read_s": read_s, **result.timings}
    return result, bundle, source


def _score_batched(
    path: Path,
    site: SiteConfig,
    models: ModelsLoader,
    progress: Progress,
    scratch: Path,
    batch_rows: int,
    engine: str,
    scheduler: str | None,
) -> tuple[ScoringResult, ModelBundle | None, str]:
    """Score the input batch by batch, here or on a Dask cluster (:mod:`slem_ml.engine`)."""
    from slem_ml.batches import input_rows
    from slem_ml.engine import dask_client, score_in_batches

    # a Dask cluster starts while the models load (the CLI's thread)
    cluster = dask_client(scheduler) if engine == "dask" else contextlib.nullcontext(None)
    with cluster as client:
        bundle, source = models()
        if client is not None:  # a batch per worker, at most batch_rows readings
            workers = max(1, len(client.scheduler_info()["workers"]))
            batch_rows = min(batch_rows, max(50_000, -(-input_rows(path) // workers)))
        result = score_in_batches(
            path, site, models=bundle, parts=scratch / "parts", spill=scratch / "spill",
            batch_rows=batch_rows, client=client, progress=progress,
        )  # fmt: skip
    return result, bundle, source


def _finish(
    result: ScoringResult,
    bundle: ModelBundle | None,
    source: str,
    *,
    out: str | Path,
    database_url: str,
    actor: str,
    progress: Progress,
) -> ScoredFile:
    """Write the outputs and store the run (one transaction), the files first."""
    from slem_ml.outputs import staged_outputs
    from slem_ml.storage import open_database, with_revisions
    from slem_ml.storage.background import planned_revisions, start_store

    if bundle is None:
        result.notes = (
            *result.notes,
            f"scored without models ({source.split(';')[0]}): no expected power, spike checks or alerts; "
            "`slem train READINGS` fits them",
        )
    progress("storing", 0.75)
    database = open_database(database_url)  # creates or upgrades the schema; a bad URL stops here
    try:
        planned = planned_revisions(database, result)
    finally:
        database.dispose()
    result.invoices = with_revisions(result.invoices, planned)
    job = start_store(database_url, result, actor=actor)  # prepared while the files are written
    try:
        progress("writing", 0.8)
        with staged_outputs(result, out) as staging:
            stored = job.commit()  # the files are staged: now the run may be committed
            if stored.revisions != planned:  # another run stored these invoices in between
                result.invoices = with_revisions(result.invoices, stored.revisions)
                staging.rewrite_invoices(result)
    finally:
        job.abandon()  # rolls the store back if anything above failed; nothing once committed
    progress("done", 1.0)
    return ScoredFile(result, stored.run_id, stored.created, staging.written)
