"""The bulk path (slem_ml/storage/columns.py, bulk.py) against the per-cell path it replaced.

* :func:`checked_columns` gives the values the old per-cell loop gave (``_old_rows`` below is that loop, as
  ``payload._rows`` was), and refuses the same cells with the same messages, on random frames and on edge
  values: zero, negative zero, negative, huge, missing, too many decimals, floats, ints, naive instants.
* :func:`insert_columns` (the driver's executemany / COPY) stores what SQLAlchemy's typed insert of the old
  rows stores, value and storage class, on SQLite and PostgreSQL; the raw reads convert back to what the
  typed select returns.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, Table, delete, insert, select, text

from slem_ml.storage import bulk, columns
from slem_ml.storage.payload import _CLEANING, _LINE, _LINE_DEFAULTS, invoice_payloads
from slem_ml.storage.tables import StoreCleaningSession
from slem_ml.storage.types import to_utc

UTC = dt.UTC
SPECS = {"cleaning_sessions": (_CLEANING, {"adjusted": False, "inferred": False, "detail": ""})}
SPECS["invoice_lines"] = (_LINE, _LINE_DEFAULTS)


def _old_rows(frame: pd.DataFrame, table: str, spec: Any, defaults: dict[str, Any]) -> dict[str, list[Any]]:
    """``payload._rows`` before the bulk path, by column: every cell through its converter."""
    missing = [col for col, (_, _, required) in spec.items() if required and col not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {', '.join(missing)}")
    columns: dict[str, list[Any]] = {}
    for column, (key, convert, required) in spec.items():
        if column not in frame.columns:
            columns[key] = [defaults.get(key)] * len(frame)
            continue
        series = frame[column]
        absent = series.isna().to_numpy()
        if required and absent.any():
            raise ValueError(f"{table} row {int(np.argmax(absent)) + 1}: {column} is missing")
        if convert is to_utc and isinstance(series.dtype, pd.DatetimeTZDtype):
            columns[key] = list(series.dt.tz_convert("UTC").dt.to_pydatetime())
            continue
        values: list[Any] = []
        for number, (value, gone) in enumerate(zip(series.tolist(), absent, strict=True), start=1):
            if gone:
                values.append(defaults.get(key))
                continue
            try:
                values.append(convert(value))
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise ValueError(f"{table} row {number}: {column}: {exc}") from None
        columns[key] = values
    return columns


def _money(rng: random.Random, places: int, top: int = 12) -> Decimal:
    """A random amount with ``places`` decimals: small, large, zero, negative zero or the largest with
    ``top`` digits before the point."""
    digits = rng.choice([1, 3, 6, top])
    sign = rng.choice(["", "-"])
    value = Decimal(f"{sign}{rng.randrange(10**digits)}").scaleb(-places)
    return rng.choice([value, Decimal(f"{sign}0").scaleb(-places), Decimal("9" * top + "." + "9" * places)])


def cleaning_frame(seed: int, n: int = 300) -> pd.DataFrame:
    """Random cleaning sessions with edge values: zero and negative money, huge, microseconds, odd names."""
    rng = random.Random(seed)
    starts = pd.to_datetime([1_735_689_600_000_000 + rng.randrange(10**13) for _ in range(n)], unit="us")
    starts = starts.tz_localize("UTC").tz_convert(rng.choice(["Europe/Berlin", "America/New_York", "UTC"]))
    names = [" HQ-F1-Z1 ", "Zone\t2", "back\\slash", "näme ünïcode", "new\nline", "q'uote\"", "Z9"]
    return pd.DataFrame(
        {
            "zone_id": [rng.choice(names) for _ in range(n)],
            "building": [rng.choice(names) for _ in range(n)],
            "floor": [rng.choice(names) for _ in range(n)],
            "date": [dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(400)) for _ in range(n)],
            "start": starts,
            "end": starts + pd.to_timedelta([rng.randrange(10**10) for _ in range(n)], unit="us"),
            "minutes": [rng.choice([0.0, 1 / 3, 59.999, 1e9, rng.random() * 300]) for _ in range(n)],
            "flagged": [rng.random() < 0.5 for _ in range(n)],
            "excess_minutes": [
                Decimal(f"{rng.randrange(10**6)}.{rng.randrange(1000):03d}") for _ in range(n)
            ],
            "wasted_kwh": [_money(rng, 6) for _ in range(n)],
            "savings": [_money(rng, 2) for _ in range(n)],
            "inferred": [rng.random() < 0.5 for _ in range(n)],
        }
    )


def lines_frame(seed: int, n: int = 300) -> pd.DataFrame:
    """Random invoice lines (one invoice) with edge values and each status."""
    rng = random.Random(seed)
    frame = cleaning_frame(seed, n)
    hours = [_money(rng, 2, 11) for _ in range(n)]  # their sum, the amount, fits 12 digits
    energy = [_money(rng, 2, 11) for _ in range(n)]
    return pd.DataFrame(
        {
            "invoice_id": "INV-C001-202502",
            "client_id": "C001",
            "currency": "EUR",
            "zone_id": frame["zone_id"],
            "date": frame["date"],
            "start": frame["start"],
            "end": frame["end"],
            "minutes": [Decimal(f"{rng.randrange(10**5)}.{rng.randrange(1000):03d}") for _ in range(n)],
            "billable_minutes": np.array([rng.randrange(10**6) for _ in range(n)], np.int64),
            "energy_kwh": frame["wasted_kwh"],
            "hours_charge": hours,
            "energy_charge": energy,
            "amount": [h + e for h, e in zip(hours, energy, strict=True)],
            "adjusted": frame["flagged"],
            "original_energy_kwh": [rng.choice([None, _money(rng, 6)]) for _ in range(n)],
            "status": [rng.choice(["billed", "held", "released", "waived"]) for _ in range(n)],
        }
    )


def _same(a: list[Any], b: list[Any]) -> None:
    assert [type(x) for x in a] == [type(x) for x in b]
    assert [repr(x) for x in a] == [repr(x) for x in b]  # Decimal('1.50') is not Decimal('1.5')


FRAMES = {"cleaning_sessions": cleaning_frame, "invoice_lines": lines_frame}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("table", list(FRAMES))
def test_values_are_the_per_cell_values(table: str, seed: int) -> None:
    frame = FRAMES[table](seed)
    spec, defaults = SPECS[table]
    old = _old_rows(frame, table, spec, defaults)
    new = columns.checked_columns(frame, table, spec, defaults)
    assert list(old) == list(new)
    for key in old:
        _same(new[key][0], old[key])


EDGES: list[tuple[str, Any]] = [
    ("savings", 1.5),  # a float where money belongs
    ("savings", Decimal("1.005")),  # too many places
    ("savings", Decimal("1.5")),  # fewer places: quantized, as before
    ("savings", 7),  # an int: quantized
    ("savings", True),
    ("savings", Decimal("1E+3")),
    ("savings", Decimal("-0.00")),
    ("savings", Decimal("1234567890123.00")),  # 15 digits: too many
    ("savings", Decimal("NaN")),
    ("savings", Decimal("Infinity")),
    ("savings", "12.50"),
    ("savings", None),  # missing, required
    ("wasted_kwh", Decimal("0.0000001")),
    ("wasted_kwh", Decimal("1E-7")),
    ("wasted_kwh", Decimal("0E-6")),
    ("wasted_kwh", Decimal("999999999999.999999")),
    ("minutes", -1.0),
    ("minutes", float("inf")),
    ("minutes", "abc"),
    ("minutes", "2.5"),
    ("minutes", Decimal("2.5")),
    ("flagged", "true"),
    ("flagged", 1),
    ("flagged", 2),
    ("zone_id", "   "),
    ("zone_id", 17),
    ("date", "2025-02-30"),
    ("date", "2025-02-03"),
    ("date", dt.datetime(2025, 2, 3, 23, 0, tzinfo=UTC)),
    ("inferred", None),  # missing, not required: the default
    ("start", dt.datetime(2025, 2, 3, 18, 0)),  # naive
    ("start", dt.datetime(2025, 2, 3, 18, 0, tzinfo=UTC)),
    ("start", "2025-02-03 18:00"),
]


@pytest.mark.parametrize(("column", "value"), EDGES)
def test_edge_values_are_refused_or_converted_as_before(column: str, value: Any) -> None:
    frame = cleaning_frame(1, 20).astype({column: object})
    frame.loc[7, column] = value
    frame.loc[13, column] = value
    spec, defaults = SPECS["cleaning_sessions"]
    try:
        old: Any = _old_rows(frame, "cleaning_sessions", spec, defaults)
    except ValueError as exc:
        with pytest.raises(ValueError) as new_exc:
            columns.checked_columns(frame, "cleaning_sessions", spec, defaults)
        assert str(new_exc.value) == str(exc)
        return
    new = columns.checked_columns(frame, "cleaning_sessions", spec, defaults)
    for key in old:
        _same(new[key][0], old[key])


@pytest.mark.parametrize("seed", range(4))
def test_json_rows_are_json_dumps(seed: int) -> None:
    """The run's fingerprint hashes each row's ``json.dumps(row, sort_keys=True, default=str)``."""
    rng = random.Random(seed)
    old = _old_rows(cleaning_frame(seed), "cleaning_sessions", *SPECS["cleaning_sessions"])
    n = len(old["zone_id"])
    old["score"] = [rng.choice([None, 1e16, 0.1 + 0.2, -0.0, 3.0]) for _ in range(n)]
    old["count"] = [rng.randrange(-5, 10**20) for _ in range(n)]
    old["odd"] = [rng.choice([None, "x", 1, True, Decimal("1.0"), float("nan")]) for _ in range(n)]
    old["micro"] = [v.replace(microsecond=rng.choice([0, 5])) for v in old["start_at"]]
    rows = [dict(zip(old, values, strict=True)) for values in zip(*old.values(), strict=True)]
    assert columns.json_rows(old) == [json.dumps(row, sort_keys=True, default=str) for row in rows]


def test_a_naive_column_is_refused_at_its_first_row() -> None:
    frame = cleaning_frame(2, 10)
    frame["start"] = frame["start"].dt.tz_localize(None)
    with pytest.raises(ValueError, match=r"cleaning_sessions row 1: start: .* naive datetime"):
        columns.checked_columns(frame, "cleaning_sessions", *SPECS["cleaning_sessions"])


def test_line_sums_are_checked_in_cents() -> None:
    lines = lines_frame(3, 40)
    amount = pd.Series([Decimal("1.10")] * 40, dtype=object)
    amount[1] = Decimal("-0.35")
    lines["amount"] = amount
    lines["status"] = ["billed"] * 20 + ["held"] * 10 + ["released"] * 5 + ["waived"] * 5
    total = Decimal("1.10") * 24 - Decimal("0.35")  # by hand: 25 billed/released lines, one of -0.35
    head = {
        "invoice_id": "INV-C001-202502", "client_id": "C001", "period": "2025-02", "lines": 40,
        "billable_hours": Decimal("1.000000"), "energy_kwh": Decimal("1.000000"), "total": total,
        "currency": "EUR", "content_hash": "0" * 64, "held_total": Decimal("11.00"),
    }  # fmt: skip
    assert invoice_payloads(pd.DataFrame([head]), lines, "UTC")[0].row["total"] == Decimal("26.05")
    with pytest.raises(ValueError, match=r"total 26.06 is not the sum of its billed lines 26.05$"):
        invoice_payloads(pd.DataFrame([head | {"total": Decimal("26.06")}]), lines, "UTC")
    with pytest.raises(ValueError, match=r"held_total 11.00 is not 11.00|held_total 10.00 is not 11.00"):
        invoice_payloads(pd.DataFrame([head | {"held_total": Decimal("10.00")}]), lines, "UTC")
    lines.loc[5, "currency"] = "USD"
    with pytest.raises(ValueError, match="a line of INV-C001-202502 has currency USD, the invoice EUR"):
        invoice_payloads(pd.DataFrame([head]), lines, "UTC")


def _raw_rows(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (without the id) as the database holds it: on SQLite each value with its
    storage class, on PostgreSQL as the server's text."""
    names = [c.name for c in table.c if c.name != "id"]
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            cols = ", ".join([*names, *(f"typeof({n})" for n in names)])
            return list(connection.execute(text(f"SELECT {cols} FROM {table.name} ORDER BY id")))
        cols = ", ".join(f"{n}::text" for n in names)
        return list(connection.execute(text(f"SELECT {cols} FROM {table.name} ORDER BY id")))


@pytest.mark.parametrize("seed", range(3))
def test_stored_as_sqlalchemy_stores(engine: Engine, seed: int) -> None:
    """The same cleaning sessions written the old way (SQLAlchemy's typed insert of the converted rows)
    and the bulk way hold the same values, read back the same through the typed and the raw select."""
    frame = cleaning_frame(seed)
    spec, defaults = SPECS["cleaning_sessions"]
    old = _old_rows(frame, "cleaning_sessions", spec, defaults) | {"client_id": ["C001"] * len(frame)}
    rows = [dict(zip(old, values, strict=True)) for values in zip(*old.values(), strict=True)]
    table = cast(Table, StoreCleaningSession.__table__)
    with engine.begin() as connection:
        connection.execute(insert(table), rows)
    before = _raw_rows(engine, table)
    with engine.connect() as connection:
        typed = connection.execute(select(table).order_by(table.c.id)).all()
    with engine.begin() as connection:
        connection.execute(delete(table))
        checked = columns.checked_columns(frame, "cleaning_sessions", spec, defaults)
        stored = {key: column for key, (_, column) in checked.items()}
        bulk.insert_columns(connection, table, stored | {"client_id": ["C001"] * len(frame)})
    assert _raw_rows(engine, table) == before
    names = [c.key for c in table.c if c.key != "id"]
    with engine.connect() as connection:
        query = select(*(table.c[n] for n in names)).order_by(table.c.id)
        raw = bulk.columns_of([row for rows in bulk.fetched(connection, query, 100) for row in rows], names)
    want = {n: [getattr(r, n) for r in typed] for n in names}
    _same(bulk.decimals(raw["savings"], 2), want["savings"])
    _same(bulk.decimals(raw["wasted_kwh"], 6), want["wasted_kwh"])
    _same(bulk.dates(raw["date"]), want["date"])
    assert list(bulk.instants(raw["start_at"]).to_pydatetime()) == want["start_at"]
