"""What a periodic report holds (SPEC §10), as plain frames and figures: the contract between gathering
(``slem_ml.reports``, which reads the store) and rendering (``report_html``, ``report_pdf``,
``report_xlsx``, ``report_charts`` here, which do no I/O but writing their own file).

Every frame is ready to show: its columns are titled in words with their unit in brackets, money columns
are exact ``Decimal`` (rounded to the cent) and energy columns ``float`` [kWh]; rendering formats them
(thousands separators, currency) and never computes a figure. A frame may be empty (no cleaning flagged,
no alerts): the renderers then say so in a sentence rather than drawing an empty table. The XLSX holds
every frame in full; the HTML and the PDF show the first :data:`TOP_N` rows of the ranked ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

__all__ = ["TOP_N", "Co2Factor", "ReportContent"]

#: Rows of a ranked table shown in the HTML and PDF (the XLSX has them all).
TOP_N = 15


@dataclass(frozen=True)
class Co2Factor:
    """The grid's emission factor used for CO₂ figures."""

    kg_per_kwh: float  # [kg CO₂ / kWh]
    source: str  # without its year: "site configuration (co2_kg_per_kwh)" or "Umweltbundesamt, Strommix"
    year: int | None  # the factor's year, when it comes from a published source


@dataclass(frozen=True)
class ReportContent:
    """One report: a scope over a period, with comparisons, forecast and savings opportunities.

    Frames and their columns (names exactly as below; units in brackets):

    * ``headline`` — one row per measure, columns ``Measure``, ``This period``, ``Previous period``,
      ``Change vs previous [%]``, ``Year earlier``, ``Change vs year earlier [%]``. Measures: "Energy
      [kWh]", "Energy cost [<currency>]", "Overtime energy [kWh]", "Overtime billed [<currency>]",
      "Cleaning sessions over the limit", "CO₂ [kg]", "Alerts raised". Values are numbers (float or
      Decimal) or ``None`` where that period is not compared (no readings, or readings on too few of its
      days: the notes say which); changes ``None`` likewise, and all of them when this period is partial.
    * ``by_use`` — ``Use`` (Contracted hours, Overtime, Cleaning, Lights off), ``Energy [kWh]``,
      ``Cost [<currency>]``, ``Share [%]``.
    * ``by_place`` — ranked by energy, one row per zone: ``Building``, ``Floor``, ``Zone``, ``Client``,
      ``Energy [kWh]``, ``Overtime [kWh]``, ``Cost [<currency>]``.
    * ``by_building`` — ``Building``, ``Floor``, ``Energy [kWh]``, ``Overtime [kWh]``, ``Cost [<currency>]``.
    * ``daily`` — ``Date`` (local date), then ``Contracted hours [kWh]``, ``Overtime [kWh]``,
      ``Cleaning [kWh]``, ``Lights off [kWh]``.
    * ``by_hour`` — ``Hour`` (0–23, local), ``Weekdays [kWh/h]``, ``Weekends and holidays [kWh/h]``: mean
      energy in that hour of a day of each kind.
    * ``by_weekday`` — ``Weekday`` (Monday…Sunday), ``Energy [kWh/day]`` (mean per day of that weekday).
    * ``overtime`` — per client: ``Client``, ``Sessions``, ``Hours [h]``, ``Energy [kWh]``,
      ``Billed [<currency>]`` (net, as invoiced for the period's months; a week or quarter sums the
      sessions that start in it), ``Held [<currency>]`` (the lines held on a fault, not in the total).
    * ``cleaning`` — sessions over the flag limit, longest first: ``Date``, ``Zone``, ``Client``,
      ``Start``, ``Duration [min]``, ``Energy [kWh]``, ``Savings [<currency>]``.
    * ``alerts`` — per kind (in words: "Lights stuck on"): ``Kind``, ``Raised`` (first seen in the period),
      ``Open``, ``Resolved`` (the listed alerts by their status); ``alert_list`` (most severe first, then
      newest) — ``Zone``, ``Kind``, ``Severity``, ``First seen``, ``Status``, ``Explanation``.
    * ``maintenance`` — ``Date``, ``Zone``, ``Action``, ``By``, ``Effect`` (the measured effect in words).
    * ``forecast`` — the next period by day: ``Date``, ``Expected energy [kWh]``, ``Low [kWh]``,
      ``High [kWh]``; ``peak_hours`` — ``Weekday``, ``Peak hour``, ``Expected power [kW]``. Both empty
      (with a note) without a champion model.
    * ``savings`` — one row per recommended zone, most money first: ``Zone``, ``Building``, ``Floor``,
      ``Switch off at``, ``Switch on at``, ``Days``, ``Saved energy [kWh]``, ``Saved money [<currency>]``,
      ``Saved CO₂ [kg]``, ``Occupied cuts``, ``Occupied cuts per week``.
    """

    title: str  # "Energy report — Building HQ — March 2025"
    scope: str  # as given: "site", "building:HQ", "client:C001"
    scope_label: str  # "Whole site", "Building HQ", "Acme Logistics GmbH (C001)"
    period: str  # as given: "2025-03", "2025-W10", "2025-Q1"
    period_label: str  # "March 2025", "Week 10 of 2025 (3–9 March)", "Q1 2025 (January–March)"
    start: dt.date  # first local day
    end: dt.date  # day after the last local day
    timezone: str
    currency: str
    generated_at: dt.datetime  # UTC
    co2: Co2Factor
    headline: pd.DataFrame
    by_use: pd.DataFrame
    by_place: pd.DataFrame
    by_building: pd.DataFrame
    daily: pd.DataFrame
    by_hour: pd.DataFrame
    by_weekday: pd.DataFrame
    overtime: pd.DataFrame
    cleaning: pd.DataFrame
    alerts: pd.DataFrame
    alert_list: pd.DataFrame
    maintenance: pd.DataFrame
    forecast: pd.DataFrame
    peak_hours: pd.DataFrame
    savings: pd.DataFrame
    energy_kwh: float = 0.0  # [kWh] the period's total, for the summary sentence
    cost: Decimal = Decimal("0")  # [currency]
    notes: tuple[str, ...] = field(default=())  # what is missing and why ("no readings a year earlier")
    days_with_readings: int = 0  # local days of the period with a reading of the scope (of end − start)

    @property
    def empty(self) -> bool:
        """True when the store holds no reading of the scope in the period."""
        return self.by_place.empty
