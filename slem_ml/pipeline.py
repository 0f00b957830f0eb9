"""A readings file in, every output written and the run stored: what ``slem score`` and the app's upload do.

:func:`score_file` is the one way to run the whole job (SPEC §6–§7): read and validate, score with the
champion models when there are any, write the output folder and store the run in one transaction — a run is
never stored without its files, and a failure leaves the previous outputs in place. The store runs in a
forked child while the files are written where that is safe (:func:`slem_ml.forked.can_fork`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slem_ml.bundle import ModelBundle
from slem_ml.contracts import SiteConfig
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
) -> ScoredFile:
    """Score the readings in ``path`` and write ``out`` and the database (``database_url``).

    ``models`` is called once the file has been read (the CLI loads them in a thread meanwhile). Progress
    goes to ``progress(stage, fraction 0..1)``. Raises :class:`~slem_ml.errors.SlemError` for unusable
    input, output folder or database, before anything is written.
    """
    from slem_ml.outputs import check_writable, staged_outputs
    from slem_ml.reader import read_readings
    from slem_ml.scoring import score
    from slem_ml.storage import open_database, with_revisions
    from slem_ml.storage.background import planned_revisions, start_store

    check_writable(out)
    progress("reading", 0.05)
    clock = time.perf_counter()
    validated = read_readings(path, site)
    read_s = time.perf_counter() - clock

    def scoring_progress(stage: str, fraction: float) -> None:
        progress(stage, 0.3 + 0.4 * min(fraction, 0.99))

    progress("models", 0.25)
    bundle, source = models()
    result = score(validated, site, models=bundle, progress=scoring_progress)
    if bundle is None:
        result.notes = (
            *result.notes,
            f"scored without models ({source.split(';')[0]}): no expected power, spike checks or alerts; "
            "`slem train READINGS` fits them",
        )
    result.timings = {"read_s": read_s, **result.timings}
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
