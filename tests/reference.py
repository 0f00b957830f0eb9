"""A slow, obviously-correct reference for billing (SPEC §3) and cleaning (SPEC §4).

Written from ``docs/billing-rules.md`` only, independently of the fast engine, so that the two can be
compared to the cent (``tests/test_oracle.py``). Nothing here is vectorised or clever:

* time is kept as whole milliseconds since the Unix epoch (``int``), so every duration is exact;
* local wall times are turned into instants with :mod:`zoneinfo`, one at a time, with the gap and fold
  rules spelled out in :func:`wall_to_utc_ms`;
* energy is a :class:`fractions.Fraction` of kWh, money a :class:`decimal.Decimal` rounded half-up from the
  exact rational value.

The input is a list of :class:`Record` (already validated; exact duplicates may be removed with
:func:`drop_exact_duplicates`), the output plain dicts with the fields of the engine's frames.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from slem_ml.config.site import ClientContract, SiteConfig

__all__ = [
    "Record",
    "ReferenceResult",
    "drop_exact_duplicates",
    "power_mw",
    "reference_score",
    "round_half_up",
    "wall_to_utc_ms",
]

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_MINUTE = 60_000
MS_PER_SECOND = 1_000
#: power_mw [mW] × covered [ms] / MW_MS_PER_KWH = energy [kWh]   (1 kWh = 10⁶ mW × 3.6 × 10⁶ ms)
MW_MS_PER_KWH = 3_600_000_000_000


@dataclass(frozen=True)
class Record:
    """One validated reading."""

    timestamp: dt.datetime  # tz-aware (any zone; compared as an instant), whole milliseconds
    zone_id: str
    client_id: str
    power_w: float
    cleaning_staff: bool
    input_order: int  # position in the input (source line); later rows stand at equal instants


@dataclass
class ReferenceResult:
    pieces: list[dict[str, Any]]  # every non-empty piece of coverage, per zone in time order
    lines: list[dict[str, Any]]  # overtime sessions = invoice lines, ordered by (date, zone, start)
    invoices: list[dict[str, Any]]
    cleaning_sessions: list[dict[str, Any]]  # ordered by (zone, start)
    covered_ms: dict[int, int]  # input_order -> covered milliseconds
    at_timestamp: dict[int, tuple[bool, bool, str]]  # input_order -> (in_contract, is_on, usage class)


# --- small exact helpers -------------------------------------------------------------------------


def to_ms(moment: dt.datetime) -> int:
    """An aware datetime as whole milliseconds since the epoch (exact: datetimes hold microseconds)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the reference")
    delta = moment - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if micros % 1000:
        raise ValueError(f"{moment.isoformat()} is not a whole millisecond")
    return micros // 1000


def from_ms(ms: int, tz: ZoneInfo) -> dt.datetime:
    return (EPOCH + dt.timedelta(milliseconds=ms)).astimezone(tz)


def local_date(ms: int, tz: ZoneInfo) -> dt.date:
    return from_ms(ms, tz).date()


def power_mw(power_w: float) -> int:
    """``floor(power_w × 1000 + 0.5)`` in IEEE double precision (Python floats are IEEE doubles)."""
    return math.floor(power_w * 1000 + 0.5)


def round_half_up(value: Fraction, places: int) -> Decimal:
    """Exact half-up rounding of a non-negative rational to ``places`` decimals."""
    if value < 0:
        raise ValueError("only non-negative amounts occur here")
    scaled = math.floor(value * 10**places + Fraction(1, 2))
    return Decimal(scaled).scaleb(-places)


def energy_kwh(mw: int, ms: int) -> Fraction:
    return Fraction(mw * ms, MW_MS_PER_KWH)


# --- local wall time -> instant ------------------------------------------------------------------


def _local_wall(ms: int, tz: ZoneInfo) -> dt.datetime:
    """The naive wall-clock reading at instant ``ms``."""
    return from_ms(ms, tz).replace(tzinfo=None)


def _naive_as_ms(wall: dt.datetime) -> int:
    """A naive datetime read as if it were UTC, in ms (only used to do arithmetic on wall times)."""
    return to_ms(wall.replace(tzinfo=UTC))


def wall_to_utc_ms(day: dt.date, minute: int, tz: ZoneInfo) -> int:
    """The instant of local wall time ``minute`` minutes after 00:00 on ``day`` (1440 = 24:00 = next 00:00).

    Rules (billing-rules.md, "Contract windows"):

    * a wall time that exists once maps to its one instant;
    * a wall time that exists twice (the repeated hour of a backward change) is taken at its FIRST
      occurrence, i.e. the earlier of the two instants;
    * a wall time that does not exist (the skipped hour of a forward change) is "moved forward by the gap,
      as the clock does": the clock jumped at the transition instant T from wall time W₀ to W₀ + gap, so a
      wall time W inside [W₀, W₀ + gap) is read as the instant T + (W − W₀). Example, Europe/Berlin
      2025-03-30: T = 01:00 UTC, W₀ = 02:00 (CET, +01:00), gap = 1 h. Wall 02:30 → 01:00 UTC + 30 min =
      01:30 UTC, which the clock shows as 03:30 CEST = 02:30 + the 1 h gap. (That happens to equal what
      ``zoneinfo`` gives for ``fold=0`` — the offset before the transition, PEP 495 — since
      T + (W − W₀) = W − offset_before; it is NOT 03:00 CEST, which would be "clamped to the end of the
      gap". We do not rely on that coincidence: the transition is found explicitly below.)

    Existence is decided by the round trip wall → instant → wall for both folds, so nothing here depends
    on how ``zoneinfo`` treats gaps.
    """
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
    occurrences = []
    for fold in (0, 1):
        instant = to_ms(wall.replace(tzinfo=tz, fold=fold).astimezone(UTC))
        if _local_wall(instant, tz) == wall:
            occurrences.append(instant)
    if occurrences:
        return min(occurrences)  # the first occurrence
    return _moved_forward_by_gap(wall, tz)


def _moved_forward_by_gap(wall: dt.datetime, tz: ZoneInfo) -> int:
    """``T + (wall − W₀)`` for a wall time skipped by a forward transition at instant ``T``.

    The local clock L(u) = wall time at instant u jumps over ``wall`` at T: L(T − 1 s) < wall ≤ … and
    L(T) > wall. Find T by bisection over whole seconds (tz transitions fall on whole seconds) in a window of
    ±26 h around the wall time read as UTC, which contains every instant whose local time is near ``wall``.
    """
    w = _naive_as_ms(wall)
    lo = (w - 26 * 3_600_000) // MS_PER_SECOND  # L(lo) < wall
    hi = (w + 26 * 3_600_000) // MS_PER_SECOND  # L(hi) > wall
    assert _local_wall(lo * MS_PER_SECOND, tz) < wall < _local_wall(hi * MS_PER_SECOND, tz)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local_wall(mid * MS_PER_SECOND, tz) < wall:
            lo = mid
        else:
            hi = mid
    transition = hi * MS_PER_SECOND  # first second at which the wall clock shows more than `wall`
    # W₀ = the wall time just before the jump = L(T − 1 s) + 1 s.
    before_jump = _naive_as_ms(_local_wall(transition - MS_PER_SECOND, tz)) + MS_PER_SECOND
    assert before_jump <= w < _naive_as_ms(_local_wall(transition, tz)), "not in a gap"
    return transition + (w - before_jump)


# --- contract windows ----------------------------------------------------------------------------


class _Calendar:
    """Local midnights and widened contract windows, computed one date at a time and remembered."""

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.tz = site.site.tz
        self._midnights: dict[dt.date, int] = {}
        self._windows: dict[tuple[str, dt.date], tuple[int, int] | None] = {}
        self._holidays: dict[dt.date, bool] = {}

    def midnight(self, day: dt.date) -> int:
        if day not in self._midnights:
            self._midnights[day] = wall_to_utc_ms(day, 0, self.tz)
        return self._midnights[day]

    def is_holiday(self, day: dt.date) -> bool:
        if day not in self._holidays:
            self._holidays[day] = day in self.site.site.holidays_between(day, day)
        return self._holidays[day]

    def window(self, client: ClientContract, day: dt.date) -> tuple[int, int] | None:
        """The widened window ``[start, end)`` of ``client`` on local date ``day`` in UTC ms, or ``None``."""
        key = (client.client_id, day)
        if key not in self._windows:
            self._windows[key] = self._compute_window(client, day)
        return self._windows[key]

    def _compute_window(self, client: ClientContract, day: dt.date) -> tuple[int, int] | None:
        if client.always_open:  # 24/7: midnight to midnight, holidays included
            return (self.midnight(day), self.midnight(day + dt.timedelta(days=1)))
        if self.is_holiday(day) and not client.work_on_holidays:
            return None
        hours = client.week[day.weekday()]  # 0 = Monday, as date.weekday()
        if hours is None:
            return None
        grace_ms = client.grace_minutes * MS_PER_MINUTE  # elapsed time, added to the instants
        opens = wall_to_utc_ms(day, hours.open_minute, self.tz) - grace_ms
        closes = wall_to_utc_ms(day, hours.close_minute, self.tz) + grace_ms
        return (opens, closes)  # may be empty (opens ≥ closes) around a forward DST change


# --- the reference -------------------------------------------------------------------------------


def drop_exact_duplicates(records: list[Record]) -> tuple[list[Record], int]:
    """Drop exact duplicates (same zone, timestamp and power), keeping the later row; returns the count."""
    last_of: dict[tuple[str, int, float], int] = {}
    for rec in records:
        key = (rec.zone_id, to_ms(rec.timestamp), rec.power_w)
        if key not in last_of or rec.input_order > last_of[key]:
            last_of[key] = rec.input_order
    kept = [
        rec for rec in records if last_of[(rec.zone_id, to_ms(rec.timestamp), rec.power_w)] == rec.input_order
    ]
    return kept, len(records) - len(kept)


def zone_parts(zone_id: str) -> tuple[str, int]:
    """``B-F{floor}-Z{zone}`` → (building, floor)."""
    head, _, _zone = zone_id.rpartition("-Z")
    building, _, floor = head.rpartition("-F")
    return building, int(floor)


def reference_score(records: list[Record], site: SiteConfig) -> ReferenceResult:
    """Invoice lines, invoices and cleaning sessions for validated, de-duplicated ``records``."""
    tz = site.site.tz
    cal = _Calendar(site)
    max_gap_ms = site.sampling.max_gap_minutes * MS_PER_MINUTE
    threshold = site.sampling.on_threshold_w

    # 1. Per zone, in (timestamp, input order); coverage [t_i, min(t_next, t_i + max_gap)).
    by_zone: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        by_zone[rec.zone_id].append(rec)

    pieces_by_zone: dict[str, list[dict[str, Any]]] = {}
    covered_ms: dict[int, int] = {}
    at_timestamp: dict[int, tuple[bool, bool, str]] = {}
    for zone_id in sorted(by_zone):
        zone_records = sorted(by_zone[zone_id], key=lambda r: (to_ms(r.timestamp), r.input_order))
        zone_pieces: list[dict[str, Any]] = []
        for i, rec in enumerate(zone_records):
            start = to_ms(rec.timestamp)
            end = start + max_gap_ms
            if i + 1 < len(zone_records):
                end = min(end, to_ms(zone_records[i + 1].timestamp))
            covered_ms[rec.input_order] = end - start
            at_timestamp[rec.input_order] = _class_at(rec, start, site, cal, tz)
            if end <= start:
                continue  # a row at the same instant as a later row covers nothing
            zone_pieces.extend(_pieces_of(rec, start, end, site, cal, tz, threshold))
        pieces_by_zone[zone_id] = zone_pieces

    # 2. Overtime sessions (one zone, one client, one local date, touching pieces).
    lines = []
    for zone_pieces in pieces_by_zone.values():
        current: list[dict[str, Any]] = []
        for piece in zone_pieces:
            if piece["class"] != "overtime":
                if current:
                    lines.append(current)
                current = []
                continue
            touches = (
                current
                and piece["start"] == current[-1]["end"]
                and piece["client_id"] == current[-1]["client_id"]
                and piece["date"] == current[-1]["date"]
            )
            if current and not touches:
                lines.append(current)
                current = []
            current.append(piece)
        if current:
            lines.append(current)
    line_dicts = [_invoice_line(run, site, tz) for run in lines]
    line_dicts = [line for line in line_dicts if line is not None]
    line_dicts.sort(key=lambda d: (d["date"], d["zone_id"], d["start_ms"]))

    # 3. Invoices: one per client per month of the session's local date.
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in line_dicts:
        grouped[line["invoice_id"]].append(line)
    invoices = []
    for invoice_id in sorted(grouped):
        group = grouped[invoice_id]
        invoices.append(
            {
                "invoice_id": invoice_id,
                "client_id": group[0]["client_id"],
                "period": group[0]["date"].strftime("%Y-%m"),
                "lines": len(group),
                "billable_minutes": sum(line["billable_minutes"] for line in group),
                # billing-rules.md does not say how an invoice's hours and kWh are rounded. Taken here:
                # hours = Σ billable minutes / 60, half up to 2 dp; kWh = Σ of the lines' 6-dp kWh (what
                # a clerk adding up the lines gets). The exact values are kept for the failure messages.
                "billable_hours_exact": Fraction(sum(line["billable_minutes"] for line in group), 60),
                "billable_hours": round_half_up(
                    Fraction(sum(line["billable_minutes"] for line in group), 60), 2
                ),
                "energy_kwh_exact": sum((line["energy_exact"] for line in group), Fraction(0)),
                "energy_kwh": sum((line["energy_kwh"] for line in group), Decimal("0.000000")),
                "total": sum((line["amount"] for line in group), Decimal("0.00")),
                "currency": site.site.currency,
            }
        )

    # 4. Cleaning sessions (one zone, touching cleaning pieces, across midnight and clients).
    cleaning = []
    for zone_pieces in pieces_by_zone.values():
        current = []
        for piece in zone_pieces:
            if piece["class"] != "cleaning":
                if current:
                    cleaning.append(current)
                current = []
                continue
            if current and piece["start"] != current[-1]["end"]:
                cleaning.append(current)
                current = []
            current.append(piece)
        if current:
            cleaning.append(current)
    sessions = [_cleaning_session(run, site, tz) for run in cleaning]
    sessions.sort(key=lambda d: (d["zone_id"], d["start_ms"]))

    all_pieces = [p for zone_id in sorted(pieces_by_zone) for p in pieces_by_zone[zone_id]]
    return ReferenceResult(all_pieces, line_dicts, invoices, sessions, covered_ms, at_timestamp)


def _windows_near(
    client: ClientContract, instant: int, cal: _Calendar, tz: ZoneInfo
) -> list[tuple[int, int]]:
    """The client's widened windows of the local dates around ``instant`` (−3 … +4 days: ample)."""
    first_day = local_date(instant, tz)
    days = [first_day + dt.timedelta(days=k) for k in range(-3, 5)]
    return [w for w in (cal.window(client, day) for day in days) if w is not None]


def _classify(power_w: float, cleaning_staff: bool, in_contract: bool, threshold: float) -> str:
    if power_w < threshold:
        return "off"
    if in_contract:
        return "contract"
    return "cleaning" if cleaning_staff else "overtime"


def _class_at(
    rec: Record, instant: int, site: SiteConfig, cal: _Calendar, tz: ZoneInfo
) -> tuple[bool, bool, str]:
    """(in_contract, is_on, usage class) at the reading's own timestamp, whatever it covers."""
    client = site.clients[rec.client_id]
    in_contract = any(a <= instant < b for a, b in _windows_near(client, instant, cal, tz))
    threshold = site.sampling.on_threshold_w
    return (
        in_contract,
        rec.power_w >= threshold,
        _classify(rec.power_w, rec.cleaning_staff, in_contract, threshold),
    )


def _pieces_of(
    rec: Record,
    start: int,
    end: int,
    site: SiteConfig,
    cal: _Calendar,
    tz: ZoneInfo,
    threshold: float,
) -> list[dict[str, Any]]:
    """Cut ``[start, end)`` at every local midnight and every widened window edge; classify each piece."""
    client = site.clients[rec.client_id]
    # Coverage is at most 12 h long and grace at most 4 h, so the windows and midnights of the local dates
    # d−1 … d+2 around the start suffice; d−3 … d+4 cost nothing more and need no argument.
    windows = _windows_near(client, start, cal, tz)
    first_day = local_date(start, tz)
    cuts = {start, end}
    for k in range(-3, 5):
        cuts.add(cal.midnight(first_day + dt.timedelta(days=k)))
    for opens, closes in windows:
        cuts.add(opens)
        cuts.add(closes)
    points = sorted(c for c in cuts if start <= c <= end)
    mw = power_mw(rec.power_w)
    out = []
    for a, b in zip(points, points[1:], strict=False):
        if b <= a:
            continue
        # No edge lies strictly inside (a, b), so membership of the whole piece = membership of `a`.
        in_contract = any(opens <= a < closes for opens, closes in windows)
        cls = _classify(rec.power_w, rec.cleaning_staff, in_contract, threshold)
        out.append(
            {
                "zone_id": rec.zone_id,
                "client_id": rec.client_id,
                "input_order": rec.input_order,
                "start": a,
                "end": b,
                "date": local_date(a, tz),
                "class": cls,
                "power_mw": mw,
            }
        )
    return out


def _invoice_line(run: list[dict[str, Any]], site: SiteConfig, tz: ZoneInfo) -> dict[str, Any] | None:
    client = site.clients[run[0]["client_id"]]
    if client.always_open:  # never billed (cannot have overtime anyway)
        return None
    start, end = run[0]["start"], run[-1]["end"]
    ms = sum(p["end"] - p["start"] for p in run)
    assert ms == end - start
    block_ms = site.billing.block_minutes * MS_PER_MINUTE
    billable_minutes = -(-ms // block_ms) * site.billing.block_minutes  # ceil in integer ms
    energy = sum((energy_kwh(p["power_mw"], p["end"] - p["start"]) for p in run), Fraction(0))
    hours_charge = round_half_up(Fraction(billable_minutes, 60) * Fraction(client.hourly_rate), 2)
    energy_charge = round_half_up(energy * Fraction(client.energy_rate), 2)
    day = run[0]["date"]
    return {
        "invoice_id": f"INV-{client.client_id}-{day.strftime('%Y%m')}",
        "client_id": client.client_id,
        "zone_id": run[0]["zone_id"],
        "date": day,
        "start": from_ms(start, tz),
        "end": from_ms(end, tz),
        "start_ms": start,
        "end_ms": end,
        "minutes_exact": Fraction(ms, MS_PER_MINUTE),
        "minutes": round_half_up(Fraction(ms, MS_PER_MINUTE), 3),  # a display value
        "billable_minutes": billable_minutes,
        "energy_exact": energy,
        "energy_kwh": round_half_up(energy, 6),
        "hours_charge": hours_charge,
        "energy_charge": energy_charge,
        "amount": hours_charge + energy_charge,
        "currency": site.site.currency,
        "adjusted": False,
    }


def _cleaning_session(run: list[dict[str, Any]], site: SiteConfig, tz: ZoneInfo) -> dict[str, Any]:
    start, end = run[0]["start"], run[-1]["end"]
    ms = end - start
    expected_ms = site.cleaning.expected_minutes[1] * MS_PER_MINUTE
    cutoff = start + expected_ms  # energy after the first expected_minutes[1] minutes is waste
    wasted = Fraction(0)
    for p in run:
        later_part = p["end"] - max(p["start"], cutoff)
        if later_part > 0:
            wasted += energy_kwh(p["power_mw"], later_part)
    building, floor = zone_parts(run[0]["zone_id"])
    minutes = Fraction(ms, MS_PER_MINUTE)
    excess = max(Fraction(0), minutes - site.cleaning.expected_minutes[1])
    return {
        "zone_id": run[0]["zone_id"],
        "building": building,
        "floor": floor,
        "date": local_date(start, tz),
        "start": from_ms(start, tz),
        "end": from_ms(end, tz),
        "start_ms": start,
        "end_ms": end,
        "minutes_exact": minutes,
        "minutes": round_half_up(minutes, 3),  # a display value
        "flagged": ms > site.cleaning.flag_after_minutes * MS_PER_MINUTE,  # exact, not the display value
        "excess_exact": excess,
        "excess_minutes": round_half_up(excess, 3),
        "wasted_exact": wasted,
        "wasted_kwh": round_half_up(wasted, 6),
        "savings": round_half_up(wasted * Fraction(site.cleaning.energy_price), 2),
        "inferred": False,
        "client_id": run[0]["client_id"],  # the client at the session start
        "clients": sorted({p["client_id"] for p in run}),
    }
