"""Site configuration (SPEC §2): typed, frozen objects loaded once from ``contracts.yaml``.

Every malformed key, day name, time range, timezone or rate is refused with a :class:`ConfigError` whose one
line names the key, e.g. ``contracts.yaml: clients.C004.hours.mon-fri: '08:00-25:00' is not a time range``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from slem_ml.config.leases import Leases, parse_leases
from slem_ml.config.reporting import ReportSchedule, SmtpSettings, parse_reports, parse_smtp
from slem_ml.config.supplier import SupplierInfo, parse_supplier
from slem_ml.errors import ConfigError

__all__ = [
    "DAY_NAMES",
    "MAX_GAP_LIMIT_MINUTES",
    "BillingConfig",
    "CleaningConfig",
    "ClientContract",
    "DayWindow",
    "SamplingConfig",
    "SiteConfig",
    "SiteInfo",
    "load_site",
    "parse_site",
]

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A reading may stand for at most 12 hours, so its coverage touches at most two local dates.
MAX_GAP_LIMIT_MINUTES = 720
#: Grace beyond 4 hours is a different contract, not grace.
MAX_GRACE_MINUTES = 240

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class DayWindow:
    """Contracted hours of one day, in minutes after local midnight: ``[open_minute, close_minute)``."""

    open_minute: int
    close_minute: int  # up to 1440 ("24:00")


@dataclass(frozen=True)
class ClientContract:
    """One client's contract (SPEC §2). Rates are money per zone-hour and per kWh, in the site currency."""

    client_id: str
    name: str
    #: Index 0 = Monday … 6 = Sunday; ``None`` = closed all day.
    week: tuple[DayWindow | None, ...]
    always_open: bool  # "24/7": never billed
    work_on_holidays: bool
    hourly_rate: Decimal  # [currency / zone-hour]
    energy_rate: Decimal  # [currency / kWh]
    grace_minutes: int  # [min]

    def hours_text(self) -> str:
        """The contracted hours as a person writes them, e.g. ``Mon–Fri 08:00–18:00``."""
        if self.always_open:
            return "24/7"
        groups: list[tuple[int, int, DayWindow | None]] = []
        for day, window in enumerate(self.week):
            if groups and groups[-1][2] == window and groups[-1][1] == day - 1:
                groups[-1] = (groups[-1][0], day, window)
            else:
                groups.append((day, day, window))
        parts = []
        for first, last, window in groups:
            if window is None:
                continue
            days = DAY_NAMES[first].title() + ("" if first == last else "–" + DAY_NAMES[last].title())
            parts.append(f"{days} {_fmt(window.open_minute)}–{_fmt(window.close_minute)}")
        return ", ".join(parts) if parts else "closed"


@dataclass(frozen=True)
class SiteInfo:
    """Where the site is: its timezone, currency and public holidays."""

    timezone: str = "UTC"
    currency: str = "USD"
    holiday_country: str | None = None
    holiday_subdiv: str | None = None
    extra_holidays: frozenset[dt.date] = frozenset()
    co2_kg_per_kwh: float | None = None  # [kg CO₂ / kWh] the site's own grid factor, for reports (SPEC §10)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def holidays_between(self, first: dt.date, last: dt.date) -> frozenset[dt.date]:
        """Public holidays (country calendar plus extra dates) from ``first`` to ``last`` inclusive."""
        days = {d for d in self.extra_holidays if first <= d <= last}
        if self.holiday_country:
            import holidays  # lazy: the calendar data costs import time

            calendar = holidays.country_holidays(
                self.holiday_country,
                subdiv=self.holiday_subdiv,
                years=range(first.year, last.year + 1),
            )
            days |= {d for d in calendar if first <= d <= last}
        return frozenset(days)


@dataclass(frozen=True)
class SamplingConfig:
    on_threshold_w: float = 5.0  # [W] a reading at or above this means lights on
    max_gap_minutes: int = 15  # [min] how long one reading may stand for


@dataclass(frozen=True)
class BillingConfig:
    hourly_rate: Decimal = Decimal("15")  # [currency / zone-hour]
    energy_rate: Decimal = Decimal("0.20")  # [currency / kWh]
    block_minutes: int = 15  # [min] sessions are rounded up to whole blocks
    grace_minutes: int = 0  # [min] widens each contracted window at both ends


@dataclass(frozen=True)
class CleaningConfig:
    expected_minutes: tuple[int, int] = (30, 60)  # [min]
    flag_after_minutes: int = 180  # [min]
    energy_price: Decimal = Decimal("0.20")  # [currency / kWh] what the operator pays


@dataclass(frozen=True)
class SiteConfig:
    """The whole site configuration; ``clients`` maps client id → contract."""

    site: SiteInfo = field(default_factory=SiteInfo)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    clients: Mapping[str, ClientContract] = field(default_factory=lambda: MappingProxyType({}))
    supplier: SupplierInfo | None = None  # the invoice header and tax (SPEC §8)
    leases: Leases = field(default_factory=Leases)  # zone -> client for live readings without one (SPEC §9)
    reports: tuple[ReportSchedule, ...] = ()  # reports made on a schedule (SPEC §10)
    smtp: SmtpSettings | None = None  # how reports are mailed (SPEC §10)


# --- loading ----------------------------------------------------------------------------------------


def load_site(path: str | Path) -> SiteConfig:
    """Read and check ``contracts.yaml``; raises :class:`ConfigError` naming the offending key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: contracts file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read contracts file ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path.name}: not valid YAML{where}") from None
    return parse_site(raw, source=path.name)


def parse_site(raw: Any, *, source: str = "contracts.yaml") -> SiteConfig:
    """Build a :class:`SiteConfig` from the parsed YAML mapping."""
    p = _Parser(source)
    top = p.mapping(
        raw,
        "",
        {"site", "sampling", "billing", "cleaning", "clients", "supplier", "leases", "reports", "smtp"},
    )
    site_raw = p.mapping(top.get("site", {}), "site", {"timezone", "currency", "holidays", "co2_kg_per_kwh"})
    site = p.site(site_raw)
    smp = p.mapping(top.get("sampling", {}), "sampling", {"on_threshold_w", "max_gap_minutes"})
    sampling = SamplingConfig(
        on_threshold_w=float(p.number(smp, "sampling", "on_threshold_w", Decimal("5"))),
        max_gap_minutes=p.integer(smp, "sampling", "max_gap_minutes", 15, 1, MAX_GAP_LIMIT_MINUTES),
    )
    bil = p.mapping(
        top.get("billing", {}),
        "billing",
        {"hourly_rate", "energy_rate", "block_minutes", "grace_minutes"},
    )
    billing = BillingConfig(
        hourly_rate=p.number(bil, "billing", "hourly_rate", Decimal("15")),
        energy_rate=p.number(bil, "billing", "energy_rate", Decimal("0.20")),
        block_minutes=p.integer(bil, "billing", "block_minutes", 15, 1, 1440),
        grace_minutes=p.integer(bil, "billing", "grace_minutes", 0, 0, MAX_GRACE_MINUTES),
    )
    cln = p.mapping(
        top.get("cleaning", {}),
        "cleaning",
        {"expected_minutes", "flag_after_minutes", "energy_price"},
    )
    cleaning = CleaningConfig(
        expected_minutes=p.expected(cln.get("expected_minutes", [30, 60])),
        flag_after_minutes=p.integer(cln, "cleaning", "flag_after_minutes", 180, 1, 100_000),
        energy_price=p.number(cln, "cleaning", "energy_price", Decimal("0.20")),
    )
    clients_raw = p.mapping(top.get("clients"), "clients", None)
    if not clients_raw:
        raise ConfigError(f"{source}: clients: at least one client is needed")
    clients = {str(cid): p.client(str(cid), body, billing) for cid, body in clients_raw.items()}
    supplier = parse_supplier(top.get("supplier"), source)
    leases = parse_leases(top.get("leases"), clients, source)
    reports = parse_reports(top.get("reports"), clients, source)
    smtp = parse_smtp(top.get("smtp"), source)
    mailed = next((i for i, r in enumerate(reports) if r.to), None)
    if smtp is None and mailed is not None:
        raise ConfigError(
            f"{source}: reports[{mailed}].to: addresses are given but there are no smtp: settings to mail "
            "them with; add smtp: (host, from, ...) or leave to: out to keep the reports in the app only"
        )
    return SiteConfig(
        site, sampling, billing, cleaning, MappingProxyType(clients), supplier, leases, reports, smtp
    )


class _Parser:
    """Checks one key at a time; every message starts with the file and the dotted key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}")

    def mapping(self, value: Any, key: str, allowed: set[str] | None) -> dict[str, Any]:
        if value is None:
            if key == "clients":
                raise self.fail(key, "missing; list each client with its contracted hours")
            return {}
        if not isinstance(value, dict):
            if not key:
                raise self.fail("", "not a contracts file (expected YAML with site, billing and clients)")
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    where = f"{key}.{name}" if key else str(name)
                    raise self.fail(where, f"unknown key (expected one of {', '.join(sorted(allowed))})")
        return value

    def number(self, body: dict[str, Any], prefix: str, name: str, default: Decimal) -> Decimal:
        if name not in body:
            return default
        value = body[name]
        key = f"{prefix}.{name}"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(key, f"{value!r} is not a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.fail(key, f"{value!r} is not a number") from None
        if not number.is_finite() or number < 0:
            raise self.fail(key, f"{value!r} must be a finite number ≥ 0")
        return number

    def integer(self, body: dict[str, Any], prefix: str, name: str, default: int, low: int, high: int) -> int:
        if name not in body:
            return default
        value = body[name]
        key = f"{prefix}.{name}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"{value!r} is not a whole number of minutes")
        if not low <= value <= high:
            raise self.fail(key, f"{value} is outside {low}..{high}")
        return value

    def expected(self, value: Any) -> tuple[int, int]:
        key = "cleaning.expected_minutes"
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
        if not ok or not 0 <= value[0] <= value[1]:
            raise self.fail(key, f"{value!r} must be [low, high] whole minutes with low ≤ high")
        return (value[0], value[1])

    def site(self, body: dict[str, Any]) -> SiteInfo:
        tz = body.get("timezone", "UTC")
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail("site.timezone", f"{tz!r} is not an IANA timezone name") from None
        currency = body.get("currency", "USD")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            raise self.fail("site.currency", f"{currency!r} is not a 3-letter currency code")
        hol = self.mapping(body.get("holidays", {}), "site.holidays", {"country", "subdiv", "dates"})
        country, subdiv = hol.get("country"), hol.get("subdiv")
        if country is not None:
            import holidays  # lazy: 0.3 s, needed only for a site with a holiday calendar

            if not re.fullmatch(r"[A-Z]{2,3}", str(country)):
                raise self.fail("site.holidays.country", f"{country!r} is not a country code such as DE")

            try:  # builds one country's calendar; listing every supported country costs 0.3 s
                holidays.country_holidays(str(country), subdiv=None if subdiv is None else str(subdiv))
            except NotImplementedError:
                if subdiv is not None and str(country).isalpha():
                    try:
                        holidays.country_holidays(str(country))
                    except NotImplementedError:
                        pass
                    else:
                        raise self.fail(
                            "site.holidays.subdiv", f"{subdiv!r} is not a subdivision of {country}"
                        ) from None
                raise self.fail(
                    "site.holidays.country", f"{country!r} is not a supported country code"
                ) from None
        elif subdiv is not None:
            raise self.fail("site.holidays.subdiv", "needs site.holidays.country")
        dates = hol.get("dates", [])
        if not isinstance(dates, list):
            raise self.fail("site.holidays.dates", "expected a list of dates (YYYY-MM-DD)")
        extra = set()
        for value in dates:
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                extra.add(value)
                continue
            try:
                extra.add(dt.date.fromisoformat(str(value)))
            except ValueError:
                raise self.fail("site.holidays.dates", f"{value!r} is not a date (YYYY-MM-DD)") from None
        co2 = body.get("co2_kg_per_kwh")
        if co2 is not None and (
            isinstance(co2, bool) or not isinstance(co2, int | float) or not 0 <= float(co2) <= 2
        ):
            raise self.fail("site.co2_kg_per_kwh", f"{co2!r} is not a factor in kg CO₂ per kWh (0 to 2)")
        return SiteInfo(
            co2_kg_per_kwh=None if co2 is None else float(co2),
            timezone=str(tz),
            currency=currency,
            holiday_country=None if country is None else str(country),
            holiday_subdiv=None if subdiv is None else str(subdiv),
            extra_holidays=frozenset(extra),
        )

    def client(self, cid: str, body: Any, billing: BillingConfig) -> ClientContract:
        key = f"clients.{cid}"
        if not cid.strip():
            raise self.fail("clients", "a client id is empty")
        allowed = {"name", "hours", "work_on_holidays", "hourly_rate", "energy_rate", "grace_minutes"}
        body = self.mapping(body, key, allowed)
        if "hours" not in body:
            raise self.fail(f"{key}.hours", 'missing (e.g. {mon-fri: "08:00-18:00"} or "24/7")')
        hours = body["hours"]
        always_open = isinstance(hours, str) and hours.strip() == "24/7"
        week: tuple[DayWindow | None, ...] = (None,) * 7
        if not always_open:
            week = self.week(hours, f"{key}.hours")
        woh = body.get("work_on_holidays", False)
        if not isinstance(woh, bool):
            raise self.fail(f"{key}.work_on_holidays", f"{woh!r} must be true or false")
        return ClientContract(
            client_id=cid,
            name=str(body.get("name", cid)),
            week=week,
            always_open=always_open,
            work_on_holidays=woh,
            hourly_rate=self.number(body, key, "hourly_rate", billing.hourly_rate),
            energy_rate=self.number(body, key, "energy_rate", billing.energy_rate),
            grace_minutes=self.integer(
                body, key, "grace_minutes", billing.grace_minutes, 0, MAX_GRACE_MINUTES
            ),
        )

    def week(self, hours: Any, key: str) -> tuple[DayWindow | None, ...]:
        if not isinstance(hours, dict):
            raise self.fail(key, f'{hours!r} must be "24/7" or a mapping like {{mon-fri: "08:00-18:00"}}')
        week: list[DayWindow | None] = [None] * 7
        seen: set[int] = set()  # a "closed" day is None too, so track the days named
        for days_key, span in hours.items():
            where = f"{key}.{days_key}"
            window = self.span(span, where)
            for day in self.days(str(days_key), where):
                if day in seen:
                    raise self.fail(where, f"{DAY_NAMES[day]} is listed twice")
                seen.add(day)
                week[day] = window
        return tuple(week)

    def days(self, text: str, where: str) -> list[int]:
        out: list[int] = []
        for part in text.lower().replace(" ", "").split(","):
            ends = part.split("-")
            if len(ends) > 2 or any(e not in DAY_NAMES for e in ends):
                raise self.fail(where, f"{part!r} is not a day or day range (mon..sun, e.g. mon-fri)")
            first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
            span = (last - first) % 7  # "fri-mon" wraps over the weekend
            out.extend((first + i) % 7 for i in range(span + 1))
        return out

    def span(self, value: Any, where: str) -> DayWindow | None:
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text == "closed":
            return None
        parts = text.replace("–", "-").split("-") if text else []
        if len(parts) != 2:
            raise self.fail(where, f'{value!r} is not a time range like "08:00-18:00"')
        start, end = (self.clock(p.strip(), where, value) for p in parts)
        if not start < end:
            raise self.fail(
                where, f"{value!r}: closing must be after opening (split a night shift over two days)"
            )
        return DayWindow(start, end)

    def clock(self, text: str, where: str, value: Any) -> int:
        match = _TIME.match(text)
        if match is None:
            raise self.fail(where, f'{value!r} is not a time range like "08:00-18:00"')
        hours, minutes = int(match.group(1)), int(match.group(2))
        if minutes > 59 or hours > 24 or (hours == 24 and minutes):
            raise self.fail(where, f"{value!r}: {text} is not a time of day (00:00..24:00)")
        return hours * 60 + minutes


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
