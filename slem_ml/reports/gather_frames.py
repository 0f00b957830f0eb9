"""Gathering a report, the tables of the period's own energy (SPEC §10): by use, by place (zones ranked,
buildings and floors), by day, by hour of the day and by weekday. Each takes the scope's energy frame of
:func:`slem_ml.reports.gather.scope_energy` (``kwh`` [kWh] and ``usage_class`` per reading); money is
energy × the operator's price, rounded half up to the cent.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import CLASS_CODES, holiday_mask
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.reports.periods import ReportPeriod
from slem_ml.reports.scope import client_label

__all__ = ["USE_LABELS", "by_building", "by_hour", "by_place", "by_use", "by_weekday", "daily", "money"]

_CENT = Decimal("0.01")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EPOCH = dt.date(1970, 1, 1)
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000
#: Usage class (SPEC §3.3) → its name in a report, in the order reports list them.
USE_LABELS: dict[str, str] = {
    "contract": "Contracted hours",
    "overtime": "Overtime",
    "cleaning": "Cleaning",
    "off": "Lights off",
}


def by_use(energy: pd.DataFrame, price: Decimal, currency: str) -> pd.DataFrame:
    sums = np.bincount(energy["usage"].to_numpy(dtype=np.int64), energy["kwh"].to_numpy(), minlength=4)
    total = float(sums.sum())
    kwh = [float(sums[CLASS_CODES[name]]) for name in USE_LABELS]
    return pd.DataFrame(
        {
            "Use": list(USE_LABELS.values()),
            "Energy [kWh]": kwh,
            f"Cost [{currency}]": [money(k, price) for k in kwh],
            "Share [%]": [round(100.0 * k / total, 1) if total > 0 else 0.0 for k in kwh],
        }
    )


def place_sums(energy: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    overtime = np.where(energy["usage"].to_numpy() == CLASS_CODES["overtime"], energy["kwh"].to_numpy(), 0.0)
    grouped = energy[keys].assign(kwh=energy["kwh"], overtime=overtime)
    return grouped.groupby(keys, observed=True, as_index=False)[["kwh", "overtime"]].sum()


def by_place(energy: pd.DataFrame, site: SiteConfig, price: Decimal, currency: str) -> pd.DataFrame:
    sums = place_sums(energy, [S.ZONE_ID, S.BUILDING, S.FLOOR])
    pairs = energy[[S.ZONE_ID, S.CLIENT_ID]].drop_duplicates()
    pairs = pairs.assign(label=[client_label(site, str(c)) for c in pairs[S.CLIENT_ID]])  # zone × client: few
    clients = pairs.sort_values("label").groupby(S.ZONE_ID, observed=True)["label"].agg(", ".join)
    sums = sums.sort_values(["kwh", S.ZONE_ID], ascending=[False, True], kind="stable")
    return pd.DataFrame(
        {
            "Building": sums[S.BUILDING].astype(str).to_numpy(),
            "Floor": sums[S.FLOOR].astype(str).to_numpy(),
            "Zone": sums[S.ZONE_ID].astype(str).to_numpy(),
            "Client": sums[S.ZONE_ID].map(clients).astype(str).to_numpy(),
            "Energy [kWh]": sums["kwh"].to_numpy(dtype=float),
            "Overtime [kWh]": sums["overtime"].to_numpy(dtype=float),
            f"Cost [{currency}]": [money(k, price) for k in sums["kwh"]],
        }
    )


def by_building(energy: pd.DataFrame, price: Decimal, currency: str) -> pd.DataFrame:
    sums = place_sums(energy, [S.BUILDING, S.FLOOR])
    order = np.lexsort(
        (sums[S.FLOOR].astype(str).str.zfill(4).to_numpy(), sums[S.BUILDING].astype(str).to_numpy())
    )
    sums = sums.iloc[order]
    return pd.DataFrame(
        {
            "Building": sums[S.BUILDING].astype(str).to_numpy(),
            "Floor": sums[S.FLOOR].astype(str).to_numpy(),
            "Energy [kWh]": sums["kwh"].to_numpy(dtype=float),
            "Overtime [kWh]": sums["overtime"].to_numpy(dtype=float),
            f"Cost [{currency}]": [money(k, price) for k in sums["kwh"]],
        }
    )


def daily(energy: pd.DataFrame, period: ReportPeriod) -> pd.DataFrame:
    """Energy per local day by use, every day of the period up to the last with readings."""
    first = period.start.toordinal() - _EPOCH.toordinal()
    last = int(energy["day"].max()) if len(energy) else first - 1
    days = np.arange(first, last + 1, dtype=np.int64)
    index = (energy["day"].to_numpy(dtype=np.int64) - first) * 4 + energy["usage"].to_numpy(dtype=np.int64)
    sums = np.bincount(index, energy["kwh"].to_numpy(), minlength=4 * len(days)).reshape(len(days), 4)
    out = pd.DataFrame({"Date": [_EPOCH + dt.timedelta(days=int(d)) for d in days]})
    for name, label in USE_LABELS.items():
        out[f"{label} [kWh]"] = sums[:, CLASS_CODES[name]]
    return out


def by_hour(energy: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """Mean energy in each local hour of a weekday, and of a weekend day or holiday [kWh/h]."""
    days = np.unique(energy["day"].to_numpy(dtype=np.int64))
    weekday = np.zeros(24, dtype=float)
    weekend = np.zeros(24, dtype=float)
    if len(days):
        off = ((days + 3) % 7 >= 5) | holiday_mask(site, days)  # 1970-01-01 was a Thursday
        rest = off[np.searchsorted(days, energy["day"].to_numpy(dtype=np.int64))]
        hours = energy["hour"].to_numpy(dtype=np.int64) + 24 * rest
        sums = np.bincount(hours, energy["kwh"].to_numpy(), minlength=48)
        working, resting = int((~off).sum()), int(off.sum())
        weekday = sums[:24] / working if working else weekday
        weekend = sums[24:] / resting if resting else weekend
    return pd.DataFrame(
        {"Hour": np.arange(24), "Weekdays [kWh/h]": weekday, "Weekends and holidays [kWh/h]": weekend}
    )


def by_weekday(energy: pd.DataFrame) -> pd.DataFrame:
    """Mean energy of a day of each weekday [kWh/day], over the days with readings."""
    day = energy["day"].to_numpy(dtype=np.int64)
    days = np.unique(day)
    sums = np.bincount((day + 3) % 7, energy["kwh"].to_numpy(), minlength=7)
    counts = np.bincount((days + 3) % 7, minlength=7)
    means = np.divide(sums, counts, out=np.zeros(7), where=counts > 0)
    return pd.DataFrame({"Weekday": list(_WEEKDAYS), "Energy [kWh/day]": means})


# --- helpers -----------------------------------------------------------------------------------------------


def money(kwh: float, price: Decimal) -> Decimal:
    """``kwh`` [kWh] × ``price`` [currency/kWh], to the cent (half up)."""
    return (Decimal(repr(float(kwh))) * price).quantize(_CENT, rounding=ROUND_HALF_UP)
