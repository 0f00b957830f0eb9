"""The command line as a user meets it: exit codes, one-line errors, nothing written on refusal (SPEC §6)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from slem_ml.config import SAMPLE_CONTRACTS

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "legacy_sample.csv"
CONTRACTS = SAMPLE_CONTRACTS

needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is not on this machine")


def slem(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``slem ARGS`` in ``cwd``; its store ``cwd/slem.db`` unless ``--db`` says otherwise."""
    env = {
        **os.environ,
        "SLEM_DATABASE_URL": f"sqlite:///{cwd / 'slem.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "slem_ml", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lines_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@needs_sample
def test_score_legacy_sample_hand_checked_client_day(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = slem("score", str(SAMPLE), "--contracts", str(CONTRACTS), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    rows = [
        r
        for r in lines_of(out / "invoice_lines.csv")
        if r["zone_id"] == "Manufacturing-F1-Z2" and r["date"] == "2025-01-30"
    ]
    # C004 (06:00-22:00, 12.50/h, 0.20/kWh, block 15, max_gap 60), readings of that zone that day:
    # 05:03 25 W → covers 05:03-05:15 (next reading): 25 W × 12 min = 5 Wh
    # 05:15 28 W → covers 05:15-06:15 (max gap), cut at opening 06:00: 28 W × 45 min = 21 Wh overtime
    #   session 05:03-06:00 = 57 min → 60 billable → 12.50; 26 Wh = 0.026 kWh × 0.20 = 0.0052 → 0.01
    # 21:06 41 W → covers 21:06-22:06 (no later reading that day), overtime from 22:00: 6 min
    #   → 15 billable → 15/60 × 12.50 = 3.125 → 3.13 (half up); 41 W × 6 min = 4.1 Wh → 0.00082 → 0.00
    assert [(r["start"], r["end"], r["minutes"], r["billable_minutes"]) for r in rows] == [
        ("2025-01-30T05:03:00+01:00", "2025-01-30T06:00:00+01:00", "57.000", "60"),
        ("2025-01-30T22:00:00+01:00", "2025-01-30T22:06:00+01:00", "6.000", "15"),
    ]
    assert [(r["energy_kwh"], r["hours_charge"], r["energy_charge"], r["amount"]) for r in rows] == [
        ("0.026000", "12.50", "0.01", "12.51"),
        ("0.004100", "3.13", "0.00", "3.13"),
    ]
    invoices = {r["invoice_id"]: r for r in lines_of(out / "invoices.csv")}
    c004 = [r for r in lines_of(out / "invoice_lines.csv") if r["invoice_id"] == "INV-C004-202501"]
    assert Decimal(invoices["INV-C004-202501"]["total"]) == sum(Decimal(r["amount"]) for r in c004)
    assert not any(r["client_id"] == "C005" for r in lines_of(out / "invoice_lines.csv"))  # 24/7
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_in"] == 2500
    assert summary["rows_in"] == (
        summary["rows_scored"] + summary["rows_quarantined"] + summary["rows_duplicate"]
    )
    assert (out / "invoices" / "INV-C004-202501.html").is_file()

    again = slem("score", str(SAMPLE), "--contracts", str(CONTRACTS), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "identical run already stored" in again.stdout
    assert {r["invoice_id"]: r for r in lines_of(out / "invoices.csv")} == invoices


def test_generate_then_score_periodic(tmp_path: Path) -> None:
    data = tmp_path / "readings.csv"
    made = slem("generate", "--out", str(data), "--days", "3", "--zones", "4", "--seed", "1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    done = slem("score", str(data), "--contracts", str(CONTRACTS), "--out", "res", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "rows in" in done.stdout and "results:" in done.stdout
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["rows_scored"] > 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"Timestamp,Room_ID,Client_ID,Powr_Usage_W\n2025-01-30 05:01:00,HQ-F1-Z1,C001,17\n", "Powr_Usage_W"),
        (b"Timestamp,Room_ID,Client_ID,Power_Usage_W\n", "no readings"),
        (b"Timestamp,Room_ID,Client_ID,Power_Usage_W\n2025-01-30 05:01:00,HQ-F1-Z1,X9,17\n", "X9"),
    ],
)
def test_unusable_file_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "in.csv"
    bad.write_bytes(content)
    before = set(tmp_path.iterdir())
    done = slem("score", str(bad), "--contracts", str(CONTRACTS), "--out", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1 and expected in message
    assert set(tmp_path.iterdir()) == before  # no out/, no slem.db


def test_bad_contracts_exit_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "contracts.yaml"
    config.write_text("clients:\n  C001: {hours: {mon-fry: '08:00-18:00'}}\n")
    done = slem("validate", str(tmp_path / "none.csv"), "--contracts", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "clients.C001.hours.mon-fry" in done.stderr
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = slem("score", "x.csv", cwd=tmp_path)
    assert done.returncode == 2
    assert "--contracts" in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_prints_report_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text(
        "timestamp,zone_id,client_id,power_w\n"
        "2025-02-03T07:00:00+01:00,HQ-F1-Z1,C001,50\n"
        "2025-02-03T07:05:00+01:00,HQ-F1-Z1,C001,-4\n"
        "2025-02-03T07:05:00+01:00,HQ-F1-Z1,C001,-4\n"
        "2025-02-03T07:10:00+01:00,HQ-F1-Z1,C001,50\n"
        "2025-02-03T07:10:00+01:00,HQ-F1-Z1,C001,50\n"
    )
    before = set(tmp_path.iterdir())
    done = slem("validate", str(data), "--contracts", str(CONTRACTS), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"quarantined\s+2\n", done.stdout)
    assert re.search(r"duplicates\s+1\n", done.stdout)
    assert "negative power_w" in done.stdout
    assert set(tmp_path.iterdir()) == before


def test_out_that_is_a_file_exits_2_without_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should go")
    data = tmp_path / "in.csv"
    data.write_text("timestamp,zone_id,client_id,power_w\n2025-02-03T19:00:00+01:00,HQ-F1-Z1,C001,50\n")
    done = slem("score", str(data), "--contracts", str(CONTRACTS), "--out", str(blocker), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --out {blocker}: exists and is not a folder"
    assert not (tmp_path / "slem.db").exists()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"slem_cli_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"local PostgreSQL server not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_score_stores_in_postgresql_once_and_revises_on_change(tmp_path: Path, postgres_url: str) -> None:
    data = tmp_path / "in.csv"
    rows = ["timestamp,zone_id,client_id,power_w"]
    rows += [f"2025-02-03T{h:02d}:{m:02d}:00+01:00,HQ-F1-Z1,C001,80" for h in (18, 19) for m in (0, 30)]
    data.write_text("\n".join(rows) + "\n")
    args = ["score", str(data), "--contracts", str(CONTRACTS), "--out", "out", "--db", postgres_url]
    first = slem(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "new run" in first.stdout and "rev 1" in first.stdout
    again = slem(*args, cwd=tmp_path)
    assert "identical run already stored" in again.stdout
    data.write_text(data.read_text().replace(",80\n", ",160\n", 1))  # one reading draws more
    changed = slem(*args, cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "INV-C001-202502    rev 2" in changed.stdout
    invoices = lines_of(tmp_path / "out" / "invoices.csv")
    assert [r["revision"] for r in invoices] == ["2"]


def test_unreachable_database_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text("timestamp,zone_id,client_id,power_w\n2025-02-03T19:00:00+01:00,HQ-F1-Z1,C001,50\n")
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    done = slem("score", str(data), "--contracts", str(CONTRACTS), "--out", "out", "--db", url, cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot open database" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["file/out", "/proc/slem-out"])
def test_unwritable_out_exits_2_before_anything_is_stored(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("a file where a folder should be")
    data = tmp_path / "in.csv"
    data.write_text("timestamp,zone_id,client_id,power_w\n2025-02-03T19:00:00+01:00,HQ-F1-Z1,C001,50\n")
    out = where if where.startswith("/") else str(tmp_path / where)
    done = slem("score", str(data), "--contracts", str(CONTRACTS), "--out", out, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: --out") and "Traceback" not in done.stderr
    assert not (tmp_path / "slem.db").exists()  # refused before the database was touched
