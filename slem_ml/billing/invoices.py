"""Overtime sessions, invoice lines and invoices (SPEC §3.4–3.8), exact to the cent.

Sessions are found vectorised (:func:`slem_ml.billing.sessions.find_runs`); money is computed per session with
Python integers and ``Decimal`` (sessions are few compared with readings), rounding half up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import OVERTIME, ReadingCoverage
from slem_ml.billing.holds import counts_in_total
from slem_ml.billing.sessions import (
    MS_PER_KWH_UNIT,
    cents,
    decimal_kwh,
    decimal_minutes,
    find_runs,
    labels_at,
)
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import day_to_date, iso_local, local_day_numbers, ms_to_local

__all__ = [
    "LINE_ORDER",
    "SESSION_COLUMNS",
    "billed_power_mw",
    "build_invoices",
    "client_day_periods",
    "canonical_lines_text",
    "empty_sessions",
    "invoice_id_for",
    "invoice_lines",
    "invoice_month",
    "lines_from_sessions",
    "month_span",
    "overtime_sessions",
    "service_periods",
]

#: The order of invoice lines (stable sort keys): by client, local date, zone, session start.
LINE_ORDER = ["client_id", "date", "zone_id", "start"]
#: The columns of :func:`overtime_sessions`: exact integers a store can keep and invoices are built from.
SESSION_COLUMNS = (
    "client_id", "zone_id", "day", "start_ms", "end_ms", "covered_ms", "billable_minutes",
    "energy_units", "measured_units", "hours_cents", "energy_cents",
)  # fmt: skip
_CENT = Decimal("0.01")


def invoice_id_for(client_id: str, day: dt.date) -> str:
    """The invoice a session of ``client_id`` on local date ``day`` goes on (SPEC §3.7)."""
    return f"INV-{client_id}-{day.year:04d}{day.month:02d}"


def invoice_month(invoice_id: str) -> tuple[str, str]:
    """(client id, ``YYYY-MM``) of an invoice id made by :func:`invoice_id_for`."""
    client_id, month = invoice_id.removeprefix("INV-").rsplit("-", 1)
    return client_id, f"{month[:4]}-{month[4:]}"


def month_span(period: str) -> tuple[dt.date, dt.date]:
    """A local month ``YYYY-MM`` as (its first day, the next month's first day)."""
    year, month = (int(part) for part in period.split("-"))
    return dt.date(year, month, 1), dt.date(year + month // 12, month % 12 + 1, 1)


def service_periods(frame: pd.DataFrame, site: SiteConfig) -> dict[str, tuple[dt.date, dt.date]]:
    """Per invoice id (client and local month), the first and last local date the client has readings
    (SPEC §8: the printable invoice's service period). ``frame`` has ``timestamp``, ``client_id``."""
    if frame.empty:
        return {}
    t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    days = local_day_numbers(t, site.site.timezone)
    clients = frame[S.CLIENT_ID].astype("category")
    return client_day_periods(clients.cat.codes.to_numpy(), days, list(clients.cat.categories))


def client_day_periods(
    client_code: np.ndarray, days: np.ndarray, client_ids: list[str]
) -> dict[str, tuple[dt.date, dt.date]]:
    """:func:`service_periods` from (client code, local day number) pairs, any order, repeats allowed."""
    key = np.unique(client_code.astype(np.int64) << 32 | (days.astype(np.int64) + (1 << 31)))
    codes, day_numbers = key >> 32, (key & 0xFFFFFFFF) - (1 << 31)
    dates = day_to_date(day_numbers)
    out: dict[str, tuple[dt.date, dt.date]] = {}
    for code, date in zip(codes.tolist(), dates, strict=True):
        invoice_id = invoice_id_for(client_ids[code], date)
        first, last = out.get(invoice_id, (date, date))
        out[invoice_id] = (min(first, date), max(last, date))
    return out


def billed_power_mw(power_w: np.ndarray, billed_w: np.ndarray) -> np.ndarray:
    """Power [mW] each reading is billed at: ``billed_w`` [W] where it is a number (a spike re-priced by
    the models, SPEC §3.9), else the measured ``power_w`` [W]; rounded as coverage rounds power."""
    billed = np.where(np.isnan(billed_w), power_w, billed_w)
    return np.floor(billed * 1000.0 + 0.5).astype(np.int64)


def invoice_lines(
    frame: pd.DataFrame,
    coverage: ReadingCoverage,
    site: SiteConfig,
    *,
    billed_power_mw: np.ndarray | None = None,
) -> pd.DataFrame:
    """One line per overtime session (SPEC §3.4–3.6), ordered by client, date, zone and start.

    ``billed_power_mw`` (one per reading [mW]) replaces the measured power where the models flagged a spike
    (SPEC §3.9): such a line bills the replaced energy, says ``adjusted`` and keeps the measured kWh in
    ``original_energy_kwh``. The same as :func:`lines_from_sessions` of :func:`overtime_sessions`.
    """
    return lines_from_sessions(
        overtime_sessions(frame, coverage, site, billed_power_mw=billed_power_mw), site
    )


def overtime_sessions(
    frame: pd.DataFrame,
    coverage: ReadingCoverage,
    site: SiteConfig,
    *,
    billed_power_mw: np.ndarray | None = None,
) -> pd.DataFrame:
    """The overtime sessions (SPEC §3.4–3.6) in exact integers: :data:`SESSION_COLUMNS`, one row each.

    ``day`` is the local date (day number since 1970-01-01), times are UTC [ms], energies [mW·ms] (billed
    and measured), charges in cents. The readings store keeps these rows (:mod:`slem_ml.storage`) and builds
    invoices from them with :func:`lines_from_sessions`.
    """
    pieces = coverage.pieces
    zone = frame[S.ZONE_ID].cat.codes.to_numpy()
    client = frame[S.CLIENT_ID].cat.codes.to_numpy()
    keys = (pieces.usage == OVERTIME, zone[pieces.reading], client[pieces.reading], pieces.day)
    runs = find_runs(pieces, *keys)
    if len(runs.first_piece) == 0:
        return empty_sessions()
    measured = runs.energy
    billed_energy = measured
    if billed_power_mw is not None:
        billed = dataclasses.replace(pieces, power_mw=billed_power_mw[pieces.reading])
        billed_energy = find_runs(billed, *keys).energy
    client_ids = labels_at(frame[S.CLIENT_ID], runs.reading)
    billable = _billable_minutes(runs.covered_ms, site.billing.block_minutes)
    rates = {  # exact (numerator, denominator) pairs of each client's rates
        cid: (c.hourly_rate.as_integer_ratio(), c.energy_rate.as_integer_ratio())
        for cid, c in site.clients.items()
    }
    hours, energy = [], []
    for cid, minutes, units in zip(client_ids, billable.tolist(), billed_energy.tolist(), strict=True):
        (h_num, h_den), (e_num, e_den) = rates[cid]
        hours.append(cents(minutes * h_num, 60 * h_den))  # SPEC §3.6
        energy.append(cents(units * e_num, MS_PER_KWH_UNIT * e_den))
    return pd.DataFrame(
        {
            "client_id": client_ids,
            "zone_id": labels_at(frame[S.ZONE_ID], runs.reading),
            "day": runs.day.astype(np.int64),
            "start_ms": runs.start_ms,
            "end_ms": runs.end_ms,
            "covered_ms": runs.covered_ms,
            "billable_minutes": billable,
            "energy_units": billed_energy,
            "measured_units": measured,
            "hours_cents": np.asarray(hours, dtype=np.int64),
            "energy_cents": np.asarray(energy, dtype=np.int64),
        }
    )


def empty_sessions() -> pd.DataFrame:
    """A :func:`overtime_sessions` frame without rows."""
    dtypes = {"client_id": object, "zone_id": object}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, np.int64)) for c in SESSION_COLUMNS})


def lines_from_sessions(sessions: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """Invoice lines (``schema.INVOICE_LINE_COLUMNS``, Decimal money) of :func:`overtime_sessions` rows,
    ordered by client, date, zone and start."""
    if sessions.empty:
        return _empty_lines()
    client_ids = sessions["client_id"].to_numpy(dtype=object)
    dates = day_to_date(sessions["day"].to_numpy(dtype=np.int64))
    hours = [Decimal(c) * _CENT for c in sessions["hours_cents"].tolist()]
    energy = [Decimal(c) * _CENT for c in sessions["energy_cents"].tolist()]
    billed = sessions["energy_units"].to_numpy(dtype=np.int64)
    measured = sessions["measured_units"].to_numpy(dtype=np.int64)
    timezone = site.site.timezone
    lines = pd.DataFrame(
        {
            "invoice_id": [invoice_id_for(c, d) for c, d in zip(client_ids, dates, strict=True)],
            "client_id": client_ids,
            "zone_id": sessions["zone_id"].to_numpy(dtype=object),
            "date": dates,
            "start": ms_to_local(sessions["start_ms"].to_numpy(dtype=np.int64), timezone),
            "end": ms_to_local(sessions["end_ms"].to_numpy(dtype=np.int64), timezone),
            "minutes": [decimal_minutes(ms) for ms in sessions["covered_ms"].tolist()],
            "billable_minutes": sessions["billable_minutes"].to_numpy(dtype=np.int64),
            "energy_kwh": [decimal_kwh(units) for units in billed.tolist()],
            "hours_charge": hours,
            "energy_charge": energy,
            "amount": [h + e for h, e in zip(hours, energy, strict=True)],
            "currency": site.site.currency,
            "adjusted": billed != measured,
            "original_energy_kwh": [decimal_kwh(units) for units in measured.tolist()],
            "status": "billed",  # until holds are applied (slem_ml.billing.holds)
        }
    )
    lines = lines.sort_values(LINE_ORDER, kind="stable")
    return lines.reset_index(drop=True)[list(S.INVOICE_LINE_COLUMNS)]


def _billable_minutes(covered_ms: np.ndarray, block_minutes: int) -> np.ndarray:
    """``ceil(minutes / block) × block`` in integer milliseconds (SPEC §3.4)."""
    block_ms = block_minutes * S.MS_PER_MINUTE
    return (-(-covered_ms // block_ms) * block_minutes).astype(np.int64)


def _empty_lines() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in S.INVOICE_LINE_COLUMNS})


def canonical_lines_text(lines: pd.DataFrame) -> np.ndarray:
    """The canonical text of each line; an invoice's ``content_hash`` is the sha256 of its lines' texts.

    The invoice_lines.csv columns except ``invoice_id`` and ``status``, comma-separated, ``\\n`` after each
    line; times in ISO 8601 with the site offset, Decimals as written, booleans ``true``/``false`` (SPEC
    §3.8). A line not simply billed (held, released, waived: SPEC §8.4) ends with ``,`` and its status, so a
    decision changes the hash (a new revision) while the hashes of ordinary invoices stay what they were.
    """
    cells: list[list[str]] = []  # each column's text, made vectorised; one join per line below
    for column in (c for c in S.INVOICE_LINE_COLUMNS if c not in ("invoice_id", "status")):
        values = lines[column]
        if column in ("start", "end"):
            cells.append(iso_local(pd.DatetimeIndex(values)).tolist())
        elif column == "adjusted":
            cells.append(np.where(values.to_numpy(dtype=bool), "true", "false").tolist())
        else:
            cells.append(values.astype(str).tolist())
    if "status" in lines.columns:  # "" for a billed line, ",<status>" for the others
        status = lines["status"].astype(str).to_numpy(dtype=object)
        cells.append(np.where(status == "billed", "", "," + status).tolist())
        texts = [",".join(row[:-1]) + row[-1] + "\n" for row in zip(*cells, strict=True)]
    else:
        texts = [",".join(row) + "\n" for row in zip(*cells, strict=True)]
    return np.array(texts, dtype=object)


def build_invoices(lines: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """One invoice per client and month of session dates (SPEC §3.7); revision 1 until stored.

    ``lines`` counts every line; the total, hours and energy are those of the billed and released lines,
    ``held_total`` the amount of the held ones (SPEC §8.4)."""
    columns = list(S.INVOICE_COLUMNS)
    if lines.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    rows = []
    texts = canonical_lines_text(lines)
    for invoice_id, group in lines.groupby("invoice_id", sort=True):
        first_date = group["date"].iloc[0]
        status = group["status"] if "status" in group.columns else pd.Series("billed", index=group.index)
        billed = group[counts_in_total(status)]  # SPEC §8.4: billed and released lines make the total
        held = group[status.to_numpy(dtype=object) == "held"]
        billable = int(billed["billable_minutes"].sum())
        rows.append(
            {
                "invoice_id": invoice_id,
                "client_id": group["client_id"].iloc[0],
                "period": f"{first_date.year:04d}-{first_date.month:02d}",
                "revision": 1,
                "lines": len(group),
                "billable_hours": (Decimal(billable) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP),
                "energy_kwh": sum(billed["energy_kwh"], Decimal("0.000000")),
                "total": sum(billed["amount"], Decimal("0.00")),
                "currency": site.site.currency,
                "content_hash": hashlib.sha256(
                    "".join(texts[lines.index.get_indexer(group.index)]).encode("utf-8")
                ).hexdigest(),
                "held_total": sum(held["amount"], Decimal("0.00")),
            }
        )
    return pd.DataFrame(rows, columns=columns)
