"""Keeping reports (slem_ml/storage/reports.py, SPEC §10), on SQLite and PostgreSQL: files kept whole with
their SHA-256 and size, a client sees only its own reports, one report per (schedule, period, scope) even
with two keepers at once, and a send is claimed by one process only."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading

import pytest
from sqlalchemy import Engine, select, update

from slem_ml.errors import InputError, SlemError
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.report_tables import KeptReport, ReportFile
from slem_ml.storage.reports import (
    REPORT_COLUMNS,
    ReportExists,
    claim_send,
    keep_report,
    kept_report,
    list_reports,
    record_send,
    report_file,
    report_files,
)

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"  # every byte value, to see none is altered
XLSX = b"PK\x03\x04" + os.urandom(3000)
HTML = "<!doctype html><p>Énergie — 12 kWh</p>".encode()


def _keep(engine: Engine, scope: str, period: str = "2025-03", schedule: str | None = None, **kw) -> int:
    return keep_report(
        engine,
        {"pdf": (f"slem-report-{period}.pdf", PDF), "xlsx": (f"slem-report-{period}.xlsx", XLSX)},
        scope=scope,
        period=period,
        title=f"Energy report — {scope} — {period}",
        created_by="alice",
        schedule=schedule,
        **kw,
    )


def test_a_kept_report_comes_back_whole_with_its_checksum_and_size(engine: Engine) -> None:
    before = dt.datetime.now(dt.UTC)
    report_id = keep_report(
        engine,
        {"pdf": ("r.pdf", PDF), "html": ("r.html", HTML), "xlsx": ("r.xlsx", XLSX)},
        scope="site",
        period="2025-W10",
        title="Energy report — Whole site — Week 10 of 2025",
        created_by="alice",
        summary="12 kWh",
    )
    assert report_file(engine, report_id, "pdf") == ("r.pdf", PDF)
    assert report_file(engine, report_id, "xlsx") == ("r.xlsx", XLSX)
    assert report_file(engine, report_id, "html") == ("r.html", HTML)
    assert report_files(engine, report_id) == {
        "html": ("r.html", HTML),
        "pdf": ("r.pdf", PDF),
        "xlsx": ("r.xlsx", XLSX),
    }
    with engine.connect() as connection:
        rows = {
            r.format: r
            for r in connection.execute(select(ReportFile).where(ReportFile.report_id == report_id))
        }
    assert rows["pdf"].sha256 == hashlib.sha256(PDF).hexdigest()
    assert rows["pdf"].size_bytes == len(PDF) == 10_256
    listed = list_reports(engine)
    assert list(listed.columns) == list(REPORT_COLUMNS)
    row = listed.iloc[0]
    assert (row["report_id"], row["period"], row["scope"], row["formats"]) == (
        report_id,
        "2025-W10",
        "site",
        "html, pdf, xlsx",
    )
    assert row["created_by"] == "alice" and row["schedule"] is None and row["sent_to"] is None
    assert before <= row["created_at"].to_pydatetime() <= dt.datetime.now(dt.UTC)
    assert str(row["created_at"].tz) == "UTC"


def test_a_damaged_file_is_refused_rather_than_served(engine: Engine) -> None:
    report_id = _keep(engine, "site")
    with write_session(engine) as session:
        session.execute(
            update(ReportFile)
            .where(ReportFile.report_id == report_id, ReportFile.format == "pdf")
            .values(content=b"%PDF-other")
        )
    with pytest.raises(SlemError, match="damaged"):
        report_file(engine, report_id, "pdf")


def test_a_client_sees_only_its_own_reports(engine: Engine) -> None:
    site = _keep(engine, "site")
    c1 = _keep(engine, "client:C001")
    c2 = _keep(engine, "client:C002")
    building = _keep(engine, "building:HQ")
    assert set(list_reports(engine)["report_id"]) == {site, c1, c2, building}
    assert list(list_reports(engine, client_id="C001")["report_id"]) == [c1]
    assert list_reports(engine, client_id="C003").empty
    assert report_file(engine, c1, "pdf", client_id="C001")[1] == PDF
    for other in (site, c2, building):
        with pytest.raises(InputError, match="^no such report$"):
            report_file(engine, other, "pdf", client_id="C001")
    with pytest.raises(InputError, match="^no such report$"):
        report_file(engine, c1, "html", client_id="C001")  # a format it does not have
    with pytest.raises(InputError, match="^no such report$"):
        report_file(engine, 99_999, "pdf")


def test_a_schedule_keeps_one_report_per_period_and_scope(engine: Engine) -> None:
    first = _keep(engine, "site", schedule="monthly site", mail_to=["a@example.com", "b@example.com"])
    with pytest.raises(ReportExists):
        _keep(engine, "site", schedule="monthly site")
    other_scope = _keep(engine, "client:C001", schedule="monthly site")
    other_period = _keep(engine, "site", period="2025-04", schedule="monthly site")
    by_hand = [_keep(engine, "site"), _keep(engine, "site")]  # no schedule: as many as asked for
    assert len({first, other_scope, other_period, *by_hand}) == 5
    kept = kept_report(engine, "monthly site", "2025-03", "site")
    assert kept is not None and kept.report_id == first
    assert kept.mail_to == ("a@example.com", "b@example.com") and kept.sent_at is None
    assert kept_report(engine, "monthly site", "2025-02", "site") is None


def test_the_database_itself_refuses_a_second_report_of_a_schedule(engine: Engine) -> None:
    """The unique key is the backstop behind keep_report's check (two processes, the check raced)."""
    _keep(engine, "site", schedule="weekly")
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(Exception, match="(?i)unique"), write_session(engine) as session:
        session.add(
            KeptReport(
                created_at=now, period="2025-03", scope="site", title="t", summary="", created_by="x",
                schedule="weekly", mail_to=None, sent_at=None, send_error=None, send_attempts=0,
                send_started_at=None,
            )
        )  # fmt: skip


def test_two_keepers_at_once_keep_one_report(db_url: str) -> None:
    open_database(db_url).dispose()
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def keeper() -> None:
        engine = open_database(db_url)
        try:
            barrier.wait()
            outcomes.append(_keep(engine, "site", schedule="monthly site"))
        except ReportExists as exc:
            outcomes.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=keeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(isinstance(o, int) for o in outcomes) == 1
    assert sum(isinstance(o, ReportExists) for o in outcomes) == 3
    engine = open_database(db_url)
    try:
        assert len(list_reports(engine)) == 1
    finally:
        engine.dispose()


def test_a_send_is_claimed_once_and_a_stale_claim_can_be_taken_over(engine: Engine) -> None:
    report_id = _keep(engine, "site", schedule="s", mail_to=["a@example.com"])
    now = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)
    assert claim_send(engine, report_id, now=now)
    assert not claim_send(engine, report_id, now=now + dt.timedelta(minutes=9))  # another process is on it
    assert claim_send(engine, report_id, now=now + dt.timedelta(minutes=11))  # that one died
    record_send(engine, report_id, at=now, sent=False, error="the mail server refused the sign-in")
    kept = kept_report(engine, "s", "2025-03", "site")
    assert (
        kept is not None
        and kept.send_attempts == 2
        and kept.send_error == "the mail server refused the sign-in"
    )
    assert list_reports(engine)["send_error"].iloc[0] == "the mail server refused the sign-in"
    assert claim_send(engine, report_id, now=now + dt.timedelta(minutes=12))  # released: try again
    record_send(engine, report_id, at=now, sent=True, error=None)
    assert not claim_send(engine, report_id, now=now + dt.timedelta(hours=1))  # sent: never again
    row = list_reports(engine).iloc[0]
    assert row["sent_to"] == "a@example.com" and row["sent_at"] == now and row["send_error"] is None
