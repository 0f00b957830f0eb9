"""``slem backup`` and ``slem restore`` (SPEC §11): thin adapters over :mod:`slem_ml.run.backup_job`.

Encryption is not optional: ``--recipient`` (age public keys) or ``--passphrase-env`` (the *name* of an
environment variable that holds the passphrase, so that the passphrase never appears in ``ps`` or a shell
history). Registered on :data:`slem_ml.cli.main.app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slem_ml.cli.models import DEFAULT_MODELS_DIR, Db, ModelsDir, TrackingUri
from slem_ml.cli.progress import ProgressLine
from slem_ml.errors import SlemError

if TYPE_CHECKING:
    from slem_ml.run.backup_crypto import BackupKey

__all__ = ["backup", "restore"]

PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        metavar="VARIABLE",
        help="Name of the environment variable that holds the passphrase (the passphrase itself never goes "
        "on the command line).",
    ),
]


def backup(
    out: Annotated[Path, typer.Option(help="The archive to write: created owner-only, appears whole.")],
    recipient: Annotated[
        list[str] | None,
        typer.Option(metavar="AGE1…", help="An age public key (age1…) to encrypt to; repeat for several."),
    ] = None,
    passphrase_env: PassphraseEnv = None,
    db: Db = None,
    tracking_uri: TrackingUri = None,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
) -> None:
    """Write one encrypted archive of the database, the MLflow store and the exported models."""
    # lazy: the command's own imports keep `slem --help` fast (no pyarrow, SQLAlchemy or pyrage)
    from slem_ml.run.backup_crypto import BackupKey
    from slem_ml.run.backup_job import SlemPlaces
    from slem_ml.run.backup_job import backup as make_backup
    from slem_ml.storage import database_url

    if recipient and passphrase_env:
        raise SlemError("give --recipient or --passphrase-env, not both")
    if not recipient and not passphrase_env:
        raise SlemError(
            "a backup is always encrypted: give --recipient AGE_PUBLIC_KEY or --passphrase-env VARIABLE"
        )
    key = BackupKey.for_recipients(recipient) if recipient else _passphrase(passphrase_env)
    url = database_url(db)
    done = make_backup(out, key, SlemPlaces(url, tracking_uri, models_dir), progress=ProgressLine())
    manifest = done.manifest
    tables = manifest["tables"]
    typer.echo(f"slem backup — {out} ({_size(done.size_bytes)}, {key.described})")
    typer.echo(
        f"  database: {_safe_url(url)} (schema {manifest['schema_revision']}): {len(tables)} tables, "
        f"{sum(t['rows'] for t in tables.values()):,} rows, {manifest['readings']:,} readings"
    )
    typer.echo(f"  MLflow store: {manifest['mlflow_note']}")
    models = manifest["models"]
    typer.echo(
        f"  models: {models['files']} files from {models_dir}/"
        if models
        else f"  models: none in {models_dir}/"
    )
    typer.echo(f"  took {done.seconds:.1f} s")


def restore(
    archive: Annotated[Path, typer.Argument(help="The archive `slem backup` wrote.")],
    identity: Annotated[
        Path | None, typer.Option(help="The age key file (AGE-SECRET-KEY-1… lines) that opens the archive.")
    ] = None,
    passphrase_env: PassphraseEnv = None,
    db: Db = None,
    tracking_uri: TrackingUri = None,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
) -> None:
    """Restore an archive into an empty database (SQLite or PostgreSQL), MLflow store and models folder."""
    # lazy: the command's own imports keep `slem --help` fast (no pyarrow, SQLAlchemy or pyrage)
    from slem_ml.run.backup_crypto import read_identities
    from slem_ml.run.backup_job import SlemPlaces
    from slem_ml.run.backup_job import restore as run_restore
    from slem_ml.storage import database_url

    if identity and passphrase_env:
        raise SlemError("give --identity or --passphrase-env, not both")
    if not identity and not passphrase_env:
        raise SlemError("the archive is encrypted: give --identity KEYFILE or --passphrase-env VARIABLE")
    key = read_identities(identity) if identity else _passphrase(passphrase_env)
    url = database_url(db)
    done = run_restore(archive, key, SlemPlaces(url, tracking_uri, models_dir), progress=ProgressLine())
    manifest = done.manifest
    typer.echo(
        f"slem restore — {archive} (made {manifest['created_at']} by slem {manifest['slem_version']}, "
        f"schema {manifest['schema_revision']})"
    )
    typer.echo(
        f"  database: {_safe_url(url)}: {len(done.rows)} tables, {sum(done.rows.values()):,} rows, "
        f"{manifest['readings']:,} readings; every count matches the manifest"
    )
    if done.mlflow_db is not None:
        typer.echo(
            f"  MLflow store: {done.mlflow_db}, artifacts in {done.mlflow_db.resolve().parent / 'mlruns'}/"
        )
    else:
        typer.echo("  MLflow store: none in the archive")
    typer.echo(f"  models: {done.models_dir}/" if done.models_dir else "  models: none in the archive")
    typer.echo(f"  took {done.seconds:.1f} s")


def _passphrase(variable: str | None) -> BackupKey:
    from slem_ml.run.backup_crypto import BackupKey  # lazy: pyrage only for the commands that use it

    assert variable is not None
    value = os.environ.get(variable)
    if value is None:
        raise SlemError(f"--passphrase-env {variable}: no such environment variable is set")
    if not value:
        raise SlemError(f"--passphrase-env {variable}: the variable is empty")
    return BackupKey.for_passphrase(value)


def _size(n: int) -> str:
    """A byte count in words: ``812 B``, ``3.4 MB``, ``1.2 GB`` (decimal units)."""
    if n < 1000:
        return f"{n} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < scale * 1000 or unit == "GB":
            return f"{n / scale:,.1f} {unit}"
    raise AssertionError("unreachable")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url  # lazy: SQLAlchemy only once the command runs

    return make_url(url).render_as_string(hide_password=True)
