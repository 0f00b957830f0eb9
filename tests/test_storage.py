"""Storage: migrations, invoice revisions, idempotence, atomicity and concurrency on SQLite and PostgreSQL.

Every database test runs twice: against a SQLite file in ``tmp_path`` and against the local PostgreSQL server
(127.0.0.1:5432, user postgres, trust auth), in a database created for this session and a schema created for
each test, both dropped afterwards (the ``db_url`` and ``engine`` fixtures in ``conftest.py``).

The invoices are small enough to check on paper (site rates 15.00 per zone-hour and 0.20 per kWh; C002 has its
own 12.50 per hour; blocks of 15 minutes):

=======  ==========  ===================  =======  ========  ======  =====  ======  ======
client   zone        local start          minutes  billable  kWh     hours  energy  amount
=======  ==========  ===================  =======  ========  ======  =====  ======  ======
C001     HQ-F1-Z1    2025-02-03 18:00     40       45        0.4     11.25  0.08    11.33
C001     HQ-F1-Z2    2025-02-04 06:30     30       30        0.15    7.50   0.03    7.53
C002     HQ-F2-Z1    2025-02-05 19:00     70       75        0.7     15.63  0.14    15.77
=======  ==========  ===================  =======  ========  ======  =====  ======  ======

so INV-C001-202502 totals 18.86 and INV-C002-202502 15.77.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, inspect, select, text, update
from sqlalchemy.orm import Session

from slem_ml.config.site import parse_site
from slem_ml.io.readings import ValidationReport
from slem_ml.io.schema import ALERT_COLUMNS, CLEANING_COLUMNS, INVOICE_COLUMNS, INVOICE_LINE_COLUMNS
from slem_ml.scoring.result import ScoredReadings, ScoringResult
from slem_ml.storage import (
    StorageError,
    audit_log,
    invoice_history,
    latest_run,
    open_database,
    run_cleaning,
    run_invoices,
    store_result,
    with_revisions,
)
from slem_ml.storage import store as store_module
from slem_ml.storage.database import HEAD_REVISION, VERSION_TABLE
from slem_ml.storage.tables import Alert, Base, Invoice
from tests.databases import BACKENDS, PG_HOST

TZ = "Europe/Berlin"
SITE = parse_site(
    {
        "site": {"timezone": TZ, "currency": "EUR"},
        "clients": {
            "C001": {"name": "Acme", "hours": {"mon-fri": "08:00-18:00"}},
            "C002": {"hours": {"mon-fri": "09:00-19:00"}, "hourly_rate": 12.5},
        },
    }
)
TABLES = {
    "score_runs", "invoices", "invoice_lines", "run_invoices", "cleaning_sessions", "alerts",
    "maintenance_actions", "audit_log", "users",
}  # fmt: skip
FEBRUARY = [
    ("C001", "HQ-F1-Z1", "2025-02-03 18:00", 40, "0.4"),
    ("C001", "HQ-F1-Z2", "2025-02-04 06:30", 30, "0.15"),
    ("C002", "HQ-F2-Z1", "2025-02-05 19:00", 70, "0.7"),
]


# --- building results by hand -------------------------------------------------------------------------


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


def make_line(client: str, zone: str, start: str, minutes: int, kwh: str) -> dict[str, Any]:
    """One invoice line priced as SPEC §3.4–3.6 says."""
    begin = pd.Timestamp(start, tz=TZ)
    billable = -(-minutes // 15) * 15
    energy = Decimal(kwh).quantize(Decimal("0.000001"))
    contract = SITE.clients[client]
    hours_charge = _cents(Decimal(billable) / 60 * contract.hourly_rate)
    energy_charge = _cents(energy * contract.energy_rate)
    return {
        "invoice_id": f"INV-{client}-{begin:%Y%m}",
        "client_id": client,
        "zone_id": zone,
        "date": begin.date(),
        "start": begin,
        "end": begin + pd.Timedelta(minutes=minutes),
        "minutes": float(minutes),
        "billable_minutes": billable,
        "energy_kwh": energy,
        "hours_charge": hours_charge,
        "energy_charge": energy_charge,
        "amount": hours_charge + energy_charge,
        "currency": "EUR",
        "adjusted": False,
        "original_energy_kwh": None,
        "status": "billed",
    }


def make_result(
    sessions: list[tuple[str, str, str, int, str]],
    *,
    input_sha256: str = "a" * 64,
    cleaning: pd.DataFrame | None = None,
    alerts: pd.DataFrame | None = None,
) -> ScoringResult:
    lines = pd.DataFrame([make_line(*s) for s in sessions], columns=list(INVOICE_LINE_COLUMNS))
    invoices = []
    for invoice_id, group in lines.groupby("invoice_id", sort=True):
        canonical = group.drop(columns=["invoice_id"]).astype(str).to_numpy().tolist()
        invoices.append(
            {
                "invoice_id": invoice_id,
                "client_id": group["client_id"].iloc[0],
                "period": group["start"].iloc[0].strftime("%Y-%m"),
                "revision": 1,
                "lines": len(group),
                "billable_hours": Decimal(int(group["billable_minutes"].sum())) / 60,
                "energy_kwh": sum(group["energy_kwh"], Decimal(0)),
                "total": sum(group["amount"], Decimal("0.00")),
                "currency": "EUR",
                "content_hash": hashlib.sha256(json.dumps(canonical).encode()).hexdigest(),
                "held_total": Decimal("0.00"),
            }
        )
    report = ValidationReport(
        source="february.csv",
        input_sha256=input_sha256,
        file_format="csv",
        columns={},
        rows_in=100,
        rows_valid=96,
        rows_quarantined=3,
        rows_duplicate=1,
        reasons={"negative power": 3},
        first_timestamp=pd.Timestamp("2025-02-01T00:00Z"),
        last_timestamp=pd.Timestamp("2025-02-28T23:45Z"),
    )
    return ScoringResult(
        site=SITE,
        readings=ScoredReadings.in_memory(pd.DataFrame()),
        invoice_lines=lines,
        invoices=pd.DataFrame(invoices, columns=list(INVOICE_COLUMNS)),
        cleaning_sessions=make_cleaning() if cleaning is None else cleaning,
        alerts=pd.DataFrame(columns=list(ALERT_COLUMNS)) if alerts is None else alerts,
        quarantine=pd.DataFrame(columns=["line", "reason"]),
        report=report,
        timings={"read": 0.25, "billing": 0.5},
        model_versions={"forecaster": "3"},
    )


def make_cleaning() -> pd.DataFrame:
    start = pd.Timestamp("2025-02-03 20:00", tz=TZ)
    row = {
        "zone_id": "HQ-F1-Z1", "building": "HQ", "floor": 1, "date": start.date(), "start": start,
        "end": start + pd.Timedelta(minutes=75), "minutes": 75.0, "flagged": False,
        "excess_minutes": 15.0, "wasted_kwh": Decimal("0.150000"), "savings": Decimal("0.03"),
        "inferred": False,
    }  # fmt: skip
    return pd.DataFrame([row], columns=list(CLEANING_COLUMNS))


def make_alert(alert_id: str, last_seen: str, **extra: Any) -> pd.DataFrame:
    seen = pd.Timestamp(last_seen, tz="UTC")
    row = {
        "alert_id": alert_id, "zone_id": "HQ-F1-Z1", "kind": "stuck_on", "severity": "high",
        "detected_at": seen, "first_seen": pd.Timestamp("2025-02-10T18:00Z"), "last_seen": seen,
        "score": 0.9, "detail": "on for 14 h after closing; expected off",
    } | extra  # fmt: skip
    return pd.DataFrame([row])


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables
        }


# --- tests --------------------------------------------------------------------------------------------


def test_migrations_create_the_schema_from_empty(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = open_database(db_url)
    try:
        assert TABLES | {VERSION_TABLE} <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert context.get_current_heads() == (HEAD_REVISION,)
            assert compare_metadata(context, Base.metadata) == []  # models == migrated schema
        assert all(n == 0 for n in counts(engine).values())
    finally:
        engine.dispose()
    again = open_database(db_url)  # an up-to-date database is left as it is
    again.dispose()


def test_store_and_read_back_exact_decimals(engine: Engine) -> None:
    result = make_result(FEBRUARY)

    stored = store_result(engine, result, actor="clerk")

    assert stored.created
    assert stored.revisions == {"INV-C001-202502": 1, "INV-C002-202502": 1}
    assert sorted(stored.new_revisions) == ["INV-C001-202502", "INV-C002-202502"]
    [c001] = invoice_history(engine, "INV-C001-202502")
    assert (c001.revision, c001.total, c001.energy_kwh) == (1, Decimal("18.86"), Decimal("0.550000"))
    assert c001.billable_hours == Decimal("1.25") and c001.lines == 2 and c001.currency == "EUR"
    assert c001.run_id == stored.run_id and c001.created_at.tzinfo is not None
    [c002] = invoice_history(engine, "INV-C002-202502")
    assert c002.total == Decimal("15.77")
    expected = result.invoice_lines[result.invoice_lines["client_id"] == "C001"]
    pd.testing.assert_frame_equal(c001.line_items, expected.reset_index(drop=True))
    assert str(c001.line_items["start"].iloc[0]) == "2025-02-03 18:00:00+01:00"

    run = latest_run(engine)
    assert run is not None and run.run_id == stored.run_id
    assert (run.rows_in, run.rows_scored, run.rows_quarantined, run.rows_duplicate) == (100, 96, 3, 1)
    assert run.input_sha256 == "a" * 64 and run.source == "february.csv" and run.actor == "clerk"
    assert run.invoices == stored.revisions and run.timings == {"read": 0.25, "billing": 0.5}
    assert run.versions["models"] == {"forecaster": "3"} and "slem" in run.versions
    assert counts(engine)["cleaning_sessions"] == 1
    assert [e.action for e in audit_log(engine)] == ["run.stored", "invoice.created", "invoice.created"]


def test_storing_the_same_run_twice_stores_it_once(engine: Engine) -> None:
    first = store_result(engine, make_result(FEBRUARY))
    before = counts(engine)

    second = store_result(engine, make_result(FEBRUARY))

    assert not second.created
    assert second.run_id == first.run_id and second.revisions == first.revisions
    assert second.new_revisions == ()
    assert counts(engine) == before


def test_changed_lines_make_revision_2_with_an_audit_entry(engine: Engine) -> None:
    store_result(engine, make_result(FEBRUARY))
    corrected = [
        ("C001", "HQ-F1-Z1", "2025-02-03 18:00", 55, "0.55"),  # 60 billable: 15.00 + 0.11 = 15.11
        FEBRUARY[1],
        ("C001", "HQ-F1-Z3", "2025-02-06 19:00", 15, "0.1"),  # new: 3.75 + 0.02 = 3.77
        FEBRUARY[2],
    ]
    result = make_result(corrected, input_sha256="b" * 64)

    stored = store_result(engine, result)

    assert stored.created and stored.new_revisions == ("INV-C001-202502",)
    assert stored.revisions == {"INV-C001-202502": 2, "INV-C002-202502": 1}
    history = invoice_history(engine, "INV-C001-202502")
    assert [(r.revision, r.total, r.lines) for r in history] == [
        (1, Decimal("18.86"), 2),
        (2, Decimal("26.41"), 3),
    ]
    [entry] = audit_log(engine, action="invoice.revised")
    detail = entry.detail
    assert entry.entity_id == "INV-C001-202502"
    assert (detail["old_revision"], detail["new_revision"]) == (1, 2)
    assert (detail["old_total"], detail["new_total"]) == ("18.86", "26.41")
    assert detail["old_hash"] == history[0].content_hash
    assert detail["new_hash"] == history[1].content_hash != detail["old_hash"]
    assert detail["lines_added"] == [
        {"zone_id": "HQ-F1-Z3", "start": "2025-02-06T19:00:00+01:00", "amount": "3.77"}
    ]
    assert detail["lines_removed"] == []
    [changed] = detail["lines_changed"]
    assert changed["zone_id"] == "HQ-F1-Z1" and changed["start"] == "2025-02-03T18:00:00+01:00"
    assert changed["changes"]["amount"] == {"old": "11.33", "new": "15.11"}
    assert changed["changes"]["minutes"] == {"old": 40.0, "new": 55.0}
    assert set(changed["changes"]) == {
        "end_at", "minutes", "billable_minutes", "energy_kwh", "hours_charge", "energy_charge",
        "amount",
    }  # fmt: skip
    assert detail["summary"] == ("revision 1 → 2: 1 line added, 1 line changed; total 18.86 → 26.41 EUR")
    assert len(invoice_history(engine, "INV-C002-202502")) == 1
    revised = with_revisions(result.invoices, stored.revisions)
    assert revised["revision"].tolist() == [2, 1]
    assert result.invoices["revision"].tolist() == [1, 1]  # the result itself is left alone


def test_revision_history_keeps_every_revision(engine: Engine) -> None:
    a, b = FEBRUARY, [*FEBRUARY[:2], ("C002", "HQ-F2-Z1", "2025-02-05 19:00", 80, "0.8")]

    runs = [
        store_result(engine, make_result(a, input_sha256="a" * 64)),
        store_result(engine, make_result(b, input_sha256="b" * 64)),
        store_result(engine, make_result(a, input_sha256="a" * 64)),  # back to A: news, not a repeat
    ]

    assert [r.created for r in runs] == [True, True, True]
    assert [r.revisions["INV-C002-202502"] for r in runs] == [1, 2, 3]
    assert [r.revisions["INV-C001-202502"] for r in runs] == [1, 1, 1]
    history = invoice_history(engine, "INV-C002-202502")
    assert [r.revision for r in history] == [1, 2, 3]
    assert [r.total for r in history] == [Decimal("15.77"), Decimal("18.91"), Decimal("15.77")]
    assert history[0].content_hash == history[2].content_hash != history[1].content_hash
    assert [r.run_id for r in history] == [r.run_id for r in runs]
    assert invoice_history(engine, "INV-C009-202502") == []
    assert len(audit_log(engine, entity="invoice", entity_id="INV-C002-202502")) == 3
    assert len(audit_log(engine, limit=2)) == 2


def test_a_runs_invoices_are_the_revisions_it_made_or_confirmed(engine: Engine) -> None:
    first = store_result(engine, make_result(FEBRUARY))
    b = [*FEBRUARY[:2], ("C002", "HQ-F2-Z1", "2025-02-05 19:00", 80, "0.8")]  # C002 revised, C001 as it was
    second = store_result(engine, make_result(b, input_sha256="b" * 64))

    newer = run_invoices(engine, second.run_id)
    older = run_invoices(engine, first.run_id)
    only_c002 = run_invoices(engine, second.run_id, client_id="C002")

    assert [(r.invoice_id, r.revision, r.run_id) for r in newer] == [
        ("INV-C001-202502", 1, first.run_id),  # confirmed unchanged: made by the first run
        ("INV-C002-202502", 2, second.run_id),
    ]
    assert [(r.invoice_id, r.revision) for r in older] == [("INV-C001-202502", 1), ("INV-C002-202502", 1)]
    assert [(r.invoice_id, r.revision, r.total) for r in only_c002] == [
        ("INV-C002-202502", 2, Decimal("18.91"))
    ]
    assert only_c002[0].line_items["minutes"].tolist() == [80.0]
    pd.testing.assert_frame_equal(
        newer[0].line_items, invoice_history(engine, "INV-C001-202502")[0].line_items
    )
    assert run_invoices(engine, second.run_id, client_id="C009") == []
    assert run_invoices(engine, 999) == []


def test_a_runs_cleaning_sessions_read_back_as_written(engine: Engine) -> None:
    later = make_cleaning().assign(zone_id="HQ-F1-Z2")
    later["start"] = later["start"] + pd.Timedelta(days=1)
    later["end"] = later["end"] + pd.Timedelta(days=1)
    later["date"] = [later["start"].iloc[0].date()]
    written = pd.concat([later, make_cleaning()], ignore_index=True)  # not in start order
    stored = store_result(engine, make_result(FEBRUARY, cleaning=written))

    cleaning = run_cleaning(engine, stored.run_id)

    expected = written.iloc[[1, 0]].reset_index(drop=True).assign(floor="1")  # text, as in the CSV
    pd.testing.assert_frame_equal(cleaning, expected, check_dtype=False)
    assert list(cleaning.columns) == list(CLEANING_COLUMNS)
    assert str(cleaning["start"].iloc[0]) == "2025-02-03 20:00:00+01:00"  # site time (SPEC §7)
    assert cleaning["savings"].tolist() == [Decimal("0.03")] * 2
    empty = run_cleaning(engine, 999)
    assert empty.empty and list(empty.columns) == list(CLEANING_COLUMNS)


def test_a_failure_halfway_leaves_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_after_invoices(session: Session, *args: Any) -> None:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 2  # written, not committed
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(store_module, "_write_cleaning", fail_after_invoices)
        with pytest.raises(RuntimeError, match="disk on fire"):
            store_result(engine, make_result(FEBRUARY))

    assert all(n == 0 for n in counts(engine).values())
    assert latest_run(engine) is None
    assert store_result(engine, make_result(FEBRUARY)).revisions["INV-C001-202502"] == 1


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        ("cleaning_sessions", "savings", 0.03, "cleaning_sessions row 1: savings: expected a Decimal"),
        ("invoice_lines", "amount", Decimal("11.335"), "more than 2 decimal places"),
        ("invoice_lines", "start", pd.Timestamp("2025-02-03 18:00"), "naive datetime"),
        ("invoices", "total", Decimal("99.99"), "is not the sum of its billed lines"),
        ("cleaning_sessions", "flagged", "maybe", "'maybe' is not true/false"),
    ],
)
def test_a_malformed_result_writes_nothing(
    engine: Engine, table: str, column: str, value: Any, message: str
) -> None:
    result = make_result(FEBRUARY)
    frame = {
        "cleaning_sessions": result.cleaning_sessions,
        "invoice_lines": result.invoice_lines,
        "invoices": result.invoices,
    }[table]
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = value

    with pytest.raises(ValueError, match=message):
        store_result(engine, result)

    assert all(n == 0 for n in counts(engine).values())


def test_a_missing_column_is_named(engine: Engine) -> None:
    result = make_result(FEBRUARY, cleaning=make_cleaning().drop(columns=["wasted_kwh"]))

    with pytest.raises(ValueError, match="cleaning_sessions: missing column"):
        store_result(engine, result)

    assert all(n == 0 for n in counts(engine).values())


def test_concurrent_stores_never_share_a_revision(db_url: str) -> None:
    open_database(db_url).dispose()  # migrate first: here only the stores race
    writers = 4
    engines = [open_database(db_url) for _ in range(writers)]
    start = threading.Barrier(writers)
    results = [
        make_result(
            [*FEBRUARY[:2], ("C002", "HQ-F2-Z1", "2025-02-05 19:00", 60 + 10 * i, "0.7")],
            input_sha256=f"{i}" * 64,
        )
        for i in range(writers)
    ]

    def store(i: int) -> int:
        start.wait()
        return store_result(engines[i], results[i]).revisions["INV-C002-202502"]

    try:
        with ThreadPoolExecutor(writers) as pool:
            revisions = list(pool.map(store, range(writers)))
        assert sorted(revisions) == [1, 2, 3, 4]
        assert [r.revision for r in invoice_history(engines[0], "INV-C002-202502")] == [1, 2, 3, 4]
        assert len(invoice_history(engines[0], "INV-C001-202502")) == 1
    finally:
        for engine in engines:
            engine.dispose()


_start_together: Any = None  # a multiprocessing barrier, set in each worker process


def _join_race(barrier: Any) -> None:
    global _start_together
    _start_together = barrier


def _race_in_a_process(url: str, i: int) -> int:
    """Open a fresh database and store variant ``i`` of February, as a separate ``slem score`` would."""
    _start_together.wait(timeout=60)
    engine = open_database(url)
    try:
        result = make_result(
            [*FEBRUARY[:2], ("C002", "HQ-F2-Z1", "2025-02-05 19:00", 60 + 10 * i, "0.7")],
            input_sha256=f"{i}" * 64,
        )
        return store_result(engine, result).revisions["INV-C002-202502"]
    finally:
        engine.dispose()


def test_processes_racing_on_a_fresh_database(db_url: str) -> None:
    """Migration and stores from several processes at once: one schema, no duplicate revision."""
    writers = 3
    # fork where there is one: the children start at once instead of importing pandas again
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier = context.Barrier(writers)
    with ProcessPoolExecutor(
        writers, mp_context=context, initializer=_join_race, initargs=(barrier,)
    ) as pool:
        revisions = list(pool.map(_race_in_a_process, [db_url] * writers, range(writers)))

    assert sorted(revisions) == [1, 2, 3]
    engine = open_database(db_url)
    try:
        assert [r.revision for r in invoice_history(engine, "INV-C002-202502")] == [1, 2, 3]
        assert counts(engine)["score_runs"] == 3
    finally:
        engine.dispose()


def test_the_same_run_stored_at_once_is_stored_once(db_url: str) -> None:
    open_database(db_url).dispose()
    engines = [open_database(db_url) for _ in range(2)]
    start = threading.Barrier(2)

    def store(engine: Engine) -> bool:
        start.wait()
        return store_result(engine, make_result(FEBRUARY)).created

    try:
        with ThreadPoolExecutor(2) as pool:
            created = list(pool.map(store, engines))
        assert sorted(created) == [False, True]
        assert counts(engines[0])["score_runs"] == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_alerts_are_raised_once_and_keep_acknowledgements(engine: Engine) -> None:
    first = make_result(FEBRUARY, alerts=make_alert("A-1", "2025-02-11T08:00Z"))
    store_result(engine, first)
    with Session(engine) as session, session.begin():
        session.execute(update(Alert).values(acknowledged_by="mia", note="ticket 42"))
    later = make_alert("A-1", "2025-02-12T08:00Z", status="ongoing", score=0.95)

    stored = store_result(engine, make_result(FEBRUARY, input_sha256="c" * 64, alerts=later))

    with Session(engine) as session:
        [alert] = session.scalars(select(Alert)).all()
        assert (alert.status, alert.score, alert.acknowledged_by, alert.note) == (
            "ongoing", 0.95, "mia", "ticket 42",
        )  # fmt: skip
        assert alert.last_seen == pd.Timestamp("2025-02-12T08:00Z").to_pydatetime()
        assert alert.last_run_id == stored.run_id != alert.run_id
    actions = [e.action for e in audit_log(engine, entity="alert")]
    assert actions == ["alert.status", "alert.raised"]


def test_a_schema_from_a_newer_slem_is_refused(engine: Engine, db_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))

    with pytest.raises(StorageError, match="revision 9999.*newer slem"):
        open_database(db_url)


@pytest.fixture(params=BACKENDS)
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'slem.db'}"
    request.getfixturevalue("pg_database")  # the server is up; the database is not there
    return f"postgresql+psycopg://{PG_HOST}/slem_no_such_database"


def test_an_unreachable_database_is_one_clear_error(unreachable_url: str) -> None:
    with pytest.raises(StorageError, match="cannot open database"):
        open_database(unreachable_url)


@pytest.fixture(params=BACKENDS)
def unusable_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        path = tmp_path / "slem.db"
        path.write_bytes(b"this is not a SQLite database " * 100)
        return f"sqlite:///{path}"
    database = request.getfixturevalue("pg_database")  # reachable, but nowhere to create tables
    return f"postgresql+psycopg://{PG_HOST}/{database}?options=-csearch_path%3Dno_such_schema"


def test_a_database_slem_cannot_use_is_one_clear_error(unusable_url: str) -> None:
    with pytest.raises(StorageError, match="cannot create or upgrade slem's schema in .*: "):
        open_database(unusable_url)


@pytest.mark.parametrize(
    ("url", "message"),
    [("not a url", "is not a URL"), ("mysql://root@localhost/slem", "only sqlite")],
)
def test_an_unusable_url_is_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        open_database(url)


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    from slem_ml.storage.database import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config(url="sqlite://")).get_heads() == [HEAD_REVISION]
