"""The ``slem`` command line (SPEC §6): a thin adapter that parses, calls the library and prints.

Exit codes: 0 success; 2 unusable input, configuration or arguments (one line on stderr, nothing written);
1 unexpected failure (one line on stderr; the traceback goes to a log file, never to the screen).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from slem_ml.cli.backup import backup, restore
from slem_ml.cli.invoices import invoices_app
from slem_ml.cli.live import ingest, simulate
from slem_ml.cli.models import DEFAULT_MODELS_DIR, ModelsDir, TrackingUri, forecast, train, warn_password
from slem_ml.cli.progress import ProgressLine, clear_progress_line
from slem_ml.cli.reports import report
from slem_ml.cli.serve import serve
from slem_ml.cli.tokens import tokens_app
from slem_ml.cli.users import users_app
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.errors import SlemError

if TYPE_CHECKING:
    from slem_ml.run.pipeline import ScoredFile

__all__ = ["app", "main", "run_app"]

app = typer.Typer(
    name="slem",
    help="Smart Light & Energy Management: overtime invoices, cleaning waste and lighting analytics.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class Engine(StrEnum):
    local = "local"
    dask = "dask"


class Format(StrEnum):
    periodic = "periodic"
    legacy = "legacy"


def _say(text: str = "") -> None:
    typer.echo(text)


# --- commands -----------------------------------------------------------------------------------


@app.command()
def validate(
    readings: Annotated[Path, typer.Argument(help="CSV or Parquet file of readings.")],
    contracts: Annotated[
        Path, typer.Option(help="Site configuration (default: the shipped sample contracts).")
    ] = SAMPLE_CONTRACTS,
) -> None:
    """Check a readings file and print the validation report; writes nothing."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.config.site import load_site
    from slem_ml.io.reader import read_readings
    from slem_ml.outputs.summary import report_facts
    from slem_ml.outputs.validation_text import validation_lines

    site = load_site(contracts)
    report = read_readings(readings, site).report
    facts = report_facts(report, site.site.timezone)
    # the reasons in the reader's order (most frequent first), the columns as found
    facts |= {"quarantine_reasons": dict(report.reasons), "columns": report.columns}
    for line in validation_lines(facts):
        _say(line)


@app.command()
def score(
    readings: Annotated[
        Path, typer.Argument(help="CSV or Parquet file of readings, or a folder of Parquet files.")
    ],
    contracts: Annotated[Path, typer.Option(help="Site configuration (contracts.yaml).")],
    out: Annotated[Path, typer.Option(help="Directory for the outputs (SPEC §7).")],
    engine: Annotated[
        Engine, typer.Option(help="local: this process, in batches of zones; dask: a Dask cluster.")
    ] = Engine.local,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler (tcp://HOST:8786); default a LocalCluster here.")
    ] = None,
    batch_rows: Annotated[
        int | None, typer.Option(min=10_000, help="Readings per batch (default 2,000,000).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL (default $SLEM_DATABASE_URL or sqlite:///slem.db); 'none' scores the file "
            "alone and stores nothing. Keep passwords out of it: use $SLEM_DATABASE_URL or ~/.pgpass.",
            callback=warn_password,
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
) -> None:
    """Put the readings into the store, bill the months they touch from everything stored, find cleaning
    waste, raise maintenance alerts, write every output and store the run (SPEC §7, §8.7)."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.models.registry import find_champion
    from slem_ml.outputs.invoice_render import pdf_standby

    # The child that will write the PDFs imports fpdf2 now, on the other core (a fork before any thread).
    standby = pdf_standby()
    # Loading the models is mostly importing LightGBM and scikit-learn and parsing the boosters (1-2 s):
    # start it first, beside the command's own imports, the site configuration and reading the file
    # (pyarrow, NumPy and LightGBM's parser run outside the GIL).
    loader = _Background(find_champion, tracking_uri, models_dir, required=False)
    try:
        # lazy: as above
        from slem_ml.config.site import load_site
        from slem_ml.outputs.writer import check_writable
        from slem_ml.run.pipeline import RunSettings, score_file
        from slem_ml.storage import database_url

        settings = RunSettings(engine=engine.value, scheduler=scheduler, batch_rows=batch_rows)
        check_writable(out)
        url = None if (db or "").strip().lower() == "none" else database_url(db)
        progress = ProgressLine()
        progress("config", 0.0)
        site = load_site(contracts)
        done = score_file(
            readings, site, out=out, database_url=url, models=loader.result, settings=settings,
            progress=progress, standby=standby,
        )  # fmt: skip
    finally:
        standby.close()
    _print_summary(done, out, url)


@app.command()
def generate(
    out: Annotated[
        str,
        typer.Option(
            help="Output file (.csv, .csv.gz or .parquet), or a folder ending in / (one Parquet file a day)."
        ),
    ],
    days: Annotated[int, typer.Option(min=1, max=3660, help="Number of days.")] = 31,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2025-02-01",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 0,
    format: Annotated[
        Format, typer.Option("--format", help="periodic or legacy (sparse).")
    ] = Format.periodic,
    labels: Annotated[Path | None, typer.Option(help="Where to write the ground-truth labels.")] = None,
    zones: Annotated[int, typer.Option(min=1, max=100_000, help="Number of zones.")] = 40,
    step_minutes: Annotated[int, typer.Option(min=1, max=60, help="Periodic step in minutes.")] = 5,
    faults_after: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Faults only after this fraction of the period.")
    ] = 0.0,
    contracts: Annotated[Path, typer.Option(help="Site whose clients lease the zones.")] = SAMPLE_CONTRACTS,
) -> None:
    """Write realistic sample readings with ground-truth labels (faults, cleaning, overtime)."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.config.site import load_site
    from slem_ml.generator.generate import GeneratorConfig, write_generated
    from slem_ml.generator.generate import generate as make

    try:
        first = dt.date.fromisoformat(start)
    except ValueError:
        raise SlemError(f"--start: {start!r} is not a date (YYYY-MM-DD)") from None
    config = GeneratorConfig(
        start=first,
        days=days,
        zones=zones,
        step_minutes=step_minutes,
        seed=seed,
        fmt=format.value,
        faults_after=faults_after,
        site=load_site(contracts),
    )
    clock = time.perf_counter()
    data = make(config)
    write_generated(data, out, labels)
    _say(
        f"wrote {len(data.readings):,} {format.value} readings of {zones} zones over {days} days to {out}"
        + (f" and {len(data.labels):,} labels to {labels}" if labels else "")
        + f" in {time.perf_counter() - clock:.1f} s"
    )


app.command()(train)
app.command()(forecast)
app.command()(serve)
app.command()(ingest)
app.command()(simulate)
app.command()(report)
app.command()(backup)
app.command()(restore)
app.add_typer(users_app, name="users")
app.add_typer(invoices_app, name="invoices")
app.add_typer(tokens_app, name="tokens")


# --- the end-of-run screen ----------------------------------------------------------------------


def _print_summary(done: ScoredFile, out: Path, url: str | None) -> None:
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.outputs.summary import report_facts
    from slem_ml.outputs.validation_text import validation_summary

    result, written = done.result, done.written
    report = result.report
    currency = result.site.site.currency
    _say()
    _say(f"slem score — {report.source}")
    if done.recovered:  # the sweep before the run: files of a run a kill interrupted, leftovers removed
        _say(f"  recovered: {done.recovered}")
    facts = report_facts(report, result.site.site.timezone) | {"quarantine_reasons": dict(report.reasons)}
    for line in validation_summary(facts):
        _say(line)
    invoices = result.invoices
    if invoices.empty:
        _say("  invoices: none (no overtime outside contracted hours)")
    else:
        _say(f"  invoices ({len(invoices)}):")
        for row in invoices.itertuples(index=False):
            _say(
                f"    {row.invoice_id:<18} rev {row.revision:<2} {row.lines:>5} lines "
                f"{row.billable_hours:>9} h {row.total:>12} {currency}"
            )
        total = sum(invoices["total"])
        _say(f"    {'total':<18} {'':>19} {'':>11} {total:>12} {currency}")
    sessions = result.cleaning_sessions
    flagged = sessions[sessions["flagged"].astype(bool)] if len(sessions) else sessions
    if len(flagged):
        savings = sum(flagged["savings"])
        _say(
            f"  cleaning: {len(sessions):,} sessions, {len(flagged):,} over "
            f"{result.site.cleaning.flag_after_minutes} min; savings {savings} {currency}"
        )
    else:
        _say(f"  cleaning: {len(sessions):,} sessions, none flagged")
    alerts = result.alerts
    if len(alerts):
        kinds = alerts["kind"].value_counts()
        _say(f"  alerts: {len(alerts)} ({', '.join(f'{n} {k}' for k, n in kinds.items())})")
    if result.model_versions:
        _say(f"  models: {result.model_versions.get('models', '')}")
    for note in result.all_notes:
        _say(f"  note: {note}")
    if url is None or done.upload is None:
        _say("  stored: nothing (--db none: this file's own results)")
    else:
        readings = done.upload.readings
        _say(
            f"  store: {readings.added:,} readings added, {readings.unchanged:,} already stored, "
            f"{readings.corrected:,} corrected"
            + (f", {readings.superseded:,} superseded by a later row" if readings.superseded else "")
        )
        revised = done.upload.stored.new_revisions
        if revised:
            shown = ", ".join(f"{i} rev {done.upload.stored.revisions[i]}" for i in revised[:5])
            _say(f"  new invoice revisions: {shown}{' …' if len(revised) > 5 else ''}")
        run_note = "new run" if done.created else "identical run already stored"
        _say(f"  stored: run {done.run_id} in {_safe_url(url)} ({run_note})")
    printable = sum(1 for name in written if str(name).startswith("invoices/"))
    _say(f"  results: {out}/ ({len(written) - printable} files, {printable} printable invoices in invoices/)")


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


class _Background:
    """``fn(*args, **kwargs)`` in a thread from now on; :meth:`result` waits for it and re-raises its error.

    The thread has ended once :meth:`result` returns, so later forks (the store and PDF children) copy a
    single-threaded process."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._outcome: list[Any] = []
        self._error: list[BaseException] = []

        def work() -> None:
            try:
                self._outcome.append(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller by result()
                self._error.append(exc)

        self._thread = threading.Thread(target=work, name="slem-background", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._outcome[0]


# --- entry point ----------------------------------------------------------------------------------


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: staged files are removed and an unfinished store rolls back."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors exit 2 with one line, anything unexpected exits 1 without a traceback."""
    run_app(app, argv, prog_name="slem")


def run_app(command_app: typer.Typer, argv: list[str] | None, *, prog_name: str) -> None:
    """Run a typer app with slem's exit codes (also the ``training/`` entry points' runner).

    Everything slem creates — the SQLite database, output and run folders, models, the app's upload cache —
    is its owner's only (umask 077, SPEC §11): invoices and readings are not for every account on the host.
    """
    os.umask(0o077)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        command_app(args=argv, prog_name=prog_name)  # click handles --help and usage errors (exit 2) itself
    except SystemExit as done:  # how click ends every command, successful or not
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
        # Every file is closed and every database engine disposed by now: leave without tearing down
        # the interpreter's heap, which takes 0.3 s after a million readings.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except SlemError as exc:
        clear_progress_line()
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # the last line of defence: no traceback on the user's screen
        clear_progress_line()
        log = Path(tempfile.gettempdir()) / f"slem-error-{os.getpid()}.log"
        log.write_text(traceback.format_exc(), encoding="utf-8")
        typer.echo(f"unexpected error: {type(exc).__name__}: {exc} (details in {log})", err=True)
        sys.exit(1)
