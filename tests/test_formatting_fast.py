"""The fast text paths of the output files (issue 16) against the slow ones they replace.

Each test writes the same values with the old, per-cell code (kept here as the reference, or the pandas /
csv-module path still used as the fallback) and with the new, vectorised code, and compares the text byte
for byte: random values and edge cases (zero, negative, huge, many decimals, exponent forms, missing, DST
changes, odd offsets, markup and CSV specials in ids).
"""

from __future__ import annotations

import datetime as dt
import io
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from markupsafe import Markup, escape

from slem_ml.io.localtime import iso_local
from slem_ml.outputs import csvsafe, formatting, invoice_render, invoice_summary, text_columns

# --- Decimals ------------------------------------------------------------------------------------


def _old_decimal_text(values: pd.Series) -> pd.Series:
    """decimal_text before issue 16: ``format(value, "f")`` one cell at a time."""

    def cell(value: object) -> str:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value
        raise TypeError(type(value).__name__)

    return values.map(cell, na_action="ignore").fillna("").astype(str)


EDGE_DECIMALS = [
    Decimal("0"), Decimal("0.00"), Decimal("-0.00"), Decimal("0.000000"), Decimal("0E-7"), Decimal("-0E-8"),
    Decimal("1E+2"), Decimal("1.23E+5"), Decimal("0.0000001"), Decimal("-0.0000001234"),
    Decimal("123456789012345678901234567.89"), Decimal("-98765432109876543210.123456"),
    Decimal("0.50"), Decimal("0.5"), Decimal("3.75"), Decimal("-3.75"), Decimal("1e-28"),
    Decimal("Infinity"), Decimal("-Infinity"), Decimal("7"), Decimal("100"),
]  # fmt: skip


def _random_decimals(count: int, seed: int) -> list[Decimal]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        digits = rng.randint(-(10 ** rng.randint(0, 20)), 10 ** rng.randint(0, 20))
        out.append(Decimal(digits).scaleb(-rng.randint(0, 12)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decimal_text_matches_format_f_on_random_and_edge_values(seed: int) -> None:
    values = _random_decimals(5_000, seed) + EDGE_DECIMALS
    random.Random(seed).shuffle(values)
    column = pd.Series(values, dtype=object, index=np.arange(len(values)) * 3)
    new = formatting.decimal_text(column)
    old = _old_decimal_text(column)
    assert new.tolist() == old.tolist()
    assert new.index.equals(column.index) and new.dtype == old.dtype
    assert "E" not in "".join(new)  # never an exponent
    for shown, expected in (("-0E-8", "-0.00000000"), ("1E+2", "100"), ("1.23E+5", "123000")):
        at = next(i for i, value in enumerate(values) if str(value) == shown)  # equal Decimals differ
        assert new.iloc[at] == expected


@pytest.mark.parametrize(
    "missing", [None, np.nan, pd.NA, Decimal("NaN")], ids=["None", "nan", "NA", "Decimal-NaN"]
)
def test_decimal_text_missing_values_are_empty(missing: object) -> None:
    column = pd.Series([Decimal("1.50"), missing, Decimal("0E-7"), missing, Decimal("-2")], dtype=object)
    assert formatting.decimal_text(column).tolist() == ["1.50", "", "0.0000000", "", "-2"]
    assert formatting.decimal_text(column).tolist() == _old_decimal_text(column).tolist()


def test_decimal_text_all_missing_mixed_and_empty_columns() -> None:
    for column in (
        pd.Series([None, None], dtype=object),
        pd.Series([Decimal("1.0"), 3, "7.25", None], dtype=object),  # the per-cell path
        pd.Series([], dtype=object),
    ):
        assert formatting.decimal_text(column).tolist() == _old_decimal_text(column).tolist()
    with pytest.raises(TypeError):
        formatting.decimal_text(pd.Series([Decimal("1"), 1.5], dtype=object))


def test_minutes_text_of_decimals_is_as_stored() -> None:
    column = pd.Series([Decimal("67.500"), Decimal("0.000"), Decimal("1E+1"), None], dtype=object)
    assert formatting.minutes_text(column).tolist() == ["67.500", "0.000", "10", ""]


# --- instants and dates --------------------------------------------------------------------------


def _old_iso_text(values: pd.Series, timezone: str) -> list[str]:
    local = formatting.aware_instants(values).dt.tz_convert(timezone)
    present = local.notna().to_numpy(dtype=bool)
    text = np.full(len(local), "", dtype=object)
    if present.any():
        text[present] = iso_local(pd.DatetimeIndex(local[present]))
    return text.tolist()


ZONES = ["Europe/Berlin", "UTC", "America/St_Johns", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]


@pytest.mark.parametrize("timezone", ZONES)
@pytest.mark.parametrize("unit", ["ms", "ns", "s"])
def test_iso_text_matches_iso_local(timezone: str, unit: str) -> None:
    rng = np.random.default_rng(len(timezone))
    start = pd.Timestamp("2024-01-01", tz="UTC").value // 10**6
    ms = start + rng.integers(0, 2 * 365 * 86_400_000, 20_000)
    ms[::3] -= ms[::3] % 60_000  # whole minutes, as sessions mostly are
    ms[::7] -= ms[::7] % 1000
    # around the DST changes of 2024 in Europe (31 Mar, 27 Oct 01:00 UTC), to the millisecond
    edges = [pd.Timestamp(t, tz="UTC").value // 10**6 for t in ("2024-03-31T01:00", "2024-10-27T01:00")]
    ms = np.concatenate([ms, *[np.arange(e - 3_600_000, e + 3_600_000, 599_999) for e in edges], [0]])
    values = pd.Series(pd.to_datetime(ms, unit="ms", utc=True).as_unit(unit))
    new = formatting.iso_text(values, timezone)
    assert new.tolist() == _old_iso_text(values, timezone)
    assert new.dtype == pd.Series(["x"], dtype="str").dtype


def test_iso_text_with_missing_and_far_instants_takes_the_old_path() -> None:
    values = pd.Series(
        pd.to_datetime(["2025-02-10T17:00:00.250Z", None, "2025-07-01T00:00Z"], utc=True, format="ISO8601")
    )
    assert formatting.iso_text(values, "Europe/Berlin").tolist() == [
        "2025-02-10T18:00:00.250+01:00",
        "",
        "2025-07-01T02:00:00+02:00",
    ]
    far = pd.Series(
        pd.to_datetime(["0999-12-31T23:00Z", "2025-01-01T00:00Z"], utc=True, format="ISO8601").as_unit("ms")
    )
    assert text_columns.iso_array(pd.DatetimeIndex(far)) is None
    assert formatting.iso_text(far, "UTC").tolist() == _old_iso_text(far, "UTC")
    empty = pd.Series(pd.to_datetime([], utc=True))
    assert formatting.iso_text(empty, "UTC").tolist() == []


def test_date_text_matches_strftime() -> None:
    rng = np.random.default_rng(5)
    days = [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(-200_000, 2_900_000, 5000)]
    days += [dt.date(1000, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29), dt.date(1969, 12, 31)]
    column = pd.Series(days, dtype=object)
    old = pd.to_datetime(column, format="ISO8601").dt.strftime("%Y-%m-%d").tolist()
    assert formatting.date_text(column, "UTC").tolist() == old
    early = pd.Series([dt.date(999, 5, 1), dt.date(2025, 1, 1)], dtype=object)  # the slow path
    assert formatting.date_text(early, "UTC").tolist()[1] == "2025-01-01"
    assert text_columns.date_array(np.array(["0999-05-01"], dtype="datetime64[D]")) is None
    with_missing = pd.Series([dt.date(2025, 3, 1), None], dtype=object)
    assert formatting.date_text(with_missing, "UTC").tolist() == ["2025-03-01", ""]


# --- CSV -----------------------------------------------------------------------------------------

SPECIALS = [
    "", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "=SUM(A1)", "+1", "-3.5", "@x", "\ttab", "€ ü 日本",
    '"', ",", "\n", " lead", "trail ", "x\x00y", "'quoted'",
]  # fmt: skip


def _pandas_csv(frame: pd.DataFrame) -> bytes:
    """write_csv before issue 16: escape_frame, then pandas' to_csv into a text file."""
    out = io.StringIO(newline="")
    csvsafe.escape_frame(frame).to_csv(out, index=False, lineterminator="\n")
    return out.getvalue().encode("utf-8")


def _text_frame(rows: int, seed: int, dtype: str) -> pd.DataFrame:
    rng = random.Random(seed)
    pool = (
        SPECIALS + [f"Z{i}-F{i % 7}" for i in range(30)] + ["3.75", "0.000000", "2025-02-10T18:00:00+01:00"]
    )
    data = {f"c{i}": [rng.choice(pool) for _ in range(rows)] for i in range(4)}
    frame = pd.DataFrame(data, dtype=dtype)
    frame.loc[frame.index[::11], "c2"] = None  # missing → ""
    return frame


@pytest.mark.parametrize("dtype", ["str", "object"])
@pytest.mark.parametrize("seed", [1, 2])
def test_write_csv_text_tables_match_pandas(tmp_path: Path, dtype: str, seed: int) -> None:
    frame = _text_frame(3000, seed, dtype)
    csvsafe.write_csv(frame, tmp_path / "a.csv", chunk_rows=700)
    assert (tmp_path / "a.csv").read_bytes() == _pandas_csv(frame)


def test_write_csv_plain_table_and_other_shapes_match_pandas(tmp_path: Path) -> None:
    plain = pd.DataFrame({"a": ["x", "y"], "b": ["1", "2"]}, dtype="str")
    one_column = pd.DataFrame({"only": ["", "a,b", None, "z"]}, dtype="str")  # csv quotes a lone ""
    numbers = pd.DataFrame({"id": ["a", "=b"], "score": [0.1, 1e-7], "n": [1, -2]})  # pandas path
    empty = pd.DataFrame({"a": pd.Series(dtype="str"), "b": pd.Series(dtype="str")})
    header = pd.DataFrame({"=bad,name": ["1"], 'q"': ["2"]}, dtype="str")
    chunks = pa.chunked_array([["a", "b,c"], ["=d"]], pa.large_string())  # a column put together from parts
    chunked = pd.DataFrame({"a": pd.Series(chunks, dtype="str"), "b": ["1", "2", "3"]})
    for number, frame in enumerate((plain, one_column, numbers, empty, header, chunked)):
        path = tmp_path / f"{number}.csv"
        csvsafe.write_csv(frame, path)
        assert path.read_bytes() == _pandas_csv(frame), frame.columns.tolist()


def test_write_csv_parts_are_the_rows_written_alone(tmp_path: Path) -> None:
    frame = _text_frame(2500, 3, "str")
    frame["n"] = np.arange(len(frame))  # a number column: the pandas path for one run below

    def formatter(part: pd.DataFrame) -> pd.DataFrame:
        return part.assign(n=part["n"].astype(str))

    rng = np.random.default_rng(0)
    parts = {
        tmp_path / "some.csv": np.sort(rng.choice(len(frame), 900, replace=False)),
        tmp_path / "none.csv": np.zeros(0, dtype=np.int64),
        tmp_path / "all.csv": np.arange(len(frame)),
    }
    for name, format_as in (("text", formatter), ("mixed", None)):
        csvsafe.write_csv(frame, tmp_path / f"{name}.csv", formatter=format_as, chunk_rows=600, parts=parts)
        for path, at in parts.items():
            alone = tmp_path / f"alone-{path.name}"
            csvsafe.write_csv(frame.take(at), alone, formatter=format_as)
            assert path.read_bytes() == alone.read_bytes(), (name, path.name)
        assert (tmp_path / "all.csv").read_bytes() == (tmp_path / f"{name}.csv").read_bytes()


# --- invoice HTML rows ---------------------------------------------------------------------------


def _old_rows_html(lines: list[dict]) -> str:
    """_rows_html before issue 16: one f-string a row, ``escape`` on every cell."""
    rows = []
    for line in lines:
        energy = escape(line["energy_kwh"])
        if line["adjusted"]:
            metered = escape(line["original_energy_kwh"])
            energy = Markup(f'{energy} †<span class="orig">metered {metered}</span>')
        rows.append(
            f'<tr><td class="nowrap">{escape(line["when"])}</td>'
            f'<td class="zone">{escape(line["zone_id"])}</td>'
            f'<td class="nowrap">{escape(line["time"])}</td>'
            f'<td class="num">{escape(line["minutes"])}</td>'
            f'<td class="num">{escape(line["billable_minutes"])}</td>'
            f'<td class="num">{energy}</td>'
            f'<td class="num">{escape(line["hours_charge"])}</td>'
            f'<td class="num">{escape(line["energy_charge"])}</td>'
            f'<td class="num">{escape(line["amount"])}</td></tr>\n'
        )
    return "".join(rows)


def test_rows_html_matches_escaping_every_cell() -> None:
    rng = random.Random(4)
    zones = ["HQ-F1-Z1", "<script>alert(1)</script>", "R&D \"lab\" 'b'", "plain", "Zürich"]
    lines = [
        {
            "when": f"Mon 2025-02-{rng.randint(1, 28):02d}",
            "zone_id": rng.choice(zones),
            "time": "18:00–19:12:30",
            "minutes": f"{rng.randint(0, 999)}.{rng.randint(0, 999):03d}",
            "billable_minutes": str(rng.randint(0, 999)),
            "energy_kwh": f"{rng.randint(0, 99)}.{rng.randint(0, 999999):06d}",
            "hours_charge": f"{rng.randint(0, 9999):,}.50",
            "energy_charge": "0.00",
            "amount": rng.choice(["3.75", "3.75 held", "1,003.75"]),
            "adjusted": rng.random() < 0.1,
            "original_energy_kwh": rng.choice(["1.000000", "<2>&"]),
        }
        for _ in range(3000)
    ]
    assert str(invoice_render._rows_html(lines)) == _old_rows_html(lines)
    for number, line in enumerate(lines):  # only quotes in a column: escaped too
        line["zone_id"] = ("O'Brien", 'A "B"', "plain")[number % 3]
    assert str(invoice_render._rows_html(lines)) == _old_rows_html(lines)
    lines[0]["billable_minutes"] = 15  # not text: escaped one by one
    assert str(invoice_render._rows_html(lines)) == _old_rows_html(lines)
    assert str(invoice_render._rows_html([])) == ""


# --- invoice summaries ---------------------------------------------------------------------------


def _old_scaled_integers(values: pd.Series, places: int) -> np.ndarray:
    """scaled_integers before issue 16: Python's Decimal arithmetic on the object array."""
    scaled = values.to_numpy(dtype=object) * (10**places)
    whole = scaled.astype(np.int64)
    if not (whole == scaled).all():
        raise ValueError("more decimals")
    return whole


@pytest.mark.parametrize("places", [2, 3, 6])
def test_scaled_integers_match_decimal_arithmetic(places: int) -> None:
    rng = random.Random(places)
    values = [Decimal(rng.randint(-(10**12), 10**12)).scaleb(-rng.randint(0, places)) for _ in range(5000)]
    values += [
        Decimal("0.5"),
        Decimal("-0.00"),
        Decimal("0"),
        Decimal("1E+3"),
        Decimal(2**62).scaleb(-places),
    ]
    column = pd.Series(values, dtype=object)
    new = invoice_summary.scaled_integers(column, places)
    assert new.dtype == np.int64 and new.tolist() == _old_scaled_integers(column, places).tolist()


@pytest.mark.parametrize(
    "values, error",
    [
        ([Decimal("0.001")], ValueError),  # more decimals than places
        ([Decimal("1"), None], TypeError),
        ([Decimal(10) ** 30], OverflowError),
        ([Decimal("1.10"), 0.29], ValueError),  # a float (0.29 × 100 is not whole): as before
    ],
)
def test_scaled_integers_refuse_as_before(values: list, error: type) -> None:
    column = pd.Series(values, dtype=object)
    with pytest.raises(error):
        _old_scaled_integers(column, 2)
    with pytest.raises(error):
        invoice_summary.scaled_integers(column, 2)
