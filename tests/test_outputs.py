"""Tests for slem_ml.outputs.writer, slem_ml.outputs.csvsafe and slem_ml.outputs.summary (SPEC §7).

The ScoringResult here is built by hand (no engine): two clients, three overtime sessions over a DST change,
one cleaning session and a quarantine with formulas in it. Every expected cell is written out literally.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slem_ml.config.site import parse_site
from slem_ml.errors import SlemError
from slem_ml.io import schema
from slem_ml.io.readings import ValidationReport
from slem_ml.outputs import formatting
from slem_ml.outputs import writer as outputs
from slem_ml.outputs.csvsafe import escape_cell, escape_frame, escape_series, write_csv
from slem_ml.outputs.summary import build_summary
from slem_ml.scoring.result import ScoredReadings, ScoringResult

TZ = "Europe/Berlin"
FORMULA_ZONE = '=HYPERLINK("http://x.invalid","pay")-F1-Z1'


def _site():
    return parse_site(
        {
            "site": {"timezone": TZ, "currency": "EUR"},
            "billing": {"hourly_rate": 15, "energy_rate": 0.20, "block_minutes": 15, "grace_minutes": 5},
            "clients": {
                "C001": {"name": "Acme <script>alert(1)</script>", "hours": {"mon-fri": "08:00-18:00"}},
                "C004": {
                    "name": "+cmd|' /C calc'!A0",
                    "hours": {"mon-sun": "06:00-22:00"},
                    "hourly_rate": 12.5,
                },
                "C005": {"name": "Eastgate", "hours": "24/7"},
            },
        }
    )


def _local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_localize(TZ)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_lines() -> pd.DataFrame:
    rows = [
        # 18:05 (after 5 min grace) to 19:12:30 = 67.5 min → 75 billable; 100 W → 0.1125 kWh.
        (
            "INV-C001-202502",
            "C001",
            "HQ-F4-Z2",
            dt.date(2025, 2, 10),
            "2025-02-10 18:05",
            "2025-02-10 19:12:30",
            "67.500",
            75,
            "0.112500",
            "18.75",
            "0.02",
            "18.77",
            False,
            "0.112500",
        ),
        # Spike-adjusted: billed at expected power, metered 0.05 kWh kept beside it.
        (
            "INV-C001-202502",
            "C001",
            FORMULA_ZONE,
            dt.date(2025, 2, 11),
            "2025-02-11 20:00",
            "2025-02-11 20:10",
            "10.000",
            15,
            "0.010000",
            "3.75",
            "0.00",
            "3.75",
            True,
            "0.050000",
        ),
        # After the spring DST change: +02:00.
        (
            "INV-C004-202503",
            "C004",
            "HQ-F1-Z1",
            dt.date(2025, 3, 31),
            "2025-03-31 22:00",
            "2025-03-31 22:20",
            "20.000",
            30,
            "0.016667",
            "6.25",
            "0.00",
            "6.25",
            False,
            "0.016667",
        ),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "invoice_id",
            "client_id",
            "zone_id",
            "date",
            "start",
            "end",
            "minutes",
            "billable_minutes",
            "energy_kwh",
            "hours_charge",
            "energy_charge",
            "amount",
            "adjusted",
            "original_energy_kwh",
        ],
    )
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], format="ISO8601").dt.tz_localize(TZ).dt.as_unit("ms")
    for column in ("minutes", "energy_kwh", "hours_charge", "energy_charge", "amount", "original_energy_kwh"):
        frame[column] = frame[column].map(Decimal)
    frame["currency"] = "EUR"
    frame["status"] = "billed"
    return frame[list(schema.INVOICE_LINE_COLUMNS)]


def make_invoices() -> pd.DataFrame:
    rows = [
        (
            "INV-C001-202502",
            "C001",
            "2025-02",
            1,
            2,
            Decimal("1.50"),
            Decimal("0.122500"),
            Decimal("22.52"),
            "EUR",
            _hash("C001"),
            Decimal("0.00"),
        ),
        (
            "INV-C004-202503",
            "C004",
            "2025-03",
            1,
            1,
            Decimal("0.50"),
            Decimal("0.016667"),
            Decimal("6.25"),
            "EUR",
            _hash("C004"),
            Decimal("0.00"),
        ),
    ]
    return pd.DataFrame(rows, columns=list(schema.INVOICE_COLUMNS))


def make_cleaning() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "zone_id": ["HQ-F4-Z2"],
            "building": ["HQ"],
            "floor": [4],
            "date": [dt.date(2025, 2, 10)],
            "start": [_local("2025-02-10 19:00")],
            "end": [_local("2025-02-10 23:00")],
            "minutes": [Decimal("240.000")],
            "flagged": [True],
            "excess_minutes": [Decimal("180.000")],
            "wasted_kwh": [Decimal("0.540000")],
            "savings": [Decimal("0.11")],
            "inferred": [False],
            "client_id": ["C001"],
        }
    )


def make_alerts(rows: int = 0) -> pd.DataFrame:
    if rows == 0:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in schema.ALERT_COLUMNS})
        for column in ("detected_at", "first_seen", "last_seen"):
            frame[column] = pd.Series(dtype="datetime64[ms, UTC]")
        return frame
    when = pd.Timestamp("2025-02-10T17:00:00.250Z")
    return pd.DataFrame(
        {
            "alert_id": ["A1"],
            "zone_id": [FORMULA_ZONE],
            "kind": ["spike"],
            "severity": ["high"],
            "detected_at": [when],
            "first_seen": [when],
            "last_seen": [when],
            "score": [-3.5],
            "detail": ["-cmd expected 100 W, observed 900 W"],
        }
    )


def make_quarantine() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": [3, 7, 9],
            "reason": ["negative power", "unknown client", "empty zone"],
            "Timestamp": ["2025-02-10 18:00", "2025-02-10 18:15", "=1+1"],
            "Room_ID": ["HQ-F4-Z2", "+cmd", ""],
            "Client_ID": ["C001", "@SUM(A1)", "C001"],
            "Power_Usage_W": ["-3.5", "12", "-cmd"],
        }
    )


def make_readings() -> pd.DataFrame:
    stamps = pd.to_datetime(
        ["2025-02-10T17:00Z", "2025-02-10T17:15Z", "2025-02-10T18:05Z", "2025-02-10T18:20Z"], utc=True
    ).as_unit("ms")
    return pd.DataFrame(
        {
            "line": [2, 4, 5, 6],
            "timestamp": stamps,
            "zone_id": "HQ-F4-Z2",
            "client_id": "C001",
            "power_w": [100.0, 100.0, 0.0, 100.0],
            "cleaning_staff": [False, False, False, True],
            "building": "HQ",
            "floor": 4,
            "zone": 2,
            "in_contract": [False, False, False, False],
            "is_on": [True, True, False, True],
            "usage_class": ["overtime", "overtime", "off", "cleaning"],
            "covered_minutes": [15.0, 15.0, 15.0, 15.0],
            "expected_power_w": np.nan,
            "anomaly_score": np.nan,
            "is_anomaly": pd.array([pd.NA] * 4, dtype="boolean"),
        }
    )


def make_result(**changes) -> ScoringResult:
    report = ValidationReport(
        source="readings.csv",
        input_sha256=_hash("input"),
        file_format="csv",
        columns={"timestamp": "Timestamp"},
        rows_in=8,
        rows_valid=4,
        rows_quarantined=3,
        rows_duplicate=1,
        reasons={"negative power": 1, "unknown client": 1, "empty zone": 1},
        first_timestamp=pd.Timestamp("2025-02-10T17:00Z"),
        last_timestamp=pd.Timestamp("2025-03-31T20:20Z"),
        zones=2,
        clients=2,
    )
    fields = {
        "site": _site(),
        "readings": ScoredReadings.in_memory(make_readings()),
        "invoice_lines": make_lines(),
        "invoices": make_invoices(),
        "cleaning_sessions": make_cleaning(),
        "alerts": make_alerts(),
        "quarantine": make_quarantine(),
        "report": report,
        "timings": {"read": 0.12345, "score": 1.5},
        "model_versions": {"forecaster": "3", "anomaly": "1"},
    }
    fields.update(changes)
    return ScoringResult(**fields)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-2+3", "'-2+3"),
        ("-3.5", "-3.5"),
        ("+12", "+12"),
        ("-1e-3", "-1e-3"),
        ("-.5", "-.5"),
        ("HQ-F4-Z2", "HQ-F4-Z2"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_escape_cell(cell, expected):
    assert escape_cell(cell) == expected


def test_escape_series_matches_escape_cell_and_keeps_missing_values():
    cells = ["=1+1", "-3.5", "-x", "plain", None, "@a", "+7", "\tq"]
    escaped = escape_series(pd.Series(cells, dtype="str"))
    assert escaped.isna().tolist() == [c is None for c in cells]
    assert escaped.dropna().tolist() == [escape_cell(c) for c in cells if c is not None]


def test_numeric_and_non_text_columns_are_never_touched():
    frame = pd.DataFrame(
        {
            "power_w": [-3.5, 2.0],
            "count": [-1, 4],
            "money": [Decimal("-1.50"), Decimal("2.00")],
            "text": ["-3.5", "-cmd"],
            "mixed": pd.Series([Decimal("-1"), "=x"], dtype=object),
        }
    )
    out = escape_frame(frame)
    pd.testing.assert_series_equal(out["power_w"], frame["power_w"])
    pd.testing.assert_series_equal(out["count"], frame["count"])
    assert out["money"].tolist() == frame["money"].tolist()
    assert out["text"].tolist() == ["-3.5", "'-cmd"]
    assert out["mixed"].tolist() == [Decimal("-1"), "'=x"]
    assert frame["text"].tolist() == ["-3.5", "-cmd"]  # input not mutated


def test_categorical_text_columns_are_escaped():
    zones = pd.Series(["=1+1", "HQ-F1-Z1", "'=1+1", None], dtype="category")
    assert escape_series(zones).tolist()[:3] == ["'=1+1", "HQ-F1-Z1", "'=1+1"]
    assert pd.isna(escape_series(zones).iloc[3])
    floors = pd.Series([-1, 2], dtype="category")
    assert escape_series(floors) is floors


def test_write_csv_escapes_headers_and_writes_numbers_as_numbers(tmp_path):
    frame = pd.DataFrame({"=evil": ["=1+1"], "power_w": [-3.5]})
    path = write_csv(frame, tmp_path / "x.csv")
    assert path.read_text(encoding="utf-8") == "'=evil,power_w\n'=1+1,-3.5\n"


def test_escaping_a_large_frame_is_vectorised():
    n = 200_000
    values = pd.Series(np.where(np.arange(n) % 2 == 0, "=cmd", "-1.25"), dtype="str")
    escaped = escape_series(values)
    assert (escaped == "'=cmd").sum() == n // 2
    assert (escaped == "-1.25").sum() == n // 2


# --- cell formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (15.000000000002, "15"),
        (14.999999999998, "15"),
        (7.25, "7.25"),
        (67.5, "67.5"),
        (0.0004, "0"),
        (0.0005, "0.001"),
        (1 / 3, "0.333"),
        (2 / 3, "0.667"),
        (0.0, "0"),
        (1440.0, "1440"),
        (float("nan"), ""),
    ],
)
def test_minutes_text(minutes, text):
    assert formatting.minutes_text(pd.Series([minutes])).tolist() == [text]


def test_iso_text_uses_the_site_offset_and_keeps_milliseconds():
    stamps = pd.Series(
        pd.to_datetime(["2025-02-10T17:00:00Z", "2025-07-10T17:00:00.250Z", None], utc=True, format="ISO8601")
    )
    assert formatting.iso_text(stamps, TZ).tolist() == [
        "2025-02-10T18:00:00+01:00",
        "2025-07-10T19:00:00.250+02:00",
        "",
    ]
    assert formatting.iso_text(stamps.iloc[:1], "UTC").tolist() == ["2025-02-10T17:00:00+00:00"]


def test_iso_text_refuses_naive_timestamps():
    with pytest.raises(TypeError, match="tz-aware"):
        formatting.iso_text(pd.Series(pd.to_datetime(["2025-02-10 18:00"]), name="start"), TZ)


def test_minutes_text_writes_decimals_as_stored():
    values = pd.Series([Decimal("67.500"), Decimal("0.017"), None], dtype=object)
    assert formatting.minutes_text(values).tolist() == ["67.500", "0.017", ""]


def test_decimal_text_is_exact_and_refuses_floats():
    values = pd.Series([Decimal("0.50"), Decimal("1E+1"), Decimal("0.000000"), None], dtype=object)
    assert formatting.decimal_text(values).tolist() == ["0.50", "10", "0.000000", ""]
    with pytest.raises(TypeError, match="Decimal"):
        formatting.decimal_text(pd.Series([0.1], dtype=object))


def test_bool_text():
    values = pd.Series(pd.array([True, False, pd.NA], dtype="boolean"))
    assert formatting.bool_text(values).tolist() == ["true", "false", ""]


def test_date_text_takes_dates_and_instants():
    dates = pd.Series([dt.date(2025, 2, 10)])
    assert formatting.date_text(dates, TZ).tolist() == ["2025-02-10"]
    late = pd.Series([pd.Timestamp("2025-02-10T23:30Z")])  # already the 11th in Berlin
    assert formatting.date_text(late, TZ).tolist() == ["2025-02-11"]


# --- write_outputs ------------------------------------------------------------------------------


@pytest.fixture
def written(tmp_path):
    out = tmp_path / "out"
    files = outputs.write_outputs(make_result(), out)
    return out, files


def test_write_outputs_writes_every_file(written):
    out, files = written
    expected = {
        "scored_readings.parquet",
        "invoice_lines.csv",
        "invoices.csv",
        "cleaning_sessions.csv",
        "alerts.csv",
        "quarantine.csv",
        "summary.json",
        "invoices/INV-C001-202502.html",
        "invoices/INV-C001-202502.pdf",
        "invoices/INV-C004-202503.html",
        "invoices/INV-C004-202503.pdf",
    }
    assert set(files) == expected
    assert all(path.is_file() and path.parent.is_relative_to(out) for path in files.values())
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no staging folders left


def test_invoice_lines_csv(written):
    out, _ = written
    text = (out / "invoice_lines.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(schema.INVOICE_LINE_COLUMNS)
    rows = read_rows(out / "invoice_lines.csv")
    assert rows[0] == {
        "invoice_id": "INV-C001-202502",
        "client_id": "C001",
        "zone_id": "HQ-F4-Z2",
        "date": "2025-02-10",
        "start": "2025-02-10T18:05:00+01:00",
        "end": "2025-02-10T19:12:30+01:00",
        "minutes": "67.500",
        "billable_minutes": "75",
        "energy_kwh": "0.112500",
        "hours_charge": "18.75",
        "energy_charge": "0.02",
        "amount": "18.77",
        "currency": "EUR",
        "adjusted": "false",
        "original_energy_kwh": "0.112500",
        "status": "billed",
    }
    assert rows[1]["zone_id"] == "'" + FORMULA_ZONE
    assert (rows[1]["minutes"], rows[1]["adjusted"], rows[1]["original_energy_kwh"]) == (
        "10.000",
        "true",
        "0.050000",
    )
    assert (rows[1]["energy_charge"], rows[1]["amount"]) == ("0.00", "3.75")
    assert (rows[2]["start"], rows[2]["end"]) == ("2025-03-31T22:00:00+02:00", "2025-03-31T22:20:00+02:00")


def test_invoices_csv(written):
    out, _ = written
    rows = read_rows(out / "invoices.csv")
    assert list(rows[0]) == list(schema.INVOICE_COLUMNS)
    assert rows[0] == {
        "invoice_id": "INV-C001-202502",
        "client_id": "C001",
        "period": "2025-02",
        "revision": "1",
        "lines": "2",
        "billable_hours": "1.50",
        "energy_kwh": "0.122500",
        "total": "22.52",
        "currency": "EUR",
        "content_hash": _hash("C001"),
        "held_total": "0.00",
    }


def test_cleaning_sessions_csv(written):
    out, _ = written
    (row,) = read_rows(out / "cleaning_sessions.csv")
    assert row == {
        "zone_id": "HQ-F4-Z2",
        "building": "HQ",
        "floor": "4",
        "date": "2025-02-10",
        "start": "2025-02-10T19:00:00+01:00",
        "end": "2025-02-10T23:00:00+01:00",
        "minutes": "240.000",
        "flagged": "true",
        "excess_minutes": "180.000",
        "wasted_kwh": "0.540000",
        "savings": "0.11",
        "inferred": "false",
        "client_id": "C001",
    }


def test_alerts_csv_is_header_only_when_empty(written):
    out, _ = written
    assert (out / "alerts.csv").read_text(encoding="utf-8") == ",".join(schema.ALERT_COLUMNS) + "\n"


def test_alerts_csv_escapes_text_and_keeps_scores_numeric(tmp_path):
    outputs.write_outputs(make_result(alerts=make_alerts(1)), tmp_path / "out")
    (row,) = read_rows(tmp_path / "out" / "alerts.csv")
    assert row["zone_id"] == "'" + FORMULA_ZONE
    assert row["detail"] == "'-cmd expected 100 W, observed 900 W"
    assert row["score"] == "-3.5"
    assert row["detected_at"] == "2025-02-10T18:00:00.250+01:00"


def test_quarantine_csv_keeps_line_reason_and_escaped_originals(written):
    out, _ = written
    lines = (out / "quarantine.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "line,reason,Timestamp,Room_ID,Client_ID,Power_Usage_W"
    rows = read_rows(out / "quarantine.csv")
    assert [r["line"] for r in rows] == ["3", "7", "9"]
    assert rows[0]["Power_Usage_W"] == "-3.5"  # a genuine number stays a number
    assert (rows[1]["Room_ID"], rows[1]["Client_ID"]) == ("'+cmd", "'@SUM(A1)")
    assert (rows[2]["Timestamp"], rows[2]["Room_ID"], rows[2]["Power_Usage_W"]) == ("'=1+1", "", "'-cmd")


def test_no_csv_cell_starts_a_formula(written):
    out, _ = written
    for path in out.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        for cell in cells:
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(cell)  # only plain numbers may start like that


def test_scored_readings_parquet(written):
    out, _ = written
    frame = pd.read_parquet(out / "scored_readings.parquet")
    assert list(frame.columns[:4]) == list(schema.REQUIRED_COLUMNS)
    assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(frame["timestamp"].dt.tz) == TZ
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2025-02-10T17:00Z")
    assert len(frame) == 4
    for column in (
        "in_contract",
        "is_on",
        "usage_class",
        "covered_minutes",
        "expected_power_w",
        "anomaly_score",
        "is_anomaly",
        "line",
    ):
        assert column in frame.columns


def test_summary_json(written):
    out, _ = written
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (
        summary["rows_in"] == summary["rows_scored"] + summary["rows_quarantined"] + summary["rows_duplicate"]
    )
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_duplicate"]) == (8, 4, 1)
    assert summary["quarantine_reasons"] == {"empty zone": 1, "negative power": 1, "unknown client": 1}
    assert summary["input_sha256"] == _hash("input")
    assert summary["source"] == "readings.csv"
    assert summary["site"] == {"timezone": TZ, "currency": "EUR"}
    assert summary["first_timestamp"] == "2025-02-10T18:00:00+01:00"
    assert summary["last_timestamp"] == "2025-03-31T22:20:00+02:00"
    assert summary["totals"] == {
        "currency": "EUR",
        "invoices": 2,
        "lines": 3,
        "billable_hours": "2.00",
        "energy_kwh": "0.139167",
        "amount": "28.77",
        "adjusted_lines": 1,
    }
    assert summary["clients"]["C001"] == {
        "name": "Acme <script>alert(1)</script>",
        "invoices": 1,
        "lines": 2,
        "billable_hours": "1.50",
        "energy_kwh": "0.122500",
        "amount": "22.52",
    }
    assert summary["clients"]["C004"]["amount"] == "6.25"
    assert summary["cleaning"] == {
        "sessions": 1,
        "flagged": 1,
        "inferred": 0,
        "wasted_kwh": "0.540000",
        "savings": "0.11",
    }
    assert summary["alerts"] == {"count": 0, "by_kind": {}}
    assert summary["model_versions"] == {"anomaly": "1", "forecaster": "3"}
    assert summary["timings"] == {"read": 0.123, "score": 1.5}
    assert summary["usage_minutes"] == {"off": 15.0, "contract": 0.0, "overtime": 30.0, "cleaning": 15.0}
    assert summary["slem_version"]
    assert summary == json.loads(json.dumps(build_summary(make_result())))


def test_summary_of_an_empty_run():
    empty = make_result(
        invoice_lines=make_lines().iloc[0:0],
        invoices=make_invoices().iloc[0:0],
        cleaning_sessions=make_cleaning().iloc[0:0],
        quarantine=pd.DataFrame(),
    )
    summary = build_summary(empty)
    json.dumps(summary)
    assert summary["totals"]["amount"] == "0" and summary["clients"] == {}
    assert summary["cleaning"]["sessions"] == 0


# --- all or nothing -----------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_rewriting_replaces_our_files_and_keeps_others(tmp_path):
    out = tmp_path / "out"
    (out / "invoices").mkdir(parents=True)
    (out / "invoices" / "INV-C009-202401.html").write_text("stale invoice")
    (out / "invoice_lines.csv").write_text("stale")
    (out / "notes.txt").write_text("the user's own file")
    outputs.write_outputs(make_result(), out)
    assert not (out / "invoices" / "INV-C009-202401.html").exists()
    assert (out / "invoice_lines.csv").read_text().startswith("invoice_id,")
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_rewriting_identical_results_gives_identical_csv_files(tmp_path):
    outputs.write_outputs(make_result(), tmp_path / "a")
    outputs.write_outputs(make_result(), tmp_path / "b")
    a, b = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b")
    for name in (
        "invoice_lines.csv",
        "invoices.csv",
        "cleaning_sessions.csv",
        "quarantine.csv",
        "summary.json",
    ):
        assert a[name] == b[name]


def test_a_failure_while_writing_leaves_the_previous_outputs(tmp_path):
    out = tmp_path / "out"
    outputs.write_outputs(make_result(), out)
    before = _snapshot(out)
    broken = make_lines().drop(columns=["amount"])
    with pytest.raises(ValueError, match="amount"):
        outputs.write_outputs(make_result(invoice_lines=broken, invoices=make_invoices().iloc[0:0]), out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failure_while_writing_a_new_folder_leaves_nothing(tmp_path):
    broken = make_cleaning().drop(columns=["savings"])
    with pytest.raises(ValueError, match="savings"):
        outputs.write_outputs(make_result(cleaning_sessions=broken), tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_moving_into_place_restores_the_previous_outputs(tmp_path, monkeypatch):
    out = tmp_path / "out"
    outputs.write_outputs(make_result(), out)
    before = _snapshot(out)
    real_replace = os.replace

    failures = []

    def flaky_replace(src, dst):
        # Fails once, at the one step that installs the new files: the switch of the `current` link.
        if Path(dst) == out / ".versions" / "current" and not failures:
            failures.append(src)
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky_replace)
    changed = make_result(invoices=make_invoices().iloc[:1], invoice_lines=make_lines().iloc[:2])
    with pytest.raises(OSError, match="disk full"):
        outputs.write_outputs(changed, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "out"
    target.write_text("not a folder")
    with pytest.raises(SlemError, match="not a folder"):
        outputs.write_outputs(make_result(), target)


# --- with the real engine -----------------------------------------------------------------------


def test_scored_outputs_reproduce_the_content_hash(tmp_path):
    """End to end: each invoice's lines in invoice_lines.csv hash to its content_hash (SPEC §3.8)."""
    from slem_ml.io.reader import validate_frame
    from slem_ml.scoring.score import score

    site = _site()
    rows = [  # 2025-02-10 is a Monday; C001 closes at 18:00 (+5 min grace)
        ("2025-02-10 18:00:00", "HQ-F1-Z1", "C001", 120.0, False),
        ("2025-02-10 18:15:00.250", "HQ-F1-Z1", "C001", 120.0, False),
        ("2025-02-10 18:30:00", "HQ-F1-Z1", "C001", 0.0, False),
        ("2025-02-10 18:30:00", "HQ-F1-Z1", "C001", 0.0, False),  # exact duplicate
        ("2025-02-10 22:00:00", "HQ-F1-Z2", "C001", 80.0, True),  # cleaning
        ("2025-02-10 22:15:00", "HQ-F1-Z2", "C001", 80.0, True),
        ("2025-02-10 22:30:00", "HQ-F1-Z2", "C001", 0.0, False),
        ("2025-02-10 22:30:00", "HQ-F1-Z3", "C001", -4, False),  # quarantined
        ("2025-03-31 22:00:00", "HQ-F2-Z1", "C004", 60.0, False),  # C004 closes at 22:00 (+5)
        ("2025-03-31 22:30:00", "HQ-F2-Z1", "C004", 0.0, False),
    ]
    frame = pd.DataFrame(rows, columns=["timestamp", "zone_id", "client_id", "power_w", "cleaning_staff"])
    result = score(validate_frame(frame, site), site)
    assert len(result.invoices) == 2
    out = tmp_path / "out"
    files = outputs.write_outputs(result, out)
    assert "invoices/INV-C001-202502.html" in files

    by_invoice: dict[str, str] = {}
    for row in read_rows(out / "invoice_lines.csv"):
        invoice_id = row.pop("invoice_id")
        status = row.pop("status")  # in the hash only when the line is not simply billed (SPEC §8.4)
        text = ",".join(row.values()) + ("" if status == "billed" else f",{status}")
        by_invoice[invoice_id] = by_invoice.get(invoice_id, "") + text + "\n"
    for invoice in read_rows(out / "invoices.csv"):
        text = by_invoice[invoice["invoice_id"]]
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == invoice["content_hash"]

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows_in"] == 10
    assert (
        summary["rows_in"] == summary["rows_scored"] + summary["rows_quarantined"] + summary["rows_duplicate"]
    )
    assert (summary["rows_quarantined"], summary["rows_duplicate"]) == (1, 1)
    assert summary["cleaning"]["sessions"] == 1
    parquet = pd.read_parquet(out / "scored_readings.parquet")
    assert len(parquet) == summary["rows_scored"]
    assert str(parquet["timestamp"].dt.tz) == TZ


def test_staged_outputs_appear_only_at_the_end(tmp_path):
    from slem_ml.outputs.writer import staged_outputs

    result = make_result()
    result = dataclasses.replace(result, invoices=result.invoices.assign(revision=2))
    out = tmp_path / "out"
    with staged_outputs(result, out) as staging:
        assert not out.exists()  # nothing visible while staged
    with (out / "invoices.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {row["revision"] for row in rows} == {"2"}
    assert set(staging.written) == set(outputs.write_outputs(result, tmp_path / "again"))


def test_staged_outputs_are_discarded_when_the_block_fails(tmp_path):
    from slem_ml.outputs.writer import staged_outputs

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="store failed"), staged_outputs(make_result(), out):
        raise RuntimeError("store failed")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind
