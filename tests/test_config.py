"""The site configuration loader (SPEC §2): the shipped file, defaults, overrides, and every refusal.

A malformed file is refused with one line that names the offending key, so each refusal below states the
dotted key the user has to look for. Fixture files in ``tests/data/contracts/`` are kept as real inputs.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.config.site import DayWindow, SiteConfig, load_site, parse_site
from slem_ml.errors import ConfigError

D = Decimal
DATA = Path(__file__).parent / "data" / "contracts"
SHIPPED = SAMPLE_CONTRACTS

#: The smallest valid site: every section but ``clients`` is left to its default.
MINIMAL: dict[str, Any] = {"clients": {"C001": {"hours": {"mon-fri": "08:00-18:00"}}}}

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def with_(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``base`` (default MINIMAL) with ``value`` set at the dotted ``path``."""
    raw = copy.deepcopy(MINIMAL if base is None else base)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return raw


def refusal(raw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_site(raw)
    message = str(info.value)
    assert "\n" not in message, "the user sees one line"
    return message


# --- the shipped sample ---------------------------------------------------------------------------


def test_shipped_contracts_load_with_six_clients() -> None:
    site = load_site(SHIPPED)
    assert isinstance(site, SiteConfig)
    assert sorted(site.clients) == ["C001", "C002", "C003", "C004", "C005", "C006"]
    assert site.site.timezone == "Europe/Berlin"
    assert site.site.currency == "EUR"
    assert site.site.holiday_country == "DE"
    assert site.sampling.max_gap_minutes == 60
    assert site.sampling.on_threshold_w == 5
    assert site.billing.hourly_rate == D("15.00")
    assert site.billing.energy_rate == D("0.20")
    assert site.billing.block_minutes == 15
    assert site.cleaning.expected_minutes == (30, 60)
    assert site.cleaning.flag_after_minutes == 180

    c001 = site.clients["C001"]
    assert c001.name == "Acme Logistics GmbH"
    # 08:00 = 480 min after midnight, 18:00 = 1080
    assert c001.week == (DayWindow(480, 1080),) * 5 + (None, None)
    assert c001.hours_text() == "Mon–Fri 08:00–18:00"
    assert not c001.always_open
    assert not c001.work_on_holidays

    c004 = site.clients["C004"]
    assert c004.hourly_rate == D("12.50")  # per-client override
    assert c004.energy_rate == D("0.20")  # falls back to billing
    assert c004.week == (DayWindow(360, 1320),) * 7  # 06:00-22:00 every day
    assert c004.hours_text() == "Mon–Sun 06:00–22:00"

    c005 = site.clients["C005"]
    assert c005.always_open
    assert c005.hours_text() == "24/7"

    assert site.clients["C006"].week[FRI] == DayWindow(480, 1020)  # 08:00-17:00


def test_shipped_calendar_knows_christmas() -> None:
    site = load_site(SHIPPED)
    # DE: 25 and 26 December are national holidays, 24 December is not
    assert site.site.holidays_between(dt.date(2025, 12, 23), dt.date(2025, 12, 27)) == {
        dt.date(2025, 12, 25),
        dt.date(2025, 12, 26),
    }


# --- defaults and overrides -----------------------------------------------------------------------


def test_defaults_applied_to_a_minimal_file() -> None:
    site = parse_site(MINIMAL)
    assert site.site.timezone == "UTC"
    assert site.site.currency == "USD"
    assert site.site.holiday_country is None
    assert site.site.extra_holidays == frozenset()
    assert site.sampling.on_threshold_w == 5
    assert site.sampling.max_gap_minutes == 15
    assert site.billing.hourly_rate == D("15")
    assert site.billing.energy_rate == D("0.20")
    assert site.billing.block_minutes == 15
    assert site.billing.grace_minutes == 0
    assert site.cleaning.expected_minutes == (30, 60)
    assert site.cleaning.flag_after_minutes == 180
    assert site.cleaning.energy_price == D("0.20")
    c001 = site.clients["C001"]
    assert c001.name == "C001"  # no name: the id stands in
    assert (c001.hourly_rate, c001.energy_rate, c001.grace_minutes) == (D("15"), D("0.20"), 0)


def test_custom_file_defaults_overrides_24_7_wraparound_and_closed() -> None:
    site = load_site(DATA / "custom_site.yaml")
    assert site.site.timezone == "Europe/Vienna"
    assert site.site.currency == "CHF"
    assert site.site.extra_holidays == {dt.date(2025, 12, 24)}
    # 24 Dec from `dates`, 25/26 Dec from the DE calendar
    assert site.site.holidays_between(dt.date(2025, 12, 24), dt.date(2025, 12, 26)) == {
        dt.date(2025, 12, 24),
        dt.date(2025, 12, 25),
        dt.date(2025, 12, 26),
    }
    assert site.sampling.max_gap_minutes == 15  # section absent -> default

    a1 = site.clients["A1"]
    assert a1.name == "Alpha"
    assert a1.hourly_rate == D("20")  # billing.hourly_rate, not the built-in 15
    assert a1.energy_rate == D("0.20")  # billing.energy_rate absent -> default
    assert a1.grace_minutes == 10  # billing.grace_minutes
    # mon-fri 08:00-18:00, sat 10:00-14:00, sun closed
    assert a1.week == (DayWindow(480, 1080),) * 5 + (DayWindow(600, 840), None)
    assert a1.hours_text() == "Mon–Fri 08:00–18:00, Sat 10:00–14:00"

    b2 = site.clients["B2"]
    assert (b2.hourly_rate, b2.energy_rate, b2.grace_minutes) == (D("12.50"), D("0.35"), 0)
    # "fri-mon" wraps over the weekend: Fri, Sat, Sun, Mon open 07:30 (450) to 24:00 (1440)
    open_ = DayWindow(450, 1440)
    assert b2.week == (open_, None, None, None, open_, open_, open_)
    assert b2.hours_text() in {"Fri–Mon 07:30–24:00", "Mon 07:30–24:00, Fri–Sun 07:30–24:00"}

    c3 = site.clients["C3"]
    assert c3.always_open
    assert c3.work_on_holidays
    assert c3.hours_text() == "24/7"


def test_several_day_keys_and_single_days() -> None:
    raw = with_("clients.C001.hours", {"mon,wed": "08:00-12:00", "tue": "13:00-17:30", "sun": "00:00-24:00"})
    c001 = parse_site(raw).clients["C001"]
    assert c001.week == (
        DayWindow(480, 720),  # mon 08:00-12:00
        DayWindow(780, 1050),  # tue 13:00-17:30
        DayWindow(480, 720),  # wed
        None,
        None,
        None,
        DayWindow(0, 1440),  # sun all day
    )
    assert c001.hours_text() == "Mon 08:00–12:00, Tue 13:00–17:30, Wed 08:00–12:00, Sun 00:00–24:00"


def test_all_days_closed_is_closed() -> None:
    c001 = parse_site(with_("clients.C001.hours", {"mon-sun": "closed"})).clients["C001"]
    assert c001.week == (None,) * 7
    assert c001.hours_text() == "closed"


def test_per_client_grace_overrides_billing() -> None:
    raw = with_("billing.grace_minutes", 15)
    raw["clients"]["C002"] = {"hours": {"mon-fri": "08:00-18:00"}, "grace_minutes": 30}
    site = parse_site(raw)
    assert site.clients["C001"].grace_minutes == 15
    assert site.clients["C002"].grace_minutes == 30


def test_rates_are_exact_decimals() -> None:
    # 0.1 as a float is 0.1000000000000000055...; the rate must be the decimal the user wrote
    site = parse_site(with_("billing.energy_rate", 0.1))
    assert site.billing.energy_rate == D("0.1")
    assert isinstance(site.billing.hourly_rate, Decimal)


# --- refusals, each naming its key ----------------------------------------------------------------

REFUSED = [
    # (case id, dotted path to set, value, key the message must name)
    ("unknown top-level key", "biling", {"hourly_rate": 15}, "biling"),
    ("typo inside billing", "billing.hourly_rte", 15, "billing.hourly_rte"),
    ("typo inside a client", "clients.C001.hourly_rte", 12, "clients.C001.hourly_rte"),
    ("typo inside sampling", "sampling.max_gap", 15, "sampling.max_gap"),
    ("bad day name", "clients.C001.hours", {"mon-fryday": "08:00-18:00"}, "clients.C001.hours.mon-fryday"),
    ("three-part day range", "clients.C001.hours", {"mon-wed-fri": "08:00-18:00"}, "clients.C001.hours"),
    ("hours without minutes", "clients.C001.hours", {"mon-fri": "8-18"}, "clients.C001.hours.mon-fri"),
    ("hour 25", "clients.C001.hours", {"mon-fri": "08:00-25:00"}, "clients.C001.hours.mon-fri"),
    ("minute 60", "clients.C001.hours", {"mon-fri": "08:60-18:00"}, "clients.C001.hours.mon-fri"),
    ("24:30", "clients.C001.hours", {"mon-fri": "08:00-24:30"}, "clients.C001.hours.mon-fri"),
    (
        "closing before opening",
        "clients.C001.hours",
        {"mon-fri": "18:00-08:00"},
        "clients.C001.hours.mon-fri",
    ),
    ("empty range", "clients.C001.hours", {"mon-fri": "08:00-08:00"}, "clients.C001.hours.mon-fri"),
    ("range is a number", "clients.C001.hours", {"mon-fri": 8}, "clients.C001.hours.mon-fri"),
    ("hours is a list", "clients.C001.hours", ["08:00-18:00"], "clients.C001.hours"),
    ("hours is free text", "clients.C001.hours", "office hours", "clients.C001.hours"),
    ("bad timezone", "site.timezone", "Europe/Berln", "site.timezone"),
    ("offset is not a zone", "site.timezone", "+01:00", "site.timezone"),
    ("currency in words", "site.currency", "euro", "site.currency"),
    ("currency lower case", "site.currency", "eur", "site.currency"),
    ("currency a number", "site.currency", 978, "site.currency"),
    ("negative rate", "billing.hourly_rate", -1, "billing.hourly_rate"),
    ("NaN rate", "billing.hourly_rate", float("nan"), "billing.hourly_rate"),
    ("NaN text rate", "billing.energy_rate", "NaN", "billing.energy_rate"),
    ("infinite rate", "billing.energy_rate", float("inf"), "billing.energy_rate"),
    ("bool rate", "billing.hourly_rate", True, "billing.hourly_rate"),
    ("text rate", "billing.hourly_rate", "fifteen", "billing.hourly_rate"),
    ("list rate", "billing.hourly_rate", [15], "billing.hourly_rate"),
    ("negative client rate", "clients.C001.hourly_rate", -12.5, "clients.C001.hourly_rate"),
    ("text client energy rate", "clients.C001.energy_rate", "cheap", "clients.C001.energy_rate"),
    ("negative energy price", "cleaning.energy_price", -0.2, "cleaning.energy_price"),
    ("negative threshold", "sampling.on_threshold_w", -5, "sampling.on_threshold_w"),
    ("max_gap 0", "sampling.max_gap_minutes", 0, "sampling.max_gap_minutes"),
    ("max_gap 721 (over 12 h)", "sampling.max_gap_minutes", 721, "sampling.max_gap_minutes"),
    ("max_gap negative", "sampling.max_gap_minutes", -15, "sampling.max_gap_minutes"),
    ("max_gap fractional", "sampling.max_gap_minutes", 15.5, "sampling.max_gap_minutes"),
    ("max_gap text", "sampling.max_gap_minutes", "15 min", "sampling.max_gap_minutes"),
    ("max_gap bool", "sampling.max_gap_minutes", True, "sampling.max_gap_minutes"),
    ("block 0", "billing.block_minutes", 0, "billing.block_minutes"),
    ("negative grace", "billing.grace_minutes", -5, "billing.grace_minutes"),
    ("negative client grace", "clients.C001.grace_minutes", -1, "clients.C001.grace_minutes"),
    ("expected reversed", "cleaning.expected_minutes", [60, 30], "cleaning.expected_minutes"),
    ("expected one value", "cleaning.expected_minutes", [60], "cleaning.expected_minutes"),
    ("flag_after 0", "cleaning.flag_after_minutes", 0, "cleaning.flag_after_minutes"),
    ("bad holiday country", "site.holidays", {"country": "XX"}, "site.holidays.country"),
    ("holiday country in words", "site.holidays", {"country": "Germany"}, "site.holidays.country"),
    ("bad holiday date", "site.holidays", {"dates": ["2025-13-01"]}, "site.holidays.dates"),
    ("holiday dates not a list", "site.holidays", {"dates": "2025-12-24"}, "site.holidays.dates"),
    ("unknown key in holidays", "site.holidays", {"contry": "DE"}, "site.holidays.contry"),
    ("work_on_holidays text", "clients.C001.work_on_holidays", "yes", "clients.C001.work_on_holidays"),
    ("section not a mapping", "billing", [15, 0.2], "billing"),
]


@pytest.mark.parametrize(("path", "value", "key"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_malformed_value_is_refused_naming_the_key(path: str, value: Any, key: str) -> None:
    assert key in refusal(with_(path, value))


def test_day_listed_twice_is_refused() -> None:
    # mon-fri already contains fri
    raw = with_("clients.C001.hours", {"mon-fri": "08:00-18:00", "fri": "08:00-14:00"})
    message = refusal(raw)
    assert "clients.C001.hours.fri" in message
    assert "twice" in message


def test_day_listed_twice_as_closed_is_refused_in_either_order() -> None:
    # "wed: closed" and "mon-fri" both speak for Wednesday; which one wins must not depend on key order
    first = refusal(with_("clients.C001.hours", {"mon-fri": "08:00-18:00", "wed": "closed"}))
    assert "clients.C001.hours" in first and "wed" in first
    second = refusal(with_("clients.C001.hours", {"wed": "closed", "mon-fri": "08:00-18:00"}))
    assert "clients.C001.hours" in second and "wed" in second


def test_wraparound_range_overlapping_another_key_is_refused() -> None:
    # fri-mon covers mon
    message = refusal(with_("clients.C001.hours", {"fri-mon": "10:00-16:00", "mon": "08:00-18:00"}))
    assert "clients.C001.hours.mon" in message


def test_missing_clients_is_refused() -> None:
    assert "clients" in refusal({"site": {"timezone": "Europe/Berlin"}})


def test_empty_clients_is_refused() -> None:
    assert "clients" in refusal({"clients": {}})
    assert "clients" in refusal({"clients": None})


def test_client_without_hours_is_refused() -> None:
    assert "clients.C001.hours" in refusal({"clients": {"C001": {"name": "Acme"}}})


def test_client_given_as_text_is_refused() -> None:
    assert "clients.C001" in refusal({"clients": {"C001": "08:00-18:00"}})


def test_top_level_not_a_mapping_is_refused() -> None:
    refusal(["clients", "C001"])
    refusal("clients: C001")
    refusal(None)


# --- files ----------------------------------------------------------------------------------------

FILES = [
    ("typo_hourly_rte.yaml", "billing.hourly_rte"),
    ("bad_day_name.yaml", "clients.C002.hours.mon-fryday"),
    ("overnight_range.yaml", "clients.C003.hours.mon-fri"),
]


@pytest.mark.parametrize(("name", "key"), FILES, ids=[f[0] for f in FILES])
def test_malformed_file_is_refused_naming_file_and_key(name: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_site(DATA / name)
    message = str(info.value)
    assert name in message
    assert key in message
    assert "\n" not in message


def test_not_yaml_file_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_site(DATA / "not_yaml.yaml")
    message = str(info.value)
    assert "not_yaml.yaml" in message
    assert "YAML" in message
    assert "\n" not in message


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "contracts.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(ConfigError, match="contracts.yaml"):
        load_site(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "contracts.yaml"
    path.write_text("# nothing here\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_site(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "contracts.yaml"
    with pytest.raises(ConfigError) as info:
        load_site(path)
    message = str(info.value)
    assert "contracts.yaml" in message
    assert "not found" in message


def test_file_and_mapping_give_the_same_site(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {timezone: Europe/Berlin, currency: EUR}\n"
        'clients:\n  C001: {hours: {mon-fri: "08:00-18:00"}}\n',
        encoding="utf-8",
    )
    raw = {
        "site": {"timezone": "Europe/Berlin", "currency": "EUR"},
        "clients": {"C001": {"hours": {"mon-fri": "08:00-18:00"}}},
    }
    assert load_site(path) == parse_site(raw)


def test_site_is_frozen() -> None:
    site = parse_site(MINIMAL)
    with pytest.raises(AttributeError):
        site.billing.hourly_rate = D("99")  # type: ignore[misc]
    with pytest.raises(TypeError):
        site.clients["C002"] = site.clients["C001"]  # type: ignore[index]
