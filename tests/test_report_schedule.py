"""Report schedules and mail (SPEC §10; slem_ml/config/reporting.py, slem_ml/reports/schedule.py and
deliver.py, the scheduler in slem_ml/app/server.py).

The clock is given (``now``), APScheduler's own ``CronTrigger`` says when a schedule fires, the mail goes to
a real SMTP server (aiosmtpd on 127.0.0.1 with STARTTLS required, a certificate made here and a password
checked), and reports are kept in SQLite and PostgreSQL. Making a report is a stand-in (``make=``) so these
tests do not depend on the renderers; the last test runs the real ``make_report`` when it exists.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Engine

from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.config.reporting import ReportSchedule, SmtpSettings
from slem_ml.config.site import SiteConfig, parse_site
from slem_ml.errors import ConfigError
from slem_ml.outputs.report_content import Co2Factor, ReportContent
from slem_ml.reports.deliver import DeliveryError, send_report
from slem_ml.reports.schedule import (
    CATCH_UP_MINUTES,
    ReportScheduler,
    cron_trigger,
    due_period,
    last_run_at,
    run_due,
)
from slem_ml.storage import open_database
from slem_ml.storage.reports import kept_report, list_reports, report_file

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"
XLSX = b"PK\x03\x04" + bytes(range(255, -1, -1)) * 8
SMTP_USER, SMTP_PASSWORD = "slem@example.com", "correct horse battery staple"


# --- the configuration ----------------------------------------------------------------------------------


def site_with(reports: list[dict[str, Any]] | None = None, smtp: dict[str, Any] | None = None) -> SiteConfig:
    raw = yaml.safe_load(SAMPLE_CONTRACTS.read_text(encoding="utf-8"))
    if reports is not None:
        raw["reports"] = reports
    if smtp is not None:
        raw["smtp"] = smtp
    return parse_site(raw)


SMTP = {
    "host": "smtp.example.com",
    "username": SMTP_USER,
    "password_env": "SLEM_SMTP_PASSWORD",
    "from": "slem@example.com",
}


def test_contracts_yaml_reads_schedules_and_mail_settings() -> None:
    text = (
        SAMPLE_CONTRACTS.read_text(encoding="utf-8")
        + """
reports:
  - every: month
    scope: site
    to: [facility@example.com, cfo@example.com]
  - {every: week, at: "06:30", on: friday, scope: "client:C001", formats: [html], name: Acme weekly}
  - {every: quarter, at: 7:15, on: 5, scope: "building:HQ"}
smtp:
  host: mail.example.com
  username: slem@example.com
  password_env: SLEM_SMTP_PASSWORD
  from: reports@example.com
"""
    )
    site = parse_site(yaml.safe_load(text))
    assert site.reports == (
        ReportSchedule(
            "monthly site",
            "month",
            dt.time(7, 0),
            1,
            "site",
            ("facility@example.com", "cfo@example.com"),
            ("pdf", "xlsx"),
        ),
        ReportSchedule("Acme weekly", "week", dt.time(6, 30), 4, "client:C001", (), ("html",)),
        ReportSchedule(
            "quarterly building:HQ", "quarter", dt.time(7, 15), 5, "building:HQ", (), ("pdf", "xlsx")
        ),
    )
    assert site.smtp == SmtpSettings(
        host="mail.example.com", sender="reports@example.com", port=587, starttls=True,
        username="slem@example.com", password_env="SLEM_SMTP_PASSWORD",
    )  # fmt: skip
    assert site.reports[1].when_text() == "Fridays 06:30"
    assert site_with().reports == () and site_with().smtp is None  # both optional


@pytest.mark.parametrize(
    ("reports", "smtp", "message"),
    [
        (
            [{"every": "day"}],
            None,
            "contracts.yaml: reports[0].every: 'day' is not one of week, month, quarter",
        ),
        ([{"every": "week", "on": "someday"}], None, "reports[0].on: 'someday' is not a weekday"),
        ([{"every": "month", "on": 31}], None, "reports[0].on: 31 is not a day of the month from 1 to 28"),
        ([{"every": "month", "at": "25:00"}], None, "reports[0].at: '25:00' is not a time of day"),
        (
            [{"every": "month", "scope": "client:C999"}],
            None,
            "reports[0].scope: client 'C999' is not one of the clients",
        ),
        ([{"every": "month", "scope": "floor:1"}], None, "reports[0].scope: 'floor:1' is not a scope"),
        (
            [{"every": "month", "formats": ["docx"]}],
            None,
            "reports[0].formats: 'docx' is not one of pdf, html, xlsx",
        ),
        (
            [{"every": "month", "to": ["not-an-address"]}],
            SMTP,
            "reports[0].to: 'not-an-address' is not a mail address",
        ),
        ([{"every": "month", "colour": "red"}], None, "reports[0].colour: unknown key"),
        (
            [{"every": "month"}, {"every": "month"}],
            None,
            "reports[1].name: 'monthly site' is used by another schedule",
        ),
        (
            [{"every": "week", "to": ["a@example.com"]}],
            None,
            "reports[0].to: addresses are given but there are no smtp:",
        ),
        ([], {**SMTP, "password": "hunter2"}, "smtp.password: the password is never kept in this file"),
        (
            [],
            {**SMTP, "password_env": "not a name"},
            "smtp.password_env: 'not a name' is not the name of an environment",
        ),
        ([], {k: v for k, v in SMTP.items() if k != "password_env"}, "smtp.password_env: missing"),
        ([], {**SMTP, "from": "nobody"}, "smtp.from: 'nobody' is not a mail address"),
        ([], {**SMTP, "starttls": False}, "smtp.starttls: signing in as 'slem@example.com' without STARTTLS"),
        ([], {**SMTP, "port": 0}, "smtp.port: 0 is not a port number"),
        ([], {"from": "a@example.com"}, "smtp.host: missing"),
    ],
)
def test_a_malformed_schedule_or_mail_setting_is_refused_naming_its_key(reports, smtp, message) -> None:
    with pytest.raises(ConfigError) as caught:
        site_with(reports, smtp)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


# --- when a schedule runs and what it reports on ---------------------------------------------------------


def schedule(every: str, at: str = "07:00", on: int | None = None, name: str = "s") -> ReportSchedule:
    default_on = 0 if every == "week" else 1
    hours, minutes = (int(p) for p in at.split(":"))
    return ReportSchedule(name, every, dt.time(hours, minutes), default_on if on is None else on, "site")


def berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN).astimezone(UTC)


@pytest.mark.parametrize(
    ("every", "now", "period"),
    [
        # Mondays 07:00: until then the week before last is the latest complete one reported
        ("week", berlin(2025, 3, 10, 6, 59), "2025-W09"),
        ("week", berlin(2025, 3, 10, 7, 0), "2025-W10"),  # 3–9 March
        ("week", berlin(2025, 3, 16, 23, 0), "2025-W10"),
        ("week", berlin(2025, 1, 6, 7, 0), "2025-W01"),  # 30 Dec 2024 – 5 Jan 2025 is ISO week 1 of 2025
        ("week", berlin(2021, 1, 4, 7, 0), "2020-W53"),
        # day 1 of the month 07:00
        ("month", berlin(2025, 4, 1, 6, 59), "2025-02"),
        ("month", berlin(2025, 4, 1, 7, 0), "2025-03"),
        ("month", berlin(2025, 1, 1, 7, 0), "2024-12"),
        ("month", berlin(2025, 4, 30, 23, 0), "2025-03"),
        # day 1 of each quarter 07:00
        ("quarter", berlin(2025, 4, 1, 7, 0), "2025-Q1"),
        ("quarter", berlin(2025, 3, 31, 23, 0), "2024-Q4"),
        ("quarter", berlin(2025, 1, 1, 6, 0), "2024-Q3"),
    ],
)
def test_a_schedule_reports_the_last_complete_period_before_its_latest_run(every, now, period) -> None:
    assert due_period(schedule(every), BERLIN, now) == period


def test_a_schedule_on_another_day_still_reports_the_period_before() -> None:
    friday = schedule("week", on=4)
    assert last_run_at(friday, BERLIN, berlin(2025, 3, 12, 12, 0)) == berlin(2025, 3, 7, 7, 0)
    assert due_period(friday, BERLIN, berlin(2025, 3, 12, 12, 0)) == "2025-W09"  # run on Fri 7 March
    assert due_period(friday, BERLIN, berlin(2025, 3, 14, 7, 0)) == "2025-W10"
    fifteenth = schedule("month", on=15)
    assert due_period(fifteenth, BERLIN, berlin(2025, 3, 14, 12, 0)) == "2025-01"
    assert due_period(fifteenth, BERLIN, berlin(2025, 3, 15, 7, 0)) == "2025-02"


def fires(trigger: Any, start: dt.datetime, count: int) -> list[dt.datetime]:
    out, previous, now = [], None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        out.append(fire.astimezone(UTC))
        previous = now = fire
    return out


def test_a_07_00_schedule_fires_at_07_00_local_on_both_sides_of_each_clock_change() -> None:
    """Berlin is UTC+1 in winter and UTC+2 in summer (29 March and 25 October 2026): 07:00 local is 06:00 UTC
    in winter and 05:00 UTC in summer."""
    weekly = cron_trigger(schedule("week"), BERLIN)
    assert fires(weekly, berlin(2026, 3, 20), 3) == [
        dt.datetime(2026, 3, 23, 6, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 30, 5, 0, tzinfo=UTC),
        dt.datetime(2026, 4, 6, 5, 0, tzinfo=UTC),
    ]
    assert fires(weekly, berlin(2026, 10, 17), 2) == [
        dt.datetime(2026, 10, 19, 5, 0, tzinfo=UTC),
        dt.datetime(2026, 10, 26, 6, 0, tzinfo=UTC),
    ]
    monthly = cron_trigger(schedule("month"), BERLIN)
    assert fires(monthly, berlin(2026, 3, 2), 1) == [dt.datetime(2026, 4, 1, 5, 0, tzinfo=UTC)]
    assert fires(monthly, berlin(2026, 10, 2), 1) == [dt.datetime(2026, 11, 1, 6, 0, tzinfo=UTC)]
    quarterly = cron_trigger(schedule("quarter"), BERLIN)
    assert fires(quarterly, berlin(2026, 1, 2), 2) == [
        dt.datetime(2026, 4, 1, 5, 0, tzinfo=UTC),
        dt.datetime(2026, 7, 1, 5, 0, tzinfo=UTC),
    ]


def test_a_02_30_schedule_fires_once_on_the_days_the_clocks_change() -> None:
    """02:30 does not exist on 29 March 2026 (02:00 → 03:00) and exists twice on 25 October: one run each."""
    sundays = cron_trigger(schedule("week", at="02:30", on=6), BERLIN)
    assert fires(sundays, berlin(2026, 3, 28), 2) == [
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 03:30 summer time, straight after the change
        dt.datetime(2026, 4, 5, 0, 30, tzinfo=UTC),
    ]
    # APScheduler 3.11 fires the repeated 02:30 twice (summer, then winter time); run_due makes one report
    assert fires(sundays, berlin(2026, 10, 24), 3) == [
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 1, 30, tzinfo=UTC),
    ]
    first, second, _ = fires(sundays, berlin(2026, 10, 24), 3)
    the_schedule = schedule("week", at="02:30", on=6)
    assert last_run_at(the_schedule, BERLIN, second) == first
    assert due_period(the_schedule, BERLIN, first) == due_period(the_schedule, BERLIN, second) == "2026-W42"


@pytest.mark.parametrize(
    "the_schedule",
    [
        schedule("week"),
        schedule("week", at="02:30", on=6),
        schedule("month", at="23:45"),
        schedule("quarter", on=28),
    ],
    ids=["mondays 07:00", "sundays 02:30", "monthly 23:45", "quarterly day 28"],
)
def test_a_report_is_due_exactly_when_apscheduler_fires(the_schedule: ReportSchedule) -> None:
    """run_due decides from the clock: at each fire over two years (four clock changes) the run is due,
    a microsecond before it the run before is the latest (a repeated local time: the first of the two)."""
    trigger = cron_trigger(the_schedule, BERLIN)
    times = fires(trigger, berlin(2025, 12, 1), 110 if the_schedule.every == "week" else 12)
    repeated, last = 0, times[0]
    for fire in times[1:]:
        if fire.astimezone(BERLIN).replace(tzinfo=None) == last.astimezone(BERLIN).replace(tzinfo=None):
            repeated += 1
            assert last_run_at(the_schedule, BERLIN, fire) == last
            continue
        assert last_run_at(the_schedule, BERLIN, fire) == fire
        assert last_run_at(the_schedule, BERLIN, fire - dt.timedelta(microseconds=1)) == last
        last = fire
    assert repeated == (2 if the_schedule.at == dt.time(2, 30) else 0)


def test_a_fire_apscheduler_misses_is_caught_up_by_the_next_catch_up_run() -> None:
    """APScheduler 3.11's CronTrigger skips 1 April 2026 00:15 in Berlin (from 1 March it answers 1 May: it
    steps days as 24 hours across the clock change). slem serve also runs run_due every 15 minutes, which
    decides from the clock: by 00:30 the March report is due."""
    midnight = schedule("month", at="00:15")
    assert last_run_at(midnight, BERLIN, berlin(2026, 4, 1, 0, 30)) == berlin(2026, 4, 1, 0, 15)
    assert due_period(midnight, BERLIN, berlin(2026, 4, 1, 0, 30)) == "2026-03"
    assert due_period(midnight, BERLIN, berlin(2026, 4, 1, 0, 14)) == "2026-02"


# --- making and keeping ----------------------------------------------------------------------------------


@dataclass
class Made:
    content: ReportContent
    files: dict[str, tuple[str, bytes]]


@dataclass
class StandIn:
    """Makes a small report as make_report would, counting its calls; ``fail`` makes it raise."""

    fail: Exception | None = None
    delay_s: float = 0.0
    calls: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    def __call__(self, engine, site, period, scope, *, models, formats, now) -> Made:
        self.calls.append((period, scope, tuple(formats)))
        time.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        content = report_content(period, scope, now)
        data = {"pdf": PDF, "xlsx": XLSX, "html": b"<!doctype html><p>report</p>"}
        stem = f"slem-report-{scope.replace(':', '-')}-{period}"
        return Made(content, {fmt: (f"{stem}.{fmt}", data[fmt]) for fmt in formats})


def report_content(period: str, scope: str, now: dt.datetime) -> ReportContent:
    frames = {f.name: pd.DataFrame() for f in fields(ReportContent) if f.type == "pd.DataFrame"}
    frames["by_place"] = pd.DataFrame({"Zone": ["HQ-F1-Z1"], "Energy [kWh]": [1234.5]})
    return ReportContent(
        title=f"Energy report — {scope} — {period}", scope=scope, scope_label="Whole site", period=period,
        period_label=f"Period {period}", start=dt.date(2025, 3, 1), end=dt.date(2025, 4, 1),
        timezone="Europe/Berlin", currency="EUR", generated_at=now, co2=Co2Factor(0.38, "test", 2024),
        energy_kwh=1234.5, cost=Decimal("246.90"), notes=("No readings a year earlier.",), **frames,
    )  # fmt: skip


def test_run_due_makes_each_due_report_once_and_catches_up_only_the_latest(engine: Engine) -> None:
    site = site_with(
        [{"every": "week", "formats": ["pdf", "html"]}, {"every": "month", "scope": "client:C001"}]
    )
    make = StandIn()
    now = berlin(2025, 3, 10, 7, 0)
    done = run_due(engine, site, now=now, models=None, make=make)
    assert [(r.schedule, r.period, r.scope, r.error, r.made) for r in done] == [
        ("weekly site", "2025-W10", "site", None, True),
        ("monthly client:C001", "2025-02", "client:C001", None, True),
    ]
    # the HTML is always made and kept (the app's "View here" shows it), whatever the schedule mails
    assert make.calls == [
        ("2025-W10", "site", ("html", "pdf")),
        ("2025-02", "client:C001", ("html", "pdf", "xlsx")),
    ]
    assert (
        done[0].line() == f"reports: made 'weekly site' 2025-W10 (site) as report {done[0].report_id}, kept"
    )
    assert report_file(engine, done[0].report_id, "pdf") == ("slem-report-site-2025-W10.pdf", PDF)
    assert report_file(engine, done[1].report_id, "pdf", client_id="C001")[1] == PDF
    assert report_file(engine, done[1].report_id, "html") == (
        "slem-report-client-C001-2025-02.html",
        b"<!doctype html><p>report</p>",
    )
    listed = list_reports(engine)
    assert set(listed["schedule"]) == {"weekly site", "monthly client:C001"}
    assert set(listed["created_by"]) == {"schedule"}
    assert set(listed["title"]) == {
        "Energy report — site — 2025-W10",
        "Energy report — client:C001 — 2025-02",
    }

    # again, and later the same week: nothing new
    assert run_due(engine, site, now=now, models=None, make=make) == []
    assert run_due(engine, site, now=berlin(2025, 3, 16, 23, 59), models=None, make=make) == []
    assert len(make.calls) == 2

    # slem was off for five weeks: only the latest week and month are made, no backfill
    later = run_due(engine, site, now=berlin(2025, 4, 14, 9, 0), models=None, make=make)
    assert [(r.schedule, r.period) for r in later] == [
        ("weekly site", "2025-W15"),
        ("monthly client:C001", "2025-03"),
    ]
    assert len(list_reports(engine)) == 4


def test_a_report_that_cannot_be_made_is_reported_and_tried_again(engine: Engine) -> None:
    site = site_with([{"every": "month"}])
    now = berlin(2025, 4, 1, 7, 0)
    done = run_due(engine, site, now=now, models=None, make=StandIn(fail=RuntimeError("disk full")))
    assert [(r.report_id, r.error) for r in done] == [(None, "not made: RuntimeError: disk full")]
    assert (
        done[0].line() == "reports: failed 'monthly site' 2025-03 (site): not made: RuntimeError: disk full"
    )
    assert list_reports(engine).empty
    again = run_due(engine, site, now=now + dt.timedelta(minutes=15), models=None, make=StandIn())
    assert [(r.period, r.error) for r in again] == [("2025-03", None)]


# --- mail through a real SMTP server ------------------------------------------------------------------


@dataclass
class SmtpServer:
    port: int
    ca_file: Path
    inbox: list[tuple[str, list[str], bytes]]
    logins: list[bytes]


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (the test's client trusts it as its CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "slem test SMTP")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "smtp.crt", tmp / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1: STARTTLS required before anything, sign-in required, one password."""
    cert_file, key_file = self_signed(tmp_path_factory.mktemp("smtp"))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    server = SmtpServer(0, cert_file, [], [])

    class Inbox:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            server.inbox.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            return "250 Message accepted for delivery"

    def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        server.logins.append(data.login)
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 235 or 535

    server.port = free_port()
    controller = Controller(
        Inbox(), hostname="127.0.0.1", port=server.port, tls_context=tls, require_starttls=True,
        auth_required=True, authenticator=authenticator,
    )  # fmt: skip
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
def mail(smtp_server: SmtpServer) -> SmtpServer:
    smtp_server.inbox.clear()
    smtp_server.logins.clear()
    return smtp_server


def smtp_settings(server: SmtpServer, **changes: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1", "port": server.port, "username": SMTP_USER,
        "password_env": "SLEM_TEST_SMTP_PASSWORD", "from": "slem@example.com", "ca_file": str(server.ca_file),
        **changes,
    }  # fmt: skip


def test_a_report_is_mailed_over_starttls_with_its_files_intact(mail: SmtpServer) -> None:
    settings = site_with([], smtp_settings(mail)).smtp
    assert settings is not None
    html = "<!doctype html><p>Énergie: 12 kWh</p>".encode()
    refused = send_report(
        settings, ["facility@example.com", "cfo@example.com"],
        "Energy report — Whole site — March 2025",
        "Energy: 1,234.5 kWh.\n", {"pdf": ("r.pdf", PDF), "xlsx": ("r.xlsx", XLSX), "html": ("r.html", html)},
        SMTP_PASSWORD,
    )  # fmt: skip
    assert refused == ()
    [(sender, recipients, raw)] = mail.inbox
    assert sender == "slem@example.com" and recipients == ["facility@example.com", "cfo@example.com"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "Energy report — Whole site — March 2025"
    assert message["To"] == "facility@example.com, cfo@example.com"
    assert message.get_body(("plain",)).get_content().splitlines() == ["Energy: 1,234.5 kWh."]
    parts = {p.get_filename(): p for p in message.iter_attachments()}
    assert parts["r.pdf"].get_content_type() == "application/pdf"
    assert parts["r.pdf"].get_content() == PDF  # byte for byte
    assert (
        parts["r.xlsx"].get_content_type()
        == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert parts["r.xlsx"].get_content() == XLSX
    assert parts["r.html"].get_content_type() == "text/html"
    assert parts["r.html"].get_payload(decode=True) == html


def test_a_server_whose_certificate_is_not_trusted_is_refused_in_words(mail: SmtpServer) -> None:
    settings = site_with([], smtp_settings(mail, ca_file=None)).smtp
    assert settings is not None
    with pytest.raises(
        DeliveryError, match=r"no secure connection to the mail server 127\.0\.0\.1:\d+: .*CERTIFICATE"
    ):
        send_report(settings, ["a@example.com"], "s", "t", {"pdf": ("r.pdf", PDF)}, SMTP_PASSWORD)
    assert mail.inbox == [] and mail.logins == []  # the password never left


def test_run_due_mails_the_report_with_the_password_from_the_environment(
    engine: Engine, mail: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEM_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    site = site_with([{"every": "month", "to": ["facility@example.com"]}], smtp_settings(mail))
    done = run_due(engine, site, now=berlin(2025, 4, 1, 7, 0), models=None, make=StandIn())
    assert [(r.period, r.sent_to, r.error) for r in done] == [("2025-03", ("facility@example.com",), None)]
    assert done[0].line().endswith(", sent to facility@example.com")
    [(_, recipients, raw)] = mail.inbox
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert recipients == ["facility@example.com"]
    assert message["Subject"] == "Energy report — site — 2025-03"  # the report's title alone
    text = message.get_body(("plain",)).get_content()
    assert "Energy: 1,234.5 kWh; cost: 246.90 EUR." in text and "No readings a year earlier." in text
    [pdf] = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "slem-report-site-2025-03.pdf" and pdf.get_content() == PDF
    # mailed as the schedule asks (pdf, xlsx: the default), though the HTML is kept too
    assert [p.get_filename() for p in message.iter_attachments()] == [
        "slem-report-site-2025-03.pdf",
        "slem-report-site-2025-03.xlsx",
    ]
    assert report_file(engine, done[0].report_id, "html")[0] == "slem-report-site-2025-03.html"
    row = list_reports(engine).iloc[0]
    assert (
        row["sent_to"] == "facility@example.com" and not pd.isna(row["sent_at"]) and row["send_error"] is None
    )
    assert run_due(engine, site, now=berlin(2025, 4, 1, 8, 0), models=None, make=StandIn()) == []
    assert len(mail.inbox) == 1  # sent once


def test_a_failed_mail_is_recorded_in_words_and_sent_on_the_next_run(
    engine: Engine, mail: SmtpServer
) -> None:
    site = site_with([{"every": "week", "to": ["facility@example.com"]}], smtp_settings(mail))
    make = StandIn()
    now = berlin(2025, 3, 10, 7, 0)
    [failed] = run_due(engine, site, now=now, models=None, make=make, smtp_password="wrong password")
    assert failed.report_id is not None and failed.sent_to == ()
    assert failed.error is not None
    assert failed.error.startswith(
        f"the mail server 127.0.0.1:{mail.port} refused the sign-in as {SMTP_USER} (535"
    )
    assert (
        "check the password in SLEM_TEST_SMTP_PASSWORD" in failed.error
        and "wrong password" not in failed.error
    )
    assert failed.line().startswith(
        f"reports: made 'weekly site' 2025-W10 (site) as report {failed.report_id}, not sent:"
    )
    assert mail.inbox == []
    row = list_reports(engine).iloc[0]
    assert row["send_error"] == failed.error and row["sent_to"] is None and pd.isna(row["sent_at"])

    [retried] = run_due(
        engine, site, now=now + dt.timedelta(minutes=15), models=None, make=make, smtp_password=SMTP_PASSWORD
    )
    assert (retried.report_id, retried.made, retried.sent_to, retried.error) == (
        failed.report_id, False, ("facility@example.com",), None,
    )  # fmt: skip
    assert (
        retried.line()
        == f"reports: report {failed.report_id}, 'weekly site' 2025-W10 (site), sent to facility@example.com"
    )
    assert len(make.calls) == 1  # the kept report was mailed, not made again
    assert len(mail.inbox) == 1
    assert (
        run_due(
            engine,
            site,
            now=now + dt.timedelta(minutes=30),
            models=None,
            make=make,
            smtp_password=SMTP_PASSWORD,
        )
        == []
    )
    kept = kept_report(engine, "weekly site", "2025-W10", "site")
    assert (
        kept is not None and kept.send_attempts == 2 and kept.sent_at is not None and kept.send_error is None
    )


def test_a_missing_password_variable_is_an_error_on_the_report_not_a_crash(
    engine: Engine, mail: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLEM_TEST_SMTP_PASSWORD", raising=False)
    site = site_with([{"every": "month", "to": ["facility@example.com"]}], smtp_settings(mail))
    [done] = run_due(engine, site, now=berlin(2025, 4, 1, 7, 0), models=None, make=StandIn())
    assert done.report_id is not None
    assert done.error == (
        f"no password for {SMTP_USER} on 127.0.0.1: set the environment variable SLEM_TEST_SMTP_PASSWORD"
    )
    assert mail.logins == []


def test_two_runners_at_once_keep_one_report_and_mail_it_once(db_url: str, mail: SmtpServer) -> None:
    """slem serve and a cron `slem report --due` firing at the same moment, each with its own engine."""
    site = site_with([{"every": "month", "to": ["facility@example.com"]}], smtp_settings(mail))
    open_database(db_url).dispose()
    barrier = threading.Barrier(3)
    results: list[Any] = []

    def runner() -> None:
        engine = open_database(db_url)
        try:
            barrier.wait()
            results.extend(
                run_due(
                    engine,
                    site,
                    now=berlin(2025, 4, 1, 7, 0),
                    models=None,
                    make=StandIn(delay_s=0.2),
                    smtp_password=SMTP_PASSWORD,
                )  # fmt: skip
            )
        finally:
            engine.dispose()

    threads = [threading.Thread(target=runner) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [(r.period, r.sent_to, r.error) for r in results] == [("2025-03", ("facility@example.com",), None)]
    assert len(mail.inbox) == 1
    engine = open_database(db_url)
    try:
        assert len(list_reports(engine)) == 1
    finally:
        engine.dispose()


# --- in slem serve -----------------------------------------------------------------------------------


def test_the_scheduler_runs_due_reports_at_start_and_schedules_each_at_its_local_time(engine: Engine) -> None:
    site = site_with([{"every": "week", "at": "06:45"}, {"every": "quarter", "name": "board"}])
    lines: list[str] = []
    scheduler = ReportScheduler(engine, site, models=None, log=lines.append, make=StandIn())
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while len(list_reports(engine)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}  # type: ignore[union-attr]
    finally:
        scheduler.shutdown()
    assert lines[0] == (
        "reports: scheduled 2 report(s): 'weekly site' Mondays 06:45 (Europe/Berlin); "
        "'board' day 1 of each quarter 07:00 (Europe/Berlin)"
    )
    assert len(list_reports(engine)) == 2  # the start-up run caught up the latest week and quarter
    assert any(line.startswith("reports: made 'weekly site' ") for line in lines)
    weekly = jobs["report:weekly site"].next_run_time
    assert (weekly.weekday(), weekly.hour, weekly.minute, weekly.tzinfo) == (0, 6, 45, BERLIN)
    board = jobs["report:board"].next_run_time
    assert (board.month in (1, 4, 7, 10), board.day, board.hour) == (True, 1, 7)
    assert jobs["report:weekly site"].trigger.timezone == BERLIN
    # and a catch-up run every CATCH_UP_MINUTES retries mails and makes what a missed fire left
    assert jobs["reports:catch-up"].trigger.interval == dt.timedelta(minutes=CATCH_UP_MINUTES)


def test_slem_serve_schedules_the_sites_reports_or_says_why_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from slem_ml.app.server import api_app, serve_in_background
    from slem_ml.app.workspace import AppConfig

    contracts = tmp_path / "contracts.yaml"
    contracts.write_text(
        SAMPLE_CONTRACTS.read_text(encoding="utf-8")
        + '\nreports:\n  - {every: month, at: "23:59", on: 28}\n',
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'slem.db'}"
    with caplog.at_level(logging.WARNING, logger="slem_ml.app.server"):
        for given in (None, contracts):
            config = AppConfig(
                database_url=db, contracts=given, models_dir=tmp_path / "models",
                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", runs_dir=tmp_path / "runs",
            )  # fmt: skip
            running = serve_in_background(api_app(config), host="127.0.0.1", port=0)
            running.close()
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reports:")]
    assert messages[0] == "reports: no schedules run: slem serve has no --contracts (no site configuration)"
    assert (
        messages[1]
        == "reports: scheduled 1 report(s): 'monthly site' day 28 of each month 23:59 (Europe/Berlin)"
    )


# --- with the real make_report ------------------------------------------------------------------------


def test_a_scheduled_report_of_the_store_is_made_kept_and_mailed(engine: Engine, mail: SmtpServer) -> None:
    """Two generated weeks of 4 zones in the store; the Monday run makes the week before with the real
    make_report, keeps it and mails it: the PDF that arrives is the one kept, byte for byte."""
    from slem_ml.generator.generate import GeneratorConfig, generate
    from slem_ml.io.reader import validate_frame
    from slem_ml.scoring.score import score
    from slem_ml.storage.database import write_session
    from slem_ml.storage.upload import store_upload

    site = site_with([{"every": "week", "to": ["facility@example.com"]}], smtp_settings(mail))
    data = generate(
        GeneratorConfig(start=dt.date(2025, 3, 3), days=14, zones=4, step_minutes=15, seed=5, faults=False)
    )
    result = score(validate_frame(data.readings, site), site)
    with write_session(engine) as session:
        store_upload(session, result, [result.readings.frame], cleaning=result.cleaning_source, actor="test")

    started = time.perf_counter()
    [done] = run_due(engine, site, now=berlin(2025, 3, 10, 7, 0), models=None, smtp_password=SMTP_PASSWORD)
    elapsed = time.perf_counter() - started
    assert (done.period, done.sent_to, done.error) == ("2025-W10", ("facility@example.com",), None), done
    name, kept_pdf = report_file(engine, done.report_id, "pdf")
    assert name == "slem-report-site-2025-W10.pdf" and kept_pdf.startswith(b"%PDF")
    [(_, _, raw)] = mail.inbox
    message = email.message_from_bytes(raw, policy=email.policy.default)
    attached = {p.get_filename(): p.get_content() for p in message.iter_attachments()}
    assert attached == {
        name: kept_pdf,
        "slem-report-site-2025-W10.xlsx": report_file(engine, done.report_id, "xlsx")[1],
    }
    assert message["Subject"] == "Energy report — Whole site — Week 10 of 2025 (3–9 March)"
    html_name, kept_html = report_file(engine, done.report_id, "html")  # kept for the app, not mailed
    assert html_name == "slem-report-site-2025-W10.html" and kept_html.startswith(b"<!DOCTYPE html>")
    assert " kWh; cost: " in message.get_body(("plain",)).get_content()
    print(f"run_due with the real make_report (4 zones, a week, pdf + xlsx, mailed): {elapsed:.2f} s")


def test_the_scheduler_tells_a_failure_that_repeats_once(engine: Engine) -> None:
    site = site_with([{"every": "month"}])
    lines: list[str] = []
    scheduler = ReportScheduler(
        engine, site, models=None, log=lines.append, make=StandIn(fail=RuntimeError("no"))
    )
    for _ in range(3):  # the catch-up runs every 15 minutes
        scheduler.run()
    assert len(lines) == 1 and lines[0].endswith("not made: RuntimeError: no")
    assert list_reports(engine).empty
