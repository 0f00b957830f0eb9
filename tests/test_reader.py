"""The reader (SPEC §1, docs/billing-rules.md "Input normalisation") on real malformed files.

The files in ``tests/data/readings/`` are kept byte-exact as regression inputs; most are snippets of
the legacy export (``shared/data/legacy_sample.csv``: naive Europe/Berlin wall times, clients C001–C006 of
the shipped contracts). Line numbers are 1-based source lines with the header as line 1 (Parquet:
1-based row numbers). 2025-01-30 is in CET (UTC+1), so a naive ``05:01`` there is ``04:01Z``.

Every result is checked for ``rows_in == rows_valid + rows_quarantined + rows_duplicate``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.config.site import load_site
from slem_ml.errors import InputError
from slem_ml.io import schema as S
from slem_ml.io.reader import read_readings, validate_frame
from slem_ml.io.readings import Readings, note_texts

DATA = Path(__file__).parent / "data" / "readings"
SHIPPED = SAMPLE_CONTRACTS
LEGACY_SAMPLE = Path(__file__).parents[2] / "shared" / "data" / "legacy_sample.csv"
SITE = load_site(SHIPPED)

LEGACY_HEADER = "Timestamp,Room_ID,Client_ID,Power_Usage_W,Cleaning_Staff,Building,Floor,Zone"
LEGACY_COLUMNS = {
    S.TIMESTAMP: "Timestamp",
    S.ZONE_ID: "Room_ID",
    S.CLIENT_ID: "Client_ID",
    S.POWER_W: "Power_Usage_W",
    S.CLEANING_STAFF: "Cleaning_Staff",
    S.BUILDING: "Building",
    S.FLOOR: "Floor",
    S.ZONE: "Zone",
}
FRAME_COLUMNS = [*S.REQUIRED_COLUMNS, S.CLEANING_STAFF, S.BUILDING, S.FLOOR, S.ZONE, S.LINE]

UNPARSEABLE = "unparseable timestamp"
DST_GAP = "timestamp does not exist in site time (DST gap)"


# --- helpers ------------------------------------------------------------------------------------


def read(name: str | Path) -> Readings:
    """Read a kept file (or a path) and check the row-count invariant."""
    result = read_readings(DATA / name if isinstance(name, str) else name, SITE)
    check_invariant(result)
    return result


def check_invariant(result: Readings) -> None:
    r = result.report
    assert r.rows_in == r.rows_valid + r.rows_quarantined + r.rows_duplicate
    assert r.rows_valid == len(result.frame)
    assert r.rows_quarantined == len(result.quarantine)
    assert sum(r.reasons.values()) == r.rows_quarantined


def refusal(path: Path) -> str:
    """The message of the InputError that refuses ``path``: one line that names the file."""
    with pytest.raises(InputError) as info:
        read_readings(path, SITE)
    message = str(info.value)
    assert message.strip()
    assert "\n" not in message and "\r" not in message
    assert path.name in message
    return message


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def valid_by_line(result: Readings) -> dict[int, pd.Series]:
    return {int(row[S.LINE]): row for _, row in result.frame.iterrows()}


def reasons_by_line(result: Readings) -> dict[int, str]:
    return dict(zip(result.quarantine[S.LINE].astype(int), result.quarantine["reason"], strict=True))


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain text, for comparing frames whose category order may differ."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(str).astype(object)
    return out


def write(tmp_path: Path, name: str, lines: list[str], *, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def source_cells(path: Path, encoding: str = "utf-8") -> dict[int, list[str]]:
    """Each CSV record's cells as text, by the line on which the record starts."""
    with path.open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        out = {}
        start = 1
        for cells in reader:
            out[start] = cells
            start = reader.line_num + 1
    return out


# --- files refused --------------------------------------------------------------------------------


def test_header_typo_is_refused_naming_the_column_and_the_typo() -> None:
    message = refusal(DATA / "header_typo.csv")
    assert "missing" in message
    assert "power_w" in message and "Power_Usage_W" in message
    assert "'Powr_Usage_W'" in message  # the header the user has to fix


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("empty.csv", "empty"),
        ("header_only.csv", "no readings"),
        ("binary.bin", "binary content"),
        ("readings.xlsx", "Excel"),
    ],
)
def test_unusable_file_is_refused_with_one_clear_line(name: str, words: str) -> None:
    assert words in refusal(DATA / name)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("no final newline", LEGACY_HEADER.encode()),
        ("CRLF", (LEGACY_HEADER + "\r\n").encode()),
        ("BOM", b"\xef\xbb\xbf" + (LEGACY_HEADER + "\n").encode()),
        ("blank lines after", (LEGACY_HEADER + "\n\n\n").encode()),
    ],
    ids=["no-final-newline", "crlf", "bom", "blank-lines-after"],
)
def test_header_without_readings_is_refused(tmp_path: Path, case: str, data: bytes) -> None:
    path = tmp_path / "readings.csv"
    path.write_bytes(data)
    assert "no readings" in refusal(path), case


def test_whitespace_only_file_is_refused_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_bytes(b"\xef\xbb\xbf \r\n\r\n")
    assert "empty" in refusal(path)


def test_binary_content_is_refused_whatever_the_file_is_called(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_bytes((DATA / "binary.bin").read_bytes())
    assert "binary content" in refusal(path)
    path.write_bytes((DATA / "readings.xlsx").read_bytes())
    assert "Excel" in refusal(path)


def test_not_a_parquet_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "readings.parquet"
    path.write_bytes((DATA / "bom_crlf.csv").read_bytes())
    assert "Parquet" in refusal(path)


def test_file_without_any_client_from_the_contracts_is_refused_naming_the_clients(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "other_site.csv",
        [
            LEGACY_HEADER,
            "2025-01-30 05:01:00,R&D-F1-Z5,X103,17.0,No,R&D,1,5",
            "2025-01-30 05:02:00,HQ-F2-Z4,X101,17.0,No,HQ,2,4",
            "2025-01-30 05:03:00,HQ-F2-Z4,X101,18.0,No,HQ,2,4",
        ],
    )
    message = refusal(path)
    assert "X101" in message and "X103" in message
    assert "contracts" in message


def test_two_headers_meaning_one_column_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "two_zone_columns.csv",
        [
            "Timestamp,Room_ID,zone_id,Client_ID,Power_Usage_W",
            "2025-01-30 05:01:00,HQ-F4-Z2,HQ-F4-Z2,C001,17.0",
        ],
    )
    message = refusal(path)
    assert "'Room_ID'" in message and "'zone_id'" in message


# --- CSV dialects and encodings -------------------------------------------------------------------


def test_semicolon_export_with_decimal_commas_and_day_first_dates() -> None:
    result = read("semicolon_comma_decimal.csv")
    assert result.report.rows_valid == result.report.rows_in == 10
    assert result.quarantine.empty
    rows = valid_by_line(result)
    expected_power = {2: 17.0, 3: 17.5, 4: 25.0, 5: 13.0, 6: 20.0, 7: 14.0, 8: 11.0, 9: 25.0}
    expected_power |= {10: 116.867325329178, 11: 83.818034532392}
    assert {line: row[S.POWER_W] for line, row in rows.items()} == expected_power
    assert result.frame[S.POWER_W].dtype == np.float64
    assert rows[2][S.TIMESTAMP] == utc("2025-01-30 04:01")  # 30.01.2025 05:01 CET
    assert rows[11][S.TIMESTAMP] == utc("2025-02-10 04:35")  # 10.02.2025 is 10 February, not 2 October
    notes = " | ".join(note_texts(result.report.notes))
    assert "';'" in notes and "separated" in notes
    assert "decimal comma" in notes


def test_bom_and_crlf_load_exactly_like_the_plain_file(tmp_path: Path) -> None:
    raw = (DATA / "bom_crlf.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    plain = tmp_path / "bom_crlf.csv"
    plain.write_bytes(raw[3:].replace(b"\r\n", b"\n"))
    with_bom, without = read("bom_crlf.csv"), read(plain)
    pd.testing.assert_frame_equal(with_bom.frame, without.frame)
    pd.testing.assert_frame_equal(with_bom.quarantine, without.quarantine)
    assert with_bom.report.columns == without.report.columns == LEGACY_COLUMNS
    assert with_bom.report.rows_valid == 20
    assert with_bom.report.notes == without.report.notes
    assert not with_bom.frame[S.ZONE].astype(str).str.contains("\r").any()


def test_windows_1252_file_loads_and_says_so() -> None:
    result = read("cp1252.csv")
    assert result.report.rows_valid == 4
    assert set(result.frame[S.ZONE_ID].astype(str)) == {"Bäckerei-F1-Z5", "HQ-F2-Z4"}
    assert set(result.frame[S.BUILDING].astype(str)) == {"Bäckerei Café", "HQ"}
    assert any("1252" in note for note in note_texts(result.report.notes))


def test_windows_1252_file_with_its_only_accent_in_the_last_bytes_loads() -> None:
    """The undecodable byte is 2 bytes before the end of a small file: not a character cut by the sniffer."""
    result = read("cp1252_tail.csv")
    assert result.report.rows_valid == 2
    assert set(result.frame[S.BUILDING].astype(str)) == {"HQ", "Café"}
    assert any("1252" in note for note in note_texts(result.report.notes))


def test_quoted_line_break_in_a_cell_keeps_source_line_numbers() -> None:
    """Line 3–4 is one record (a building name with Alt+Enter); the bad rows after it are on lines 5 and 6."""
    result = read("quoted_newline.csv")
    assert result.report.rows_in == 4
    assert sorted(valid_by_line(result)) == [2, 3]
    assert valid_by_line(result)[3][S.BUILDING] == "HQ\nHauptgebäude"
    assert reasons_by_line(result) == {
        5: "unknown client_id 'C999' (not in contracts)",
        6: "negative power_w",
    }


# --- timestamps -----------------------------------------------------------------------------------


def test_mixed_timestamp_formats() -> None:
    result = read("mixed_timestamps.csv")
    times = {line: row[S.TIMESTAMP] for line, row in valid_by_line(result).items()}
    assert times == {
        2: utc("2025-01-30 04:01"),  # naive, space
        3: utc("2025-01-30 04:02"),  # naive, T
        4: utc("2025-01-30 05:03"),  # Z
        5: utc("2025-01-30 04:03"),  # +01:00
        6: utc("2025-01-30 04:05"),  # 30.01.2025 05:05
        8: utc("2025-07-01 10:00"),  # naive summer time (CEST, UTC+2)
        9: utc("2025-01-30 04:09"),  # +0100
        13: utc("2025-01-30 10:11:00.123"),  # .123789-05:00, truncated to whole ms
        14: utc("2025-01-30 04:12:30"),  # 30.01.2025 05:12:30
    }
    assert reasons_by_line(result) == {
        7: UNPARSEABLE,  # yesterday
        10: UNPARSEABLE,  # 31/01/2025: day/month order is a guess, not taken
        11: "missing timestamp",
        12: UNPARSEABLE,  # 30 February
        15: UNPARSEABLE,  # hour 25
    }
    original = dict(zip(result.quarantine[S.LINE], result.quarantine["Timestamp"], strict=True))
    assert original[7] == "yesterday" and original[12] == "2025-02-30 05:10:00"


def test_timestamp_column_is_tz_aware_utc_with_ms_resolution() -> None:
    for name in ("mixed_timestamps.csv", "semicolon_comma_decimal.csv", "bad_rows.csv"):
        assert str(read(name).frame[S.TIMESTAMP].dtype) == "datetime64[ms, UTC]", name


def _autumn(rows: list[tuple[str, str]]) -> dict[int, pd.Timestamp]:
    frame = pd.DataFrame(
        [(t, z, "C001", 10.0 + i) for i, (t, z) in enumerate(rows)],
        columns=["timestamp", "zone_id", "client_id", "power_w"],
    )
    result = validate_frame(frame, SITE)
    check_invariant(result)
    assert result.quarantine.empty
    return {int(r[S.LINE]): r[S.TIMESTAMP] for _, r in result.frame.iterrows()}


def test_repeated_autumn_hour_two_passes_summer_then_standard_one_pass_summer() -> None:
    """2025-10-26 Europe/Berlin: 03:00 CEST → 02:00 CET; 02:10 is 00:10Z (first) or 01:10Z (second)."""
    times = _autumn(
        [
            ("2025-10-26 01:50:00", "HQ-F1-Z1"),  # 2
            ("2025-10-26 02:10:00", "HQ-F1-Z1"),  # 3 first pass
            ("2025-10-26 02:20:00", "HQ-F1-Z2"),  # 4 single pass
            ("2025-10-26 02:40:00", "HQ-F1-Z1"),  # 5 first pass
            ("2025-10-26 02:10:00", "HQ-F1-Z1"),  # 6 clock went back: second pass
            ("2025-10-26 02:40:00", "HQ-F1-Z1"),  # 7 second pass
            ("2025-10-26 03:10:00", "HQ-F1-Z1"),  # 8
            ("2025-10-26 02:50:00", "HQ-F1-Z2"),  # 9 still the single pass of Z2
            ("2025-10-26 02:40:00", "HQ-F1-Z3"),  # 10 first pass
            ("2025-10-26 02:10:00", "HQ-F1-Z3"),  # 11 back: second pass
        ]
    )
    assert times == {
        2: utc("2025-10-25 23:50"),
        3: utc("2025-10-26 00:10"),
        4: utc("2025-10-26 00:20"),
        5: utc("2025-10-26 00:40"),
        6: utc("2025-10-26 01:10"),
        7: utc("2025-10-26 01:40"),
        8: utc("2025-10-26 02:10"),
        9: utc("2025-10-26 00:50"),
        10: utc("2025-10-26 00:40"),
        11: utc("2025-10-26 01:10"),
    }


# --- bad rows -------------------------------------------------------------------------------------


def test_formula_cells_are_kept_or_quarantined_by_the_usual_rules() -> None:
    result = read("formula_cell.csv")
    r = result.report
    assert (r.rows_in, r.rows_valid, r.rows_quarantined, r.rows_duplicate) == (6, 3, 3, 0)
    rows = valid_by_line(result)
    assert sorted(rows) == [2, 3, 5]
    assert rows[3][S.ZONE_ID] == '=HYPERLINK("http://evil","x")'  # any text is a zone id
    assert rows[5][S.BUILDING] == "@SUM(1+1)"
    assert reasons_by_line(result) == {
        4: "unknown client_id '+cmd|' /C calc'!A0' (not in contracts)",
        6: "non-numeric power_w",
        7: "unknown client_id '-2+3' (not in contracts)",
    }
    # The quarantine holds the text as found; escaping for spreadsheets is the writer's job.
    q = result.quarantine.set_index(S.LINE)
    assert q.loc[4, "Client_ID"] == "+cmd|' /C calc'!A0"
    assert q.loc[6, "Power_Usage_W"] == "=1+2"
    assert q.loc[7, "Room_ID"] == "@SUM(1+1)"


BAD_ROWS_REASONS = {
    3: "negative power_w",
    4: "non-numeric power_w",  # abc
    5: "missing power_w",
    6: "unknown client_id 'C999' (not in contracts)",
    7: "empty zone_id",
    8: "blank line",
    9: "cleaning_staff is not yes/no, true/false or 1/0",  # maybe
    10: DST_GAP,  # 2025-03-30 02:30 Europe/Berlin
    11: "non-numeric power_w",  # "17,5" in a comma-separated file
    16: "missing client_id",
    17: "missing timestamp",
    18: "power_w above 1,000,000 W (implausible)",
}


def test_bad_rows_reasons_and_line_numbers() -> None:
    result = read("bad_rows.csv")
    r = result.report
    assert (r.rows_in, r.rows_valid, r.rows_quarantined, r.rows_duplicate) == (20, 7, 12, 1)
    assert reasons_by_line(result) == BAD_ROWS_REASONS
    assert result.quarantine[S.LINE].tolist() == sorted(BAD_ROWS_REASONS)  # file order
    assert r.reasons == pd.Series(list(BAD_ROWS_REASONS.values())).value_counts().to_dict()


def test_bad_rows_duplicates_and_same_instant_pairs() -> None:
    rows = valid_by_line(read("bad_rows.csv"))
    # 12 and 13 are exact duplicates: the later row stays.
    assert sorted(rows) == [2, 13, 14, 15, 19, 20, 21]
    # 14 and 15: same zone and instant, different power: both kept, in input order.
    frame = read("bad_rows.csv").frame
    pair = frame[frame[S.ZONE_ID] == "R&D-F3-Z1"]
    assert pair[S.LINE].tolist() == [14, 15]
    assert pair[S.POWER_W].tolist() == [21.0, 35.0]
    assert (pair[S.TIMESTAMP] == utc("2025-01-30 04:10")).all()
    assert {line: bool(row[S.CLEANING_STAFF]) for line, row in rows.items()} == {
        2: False,
        13: False,
        14: False,
        15: False,
        19: True,  # yes
        20: True,  # TRUE
        21: False,  # 0
    }


def test_quarantine_keeps_the_original_text_of_every_cell() -> None:
    path = DATA / "bad_rows.csv"
    result = read("bad_rows.csv")
    header = LEGACY_HEADER.split(",")
    assert result.quarantine.columns.tolist() == [S.LINE, "reason", *header]
    cells = source_cells(path)
    for _, row in result.quarantine.iterrows():
        line = int(row[S.LINE])
        expected = cells.get(line) or [""] * len(header)  # the blank line has no cells
        assert row[header].tolist() == expected, line
    q = result.quarantine.set_index(S.LINE)
    assert q.loc[3, "Power_Usage_W"] == "-5.0"
    assert q.loc[4, "Power_Usage_W"] == "abc"
    assert q.loc[11, "Power_Usage_W"] == "17,5"
    assert q.loc[18, "Power_Usage_W"] == "2500000"
    assert q.loc[9, "Cleaning_Staff"] == "maybe"
    assert q.loc[10, "Timestamp"] == "2025-03-30 02:30:00"


# --- headers and structure ------------------------------------------------------------------------


def test_legacy_headers_map_to_canonical_names() -> None:
    result = read("bom_crlf.csv")
    assert result.report.columns == LEGACY_COLUMNS
    assert result.frame.columns.tolist() == FRAME_COLUMNS
    assert result.has_cleaning_flag


def test_headers_match_ignoring_case_spaces_underscores_and_dashes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "odd_headers.csv",
        [
            "TIME STAMP,ZONE_ID,client-id,Power Usage W,cleaning staff,Notes",
            "2025-01-30 05:01:00,HQ-F4-Z2,C001,17.5,YES,first",
            "2025-01-30 05:02:00,HQ-F4-Z2,C001,18.0,no,second",
        ],
    )
    result = read(path)
    assert result.report.columns == {
        S.TIMESTAMP: "TIME STAMP",
        S.ZONE_ID: "ZONE_ID",
        S.CLIENT_ID: "client-id",
        S.POWER_W: "Power Usage W",
        S.CLEANING_STAFF: "cleaning staff",
    }
    assert result.frame.columns.tolist() == FRAME_COLUMNS
    assert result.frame[S.POWER_W].tolist() == [17.5, 18.0]
    assert result.frame[S.CLEANING_STAFF].tolist() == [True, False]


def test_building_floor_zone_derived_from_zone_id_when_absent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "canonical.csv",
        [
            "timestamp,zone_id,client_id,power_w",
            "2025-01-30 05:01:00,HQ-F4-Z2,C001,17.0",
            "2025-01-30 05:02:00,R&D-F1-Z5,C003,18.0",
            "2025-01-30 05:03:00,Sales-North-F12-Z10,C006,19.0",
        ],
    )
    result = read(path)
    derived = {
        row[S.ZONE_ID]: (row[S.BUILDING], str(row[S.FLOOR]), str(row[S.ZONE]))
        for _, row in result.frame.iterrows()
    }
    assert derived == {
        "HQ-F4-Z2": ("HQ", "4", "2"),
        "R&D-F1-Z5": ("R&D", "1", "5"),
        "Sales-North-F12-Z10": ("Sales-North", "12", "10"),
    }


def test_without_cleaning_column_no_row_is_cleaning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "no_flag.csv",
        ["Timestamp,Room_ID,Client_ID,Power_Usage_W", "2025-01-30 18:30:00,HQ-F4-Z2,C001,40.0"],
    )
    result = read(path)
    assert result.has_cleaning_flag is False
    assert result.frame[S.CLEANING_STAFF].dtype == bool
    assert not result.frame[S.CLEANING_STAFF].any()
    assert "no cleaning_staff column" in note_texts(result.report.notes)


# --- order and in-memory frames ------------------------------------------------------------------


def test_frame_is_grouped_by_zone_and_ordered_by_time_then_line() -> None:
    for name in ("bad_rows.csv", "bom_crlf.csv", "mixed_timestamps.csv", "semicolon_comma_decimal.csv"):
        frame = read(name).frame
        zones = frame[S.ZONE_ID].astype(str)
        assert (zones != zones.shift()).sum() == zones.nunique(), f"{name}: a zone is split"
        keys = list(zip(zones, frame[S.TIMESTAMP], frame[S.LINE], strict=True))
        within = [k[1:] for k in keys]
        for zone in zones.unique():
            mine = [k for k, z in zip(within, zones, strict=True) if z == zone]
            assert mine == sorted(mine), f"{name}: {zone}"


def test_zones_come_in_text_order_whatever_the_file_order() -> None:
    """Sorted by (zone_id, timestamp, line): zone ids as text, not by first appearance in the file."""
    for name in ("bad_rows.csv", "bom_crlf.csv", "semicolon_comma_decimal.csv"):
        frame = read(name).frame
        keys = list(zip(frame[S.ZONE_ID].astype(str), frame[S.TIMESTAMP], frame[S.LINE], strict=True))
        assert keys == sorted(keys), name


@pytest.mark.parametrize("name", ["mixed_timestamps.csv", "bad_rows.csv", "formula_cell.csv"])
def test_validate_frame_behaves_like_the_file(name: str) -> None:
    from_file = read(name)
    frame = pd.read_csv(DATA / name, dtype=str, keep_default_na=False, skip_blank_lines=False)
    in_memory = validate_frame(frame, SITE, source=name)
    check_invariant(in_memory)
    pd.testing.assert_frame_equal(in_memory.quarantine, from_file.quarantine)
    for key in ("rows_in", "rows_valid", "rows_quarantined", "rows_duplicate", "reasons", "columns"):
        assert getattr(in_memory.report, key) == getattr(from_file.report, key), key
    assert in_memory.report.file_format == "frame"
    pd.testing.assert_frame_equal(as_text(in_memory.frame), as_text(from_file.frame))


def test_validate_frame_line_is_position_plus_two_whatever_the_index() -> None:
    frame = pd.DataFrame(
        {
            "Timestamp": ["2025-01-30 05:01:00", "2025-01-30 05:02:00", "2025-01-30 05:03:00"],
            "Room_ID": ["HQ-F4-Z2"] * 3,
            "Client_ID": ["C001", "C001", "C001"],
            "Power_Usage_W": [17.0, -1.0, 18.0],
        },
        index=[70, 50, 60],
    )
    result = validate_frame(frame, SITE)
    check_invariant(result)
    assert result.frame[S.LINE].tolist() == [2, 4]
    assert reasons_by_line(result) == {3: "negative power_w"}


def test_validate_frame_refuses_an_empty_frame() -> None:
    empty = pd.DataFrame(columns=["timestamp", "zone_id", "client_id", "power_w"])
    with pytest.raises(InputError, match="no readings"):
        validate_frame(empty, SITE)


# --- Parquet --------------------------------------------------------------------------------------

PARQUET_BASE = {
    "zone_id": ["HQ-F4-Z2", "HQ-F4-Z2", "R&D-F1-Z5", "HQ-F4-Z2"],
    "client_id": ["C001", "C001", "C003", "C999"],
    "power_w": [17.5, -1.0, 20.0, 3.0],
}


def _parquet(tmp_path: Path, timestamps: object, **extra: object) -> Readings:
    path = tmp_path / "readings.parquet"
    pd.DataFrame({"timestamp": timestamps, **PARQUET_BASE, **extra}).to_parquet(path)
    result = read(path)
    assert result.report.file_format == "parquet"
    return result


def test_parquet_tz_aware_timestamps_and_row_numbers(tmp_path: Path) -> None:
    stamps = pd.to_datetime(
        ["2025-01-30 05:01:00.123456", "2025-01-30 05:02:00", "2025-07-01 12:00:00", "2025-01-30 05:04:00"],
        format="ISO8601",
    ).tz_localize("Europe/Berlin")
    result = _parquet(tmp_path, stamps)
    assert {line: row[S.TIMESTAMP] for line, row in valid_by_line(result).items()} == {
        1: utc("2025-01-30 04:01:00.123"),
        3: utc("2025-07-01 10:00"),
    }
    assert reasons_by_line(result) == {
        2: "negative power_w",
        4: "unknown client_id 'C999' (not in contracts)",
    }
    assert str(result.frame[S.TIMESTAMP].dtype) == "datetime64[ms, UTC]"
    assert any("Parquet row" in note for note in note_texts(result.report.notes))


def test_parquet_naive_timestamps_are_site_wall_time(tmp_path: Path) -> None:
    stamps = pd.to_datetime(
        ["2025-01-30 05:01:00", "2025-01-30 05:02:00", "2025-03-30 02:30:00", "2025-01-30 05:04:00"]
    )
    result = _parquet(tmp_path, stamps, power_w=[17.5, 18.0, 20.0, 3.0])
    assert {line: row[S.TIMESTAMP] for line, row in valid_by_line(result).items()} == {
        1: utc("2025-01-30 04:01"),
        2: utc("2025-01-30 04:02"),
    }
    assert reasons_by_line(result) == {3: DST_GAP, 4: "unknown client_id 'C999' (not in contracts)"}


def test_parquet_string_timestamps(tmp_path: Path) -> None:
    stamps = ["2025-01-30 05:01:00", "2025-01-30T05:02:00+01:00", "yesterday", "2025-01-30 05:04"]
    result = _parquet(tmp_path, stamps, power_w=[17.5, 18.0, 20.0, 3.0])
    assert {line: row[S.TIMESTAMP] for line, row in valid_by_line(result).items()} == {
        1: utc("2025-01-30 04:01"),
        2: utc("2025-01-30 04:02"),
    }
    assert reasons_by_line(result) == {3: UNPARSEABLE, 4: "unknown client_id 'C999' (not in contracts)"}
    q = result.quarantine.set_index(S.LINE)
    assert q.loc[3, "timestamp"] == "yesterday"


def test_parquet_cleaning_flag_of_ones_and_zeros_with_a_gap(tmp_path: Path) -> None:
    """pandas stores a 1/0 column with a missing value as float (1.0/0.0/NaN): still a 1/0 flag."""
    stamps = pd.to_datetime(
        ["2025-01-30 05:01:00", "2025-01-30 05:02:00", "2025-01-30 05:03:00", "2025-01-30 05:04:00"]
    )
    result = _parquet(
        tmp_path,
        stamps,
        client_id=["C001"] * 4,
        power_w=[17.5, 18.0, 20.0, 3.0],
        cleaning_staff=[1.0, 0.0, np.nan, 1.0],
    )
    assert result.quarantine.empty
    assert result.has_cleaning_flag
    flags = {line: bool(row[S.CLEANING_STAFF]) for line, row in valid_by_line(result).items()}
    assert flags == {1: True, 2: False, 3: False, 4: True}


def test_parquet_without_rows_or_with_a_missing_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pd.DataFrame({k: pd.Series([], dtype=str) for k in ("timestamp", *PARQUET_BASE)}).to_parquet(path)
    assert "no readings" in refusal(path)
    path = tmp_path / "no_power.parquet"
    pd.DataFrame(
        {"timestamp": ["2025-01-30 05:01:00"], "zone_id": ["HQ-F4-Z2"], "client_id": ["C001"]}
    ).to_parquet(path)
    assert "power_w" in refusal(path)


# --- the legacy sample ----------------------------------------------------------------------------


@pytest.mark.skipif(not LEGACY_SAMPLE.exists(), reason=f"shared data not present: {LEGACY_SAMPLE}")
def test_legacy_sample_loads_completely() -> None:
    result = read(LEGACY_SAMPLE)
    r = result.report
    assert (r.rows_in, r.rows_valid, r.rows_quarantined, r.rows_duplicate) == (2500, 2500, 0, 0)
    assert r.columns == LEGACY_COLUMNS
    assert r.clients == 6
    assert sorted(result.frame[S.LINE]) == list(range(2, 2502))
    assert result.has_cleaning_flag and result.frame[S.CLEANING_STAFF].any()
    assert r.first_timestamp == utc("2025-01-30 04:01")


def test_timestamps_out_of_range_are_quarantined_not_billed() -> None:
    """A year typo (2200 for 2025) must not reach the engine, whose time keys span at most 139 years."""
    site = SITE
    frame = pd.DataFrame(
        {
            "Timestamp": ["2025-02-03 19:00", "2200-02-03 19:00", "1969-12-31 23:00", "2025-02-03 19:05"],
            "Room_ID": ["A", "A", "B", "B"],
            "Client_ID": ["C001", "C001", "C001", "C005"],
            "Power_Usage_W": [10.0, 10.0, 10.0, 10.0],
        }
    )
    readings = validate_frame(frame, site)
    assert readings.quarantine["line"].tolist() == [3, 4]
    assert set(readings.quarantine["reason"]) == {"timestamp out of range (before 1990 or after 2099)"}
    assert readings.report.rows_valid == 2


def test_whole_number_floats_in_id_columns_read_as_integers() -> None:
    site = SITE
    frame = pd.DataFrame(
        {
            "timestamp": ["2025-02-03T19:00:00+01:00"] * 3,
            "zone_id": ["HQ-F1-Z1", "HQ-F2-Z1", "HQ-F3-Z1"],
            "client_id": ["C001"] * 3,
            "power_w": [1.0, 2.0, 3.0],
            "floor": [4.0, np.nan, 2.0],  # a Parquet int column with a gap arrives as float
        }
    )
    floors = validate_frame(frame, site).frame.set_index("zone_id")["floor"].astype(str).to_dict()
    assert floors == {"HQ-F1-Z1": "4", "HQ-F2-Z1": "2", "HQ-F3-Z1": "2"}
