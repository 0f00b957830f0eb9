"""Tables for people: the one way the app's manager views title and format their columns (issue 14 item 9).

Every table of the Overview, Billing, Cleaning, Maintenance, Forecast, Models and Upload tabs goes through
:func:`for_people`: it keeps the named columns in order, titles each in words from :data:`COLUMNS`
("Zone", "Started", "Energy [kWh]", "Amount [EUR]" — the currency is the site's) and formats the cells as
text by kind:

* money [currency]: two decimals with thousands separators, ``1,234.50`` (the currency is in the title);
* energy [kWh]: ``12,346`` from 100 up, ``12.3`` from 10, ``0.04`` below (:func:`kwh_text`);
* counts and minutes: whole numbers with separators (a fraction of a minute keeps one decimal);
* times: ``2025-03-04 21:15`` in the time they are given in (site time where the caller converted them);
* nothing: ``—``.

Cells are text because a table shows JSON and JSON has no exact decimal; Gradio 6 can show a number
through a pandas ``Styler`` while sorting by its value, but that would make the handlers return stylers.
Instead callers sort rows before calling (largest money first, newest first, ...). Content hashes are
never titled here: only the revision history shows them (:mod:`slem_ml.app.invoicing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "NONE",
    "for_people",
    "kwh_text",
    "money_text",
    "scope_words",
    "title",
]

NONE = "—"  # an empty cell

# kinds of cells
TEXT, MONEY, KWH, COUNT, MINUTES, HOURS, WATTS, TIME, RATIO, FLAG = (
    "text", "money", "kwh", "count", "minutes", "hours", "watts", "time", "ratio", "flag",
)  # fmt: skip

#: A column's title and kind, by its name in the library's frames. ``{currency}`` becomes the site's.
COLUMNS: dict[str, tuple[str, str]] = {
    "invoice_id": ("Invoice", TEXT),
    "client_id": ("Client", TEXT),
    "zone_id": ("Zone", TEXT),
    "building": ("Building", TEXT),
    "floor": ("Floor", TEXT),
    "period": ("Month", TEXT),
    "state": ("State", TEXT),
    "status": ("Status", TEXT),
    "revision": ("Revision", COUNT),
    "lines": ("Lines", COUNT),
    "billable_hours": ("Billable [h]", HOURS),
    "energy_kwh": ("Energy [kWh]", KWH),
    "original_energy_kwh": ("Energy before adjustment [kWh]", KWH),
    "total": ("Total [{currency}]", MONEY),
    "held_total": ("Held [{currency}]", MONEY),
    "amount": ("Amount [{currency}]", MONEY),
    "hours_charge": ("Hours charge [{currency}]", MONEY),
    "energy_charge": ("Energy charge [{currency}]", MONEY),
    "savings": ("Savings [{currency}]", MONEY),
    "date": ("Date", TEXT),
    "start": ("Started", TIME),
    "end": ("Ended", TIME),
    "minutes": ("Duration [min]", MINUTES),
    "billable_minutes": ("Billable [min]", MINUTES),
    "excess_minutes": ("Over the limit [min]", MINUTES),
    "adjusted": ("Spike-adjusted", FLAG),
    "flagged": ("Over the limit", FLAG),
    "inferred": ("Inferred", FLAG),
    "sessions": ("Sessions", COUNT),
    "excess_hours": ("Over the limit [h]", HOURS),
    "wasted_kwh": ("Wasted [kWh]", KWH),
    # alerts
    "alert_id": ("Alert id", TEXT),
    "kind": ("Kind", TEXT),
    "severity": ("Severity", TEXT),
    "detected_at": ("Detected", TIME),
    "first_seen": ("First seen", TIME),
    "last_seen": ("Last seen", TIME),
    "acknowledged_by": ("Acknowledged by", TEXT),
    "resolved_by": ("Resolved by", TEXT),
    "note": ("Note", TEXT),
    "detail": ("What happened", TEXT),
    # maintenance done
    "at": ("When", TIME),
    "action": ("Action", TEXT),
    "user_name": ("By", TEXT),
    "before_w": ("Lit power before [W]", WATTS),
    "after_w": ("Lit power after [W]", WATTS),
    "change": ("Change", RATIO),
    "verdict": ("Verdict", TEXT),
    # forecasts
    "rank": ("Rank", COUNT),
    "timestamp": ("Hour", TIME),
    "expected_power_w": ("Expected power [W]", WATTS),
    "expected_kwh": ("Expected energy in the hour [kWh]", KWH),
    # training runs (slem_ml.models.registry.training_runs)
    "started (UTC)": ("Started (UTC)", TEXT),
    "run_id": ("MLflow run", TEXT),
    "strategy": ("Strategy", TEXT),
    "rows": ("Readings", COUNT),
    "zones": ("Zones", COUNT),
    "trained_to": ("Trained to", TEXT),
    "model_wape": ("WAPE", RATIO),
    "seasonal_naive_wape": ("Seasonal-naive WAPE", RATIO),
    "coverage": ("80 % interval coverage", RATIO),
    "brier": ("Brier score", RATIO),
    "promotion": ("Promotion", TEXT),
    # uploads
    "run": ("Run", TEXT),
    "uploaded (UTC)": ("Uploaded (UTC)", TEXT),
    "by": ("By", TEXT),
    "file": ("File", TEXT),
    "readings in": ("Readings in", COUNT),
    "added": ("Added", COUNT),
    "corrected": ("Corrected", COUNT),
    "quarantined": ("Quarantined", COUNT),
    # the Live tab (slem_ml.app.live)
    "since": ("Since", TIME),
    "running": ("Running for", TEXT),
    "power_w": ("Power now [W]", WATTS),
    "energy_so_far_kwh": ("Energy so far [kWh]", KWH),
    "est_cost": ("Estimated cost so far [{currency}]", MONEY),
    "last_reading": ("Last reading", TIME),
    "silent_for": ("Silent for", TEXT),
    "reports_every": ("Reports every", TEXT),
}


def title(name: str, currency: str = "") -> str:
    """The title of column ``name`` (``KeyError`` for a column without words: add it to :data:`COLUMNS`)."""
    return COLUMNS[name][0].format(currency=currency)


def scope_words(scope: str) -> str:
    """``"building:HQ"`` → ``"Building HQ"``, ``"client:C001"`` → ``"Client C001"``, ``"site"`` → ``"Site"``;
    anything else (a zone id) as it is."""
    kind, _, name = scope.partition(":")
    if name and kind in ("building", "client", "zone"):
        return f"{kind.capitalize()} {name}"
    return "Site" if scope == "site" else scope


def for_people(frame: pd.DataFrame, names: Sequence[str], currency: str = "") -> pd.DataFrame:
    """``frame``'s columns ``names`` (those it has, in this order) titled and formatted for people (module
    docstring); rows keep their order and get a fresh index."""
    kept = [n for n in names if n in frame.columns]
    out = {title(n, currency): _cells(frame[n], COLUMNS[n][1]) for n in kept}
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame))).astype(str)


def money_text(values: Iterable[Any]) -> list[str]:
    """Money [currency] as ``1,234.50`` (exact decimals rounded half to even to the cent); ``—`` for none."""
    cent = Decimal("0.01")
    out = []
    for value in values:
        if _missing(value):
            out.append(NONE)
            continue
        amount = value if isinstance(value, Decimal) else Decimal(str(value).replace(",", ""))
        out.append(f"{amount.quantize(cent, rounding=ROUND_HALF_EVEN):,.2f}")
    return out


def kwh_text(values: Iterable[Any]) -> list[str]:
    """Energy [kWh] with sensible decimals: 0 from 100 up (``12,346``), 1 from 10 (``12.3``), else 2
    (``0.04``); ``—`` for none."""
    numbers = _floats(values)
    size = np.abs(numbers)
    decimals = np.where(size >= 100, 0, np.where(size >= 10, 1, 2))
    return [NONE if np.isnan(x) else f"{x:,.{d}f}" for x, d in zip(numbers, decimals, strict=True)]


# --- internals ----------------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "nan", "None", "<NA>")


def _floats(values: Iterable[Any]) -> np.ndarray:
    return np.array([np.nan if _missing(v) else float(str(v).replace(",", "")) for v in values], dtype=float)


def _fixed(values: Iterable[Any], decimals: int) -> list[str]:
    return [NONE if np.isnan(x) else f"{x:,.{decimals}f}" for x in _floats(values)]


def _cells(values: pd.Series, kind: str) -> list[str]:
    if kind == MONEY:
        return money_text(values)
    if kind == KWH:
        return kwh_text(values)
    if kind == COUNT:
        return _fixed(values, 0)
    if kind == MINUTES:
        numbers = _floats(values)
        whole = np.isnan(numbers) | (numbers == np.round(numbers))
        return [
            NONE if np.isnan(x) else f"{x:,.0f}" if w else f"{x:,.1f}"
            for x, w in zip(numbers, whole, strict=True)
        ]
    if kind == HOURS:
        return _fixed(values, 2)
    if kind == WATTS:
        return _fixed(values, 0)
    if kind == RATIO:
        return _fixed(values, 3)
    if kind == TIME:
        return _times(values)
    if kind == FLAG:
        return [NONE if _missing(v) else ("yes" if str(v) in ("True", "true", "1") else "no") for v in values]
    return [NONE if _missing(v) else str(v) for v in values]


def _times(values: pd.Series) -> list[str]:
    """Instants as ``2025-03-04 21:15`` in the timezone they carry (text already shown as a time is cut to
    the minute)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        return [NONE if v is pd.NaT else v for v in values.dt.strftime("%Y-%m-%d %H:%M").fillna(NONE)]
    return [NONE if _missing(v) else str(v)[:16].replace("T", " ") for v in values]
