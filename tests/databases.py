"""Where the database tests run: a SQLite file, and the local PostgreSQL server (fixtures in conftest.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert

from slem_ml.storage.tables import Invoice, ScoreRun

#: The local server: 127.0.0.1:5432, user postgres, trust auth.
PG_HOST = "postgres@127.0.0.1:5432"
#: ``params`` for a fixture that runs each test on both backends.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def insert_old_run_with_invoice(connection: Any) -> int:
    """A run and revision 1 of INV-C001-202502 (15.10 EUR) written with the columns every schema revision
    has, as a slem from before a migration stored them; returns the run's id."""
    now = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    run_id = connection.execute(
        insert(ScoreRun.__table__).values(
            created_at=now,
            actor="slem 0.x",
            status="complete",
            fingerprint="f" * 64,
            input_sha256="0" * 64,
            source="old.csv",
            timezone="Europe/Berlin",
            currency="EUR",
            rows_in=3,
            rows_scored=3,
            rows_quarantined=0,
            rows_duplicate=0,
            timings={},
            versions={},
        )  # fmt: skip
    ).inserted_primary_key[0]
    connection.execute(
        insert(Invoice.__table__).values(
            invoice_id="INV-C001-202502",
            revision=1,
            client_id="C001",
            period="2025-02",
            content_hash="a" * 64,
            lines=1,
            billable_hours=Decimal("1.00"),
            energy_kwh=Decimal("0.5"),
            total=Decimal("15.10"),
            currency="EUR",
            timezone="Europe/Berlin",
            run_id=run_id,
            created_at=now,
        )  # fmt: skip
    )
    return int(run_id)
