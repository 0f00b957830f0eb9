"""The readings store (SPEC §8; slem_ml/storage/ingest.py, rebill.py, upload.py).

Hand-made cases check ingest's counts and the corrections audit, voids and the run columns on SQLite and
on the local PostgreSQL. A Hypothesis test feeds the oracle's random scenarios (tests/test_oracle.py) to the
store in random, overlapping, shuffled parts and checks that the invoices standing in the store afterwards
are the slow reference's (tests/reference.py) for the whole — to the cent, whatever the order of the parts.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.scoring.score import score
from slem_ml.storage import open_database
from slem_ml.storage.cleaning_store import month_cleaning
from slem_ml.storage.database import write_session
from slem_ml.storage.ingest import ingest
from slem_ml.storage.stored_invoices import current_invoices
from slem_ml.storage.tables import (
    AuditEntry,
    BillingSession,
    Invoice,
    ReadingBlock,
    ReadingCorrection,
    ScoreRun,
    StoreCleaningSession,
)
from slem_ml.storage.upload import Upload, store_upload
from tests.databases import insert_old_run_with_invoice
from tests.reference import drop_exact_duplicates, reference_score
from tests.test_oracle import (
    _frame,
    _records,
    compare_cleaning,
    compare_invoices,
    compare_lines,
    make_site,
    scenarios,
)

SITE = make_site("Europe/Berlin")  # C001 mon-fri 08:00-18:00, 15 min blocks, 15 EUR/h, 0.20 EUR/kWh


def upload(engine: Engine, frame: pd.DataFrame, site: Any = SITE, actor: str = "tester") -> Upload:
    """Validate, score and store one upload, as ``slem score`` does (without the output files)."""
    readings = validate_frame(frame, site)
    result = score(readings, site)
    with write_session(engine) as session:
        return store_upload(
            session, result, [result.readings.frame], cleaning=result.cleaning_source, actor=actor
        )


def evening(*rows: tuple[str, float], zone: str = "HQ-F1-Z1", client: str = "C001") -> pd.DataFrame:
    """Readings of Monday 2025-02-10 (local wall time) with a cleaning flag of No."""
    return pd.DataFrame(
        {
            "timestamp": [f"2025-02-10T{clock}" for clock, _ in rows],
            "zone_id": zone,
            "client_id": client,
            "power_w": [power for _, power in rows],
            "cleaning_staff": "No",
        }
    )


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


# --- ingest: idempotent, with corrections -----------------------------------------------------------------


def test_the_same_file_twice_adds_nothing_the_second_time(engine: Engine) -> None:
    frame = evening(("18:00", 40.0), ("18:15", 40.0), ("18:30", 0.0))
    first = upload(engine, frame)
    assert (first.readings.added, first.readings.unchanged, first.readings.corrected) == (3, 0, 0)
    # 18:00-18:30 lit after closing: 30 min → 2 blocks × 15 EUR/h = 7.50, 0.02 kWh → 0.00 EUR
    assert [str(t) for t in first.result.invoices["total"]] == ["7.50"]
    again = upload(engine, frame)
    assert (again.readings.added, again.readings.unchanged, again.readings.corrected) == (0, 3, 0)
    assert not again.stored.created  # the identical run: nothing new is stored
    assert count(engine, Invoice) == 1 and count(engine, ReadingBlock) == 1


def test_a_correction_keeps_the_old_values_in_the_audit_and_revises_the_invoice(engine: Engine) -> None:
    upload(engine, evening(("18:00", 40.0), ("18:15", 40.0), ("18:30", 0.0)))
    fixed = upload(engine, evening(("18:15", 0.0)), actor="clerk")  # the 18:15 lamp was off after all
    assert (fixed.readings.added, fixed.readings.unchanged, fixed.readings.corrected) == (0, 0, 1)
    # now only 18:00-18:15 is lit: 1 block = 3.75 EUR; 40 W × 0.25 h = 0.01 kWh → 0.00 EUR
    assert [str(t) for t in fixed.result.invoices["total"]] == ["3.75"]
    assert fixed.result.invoices["revision"].tolist() == [2]
    with engine.connect() as connection:
        row = connection.execute(select(ReadingCorrection)).one()
        runs = connection.execute(select(ScoreRun).order_by(ScoreRun.id)).all()
    assert (row.zone_id, row.old_power_w, row.new_power_w, row.actor) == ("HQ-F1-Z1", 40.0, 0.0, "clerk")
    assert row.timestamp == dt.datetime(2025, 2, 10, 17, 15, tzinfo=dt.UTC)  # 18:15 in Berlin
    assert row.line == 2 and row.run_id == runs[-1].id  # the file's first data line is line 2
    assert (runs[-1].readings_added, runs[-1].readings_unchanged, runs[-1].readings_corrected) == (0, 0, 1)


def test_two_rows_of_one_file_at_one_instant_the_later_stands_and_a_re_upload_is_unchanged(
    engine: Engine,
) -> None:
    frame = evening(("18:00", 40.0), ("18:00", 0.0), ("18:15", 0.0))
    done = upload(engine, frame)
    assert (done.readings.added, done.readings.superseded, done.readings.corrected) == (2, 1, 0)
    assert done.result.invoices.empty  # the later row (0 W) stands: no overtime
    again = upload(engine, frame)
    assert (again.readings.unchanged, again.readings.superseded, again.readings.corrected) == (2, 1, 0)
    assert count(engine, ReadingCorrection) == 0


def blocks_of(engine: Engine) -> list[tuple[Any, ...]]:
    """Every stored block's key and packed arrays."""
    with engine.connect() as connection:
        rows = connection.execute(select(ReadingBlock).order_by(ReadingBlock.zone_key, ReadingBlock.utc_day))
        return [(r.zone_key, r.utc_day, r.n, r.ts, r.power, r.client, r.cleaning, r.billed) for r in rows]


def ingest_parts(engine: Engine, frame: pd.DataFrame, parts: list[list[int]]) -> list[Any]:
    """Ingest rows of a validated frame part by part (scored readings with ``billed_power_w``)."""
    reports = []
    for part in parts:
        with write_session(engine) as session:
            piece = frame.iloc[part].reset_index(drop=True)
            reports.append(ingest(session.connection(), piece, cleaning="given", source="t", actor="t"))
    return reports


@pytest.mark.parametrize("billed_in", ["first", "second", "neither"])
def test_later_readings_append_to_a_block_as_one_upload_would_store_them(
    engine: Engine, billed_in: str
) -> None:
    """A following part is appended to the block it shares with a stored part (a local day across two UTC
    days): the packed block is byte for byte what one upload of both parts stores, models' billed power
    included whichever part carried it."""
    rows = ("00:30", 40.0), ("00:45", 41.0), ("01:00", 0.0), ("01:15", 12.5), ("02:00", 40.0)
    one, two = (evening(*rows, zone=zone) for zone in ("HQ-F1-Z1", "HQ-F1-Z2"))
    frame = validate_frame(pd.concat([one, two], ignore_index=True), SITE).frame  # 23:30-01:00 UTC
    billed = {"first": [0, 2], "second": [3], "neither": []}[billed_in]
    frame[S.BILLED_POWER_W] = np.nan
    frame.loc[billed + [5 + i for i in billed], S.BILLED_POWER_W] = 20.0
    ingest_parts(engine, frame, [[0, 1, 2, 3, 4]])  # zone 1 at once
    reports = ingest_parts(engine, frame, [[5, 6, 7], [8, 9]])  # zone 2 in two parts, split at 00:15 UTC
    blocks = blocks_of(engine)
    assert len(blocks) == 4
    assert [b[1:] for b in blocks[:2]] == [b[1:] for b in blocks[2:]]  # same days, same bytes
    later = reports[1]
    assert (later.added, later.unchanged, later.corrected, later.fresh) == (2, 0, 0, False)


def test_a_batch_partly_later_partly_among_stored_readings_counts_each_once(engine: Engine) -> None:
    """One batch appends to one zone and corrects another: both ways in one go, counted once each."""
    first = pd.concat([evening(("18:00", 40.0), ("18:15", 40.0)), evening(("18:00", 40.0), zone="HQ-F1-Z2")])
    upload(engine, first)
    second = pd.concat(
        [evening(("18:30", 40.0), ("18:45", 0.0)), evening(("18:00", 0.0), ("19:00", 5.0), zone="HQ-F1-Z2")]
    )
    done = upload(engine, second)
    assert (done.readings.added, done.readings.unchanged, done.readings.corrected) == (3, 0, 1)
    whole = pd.concat([first, second]).drop_duplicates(["zone_id", "timestamp"], keep="last")
    assert (
        current(engine)["amount"].tolist()
        == score(validate_frame(whole, SITE), SITE).invoice_lines["amount"].tolist()
    )


def test_a_file_without_the_cleaning_flag_does_not_overwrite_a_given_one(engine: Engine) -> None:
    flagged = evening(("18:00", 40.0), ("18:15", 40.0), ("18:30", 0.0)).assign(cleaning_staff="Yes")
    upload(engine, flagged)
    again = upload(engine, flagged.drop(columns="cleaning_staff"))
    assert (again.readings.unchanged, again.readings.corrected) == (3, 0)
    assert again.result.invoices.empty  # still cleaning: never billed


def test_an_invoice_whose_overtime_is_corrected_away_is_voided(engine: Engine) -> None:
    upload(engine, evening(("18:00", 40.0), ("18:15", 0.0)))
    done = upload(engine, evening(("18:00", 0.0)))
    invoice = done.result.invoices.iloc[0]
    assert (invoice["revision"], invoice["lines"], str(invoice["total"])) == (2, 0, "0.00")
    assert done.result.invoice_lines.empty
    with engine.connect() as connection:
        actions = connection.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars().all()
        assert count(engine, BillingSession) == 0
    assert "invoice.voided" in actions
    # voided once: the same correction again changes nothing
    assert upload(engine, evening(("18:00", 0.0))).stored.new_revisions == ()


def test_the_second_half_of_a_month_keeps_the_first_halfs_lines(engine: Engine) -> None:
    first = evening(("18:00", 40.0), ("18:30", 0.0))
    second = first.assign(timestamp=first["timestamp"].str.replace("2025-02-10", "2025-02-24"))
    upload(engine, first)
    done = upload(engine, second)
    invoice = done.result.invoices.iloc[0]
    # each evening: 40 W for 15 min (max_gap) = 1 block, 3.75 EUR
    assert (invoice["lines"], str(invoice["total"]), invoice["revision"]) == (2, "7.50", 2)


def test_a_fresh_upload_alone_in_its_invoices_keeps_the_files_billing_which_is_the_stores(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing stored around it and no other upload's sessions in its invoices: the upload's own lines and
    invoices stand, as the store would make them again (issue 16: not billed twice). With another zone's
    session already in the invoice (a second upload of the month), the store makes them."""
    first = pd.concat(
        [evening(("18:00", 40.0), ("18:30", 0.0)), evening(("19:00", 30.0), ("19:40", 0.0), zone="HQ-F1-Z2")],
        ignore_index=True,
    )
    rebuilt: list[set[str]] = []  # the invoices the store made again, per call

    def spy(connection: Any, site: Any, ids: Any, **kwargs: Any) -> Any:
        rebuilt.append(set(ids))
        return current_invoices(connection, site, ids, **kwargs)

    monkeypatch.setattr("slem_ml.storage.upload.current_invoices", spy)
    done = upload(engine, first)
    assert rebuilt == []
    with engine.connect() as connection:
        ids = set(connection.execute(select(BillingSession.invoice_id)).scalars())
        lines, invoices = current_invoices(connection, SITE, ids)
    pd.testing.assert_frame_equal(done.result.invoice_lines, lines, check_dtype=False)
    mine = done.result.invoices.drop(columns="revision").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, invoices.drop(columns="revision"), check_dtype=False)
    assert (len(lines), str(invoices.iloc[0]["total"])) == (2, "7.50")  # a 15-minute block each, 3.75 EUR
    later = upload(engine, evening(("20:00", 40.0), ("20:15", 0.0), zone="HQ-F1-Z3"))  # fresh, not alone
    assert rebuilt == [{"INV-C001-202502"}]
    invoice = later.result.invoices.iloc[0]
    assert (invoice["lines"], str(invoice["total"]), invoice["revision"]) == (3, "11.25", 2)


def test_a_reading_just_after_midnight_rebills_the_evening_before(engine: Engine) -> None:
    """A late reading bounds the coverage of the previous day's last reading (SPEC §3.1)."""
    upload(engine, evening(("23:50", 40.0)))  # covers 23:50-00:05, cut at midnight: 10 min on the 10th
    before = current(engine)
    assert before["minutes"].astype(str).tolist() == ["10.000", "5.000"]
    upload(engine, evening(("23:55", 0.0)))  # now it ends at 23:55
    after = current(engine)
    assert after["minutes"].astype(str).tolist() == ["5.000"]


def current(engine: Engine) -> pd.DataFrame:
    """Every invoice line standing in the store."""
    with engine.connect() as connection:
        ids = set(connection.execute(select(BillingSession.invoice_id)).scalars())
        lines, _ = current_invoices(connection, SITE, ids)
    return lines


# --- any parts, any order: the invoices of the whole --------------------------------------------------


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated SQLite database to copy for each example."""
    path = tmp_path_factory.mktemp("store") / "template.db"
    open_database(f"sqlite:///{path}").dispose()
    return path


def copy_of(template: Path) -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slem.db"
        shutil.copy(template, path)
        engine = open_database(f"sqlite:///{path}")
        try:
            yield engine
        finally:
            engine.dispose()


@st.composite
def parts_of(draw: st.DrawFn, n: int) -> list[list[int]]:
    """Two to four parts of ``range(n)``: every row in at least one part, some in several, each part
    shuffled."""
    k = draw(st.integers(2, 4))
    home = [draw(st.integers(0, k - 1)) for _ in range(n)]
    parts: list[list[int]] = [[i for i in range(n) if home[i] == p] for p in range(k)]
    for i in range(n):
        if draw(st.integers(0, 4)) == 0:  # overlapping uploads: the row again in another part
            parts[draw(st.integers(0, k - 1))].append(i)
    return [draw(st.permutations(sorted(set(part)))) for part in parts if part]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(scenario=scenarios(), data=st.data())
def test_parts_in_any_order_bill_as_the_whole(template_db: Path, scenario: Any, data: st.DataObject) -> None:
    site, rows = scenario
    # Parts that overlap carry the same values for a key, so the order of the parts cannot matter.
    whole, want = the_whole(rows, site)
    parts = data.draw(parts_of(len(whole)))
    for engine in copy_of(template_db):
        for part in parts:
            upload(engine, _frame([whole[i] for i in part], site), site)
        problems = against_the_reference(engine, site, want)
    assert not problems, "\n".join(problems)


def the_whole(rows: list[dict[str, Any]], site: Any) -> tuple[list[dict[str, Any]], Any]:
    """A scenario's rows as one upload reads them — at one (zone, instant) the later row stands (SPEC
    §3.1) — and the slow reference's result for them."""
    last: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        last[(row["zone_id"], row["ms"])] = row
    whole = list(last.values())
    records, _ = drop_exact_duplicates(_records(whole))
    return whole, reference_score(records, site)


def against_the_reference(engine: Engine, site: Any, want: Any) -> list[str]:
    """How the invoices and cleaning sessions standing in the store differ from the reference's."""
    with engine.connect() as connection:
        ids = set(connection.execute(select(BillingSession.invoice_id)).scalars())
        ids |= set(connection.execute(select(Invoice.invoice_id)).scalars())
        lines, invoices = current_invoices(connection, site, ids)
        dates = connection.execute(select(StoreCleaningSession.date)).scalars().all()
        months = {f"{d.year:04d}-{d.month:02d}" for d in dates}
        months |= {f"{c['date'].year:04d}-{c['date'].month:02d}" for c in want.cleaning_sessions}
        cleaning = month_cleaning(connection, site, months)
    standing = invoices[invoices["lines"] > 0]  # a month whose overtime a later part took away is void
    problems = compare_lines(lines, want.lines) + compare_invoices(standing, want.invoices)
    return problems + compare_cleaning(cleaning, want.cleaning_sessions)


@st.composite
def around_midnight(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    """Readings of one or two zones within three hours of a local midnight (where a late reading changes
    the day before), with a random max_gap and DST-free and DST-changing nights."""
    tz = draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]))
    gap = draw(st.sampled_from([5, 15, 60, 240]))
    site = make_site(tz, sampling={"max_gap_minutes": gap})
    night = draw(st.sampled_from([dt.date(2025, 2, 11), dt.date(2025, 3, 30), dt.date(2025, 11, 2)]))
    midnight = dt.datetime.combine(night, dt.time(), site.site.tz).astimezone(dt.UTC)
    rows = []
    for zone in ["HQ-F1-Z1", "HQ-F1-Z2"][: draw(st.integers(1, 2))]:
        minutes = draw(st.lists(st.integers(-180, 180), min_size=1, max_size=12, unique=True))
        for m in minutes:
            instant = midnight + dt.timedelta(minutes=m)
            rows.append(
                {
                    "ms": int(instant.timestamp() * 1000),
                    "zone_id": zone,
                    "client_id": "C001",
                    "power_w": draw(st.sampled_from([0.0, 40.0, 120.5])),
                    "cleaning_staff": draw(st.booleans()),
                }
            )
    return site, rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=around_midnight(), data=st.data())
def test_late_readings_around_midnight_bill_as_the_whole(
    template_db: Path, scenario: Any, data: st.DataObject
) -> None:
    test_parts_in_any_order_bill_as_the_whole.hypothesis.inner_test(template_db, scenario, data)


# --- an older database keeps its history ------------------------------------------------------------------


def test_a_database_from_before_the_store_keeps_its_invoices_and_history(db_url: str) -> None:
    """Migrate an 0002 database that holds a run and an invoice revision: both survive, and the next
    upload of the same month revises that invoice instead of starting again at revision 1."""
    from alembic import command
    from sqlalchemy import create_engine

    from slem_ml.storage.database import alembic_config
    from slem_ml.storage.queries import invoice_history

    old = create_engine(db_url)
    with old.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0002")
        run_id = insert_old_run_with_invoice(connection)
    old.dispose()
    engine = open_database(db_url)  # upgrades to head
    try:
        assert [r.total for r in invoice_history(engine, "INV-C001-202502")] == [Decimal("15.10")]
        done = upload(engine, evening(("18:00", 40.0), ("18:15", 0.0)))
        assert done.result.invoices["revision"].tolist() == [2]
        history = invoice_history(engine, "INV-C001-202502")
        assert [(r.revision, str(r.total)) for r in history] == [(1, "15.10"), (2, "3.75")]
        with engine.connect() as connection:
            old_run = connection.execute(select(ScoreRun).where(ScoreRun.id == run_id)).one()
        assert old_run.readings_added is None and old_run.source == "old.csv"
    finally:
        engine.dispose()


@pytest.mark.parametrize("form", ["as first released", "as grown in place"])
def test_a_database_at_0003_in_either_form_reaches_the_same_schema(db_url: str, form: str) -> None:
    """Migration 0003 was released, then grew held lines, store cleaning sessions and client days in place;
    0004 adds what a database at 0003 lacks, so both forms end with the models' schema and work."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    from slem_ml.storage.database import VERSION_TABLE, alembic_config
    from slem_ml.storage.tables import Base

    old = create_engine(db_url)
    with old.begin() as connection:
        config = alembic_config(connection=connection)
        command.upgrade(config, "0004" if form == "as grown in place" else "0003")
        command.stamp(config, "0003")
    old.dispose()
    engine = open_database(db_url)  # upgrades to head
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, Base.metadata) == []
        done = upload(engine, evening(("18:00", 40.0), ("18:15", 0.0)))
        assert [str(t) for t in done.result.invoices["total"]] == ["3.75"]
    finally:
        engine.dispose()


# --- a month as it stands ------------------------------------------------------------------------------


def test_export_writes_the_month_as_it_stands_with_a_void_revision_marked(
    engine: Engine, tmp_path: Path
) -> None:
    from slem_ml.outputs.writer import write_invoice_export
    from slem_ml.storage.periods import latest_invoices, period_invoices

    upload(engine, evening(("18:00", 40.0), ("18:15", 0.0)))
    upload(
        engine,
        evening(("18:00", 40.0), ("18:15", 0.0), client="C002"),
        make_site(
            "Europe/Berlin",
            clients={"C001": {"hours": {"mon-fri": "08:00-18:00"}}, "C002": {"hours": "24/7"}},
        ),
    )
    lines, invoices, service = period_invoices(engine, SITE, "2025-02")
    assert service == {"INV-C001-202502": (dt.date(2025, 2, 10), dt.date(2025, 2, 10))}
    assert invoices[["invoice_id", "revision", "lines"]].values.tolist() == [["INV-C001-202502", 2, 0]]
    assert [s.void for s in latest_invoices(engine, period="2025-02")] == [True]
    written = write_invoice_export(invoices, lines, SITE, tmp_path / "feb", service)
    names = sorted(p.relative_to(tmp_path / "feb").as_posix() for p in written)
    assert names == [
        "invoice_lines.csv", "invoices.csv", "invoices/INV-C001-202502.html", "invoices/INV-C001-202502.pdf"
    ]  # fmt: skip
    assert "VOID" in (tmp_path / "feb" / "invoices" / "INV-C001-202502.html").read_text()
    assert (tmp_path / "feb" / "invoice_lines.csv").read_text().count("\n") == 1  # the header only


# --- held lines (SPEC §8.4) ----------------------------------------------------------------------------


def stuck_alert(first: str, last: str, zone: str = "HQ-F1-Z1") -> pd.DataFrame:
    """A stuck_on alert of ``zone`` from ``first`` to ``last`` (Berlin wall time), as the models raise it."""
    tz = "Europe/Berlin"
    return pd.DataFrame(
        {
            "alert_id": [f"stuck_on:{zone}:{first}"],
            "zone_id": [zone],
            "kind": ["stuck_on"],
            "severity": ["high"],
            "detected_at": [pd.Timestamp(last, tz=tz)],
            "first_seen": [pd.Timestamp(first, tz=tz)],
            "last_seen": [pd.Timestamp(last, tz=tz)],
            "score": [13.0],
            "detail": ["lit 13 h outside contracted hours"],
            "status": ["resolved"],
        }
    )


def upload_with_alerts(engine: Engine, frame: pd.DataFrame, alerts: pd.DataFrame) -> Upload:
    """:func:`upload`, with ``alerts`` as if the models had raised them on this file."""
    from dataclasses import replace

    from slem_ml.billing.holds import apply_holds, stuck_on_spans
    from slem_ml.billing.invoices import build_invoices

    result = score(validate_frame(frame, SITE), SITE)
    lines = apply_holds(result.invoice_lines, stuck_on_spans(alerts))
    result = replace(result, alerts=alerts, invoice_lines=lines, invoices=build_invoices(lines, SITE))
    with write_session(engine) as session:
        return store_upload(session, result, [result.readings.frame], cleaning="given", actor="tester")


def test_overtime_during_a_stuck_on_episode_is_held_until_released_or_waived(engine: Engine) -> None:
    from slem_ml.storage.decisions import DecisionError, decide_line
    from slem_ml.storage.queries import audit_log, invoice_history

    evening_and_fault = evening(
        ("18:00", 40.0), ("18:15", 40.0), ("18:30", 0.0), ("20:00", 40.0), ("20:15", 0.0)
    )
    done = upload_with_alerts(engine, evening_and_fault, stuck_alert("2025-02-10 19:45", "2025-02-11 07:00"))
    lines = done.result.invoice_lines
    assert lines["status"].tolist() == ["billed", "held"]  # 18:00-18:30, and 20:00-20:15 in the episode
    invoice = done.result.invoices.iloc[0]
    # 30 min = 7.50 EUR billed; 15 min = 3.75 EUR held for review, not in the total
    assert (str(invoice["total"]), str(invoice["held_total"]), invoice["lines"]) == ("7.50", "3.75", 2)

    start = lines["start"].iloc[1].isoformat()  # 2025-02-10T20:00:00+01:00
    with pytest.raises(DecisionError, match="needs a note"):
        decide_line(engine, SITE, "INV-C001-202502", "HQ-F1-Z1", start, "release", " ", "mia")
    with pytest.raises(DecisionError, match="INV-C001-209902 has no line in zone HQ-F1-Z1"):  # no invoice
        decide_line(engine, SITE, "INV-C001-209902", "HQ-F1-Z1", start, "release", "x", "mia")
    with pytest.raises(DecisionError, match="no line in zone HQ-F1-Z1 starting at"):
        decide_line(
            engine, SITE, "INV-C001-202502", "HQ-F1-Z1", "2025-02-10T21:00+01:00", "release", "x", "mia"
        )
    released = decide_line(
        engine,
        SITE,
        "INV-C001-202502",
        "HQ-F1-Z1",
        start,
        "release",
        "tenant confirms they worked late",
        "mia",
    )
    assert (released.status, released.revision, released.total, released.held_total) == (
        "released",
        2,
        "11.25",
        "0.00",
    )
    waived = decide_line(
        engine, SITE, "INV-C001-202502", "HQ-F1-Z1", start, "waive", "fault after all", "mia"
    )
    assert (waived.revision, waived.total, waived.held_total) == (3, "7.50", "0.00")
    again = decide_line(engine, SITE, "INV-C001-202502", "HQ-F1-Z1", start, "waive", "sure", "mia")
    assert (again.changed, again.revision) == (False, 3)  # what already stands makes no revision

    history = invoice_history(engine, "INV-C001-202502")
    assert [h.line_items["status"].tolist() for h in history] == [
        ["billed", "held"],
        ["billed", "released"],
        ["billed", "waived"],
    ]
    assert [str(h.total) for h in history] == ["7.50", "11.25", "7.50"]
    actions = [e.action for e in audit_log(engine)]
    assert actions.count("invoice.line_released") == 1 and actions.count("invoice.line_waived") == 2

    # a later upload of the same month keeps the decision
    later = upload(
        engine,
        evening(("18:00", 40.0), ("18:15", 40.0), ("18:30", 0.0)).assign(
            timestamp=lambda f: f["timestamp"].str.replace("2025-02-10", "2025-02-17")
        ),
    )
    assert later.result.invoice_lines["status"].tolist() == ["billed", "waived", "billed"]
    assert str(later.result.invoices.iloc[0]["total"]) == "15.00"


def test_the_cli_releases_a_held_line(engine: Engine, db_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from slem_ml.cli.main import app

    upload_with_alerts(
        engine, evening(("20:00", 40.0), ("20:15", 0.0)), stuck_alert("2025-02-10 19:45", "2025-02-11 07:00")
    )
    contracts = tmp_path / "contracts.yaml"
    contracts.write_text(
        "site: {timezone: Europe/Berlin, currency: EUR}\n"
        "clients:\n  C001: {hours: {mon-fri: '08:00-18:00'}}\n",
        encoding="utf-8",
    )
    common = [
        "--zone",
        "HQ-F1-Z1",
        "--start",
        "2025-02-10T20:00:00+01:00",
        "--contracts",
        str(contracts),
        "--db",
        db_url,
    ]
    refused = CliRunner().invoke(app, ["invoices", "release", "INV-C001-202502", *common, "--note", ""])
    # a SlemError: `slem` (run_app) prints its one line and exits with code 2
    assert isinstance(refused.exception, SlemError) and "needs a note" in str(refused.exception)
    done = CliRunner().invoke(
        app, ["invoices", "release", "INV-C001-202502", *common, "--note", "worked late"]
    )
    assert done.exit_code == 0, done.output
    assert (
        "INV-C001-202502 rev 2: the line in HQ-F1-Z1 at 2025-02-10T20:00:00+01:00 is released" in done.output
    )
    listed = CliRunner().invoke(app, ["invoices", "list", "--db", db_url])
    assert "INV-C001-202502" in listed.output and "3.75 EUR  issued" in listed.output


# --- concurrent writers and readers ------------------------------------------------------------------------


def month_of_evenings(first_day: int, last_day: int, zone: str = "HQ-F1-Z1") -> pd.DataFrame:
    """Weekday evenings of February 2025: lit 18:00-18:30 (2 blocks, 7.50 EUR a day)."""
    days = [
        d for d in pd.date_range(f"2025-02-{first_day:02d}", f"2025-02-{last_day:02d}") if d.day_of_week < 5
    ]
    parts = [
        evening(("18:00", 40.0), ("18:15", 40.0), ("18:30", 0.0), zone=zone).assign(
            timestamp=lambda f, d=d: f["timestamp"].str.replace("2025-02-10", d.strftime("%Y-%m-%d"))
        )
        for d in days
    ]
    return pd.concat(parts, ignore_index=True)


def test_two_uploads_at_once_and_readers_meanwhile_see_whole_states(db_url: str) -> None:
    """Two writers (the halves of a month) and a reader at the same time, each with its own engine: the
    writers queue on slem's write lock, the reader never fails and only ever sees a whole upload."""
    import threading

    from slem_ml.storage.periods import period_invoices

    open_database(db_url).dispose()  # migrated once, before the threads start
    halves = [month_of_evenings(1, 14), month_of_evenings(15, 28)]
    seen: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write(frame: pd.DataFrame) -> None:
        engine = open_database(db_url)
        try:
            upload(engine, frame)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    def read() -> None:
        engine = open_database(db_url)
        try:
            while not done.is_set():
                _, invoices, _ = period_invoices(engine, SITE, "2025-02")
                seen.append(str(invoices["total"].sum()) if len(invoices) else "none")
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(half,)) for half in halves]
    reader.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert not errors, errors
    # nothing, one half (10 weekdays each: 75.00), or the whole month (150.00) — never a part of an upload
    assert set(seen) <= {"none", "75.00", "150.00"} and seen
    engine = open_database(db_url)
    try:
        _, invoices, _ = period_invoices(engine, SITE, "2025-02")
    finally:
        engine.dispose()
    assert str(invoices.iloc[0]["total"]) == "150.00"


def test_a_cleaning_session_across_midnight_is_one_session_whatever_the_uploads(engine: Engine) -> None:
    """Cleaning sessions may run past midnight (SPEC §4): a reading uploaded later that extends one from
    the evening before replaces it, not a second half of it."""
    site = make_site("UTC")
    crew = [("2025-02-10T23:50", 40.0), ("2025-02-11T00:00", 40.0), ("2025-02-11T00:10", 0.0)]
    frame = pd.DataFrame(
        {
            "timestamp": [t for t, _ in crew],
            "zone_id": "HQ-F1-Z1",
            "client_id": "C001",
            "power_w": [p for _, p in crew],
            "cleaning_staff": "Yes",
        }
    )
    upload(engine, frame.iloc[[0]], site)  # 23:50 alone covers 23:50-00:05
    done = upload(engine, frame.iloc[1:], site)
    sessions = done.result.cleaning_sessions
    assert [(s.isoformat(), str(m)) for s, m in zip(sessions["start"], sessions["minutes"], strict=True)] == [
        ("2025-02-10T23:50:00+00:00", "20.000")  # 23:50-00:10, one session
    ]


def test_a_night_long_cleaning_session_split_at_midnight_is_one_session(engine: Engine) -> None:
    """A session lit since hours before the split is completed from the stored evening (the context reaches
    back past ``max_gap`` only for a zone lit at the boundary), and a zone dark at midnight is unaffected."""
    site = make_site("UTC")
    stamps = pd.date_range("2025-02-10T22:00", "2025-02-11T01:00", freq="5min")
    crew = pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M"),
            "zone_id": "HQ-F1-Z1",
            "client_id": "C001",
            "power_w": np.where(stamps < pd.Timestamp("2025-02-11T01:00"), 40.0, 0.0),
            "cleaning_staff": "Yes",
        }
    )
    dark = crew.assign(zone_id="HQ-F1-Z2", power_w=np.where(stamps.hour == 0, 40.0, 0.0))
    frame = pd.concat([crew, dark], ignore_index=True)
    evening_part = frame["timestamp"] < "2025-02-11"
    upload(engine, frame[evening_part], site)
    done = upload(engine, frame[~evening_part], site)
    sessions = done.result.cleaning_sessions
    got = [
        (z, s.isoformat(), str(m))
        for z, s, m in zip(sessions["zone_id"], sessions["start"], sessions["minutes"], strict=True)
    ]
    assert got == [
        ("HQ-F1-Z1", "2025-02-10T22:00:00+00:00", "180.000"),  # 22:00-01:00, one session
        ("HQ-F1-Z2", "2025-02-11T00:00:00+00:00", "60.000"),
    ]


@pytest.mark.parametrize(
    ("evening_power", "first_clock"), [(40.0, "00:02"), (40.0, "00:10"), (0.0, "00:02"), (40.0, "01:00")]
)
def test_a_day_appended_after_a_lit_evening_bills_as_one_upload(
    engine: Engine, evening_power: float, first_clock: str
) -> None:
    """A following day keeps its own sessions only where nothing reaches into it from before: a lit
    reading at 23:50 covers 00:00-00:05 of the new day (max_gap 15 min); a first reading at 00:02 cuts that
    cover and joins it into one session the day's file alone does not know. A dark evening, or a first
    reading after the cover ends, changes nothing of the stored session."""
    before = evening(("23:50", evening_power))
    day = pd.DataFrame(
        {
            "timestamp": [f"2025-02-11T{first_clock}", "2025-02-11T01:30"],
            "zone_id": "HQ-F1-Z1",
            "client_id": "C001",
            "power_w": [40.0, 0.0],
            "cleaning_staff": "No",
        }
    )
    upload(engine, before)
    upload(engine, day)
    whole = score(validate_frame(pd.concat([before, day], ignore_index=True), SITE), SITE)
    got = current(engine)
    assert got["minutes"].astype(str).tolist() == whole.invoice_lines["minutes"].astype(str).tolist()
    assert got["amount"].tolist() == whole.invoice_lines["amount"].tolist()


def test_blocks_inserted_a_few_at_a_time_are_those_inserted_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 6: ingest inserts blocks in chunks (bounded memory); a first upload, later readings
    appended to stored blocks and a correction store the same rows whatever the chunk."""
    from slem_ml.storage import block_writes

    zones = [f"HQ-F1-Z{i}" for i in range(5)]
    first = pd.concat([evening(("18:30", 40.0), ("19:00", 41.0), zone=z) for z in zones], ignore_index=True)
    later = pd.concat([evening(("23:45", 12.5), ("00:30", 40.0), zone=z) for z in zones], ignore_index=True)
    fixed = evening(("19:00", 30.0), zone=zones[0])  # a correction of a stored reading
    stored = []
    for chunk in (2, block_writes.BLOCKS_PER_INSERT):
        monkeypatch.setattr(block_writes, "BLOCKS_PER_INSERT", chunk)
        engine = open_database(f"sqlite:///{tmp_path / f'chunk-{chunk}.db'}")
        try:
            for frame in (first, later, fixed):
                upload(engine, frame)
            stored.append(blocks_of(engine))
        finally:
            engine.dispose()
    assert len(stored[0]) >= 5 and stored[0] == stored[1]
