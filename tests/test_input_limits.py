"""Bad input said clearly, nothing stored (issue 15 item 7, SPEC §1 and §6).

A file with no usable row is refused (exit 2, one line) and leaves the store and the output folder as they
were; a reading stamped more than a day ahead of now is quarantined with its reason, in a file and in the
live stream; columns slem does not know are listed in the validation report; a database another slem holds
locked is said to be locked, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import func, select

from slem_ml.app.workspace import AppConfig
from slem_ml.app.workspace import upload as app_upload
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.config.site import load_site
from slem_ml.errors import InputError, SlemError
from slem_ml.io.reader import FUTURE, read_readings, validate_frame
from slem_ml.io.readings import Note, NoteKind
from slem_ml.live.batch import store_messages
from slem_ml.live.payloads import Message
from slem_ml.models.registry import Champion
from slem_ml.outputs.summary import report_facts
from slem_ml.outputs.validation_text import validation_lines, validation_markdown
from slem_ml.run.pipeline import RunSettings, score_file
from slem_ml.storage import StorageError, open_database
from slem_ml.storage.database import LOCKED, write_session
from slem_ml.storage.tables import ReadingBlock, ScoreRun
from slem_ml.storage.users import User
from tests.databases import PG_HOST
from tests.test_cli import slem as run_slem

SITE = load_site(SAMPLE_CONTRACTS)  # Europe/Berlin; C001 mon-fri 08:00-18:00
HEADER = ["Timestamp", "Room_ID", "Client_ID", "Power_Usage_W"]
#: Four readings of one zone on Monday 2025-02-03 (local), lit 18:00-19:00: overtime for C001.
GOOD = [
    ["2025-02-03 17:45", "HQ-F1-Z1", "C001", "40"],
    ["2025-02-03 18:00", "HQ-F1-Z1", "C001", "40"],
    ["2025-02-03 18:30", "HQ-F1-Z1", "C001", "40"],
    ["2025-02-03 19:00", "HQ-F1-Z1", "C001", "0"],
]
#: Three rows, none usable: a negative power, an unknown client, an unparseable timestamp.
BAD = [
    ["2025-02-03 18:00", "HQ-F1-Z1", "C001", "-5"],
    ["2025-02-03 18:15", "HQ-F1-Z1", "C999", "40"],
    ["yesterday", "HQ-F1-Z1", "C001", "40"],
]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def no_models() -> Champion:
    return Champion(None, "no champion in this test")


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time [ns]."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def store_counts(url: str) -> tuple[int, int]:
    """(runs stored, readings stored)."""
    engine = open_database(url)
    try:
        with engine.connect() as connection:
            runs = connection.execute(select(func.count()).select_from(ScoreRun)).scalar_one()
            readings = connection.execute(select(func.coalesce(func.sum(ReadingBlock.n), 0))).scalar_one()
    finally:
        engine.dispose()
    return int(runs), int(readings)


# --- (a) no usable row: exit 2, one line, nothing stored ---------------------------------------------------


def test_a_file_with_no_usable_row_exits_2_and_changes_neither_store_nor_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    good = write_csv(tmp_path / "good.csv", GOOD)
    first = run_slem(
        "score", str(good), "--contracts", str(SAMPLE_CONTRACTS), "--out", str(out), cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    assert store_counts(url) == (1, 4)
    before = folder_state(out)

    bad = write_csv(tmp_path / "bad.csv", BAD)
    done = run_slem("score", str(bad), "--contracts", str(SAMPLE_CONTRACTS), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "error: bad.csv: no usable row, all 3 quarantined (1 negative power_w; 1 unknown client_id 'C999' "
        "(not in contracts); 1 unparseable timestamp); nothing stored (`slem validate` lists every reason)"
    ]
    assert "Traceback" not in done.stdout
    assert store_counts(url) == (1, 4)  # no run, no reading
    assert folder_state(out) == before  # the previous run's files, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv", "out", "slem.db"] + sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith("slem.db-")
    )  # no staging folder left behind


def test_a_file_scored_in_batches_with_no_usable_row_is_refused_too(tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", BAD)
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    with pytest.raises(InputError, match=r"^bad.csv: no usable row, all 3 quarantined \(1 "):
        score_file(
            bad, SITE, out=tmp_path / "out", database_url=url, models=no_models,
            settings=RunSettings(batch_rows=1),
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no database, no folder


def test_the_apps_upload_refuses_a_file_with_no_usable_row_in_the_same_words(tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", BAD)
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    config = AppConfig(
        database_url=url,
        contracts=SAMPLE_CONTRACTS,
        models_dir=tmp_path / "models",
        runs_dir=tmp_path / "runs",
    )
    manager = User("mgr", "manager", None, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(SlemError) as refused:
        app_upload(config, manager, bad)
    assert str(refused.value).startswith("bad.csv: no usable row, all 3 quarantined (")
    assert store_counts(url) == (0, 0)
    assert list((tmp_path / "runs").iterdir()) == []  # the upload's staging folder is gone


# --- (b) timestamps in the future ------------------------------------------------------------------------


NOW = dt.datetime(2025, 2, 3, 12, 0, tzinfo=dt.UTC)  # 13:00 in Berlin; a day later: 2025-02-04 13:00 local


def test_a_reading_more_than_a_day_after_now_is_quarantined_with_its_reason() -> None:
    frame = pd.DataFrame(
        {
            "Timestamp": [
                "2025-02-03 18:00",  # before now: kept
                "2025-02-04 12:59",  # 23 h 59 min after now: kept (a clock a little ahead)
                "2025-02-04 13:01",  # 24 h 1 min after now
                "2025-02-04T12:01:00Z",  # the same, with an offset
                "2099-12-31 23:00",  # a year typo still within the engine's range
                "2200-02-03 19:00",  # out of range: that reason stands
            ],
            "Room_ID": ["HQ-F1-Z1"] * 6,
            "Client_ID": ["C001"] * 6,
            "Power_Usage_W": [40.0] * 6,
        }
    )
    readings = validate_frame(frame, SITE, now=NOW)
    assert readings.quarantine[["line", "reason"]].values.tolist() == [
        [4, FUTURE],
        [5, FUTURE],
        [6, FUTURE],
        [7, "timestamp out of range (before 1990 or after 2099)"],
    ]
    assert FUTURE == "timestamp is more than a day in the future"
    assert readings.report.reasons == {FUTURE: 3, "timestamp out of range (before 1990 or after 2099)": 1}
    assert readings.report.rows_valid == 2
    assert readings.frame["line"].tolist() == [2, 3]
    # a week later lines 4 and 5 are then the same reading (13:01 local = 12:01Z)
    later = validate_frame(frame, SITE, now=NOW + dt.timedelta(days=7)).report
    assert (later.rows_valid, later.rows_duplicate, later.rows_quarantined) == (
        3,
        1,
        2,
    )  # 2099 is still ahead


def test_a_file_with_a_reading_in_2090_is_scored_without_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", [*GOOD, ["2090-02-03 18:15", "HQ-F1-Z1", "C001", "900"]])
    done = score_file(path, SITE, out=tmp_path / "out", database_url=None, models=no_models)
    assert done.result.report.reasons == {FUTURE: 1}
    with (tmp_path / "out" / "quarantine.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["reason"], r["Timestamp"]) for r in rows] == [("6", FUTURE, "2090-02-03 18:15")]
    assert sorted(done.result.invoices["period"]) == ["2025-02"]  # nothing billed in 2090


def test_a_live_reading_more_than_a_day_ahead_of_its_arrival_is_quarantined_with_the_same_reason(
    tmp_path: Path,
) -> None:
    arrived = dt.datetime(2025, 2, 3, 12, 0, tzinfo=dt.UTC)
    body = [
        {"timestamp": "2025-02-03T11:59:00Z", "zone_id": "HQ-F1-Z1", "client_id": "C001", "power_w": 40.0},
        {"timestamp": "2025-02-04T12:01:00Z", "zone_id": "HQ-F1-Z1", "client_id": "C001", "power_w": 40.0},
    ]
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        with write_session(engine) as session:
            done = store_messages(
                session.connection(), SITE, [Message("slem/readings", json.dumps(body).encode(), arrived)],
                sources=["mqtt:t"], source="t", actor="ingest",
            )  # fmt: skip
    finally:
        engine.dispose()
    assert done.accepted == 1
    assert done.quarantined == [(0, 1, FUTURE)]


# --- (c) extra columns are listed -------------------------------------------------------------------------


EXTRA_NOTE = Note(NoteKind.EXTRA_COLUMNS, "columns not used (not in slem's schema): 'Temperature', 'Comment'")


def test_extra_columns_are_listed_in_the_validation_report(tmp_path: Path) -> None:
    header = ["Timestamp", "Temperature", "Room_ID", "Client_ID", "Power_Usage_W", "Comment"]
    rows = [[r[0], "21.5", r[1], r[2], r[3], "ok"] for r in GOOD]
    path = write_csv(tmp_path / "r.csv", rows, header)
    readings = read_readings(path, SITE)
    assert EXTRA_NOTE in readings.report.notes
    facts = report_facts(readings.report, SITE.site.timezone)
    assert f"  note: {EXTRA_NOTE.text}" in validation_lines(facts)
    assert f"- {EXTRA_NOTE.text}" in validation_markdown(facts).splitlines()

    frame = pd.read_csv(path)
    frame.to_parquet(tmp_path / "r.parquet")
    assert EXTRA_NOTE in read_readings(tmp_path / "r.parquet", SITE).report.notes
    assert EXTRA_NOTE in validate_frame(frame, SITE).report.notes
    plain = validate_frame(frame.drop(columns=["Temperature", "Comment"]), SITE)
    assert not [n for n in plain.report.notes if n.kind == NoteKind.EXTRA_COLUMNS]


def test_the_extra_columns_reach_summary_json_and_the_score_screen(tmp_path: Path) -> None:
    header = ["Timestamp", "Room_ID", "Client_ID", "Power_Usage_W", "Humidity"]
    path = write_csv(tmp_path / "r.csv", [[*r, "40"] for r in GOOD], header)
    done = run_slem(
        "score", str(path), "--contracts", str(SAMPLE_CONTRACTS), "--out", "out", "--db", "none", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    text = "columns not used (not in slem's schema): 'Humidity'"
    assert f"  note: {text}" in done.stdout.splitlines()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert text in summary["notes"]
    pd.read_csv(path).to_parquet(tmp_path / "r.parquet")
    for source in (path, tmp_path / "r.parquet"):  # scored in batches, the same note
        out = tmp_path / f"batched-{source.suffix[1:]}"
        batched = RunSettings(batch_rows=1)
        score_file(source, SITE, out=out, database_url=None, models=no_models, settings=batched)
        assert text in json.loads((out / "summary.json").read_text())["notes"]


# --- (d) a locked database is said to be locked -----------------------------------------------------------


def test_a_sqlite_database_held_by_another_writer_says_it_is_locked(tmp_path: Path) -> None:
    database = tmp_path / "slem.db"
    open_database(f"sqlite:///{database}").dispose()  # slem's schema, WAL
    path = write_csv(tmp_path / "good.csv", GOOD)
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another writer, mid-transaction
        done = run_slem(
            "score", str(path), "--contracts", str(SAMPLE_CONTRACTS), "--out", "out",
            "--db", f"sqlite:///{database}?timeout=0.5", cwd=tmp_path,
        )  # fmt: skip
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"error: sqlite:///{database}?timeout=0.5: {LOCKED}"]
    assert not (tmp_path / "out").exists()
    assert store_counts(f"sqlite:///{database}") == (0, 0)


def test_a_new_sqlite_database_locked_while_slem_creates_its_schema_says_so(tmp_path: Path) -> None:
    database = tmp_path / "other.db"
    other = sqlite3.connect(database, isolation_level=None)  # a rollback-journal file, not yet slem's
    try:
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError) as refused:
            open_database(f"sqlite:///{database}?timeout=0.2")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert str(refused.value) == f"sqlite:///{database}?timeout=0.2: {LOCKED}"
    assert "cannot create or upgrade" not in str(refused.value)


@pytest.fixture
def pg_schema(pg_database: str) -> Iterator[tuple[str, str]]:
    """A fresh schema in the session's PostgreSQL database: (database, schema)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"postgresql://{PG_HOST}/{pg_database}", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield pg_database, schema
    with psycopg.connect(f"postgresql://{PG_HOST}/{pg_database}", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.postgres
def test_a_postgresql_database_locked_past_the_lock_timeout_says_so(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    database, schema = pg_schema
    plain = f"postgresql+psycopg://{PG_HOST}/{database}?options=-csearch_path%3D{schema}"
    url = f"{plain}%20-clock_timeout%3D300"
    open_database(plain).dispose()
    path = write_csv(tmp_path / "good.csv", GOOD)
    shown = f"postgresql+psycopg://{PG_HOST}/{database}?options=-csearch_path%3D{schema}+-clock_timeout%3D300"
    with psycopg.connect(f"postgresql://{PG_HOST}/{database}") as other:
        # another slem mid-store holds the write lock: storing waits for it, then gives up in words
        other.execute("SELECT pg_advisory_lock(%s)", [0x736C656D_0001])
        with pytest.raises(StorageError) as refused:
            score_file(path, SITE, out=tmp_path / "out", database_url=url, models=no_models)
        other.execute("SELECT pg_advisory_unlock(%s)", [0x736C656D_0001])
        assert str(refused.value).endswith(f": {LOCKED}"), refused.value
        assert not (tmp_path / "out").exists()
        # a table held ACCESS EXCLUSIVE (a migration or a restore running): opening says so too
        other.execute(
            sql.SQL("LOCK TABLE {}.slem_alembic_version IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(schema)
            )
        )
        with pytest.raises(StorageError) as opened:
            open_database(url)
        other.rollback()
    assert str(opened.value).endswith(f": {LOCKED}"), opened.value
    assert "cannot create or upgrade" not in str(opened.value)
    assert str(refused.value).split(": ")[0] in (shown, url)
    assert store_counts(plain) == (0, 0)
