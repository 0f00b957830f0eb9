"""Write everything ``slem score`` produces into one output folder (SPEC §7).

The folder gets ``scored_readings.parquet``, ``invoice_lines.csv``, ``invoices.csv``,
``cleaning_sessions.csv``, ``alerts.csv``, ``quarantine.csv``, ``summary.json`` and ``invoices/INV-….html``.
Writing is all or nothing, and a kill at any moment leaves one run's files or the next's, never a mix:
every file is written into a hidden staging folder beside ``out_dir``, synced to disk, moved into
``out_dir/.versions/`` as a complete version, and installed by one atomic switch (each name in ``out_dir`` is
a link into the installed version: :class:`slem_ml.atomic.VersionedFolder`). With a database the version
is complete before the run is committed and installed after (:mod:`slem_ml.run.pipeline`); its name says
which stored run it belongs to (:class:`RunLabel`), so that the sweep at the next start
(:meth:`OutputFolder.recover`) installs the files of a run that was stored just before a kill and removes
everything else a kill left. Files of ours that the new run does not produce (an old month's invoice) go;
files that are not ours stay.

Cell formats: ``start``/``end`` and alert times are ISO 8601 with the site's UTC offset
(``2025-02-10T18:00:00+01:00``), ``date`` is ``YYYY-MM-DD``, Decimals are written exactly as stored
(2 dp money, 6 dp kWh), minutes with at most 3 decimals, booleans ``true``/``false``. Every CSV goes
through :func:`slem_ml.outputs.csvsafe.write_csv`, so a cell a spreadsheet would run as a formula is escaped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from slem_ml import forked
from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io import schema
from slem_ml.outputs.csvsafe import write_csv
from slem_ml.outputs.formatting import (
    format_alerts,
    format_cleaning_sessions,
    format_invoice_lines,
    format_invoices,
    format_quarantine,
)
from slem_ml.outputs.invoice_render import collector_paused, start_invoice_files, start_invoice_files_of
from slem_ml.outputs.summary import build_summary
from slem_ml.outputs.targets import OutputFolder, OutputTarget, RunLabel
from slem_ml.scoring.result import ScoringResult

__all__ = [
    "INVOICE_DIR",
    "OUTPUT_FILES",
    "OUTPUT_NAMES",
    "Staging",
    "check_writable",
    "output_stage",
    "output_target",
    "staged_outputs",
    "write_invoice_export",
    "write_invoice_files",
    "write_readings",
    "write_outputs",
]

#: The files of one run, by what they hold.
OUTPUT_FILES: dict[str, str] = {
    "scored_readings": "scored_readings.parquet",
    "invoice_lines": "invoice_lines.csv",
    "invoices": "invoices.csv",
    "cleaning_sessions": "cleaning_sessions.csv",
    "alerts": "alerts.csv",
    "quarantine": "quarantine.csv",
    "summary": "summary.json",
}
#: Sub-folder with one printable invoice per invoice; replaced as a whole on every run.
INVOICE_DIR = "invoices"

# --- the output folder ---------------------------------------------------------------------------

#: The names of ``out_dir`` that are slem's: replaced together on every run, the rest left alone.
OUTPUT_NAMES: tuple[str, ...] = (*OUTPUT_FILES.values(), INVOICE_DIR)


def output_target(out: str | Path | OutputTarget) -> OutputTarget:
    """``out`` as a target: a path is an :class:`~slem_ml.outputs.targets.OutputFolder` (``slem score
    --out DIR``); a target (the app's run folder) is itself."""
    if isinstance(out, str | Path):
        return OutputFolder(out, OUTPUT_NAMES)
    return out


def write_outputs(result: ScoringResult, out_dir: str | Path) -> dict[str, Path]:
    """Write all outputs of ``result`` into ``out_dir`` (created if needed), all or nothing.

    Returns the written files by their path relative to ``out_dir`` (``"invoice_lines.csv"``,
    ``"invoices/INV-C001-202502.html"``, …). Raises :class:`SlemError` when ``out_dir`` is not a folder.
    """
    with staged_outputs(result, out_dir) as staging:
        pass
    return staging.written


class Staging:
    """Outputs written into a hidden folder, not yet visible where they will be read.

    :meth:`start_readings` may write ``scored_readings.parquet`` on a thread while the caller works on
    (it needs only the scored readings, not the invoices); :meth:`write` writes the rest and waits for it;
    :meth:`seal` makes them complete and durable, named after the stored run.
    """

    def __init__(self, target: OutputTarget, folder: Path, standby: forked.Standby | None = None) -> None:
        self.target, self.folder, self.standby = target, folder, standby
        self.names: list[str] = []
        self.sealed = False
        self.run: RunLabel | None = None
        self._readings: threading.Thread | None = None
        self._failed: list[BaseException] = []

    def start_readings(self, result: ScoringResult) -> None:
        """Start writing the scored readings (pyarrow releases the GIL while it encodes and compresses)."""

        def work() -> None:
            try:
                _write_readings_file(result, self.folder)
            except BaseException as exc:  # raised again by write()
                self._failed.append(exc)

        self._readings = threading.Thread(target=work, name="slem-readings-writer")
        self._readings.start()

    def write(self, result: ScoringResult) -> None:
        """Write every output of ``result`` (the readings too, unless :meth:`start_readings` did)."""
        if self._readings is None:
            _write_readings_file(result, self.folder)
        else:
            self._readings.join()  # before the PDFs fork: a fork needs a single thread
            self._readings = None
            if self._failed:
                raise self._failed[0]
        self.names = _write_all(result, self.folder, self.standby)

    def seal(self, run: RunLabel | None) -> None:
        """Sync the written files and set them aside as ``run``'s (None: no database), ready to install;
        call it last before the commit. From then on a failure leaves them to the next start's sweep, which
        installs them if the run was committed after all."""
        self.target.seal(self.folder, run)
        self.sealed, self.run = True, run

    def abandon(self) -> None:
        if self._readings is not None:
            self._readings.join()

    @property
    def out_dir(self) -> Path:
        return self.target.out_dir

    @property
    def written(self) -> dict[str, Path]:
        return {name: self.target.out_dir / name for name in self.names}


def write_invoice_export(
    invoices: pd.DataFrame,
    lines: pd.DataFrame,
    site: SiteConfig,
    out_dir: str | Path,
    service_periods: dict[str, tuple[dt.date, dt.date]] | None = None,
) -> list[Path]:
    """``invoices.csv``, ``invoice_lines.csv`` and the printable invoices of a month as the store holds it
    (``slem invoices export``, SPEC §8.7), installed in ``out_dir`` together; the folder's other files of
    slem stay as they were."""
    target = OutputFolder(out_dir, OUTPUT_NAMES)
    with target.scratch("writing") as folder:
        printable = write_invoice_files(invoices, lines, site, folder, service_periods)
        target.carry(folder)
        target.seal(folder, None)
        try:
            target.install()
        except BaseException:
            target.discard()
            raise
    names = [OUTPUT_FILES["invoices"], OUTPUT_FILES["invoice_lines"], *printable]
    return [target.out_dir / name for name in names]


def write_invoice_files(
    invoices: pd.DataFrame,
    lines: pd.DataFrame,
    site: SiteConfig,
    folder: Path,
    service_periods: dict[str, tuple[dt.date, dt.date]] | None = None,
) -> list[str]:
    """Write ``invoices.csv``, ``invoice_lines.csv`` and ``invoices/…`` (HTML and PDF) straight into
    ``folder`` (a staging folder: nothing here is atomic); returns the printable invoices' relative paths."""
    finish = start_invoice_files_of(
        invoices, lines, site, folder, service_periods=service_periods, write_lines=False
    )
    write_csv(  # a chunk at a time: one invoice may have a million lines; summarised invoices' too
        lines,
        folder / OUTPUT_FILES["invoice_lines"],
        formatter=lambda part: format_invoice_lines(part, site),
        parts=finish.lines_files,
    )
    write_csv(format_invoices(invoices, site), folder / OUTPUT_FILES["invoices"])
    return [p.relative_to(folder).as_posix() for p in finish()]


def check_writable(out_dir: str | Path) -> None:
    """Refuse, before any work, an output folder that cannot be written (SPEC §6: exit 2, nothing written).

    Probes the folder, or its nearest existing ancestor, by making and removing a temporary folder there.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SlemError(f"--out {out_dir}: exists and is not a folder")
    place = out_dir.absolute()
    while not place.exists():
        place = place.parent
    if not place.is_dir():
        raise SlemError(f"--out {out_dir}: {place} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".slem-probe-", dir=place))
    except OSError as exc:
        raise SlemError(f"--out {out_dir}: cannot write in {place} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def staged_outputs(
    result: ScoringResult, out: str | Path | OutputTarget, standby: forked.Standby | None = None
) -> Iterator[Staging]:
    """Write every output into a staging folder; they are installed when the block ends without an error,
    and discarded otherwise (so a failure elsewhere leaves the previous outputs in place).
    ``standby``: the child that writes the PDFs (:func:`~slem_ml.outputs.invoice_render.pdf_standby`)."""
    with output_stage(out, standby) as staging:
        staging.write(result)
        yield staging


@contextlib.contextmanager
def output_stage(out: str | Path | OutputTarget, standby: forked.Standby | None = None) -> Iterator[Staging]:
    """A staging folder for the outputs: the caller writes them (:meth:`Staging.write`) and may seal them
    (:meth:`Staging.seal`, before its commit); they are installed when the block ends without an error
    (sealed without a run first if the caller did not), and discarded otherwise — unless sealed for a run
    already: whether that run was committed is then the next start's sweep to find (``recover``)."""
    target = output_target(out)
    with target.scratch("writing") as folder:
        staging = Staging(target, folder, standby)
        try:
            yield staging
        finally:
            staging.abandon()
        try:
            if not staging.sealed:
                staging.seal(None)
            target.install()
        except BaseException:
            if staging.run is None:
                target.discard()
            raise


def _write_readings_file(result: ScoringResult, folder: Path) -> None:
    if result.readings.parts is not None:  # scored in batches: the parts become a Parquet folder
        shutil.move(result.readings.parts, folder / OUTPUT_FILES["scored_readings"])
    else:
        write_readings(result.readings.frame, result.site, folder / OUTPUT_FILES["scored_readings"])


def _write_all(result: ScoringResult, folder: Path, standby: forked.Standby | None) -> list[str]:
    with collector_paused():  # ~1 s of full collections over the scoring run's objects otherwise
        return _write_files(result, folder, standby)


def _write_files(result: ScoringResult, folder: Path, standby: forked.Standby | None) -> list[str]:
    site = result.site
    # PDFs now, on the other core; the summarised invoices' lines files below, with invoice_lines.csv
    finish_invoices = start_invoice_files(result, folder, standby=standby, write_lines=False)
    # formatted a chunk of rows at a time: a month may have a million lines (bounded memory, issue 15)
    write_csv(
        result.invoice_lines,
        folder / OUTPUT_FILES["invoice_lines"],
        formatter=lambda part: format_invoice_lines(part, site),
        parts=finish_invoices.lines_files,
    )
    write_csv(format_invoices(result.invoices, site), folder / OUTPUT_FILES["invoices"])
    write_csv(
        result.cleaning_sessions,
        folder / OUTPUT_FILES["cleaning_sessions"],
        formatter=lambda part: format_cleaning_sessions(part, site),
    )
    write_csv(format_alerts(result.alerts, site), folder / OUTPUT_FILES["alerts"])
    write_csv(format_quarantine(result.quarantine), folder / OUTPUT_FILES["quarantine"])
    summary = json.dumps(build_summary(result), indent=2, ensure_ascii=False, default=_json_default)
    (folder / OUTPUT_FILES["summary"]).write_text(summary + "\n", encoding="utf-8")
    invoices = finish_invoices()  # folder/invoices exists even when there are no invoices
    return [*OUTPUT_FILES.values(), *(p.relative_to(folder).as_posix() for p in invoices)]


def write_readings(readings: pd.DataFrame, site: SiteConfig, path: Path) -> None:
    """Scored readings with canonical columns first; instants tz-aware in the site timezone.

    Ids are written as dictionary columns with int32 indices whatever their count, so that the parts of a
    run scored in batches share one schema."""
    first = [
        *schema.REQUIRED_COLUMNS,
        *schema.OPTIONAL_COLUMNS,
        schema.IN_CONTRACT,
        schema.IS_ON,
        schema.USAGE_CLASS,
        schema.COVERED_MINUTES,
        schema.EXPECTED_POWER_W,
        schema.ANOMALY_SCORE,
        schema.IS_ANOMALY,
        schema.BILLED_POWER_W,
    ]
    order = [c for c in first if c in readings.columns]
    order += [c for c in readings.columns if c not in order]
    frame = readings.loc[:, order]  # copy-on-write: the columns are not copied
    local = {
        column: frame[column].dt.tz_convert(site.site.timezone)
        for column in frame.columns
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype)
    }
    pq.write_table(_arrow_table(frame.assign(**local)), path)


def _arrow_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table, categoricals as dictionaries with int32 indices (one schema for every
    batch's part, whatever its number of zones)."""
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy().astype(np.int32)
            categories = values.cat.categories
            kind = None if len(categories) else pa.string()  # an empty batch: still text ids, not nulls
            columns[str(name)] = pa.DictionaryArray.from_arrays(
                pa.array(codes, mask=codes < 0), pa.array(categories.to_numpy(), type=kind)
            )
        elif isinstance(values.dtype, pd.DatetimeTZDtype):  # UTC instants, shown in the column's zone
            utc = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
            columns[str(name)] = pa.array(utc, pa.timestamp(values.dtype.unit, str(values.dtype.tz)))
        elif isinstance(values.dtype, np.dtype):
            columns[str(name)] = pa.array(values.to_numpy())
        else:  # other extension arrays (nullable booleans, strings) convert themselves
            columns[str(name)] = pa.array(values.array)
    return pa.table(columns)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
