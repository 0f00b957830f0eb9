"""The orchestrator's result keeps the frame contracts of result.py / SPEC §7, checked with pandera schemas.

A realistic run (generated readings over the spring DST change, with cleaning crews, overtime and
faults) must produce frames of the documented columns, dtypes and value ranges, and the rows invariant.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pandera.pandas as pa
import pytest

from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.config.site import load_site
from slem_ml.generator.generate import GeneratorConfig, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.scoring.result import ScoredReadings, usage_ms
from slem_ml.scoring.score import score

SITE = load_site(SAMPLE_CONTRACTS)


def _decimal_places(places: int) -> pa.Check:
    return pa.Check(
        lambda s: s.map(lambda v: isinstance(v, Decimal) and v.as_tuple().exponent == -places).all(),
        name=f"Decimal with {places} places",
    )


READINGS = pa.DataFrameSchema(
    {
        S.TIMESTAMP: pa.Column(pd.DatetimeTZDtype("ms", "UTC")),
        S.ZONE_ID: pa.Column("category"),
        S.CLIENT_ID: pa.Column("category", pa.Check.isin(list(SITE.clients))),
        S.POWER_W: pa.Column(float, pa.Check.ge(0)),
        S.CLEANING_STAFF: pa.Column(bool),
        S.IN_CONTRACT: pa.Column(bool),
        S.IS_ON: pa.Column(bool),
        S.USAGE_CLASS: pa.Column("category", pa.Check.isin(list(S.USAGE_CLASSES))),
        S.COVERED_MINUTES: pa.Column(float, pa.Check.in_range(0, SITE.sampling.max_gap_minutes)),
        S.LINE: pa.Column(int, pa.Check.ge(2), unique=True),
    },
    strict=False,
)
LINES = pa.DataFrameSchema(
    {
        "invoice_id": pa.Column(str, pa.Check.str_matches(r"^INV-C00\d-\d{6}$")),
        "start": pa.Column(pd.DatetimeTZDtype("ms", SITE.site.timezone)),
        "end": pa.Column(pd.DatetimeTZDtype("ms", SITE.site.timezone)),
        "billable_minutes": pa.Column(int, pa.Check(lambda s: (s % SITE.billing.block_minutes == 0).all())),
        "energy_kwh": pa.Column(object, _decimal_places(6)),
        "hours_charge": pa.Column(object, _decimal_places(2)),
        "energy_charge": pa.Column(object, _decimal_places(2)),
        "amount": pa.Column(object, _decimal_places(2)),
        "currency": pa.Column(str, pa.Check.eq(SITE.site.currency)),
        "adjusted": pa.Column(bool),
    },
    checks=[
        pa.Check(lambda f: (f["end"] > f["start"]).all(), name="end after start"),
        pa.Check(lambda f: (f["amount"] == f["hours_charge"] + f["energy_charge"]).all(), name="amount"),
        pa.Check(lambda f: ~f["client_id"].eq("C005").any(), name="24/7 client never billed"),
    ],
    strict=False,
)
CLEANING = pa.DataFrameSchema(
    {
        "minutes": pa.Column(object, _decimal_places(3)),
        "flagged": pa.Column(bool),
        "wasted_kwh": pa.Column(object, _decimal_places(6)),
        "savings": pa.Column(object, _decimal_places(2)),
        "inferred": pa.Column(bool),
    },
    checks=[pa.Check(lambda f: (f["end"] > f["start"]).all(), name="end after start")],
    strict=False,
)


@pytest.fixture(scope="module")
def result():
    data = generate(GeneratorConfig(start=dt.date(2025, 3, 24), days=10, zones=12, seed=3, site=SITE))
    frame = data.readings.assign(timestamp=data.readings["timestamp"].astype(str))
    return score(validate_frame(frame, SITE), SITE)


def test_scored_readings_keep_their_contract(result) -> None:
    READINGS.validate(result.readings.frame)
    order = result.readings.frame[[S.ZONE_ID, S.TIMESTAMP]].astype({S.ZONE_ID: str})
    assert order.equals(order.sort_values([S.ZONE_ID, S.TIMESTAMP], kind="stable"))  # zone, time order
    assert result.report.rows_in == (
        result.report.rows_valid + result.report.rows_quarantined + result.report.rows_duplicate
    )


def test_invoice_lines_keep_their_contract(result) -> None:
    assert len(result.invoice_lines) > 0
    LINES.validate(result.invoice_lines)
    totals = result.invoice_lines.groupby("invoice_id")["amount"].sum()
    assert (result.invoices.set_index("invoice_id")["total"] == totals).all()


def test_cleaning_sessions_keep_their_contract(result) -> None:
    assert len(result.cleaning_sessions) > 0
    CLEANING.validate(result.cleaning_sessions)
    over = result.cleaning_sessions["minutes"] > SITE.cleaning.flag_after_minutes
    assert (result.cleaning_sessions["flagged"] | ~over).all()  # shown over the limit → flagged


def test_covered_time_per_usage_class_is_exact_whatever_the_column_type() -> None:
    """Five readings: 5 + 10 min of overtime, 2.5 min of contract, 7 min of cleaning, one unclassified."""
    frame = pd.DataFrame(
        {
            S.USAGE_CLASS: ["overtime", "contract", "overtime", "cleaning", None],
            S.COVERED_MINUTES: [5.0, 2.5, 10.0, 7.0, 99.0],
        }
    )
    expected = {"off": 0, "contract": 150_000, "overtime": 900_000, "cleaning": 420_000}
    assert usage_ms(frame) == expected
    categorical = frame.astype({S.USAGE_CLASS: pd.CategoricalDtype(list(S.USAGE_CLASSES))})
    assert usage_ms(categorical) == expected
    assert ScoredReadings.in_memory(categorical).usage_minutes == {
        "off": 0.0, "contract": 2.5, "overtime": 15.0, "cleaning": 7.0
    }  # fmt: skip
    assert usage_ms(frame.drop(columns=[S.USAGE_CLASS])) == {}
