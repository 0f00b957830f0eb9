"""A readings file in, every output written and the run stored: what ``slem score`` and the app's upload do.

:func:`score_file` is the one way to run the whole job (SPEC §6–§7): read and validate, score with the
champion models when there are any, put its readings into the readings store and store the run with the
touched invoices as the store makes them (:mod:`slem_ml.storage.upload`), in one transaction, and write the
output folder. A run is stored together with its files or not at all, whatever moment a kill strikes
(SPEC §11): the files are written and synced as a complete set named after the run before the commit, and
installed by one atomic step after it (:mod:`slem_ml.outputs.targets`); before it writes, the job sweeps
what an earlier kill left — it installs the files of a run that was committed but not installed, and removes
the rest (:func:`recover_outputs`). A failure leaves the previous outputs and the database as they were.
Without a database (``--db none``) it is the stateless batch job: the file's own results, nothing stored. A
file with no usable row (every row quarantined) is refused as unusable (SPEC §1): nothing is written or
stored.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from slem_ml import forked
from slem_ml.config.site import SiteConfig
from slem_ml.crashpoint import crash_point
from slem_ml.errors import InputError, SlemError
from slem_ml.io.reader import read_readings
from slem_ml.io.readings import Note, NoteKind, ValidationReport
from slem_ml.models.registry import Champion
from slem_ml.outputs.invoice_render import pdf_standby
from slem_ml.outputs.targets import Committed, OutputTarget, RunLabel
from slem_ml.outputs.writer import check_writable, output_stage, output_target, staged_outputs
from slem_ml.progress import Progress, no_progress
from slem_ml.run.batched import dask_client, score_in_batches
from slem_ml.run.batches import BATCH_ROWS, input_rows
from slem_ml.scoring.result import ScoringResult
from slem_ml.scoring.score import score
from slem_ml.storage import open_database
from slem_ml.storage.database import database_locked, locked_error, write_session
from slem_ml.storage.upload import Upload, committed_runs, store_upload

__all__ = [
    "ENGINES",
    "ModelsLoader",
    "RunSettings",
    "ScoredFile",
    "recover_outputs",
    "refuse_unusable",
    "score_file",
]

#: Returns the champion (its bundle may be None: then it says why there is none); called once the input
#: has been read, so that a caller can load the models in a thread meanwhile.
ModelsLoader = Callable[[], Champion]

ENGINES = ("local", "dask")


@dataclass(frozen=True)
class RunSettings:
    """How :func:`score_file` runs the job; the defaults score on this machine.

    ``engine="local"`` scores an input of up to ``batch_rows`` readings (default
    :data:`slem_ml.run.batches.BATCH_ROWS`) in one piece and a larger one (or a folder) batch by batch, so
    that memory stays bounded; ``engine="dask"`` scores the batches on a Dask cluster (``scheduler``
    address, or a LocalCluster on this machine) with the same results (:mod:`slem_ml.run.batched`).
    """

    engine: str = "local"
    scheduler: str | None = None
    batch_rows: int | None = None
    actor: str = "slem"  # who the audit log names

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise SlemError(f"engine {self.engine!r}: use 'local' or 'dask'")
        if self.scheduler and self.engine != "dask":
            raise SlemError("--scheduler needs --engine dask")


@dataclass(frozen=True)
class ScoredFile:
    """The result of :func:`score_file`: the scoring result (revisions applied), the stored run, the files."""

    result: ScoringResult
    run_id: int | None  # None: scored without a database (``--db none``)
    created: bool  # False: the identical run was already stored
    written: dict[str, Path]  # output name -> path
    upload: Upload | None = None  # what the upload did to the readings store
    recovered: str = ""  # what the sweep before the run did (files of a killed run installed, leftovers)


def score_file(
    path: str | Path,
    site: SiteConfig,
    *,
    out: str | Path | OutputTarget,
    database_url: str | None,
    models: ModelsLoader,
    settings: RunSettings = RunSettings(),
    progress: Progress = no_progress,
    standby: forked.Standby | None = None,
) -> ScoredFile:
    """Score the readings in ``path`` (a CSV or Parquet file, or a folder of Parquet files) and write
    ``out`` and the database (``database_url``), as ``settings`` say.

    ``out`` is the output folder (``slem score --out``), or a target of another kind (the app's run folder,
    :class:`~slem_ml.outputs.targets.OutputTarget`).

    ``models`` is called once the input has been read (the CLI loads them in a thread meanwhile). Progress
    goes to ``progress(stage, fraction 0..1)``. ``standby`` writes the PDFs
    (:func:`~slem_ml.outputs.invoice_render.pdf_standby`, forked before any thread starts; the caller
    closes it); without one, one is started here if the process can still fork. Raises
    :class:`~slem_ml.errors.SlemError` for unusable input, output folder or database, before anything is
    written.
    """
    target = output_target(out)
    check_writable(target.out_dir)
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    rows = settings.batch_rows or BATCH_ROWS
    finish = functools.partial(_finish, target=target, database_url=database_url, actor=settings.actor)
    if settings.engine == "local" and path.is_file() and input_rows(path) <= rows:
        own = pdf_standby() if standby is None else None  # fpdf2 is imported there meanwhile
        try:
            scored = _Scored(*_score_whole(path, site, models, progress))
            return finish(scored, progress=progress, standby=standby or own)
        finally:
            if own is not None:
                own.close()
    with target.scratch("batches") as scratch:
        scored = _Scored(
            *_score_batched(path, site, models, progress, scratch, replace(settings, batch_rows=rows))
        )
        return finish(scored, progress=progress, standby=None)


def _score_whole(
    path: Path, site: SiteConfig, models: ModelsLoader, progress: Progress
) -> tuple[ScoringResult, Champion]:
    """Read and score the input in one piece (the fastest way while it fits in memory easily)."""
    progress("reading", 0.05)
    clock = time.perf_counter()
    validated = read_readings(path, site)
    read_s = time.perf_counter() - clock
    refuse_unusable(validated.report)  # before the models load

    def scoring_progress(stage: str, fraction: float) -> None:
        progress(stage, 0.3 + 0.4 * min(fraction, 0.99))

    progress("models", 0.25)
    champion = models()
    result = score(validated, site, models=champion.bundle, progress=scoring_progress)
    return replace(result, timings={"read_s": read_s, **result.timings}), champion


def _score_batched(
    path: Path,
    site: SiteConfig,
    models: ModelsLoader,
    progress: Progress,
    scratch: Path,
    settings: RunSettings,
) -> tuple[ScoringResult, Champion]:
    """Score the input batch by batch, here or on a Dask cluster (:mod:`slem_ml.run.batched`)."""
    batch_rows = settings.batch_rows or BATCH_ROWS
    # a Dask cluster starts while the models load (the CLI's thread)
    cluster = dask_client(settings.scheduler) if settings.engine == "dask" else contextlib.nullcontext(None)
    with cluster as client:
        champion = models()
        if client is not None:  # a batch per worker, at most batch_rows readings
            workers = max(1, len(client.scheduler_info()["workers"]))
            batch_rows = min(batch_rows, max(50_000, -(-input_rows(path) // workers)))
        result = score_in_batches(
            path, site, models=champion.bundle, parts=scratch / "parts", spill=scratch / "spill",
            batch_rows=batch_rows, client=client, progress=progress,
        )  # fmt: skip
    return result, champion


class _Scored:
    """A scored file handed to :func:`_finish`, which takes it: its caller then holds no reference to the
    result, so the file's own invoice lines (a million lines are ~1 GB of ``Decimal``s) can be freed
    when the store rebuilds the invoices (issue 15, item 6; :func:`~slem_ml.storage.upload.store_upload`
    keeps them when they are the store's)."""

    def __init__(self, result: ScoringResult, champion: Champion) -> None:
        self.result: ScoringResult | None = result
        self.champion = champion

    def take(self) -> tuple[ScoringResult, Champion]:
        result, self.result = self.result, None
        assert result is not None, "a scored file is taken once"
        return result, self.champion


def _finish(
    scored: _Scored,
    *,
    target: OutputTarget,
    database_url: str | None,
    actor: str,
    progress: Progress,
    standby: forked.Standby | None,
) -> ScoredFile:
    """Store the readings and the run (one transaction) and write the outputs: staged and sealed before
    the commit, installed after it (the PDFs by ``standby``, when given)."""
    result, champion = scored.take()
    refuse_unusable(result.report)  # a file scored in batches is judged once they are merged
    if champion.bundle is None:
        note = Note(
            NoteKind.MODELS,
            f"scored without models ({champion.source}): no expected power, spike checks or alerts; "
            "`slem train READINGS` fits them",
        )
        result = replace(result, notes=(*result.notes, note))
    if database_url is None:  # --db none: the stateless batch job
        progress("writing", 0.8)
        recovered = target.recover(None)
        with staged_outputs(result, target, standby) as staging:
            pass
        progress("done", 1.0)
        return ScoredFile(result, None, True, staging.written, None, recovered)
    progress("storing", 0.75)
    database = open_database(database_url)  # creates or upgrades the schema; a bad URL stops here
    try:
        recovered = target.recover(_committed(database))
        with output_stage(target, standby) as staging:
            with write_session(database) as session:
                if result.readings.parts is None:  # the readings file needs no invoices: write it meanwhile
                    lines = result.invoice_lines.iloc[:0]  # not the file's lines: the store may free them
                    staging.start_readings(replace(result, sessions=None, invoice_lines=lines))
                clock = time.perf_counter()
                frames, cleaning = scored_frames(result), result.cleaning_source
                given = [result]  # handed over: the upload holds the only reference and frees what it stored
                del result
                upload = store_upload(session, given.pop(), frames, cleaning=cleaning, actor=actor)
                result = replace(
                    upload.result, timings={**upload.result.timings, "store_s": time.perf_counter() - clock}
                )
                progress("writing", 0.8)
                staging.write(result)
                staging.seal(RunLabel(upload.stored.run_id, upload.stored.fingerprint))
                crash_point("before-commit")
            crash_point("after-commit")  # stored; leaving `output_stage` installs the files in one step
    except DBAPIError as exc:  # another slem holds the write lock past the lock timeout: say so
        if database_locked(exc):
            raise locked_error(database.url) from None
        raise
    finally:
        database.dispose()
    progress("done", 1.0)
    stored = upload.stored
    return ScoredFile(result, stored.run_id, stored.created, staging.written, upload, recovered)


def recover_outputs(out: str | Path | OutputTarget, database_url: str | None) -> str:
    """The sweep :func:`score_file` does before it writes, alone: install the files of a run a kill left
    committed but not installed in ``out``, remove what else killed runs left there (see
    :mod:`slem_ml.outputs.targets`). Returns a line saying what it did ("" when nothing)."""
    target = output_target(out)
    if database_url is None:
        return target.recover(None)
    database = open_database(database_url)
    try:
        return target.recover(_committed(database))
    finally:
        database.dispose()


def _committed(database: Engine) -> Committed:
    def committed(labels: list[RunLabel]) -> set[RunLabel]:
        stored = committed_runs(database, [(label.run_id, label.fingerprint) for label in labels])
        return {label for label in labels if (label.run_id, label.fingerprint) in stored}

    return committed


def refuse_unusable(report: ValidationReport) -> None:
    """Refuse an input none of whose rows can be used (SPEC §1: exit 2, nothing written), naming the most
    frequent quarantine reasons; ``slem validate`` still shows the whole report."""
    if report.rows_valid:
        return
    if not report.rows_in:
        raise InputError(f"{report.source}: no readings")
    top = sorted(report.reasons.items(), key=lambda kv: -kv[1])[:3]
    reasons = "; ".join(f"{count:,} {reason}" for reason, count in top)
    raise InputError(
        f"{report.source}: no usable row, all {report.rows_quarantined:,} quarantined ({reasons}); "
        "nothing stored (`slem validate` lists every reason)"
    )


def scored_frames(result: ScoringResult) -> Iterator[pd.DataFrame]:
    """The scored readings of ``result``: the frame, or each Parquet part of a run scored in batches."""
    if result.readings.frame is not None:
        yield result.readings.frame
        return
    if result.readings.parts is None:
        return
    for part in sorted(Path(result.readings.parts).glob("*.parquet")):
        yield pq.read_table(part).to_pandas()
