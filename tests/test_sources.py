"""Getting a table out of a readings file (slem_ml/io/sources.py): sniffing, header mapping, Parquet.

Row validation is the reader's (tests/test_reader.py); here each function is checked on its own. The files in
``tests/data/readings/`` are byte-exact legacy snippets; small files are written to ``tmp_path``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slem_ml.errors import InputError
from slem_ml.io import schema as S
from slem_ml.io.readings import Note, NoteKind
from slem_ml.io.sources import (
    DECIMAL_COMMA_NOTE,
    csv_dialect,
    file_digest,
    is_parquet,
    map_headers,
    parquet_line_note,
    read_csv,
    read_head,
    read_parquet,
)

DATA = Path(__file__).parent / "data" / "readings"
WINDOW = 64 * 1024  # bytes the sniffer reads
LEGACY = ["Timestamp", "Room_ID", "Client_ID", "Power_Usage_W", "Cleaning_Staff", "Building", "Floor", "Zone"]
LEGACY_MAP = {
    S.TIMESTAMP: "Timestamp",
    S.ZONE_ID: "Room_ID",
    S.CLIENT_ID: "Client_ID",
    S.POWER_W: "Power_Usage_W",
    S.CLEANING_STAFF: "Cleaning_Staff",
    S.BUILDING: "Building",
    S.FLOOR: "Floor",
    S.ZONE: "Zone",
}
CANONICAL = [S.TIMESTAMP, S.ZONE_ID, S.CLIENT_ID, S.POWER_W]


def write(tmp_path: Path, name: str, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def load(path: Path):
    """read_csv as the reader calls it: the sniffed head and the physical line count."""
    return read_csv(path, read_head(path), file_digest(path)[1])


def refused(call, *args) -> str:
    with pytest.raises(InputError) as info:
        call(*args)
    return str(info.value)


def parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


# --- read_head, file_digest -----------------------------------------------------------------------


def test_empty_file_is_refused_naming_it() -> None:
    message = refused(read_head, DATA / "empty.csv")
    assert "empty.csv" in message and "empty" in message


def test_file_of_only_a_bom_and_blank_lines_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_bytes(b"\xef\xbb\xbf \r\n\t\n")
    assert "empty" in refused(read_head, path)


def test_read_head_reads_the_first_64_kib(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    data = bytes(range(32, 127)) * 2000  # 190,000 bytes
    path.write_bytes(data)
    assert read_head(path) == data[:WINDOW]


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"", 0),
        (b"a", 1),  # a last line without a line end counts
        (b"a\n", 1),
        (b"a\nb", 2),
        (b"a\r\nb\r\n", 2),
        (b"\n\n", 2),
    ],
)
def test_file_digest_counts_physical_lines(tmp_path: Path, data: bytes, lines: int) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert file_digest(path)[1] == lines


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "abc.csv"
    path.write_bytes(b"abc")  # the FIPS 180-2 test vector
    assert file_digest(path) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 1)
    path.write_bytes(b"")
    assert file_digest(path) == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0)


def test_file_digest_across_its_1_mib_blocks(tmp_path: Path) -> None:
    block = 1 << 20
    path = tmp_path / "long.csv"
    data = b"x" * (block - 1) + b"\n" + b"tail"  # the first block ends with a line end; the file does not
    path.write_bytes(data)
    assert file_digest(path) == (hashlib.sha256(data).hexdigest(), 2)
    path.write_bytes(b"x" * block + b"\n")  # the line end alone in the second block
    assert file_digest(path)[1] == 1


# --- is_parquet, parquet_line_note ----------------------------------------------------------------


def test_a_folder_counts_as_parquet(tmp_path: Path) -> None:
    folder = tmp_path / "batch.csv"  # whatever it is called
    folder.mkdir()
    assert is_parquet(folder)


def test_parquet_is_recognised_by_its_magic_bytes_even_named_csv(tmp_path: Path) -> None:
    path = parquet(tmp_path / "readings.csv", {"timestamp": ["2025-01-30 05:01:00"]})
    assert path.read_bytes()[:4] == b"PAR1"
    assert is_parquet(path)


@pytest.mark.parametrize(("name", "expected"), [("r.parquet", True), ("r.PQ", True), ("r.csv", False)])
def test_parquet_by_name_when_the_bytes_are_text(tmp_path: Path, name: str, expected: bool) -> None:
    path = write(tmp_path, name, "timestamp,zone_id,client_id,power_w\n")
    assert is_parquet(path) is expected


def test_is_parquet_uses_the_head_it_is_given(tmp_path: Path) -> None:
    missing = tmp_path / "not_written_yet.csv"  # not read: the head is given
    assert is_parquet(missing, b"PAR1\x15\x04")
    assert not is_parquet(missing, b"timestamp,zone_id\n")


def test_parquet_line_notes() -> None:
    assert parquet_line_note(folder=False) == Note(NoteKind.LINE_NUMBERS, "line = Parquet row number")
    assert parquet_line_note(folder=True) == Note(
        NoteKind.LINE_NUMBERS, "line = Parquet row number across the folder's files in name order"
    )


# --- csv_dialect ----------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_from_the_header_line(tmp_path: Path, delimiter: str) -> None:
    path = write(tmp_path, "r.csv", delimiter.join(LEGACY) + "\n2025-01-30 05:01:00" + delimiter + "x\n")
    dialect = csv_dialect(path, read_head(path))
    assert dialect.delimiter == delimiter
    assert dialect.names == LEGACY
    assert dialect.headers == LEGACY_MAP
    assert dialect.encoding == "utf8"
    expected_notes = (
        () if delimiter == "," else (Note(NoteKind.INPUT, f"columns separated by {delimiter!r}"),)
    )
    assert dialect.notes == expected_notes


def test_bom_is_not_part_of_the_first_header() -> None:
    path = DATA / "bom_crlf.csv"
    dialect = csv_dialect(path, read_head(path))
    assert dialect.names == LEGACY
    assert dialect.headers == LEGACY_MAP
    assert dialect.notes == ()


def test_quoted_header_names_lose_their_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", '"timestamp";"zone_id";"client_id";"power_w"\n')
    assert csv_dialect(path, read_head(path)).names == CANONICAL


def test_windows_1252_is_detected_and_noted() -> None:
    path = DATA / "cp1252.csv"
    dialect = csv_dialect(path, read_head(path))
    assert dialect.encoding == "cp1252"
    assert dialect.notes == (Note(NoteKind.INPUT, "text encoding cp1252"),)


def test_utf8_with_accents_is_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "timestamp,zone_id,client_id,power_w,building\nx,y,z,1,Café\n")
    assert csv_dialect(path, read_head(path)).encoding == "utf8"


def test_a_utf8_character_cut_by_the_64_kib_window_is_still_utf8(tmp_path: Path) -> None:
    header = "timestamp,zone_id,client_id,power_w,building\n"
    filler = "x" * (WINDOW - 1 - len(header))
    path = write(tmp_path, "r.csv", header + filler + "é\n")  # é is C3 A9: C3 is the window's last byte
    head = read_head(path)
    assert len(head) == WINDOW and head.endswith(b"\xc3")
    assert csv_dialect(path, head).encoding == "utf8"


def test_a_lone_windows_1252_byte_near_the_end_of_a_small_file_is_windows_1252() -> None:
    path = DATA / "cp1252_tail.csv"  # é is E9 two bytes before the end, in a file shorter than the window
    assert csv_dialect(path, read_head(path)).encoding == "cp1252"


@pytest.mark.parametrize(
    ("name", "words"),
    [("readings.xlsx", "Excel"), ("binary.bin", "binary content")],
)
def test_not_a_text_file_is_refused(name: str, words: str) -> None:
    path = DATA / name
    message = refused(csv_dialect, path, read_head(path))
    assert words in message and name in message


def test_a_first_line_without_a_separator_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.csv", "just some text\nmore\n")
    assert "no column separator" in refused(csv_dialect, path, read_head(path))


# --- read_csv -------------------------------------------------------------------------------------


def test_semicolon_file_reads_decimal_commas_as_points() -> None:
    result = load(DATA / "semicolon_comma_decimal.csv")
    assert list(result.frame.columns) == list(LEGACY_MAP)
    assert result.frame[S.POWER_W].tolist()[:3] == ["17", "17.5", "25"]
    assert result.frame[S.POWER_W].tolist()[-1] == "83.818034532392"
    assert result.notes == (Note(NoteKind.INPUT, "columns separated by ';'"), DECIMAL_COMMA_NOTE)
    assert result.lines.tolist() == list(range(2, 12))
    assert result.original()["Power_Usage_W"].tolist()[1] == "17,5"  # the file's own text


def test_semicolon_file_of_whole_numbers_has_no_decimal_comma_note(tmp_path: Path) -> None:
    path = write(
        tmp_path, "r.csv", "timestamp;zone_id;client_id;power_w\n2025-01-30 05:01;HQ-F1-Z1;C001;17\n"
    )
    result = load(path)
    assert result.frame[S.POWER_W].tolist() == [17]
    assert DECIMAL_COMMA_NOTE not in result.notes


def test_comma_file_keeps_a_quoted_decimal_comma_as_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.csv",
        'timestamp,zone_id,client_id,power_w\n2025-01-30 05:01,HQ-F1-Z1,C001,"17,5"\n'
        "2025-01-30 05:02,HQ-F1-Z1,C001,18.0\n",
    )
    result = load(path)
    assert result.frame[S.POWER_W].tolist() == ["17,5", "18.0"]
    assert result.notes == ()


def test_windows_1252_text_is_decoded() -> None:
    result = load(DATA / "cp1252.csv")
    assert result.frame[S.ZONE_ID].astype(str).tolist() == [
        "Bäckerei-F1-Z5",
        "HQ-F2-Z4",
        "Bäckerei-F1-Z5",
        "HQ-F2-Z4",
    ]
    assert result.notes == (Note(NoteKind.INPUT, "text encoding cp1252"),)


def test_bom_and_crlf_leave_no_trace_in_headers_or_cells() -> None:
    result = load(DATA / "bom_crlf.csv")
    assert result.headers == LEGACY_MAP
    assert len(result.frame) == 20 and result.lines.tolist() == list(range(2, 22))
    assert result.frame[S.ZONE].astype(str).tolist()[:3] == ["5", "4", "2"]  # the last cell: no "\r"
    assert result.frame[S.POWER_W].tolist()[:3] == [17.0, 17.0, 25.0]


def test_legacy_headers_become_canonical_column_names_and_others_are_left_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.csv",
        "Timestamp,Comment,Room_ID,Client_ID,Power_Usage_W\n2025-01-30 05:01,hello,HQ-F1-Z1,C001,17.0\n",
    )
    result = load(path)
    assert list(result.frame.columns) == CANONICAL
    assert result.headers == {
        S.TIMESTAMP: "Timestamp",
        S.ZONE_ID: "Room_ID",
        S.CLIENT_ID: "Client_ID",
        S.POWER_W: "Power_Usage_W",
    }
    assert result.frame[S.ZONE_ID].astype(str).tolist() == ["HQ-F1-Z1"]


def test_quoted_line_break_keeps_the_line_each_record_starts_on() -> None:
    """Lines 3–4 are one record (a building name with a line break), so the next records are on 5 and 6."""
    result = load(DATA / "quoted_newline.csv")
    assert result.lines.tolist() == [2, 3, 5, 6]
    assert result.frame[S.BUILDING].astype(str).tolist()[1] == "HQ\nHauptgebäude"
    assert result.malformed.empty


def test_a_record_with_too_many_fields_is_set_apart_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.csv",
        "timestamp,zone_id,client_id,power_w\n"
        "2025-01-30 05:00,HQ-F1-Z1,C001,10.0\n"
        "2025-01-30 05:01,HQ-F1-Z1,C001,11.0,extra\n"
        "2025-01-30 05:02,HQ-F1-Z1,C001,12.0\n",
    )
    result = load(path)
    assert result.frame[S.POWER_W].tolist() == [10.0, 12.0]
    assert result.lines.tolist() == [2, 4]
    assert result.malformed.to_dict("records") == [
        {
            S.LINE: 3,
            "reason": "malformed row: 5 fields, expected 4",
            "text": "2025-01-30 05:01,HQ-F1-Z1,C001,11.0,extra",
        }
    ]


def test_header_without_readings_is_refused() -> None:
    assert "no readings" in refused(load, DATA / "header_only.csv")


def test_no_well_formed_record_is_refused_suggesting_the_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "timestamp,zone_id,client_id,power_w\n2025-01-30 05:00;HQ-F1-Z1\n")
    message = refused(load, path)
    assert "no well-formed rows" in message and "expected 4" in message and "separator" in message


# --- read_parquet ---------------------------------------------------------------------------------


def test_parquet_headers_are_mapped_and_lines_are_row_numbers(tmp_path: Path) -> None:
    path = parquet(
        tmp_path / "r.parquet",
        {
            "Timestamp": ["2025-01-30 05:01:00", "2025-01-30 05:02:00", "2025-01-30 05:03:00"],
            "Room_ID": ["HQ-F1-Z1", "HQ-F1-Z1", "HQ-F1-Z2"],
            "Client_ID": ["C001", "C001", "C001"],
            "Power_Usage_W": [17.0, 17.5, 0.0],
            "Comment": ["a", "b", "c"],
        },
    )
    frame, headers, lines, notes = read_parquet(path)
    assert list(frame.columns) == CANONICAL
    assert headers == {
        S.TIMESTAMP: "Timestamp",
        S.ZONE_ID: "Room_ID",
        S.CLIENT_ID: "Client_ID",
        S.POWER_W: "Power_Usage_W",
    }
    assert frame[S.POWER_W].tolist() == [17.0, 17.5, 0.0]
    assert lines.tolist() == [1, 2, 3]
    assert notes == (parquet_line_note(folder=False),)


def test_parquet_without_rows_is_refused(tmp_path: Path) -> None:
    path = parquet(tmp_path / "r.parquet", {c: pa.array([], pa.string()) for c in CANONICAL})
    assert "no rows" in refused(read_parquet, path)


def test_parquet_missing_a_column_is_refused(tmp_path: Path) -> None:
    path = parquet(tmp_path / "r.parquet", {c: ["x"] for c in CANONICAL if c != S.CLIENT_ID})
    message = refused(read_parquet, path)
    assert "missing required column client_id (or Client_ID)" in message


def test_text_named_parquet_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "r.parquet", "timestamp,zone_id,client_id,power_w\n2025-01-30,HQ-F1-Z1,C001,1\n")
    message = refused(read_parquet, path)
    assert "not a readable Parquet file" in message and "r.parquet" in message


# --- map_headers ----------------------------------------------------------------------------------


def test_legacy_and_canonical_headers_map_to_canonical_names() -> None:
    assert map_headers(LEGACY, "f.csv") == LEGACY_MAP
    assert map_headers(CANONICAL, "f.csv") == {c: c for c in CANONICAL}


def test_headers_match_ignoring_case_spaces_underscores_dashes_and_a_bom() -> None:
    names = ["\ufeffTIME STAMP", "Zone-ID", "client id", "Power W", "Notes"]
    assert map_headers(names, "f.csv") == {
        S.TIMESTAMP: "\ufeffTIME STAMP",
        S.ZONE_ID: "Zone-ID",
        S.CLIENT_ID: "client id",
        S.POWER_W: "Power W",
    }


def test_a_missing_column_is_named_with_its_legacy_name_and_the_likely_typo() -> None:
    names = ["Timestamp", "Room_ID", "Client_ID", "Powr_Usage_W"]
    message = refused(map_headers, names, "header_typo.csv")
    assert message == (
        "header_typo.csv: missing required column power_w (or Power_Usage_W) — is 'Powr_Usage_W' a typo?"
    )


def test_several_missing_columns_are_all_named() -> None:
    message = refused(map_headers, ["Timestamp", "Room_ID"], "f.csv")
    assert message == "f.csv: missing required column client_id (or Client_ID); power_w (or Power_Usage_W)"


def test_two_headers_meaning_one_column_are_refused() -> None:
    message = refused(map_headers, ["Timestamp", "Room_ID", "zone_id", "Client_ID", "Power_Usage_W"], "f.csv")
    assert message == "f.csv: columns 'Room_ID' and 'zone_id' both mean zone_id; keep one"
