"""A periodic report (SPEC §10) as one self-contained HTML page, and the numbers in words it shares with the
PDF and the XLSX.

:func:`report_view` turns a :class:`~slem_ml.outputs.report_content.ReportContent` and its charts into what
the template ``templates/report.html`` shows: every figure as text for people (money with its currency and
thousands separators, kWh with sensible decimals, changes with their sign, ``None`` as "—"), the ranked
tables cut to :data:`~slem_ml.outputs.report_content.TOP_N` rows, a sentence where a table is empty, and
the charts as ``data:`` URIs. :func:`render_html` renders the page; ``report_pdf`` renders the same template
into a PDF. Nothing here computes a figure: gathering did (``slem_ml.reports``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import math
import struct
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from slem_ml.outputs.report_content import TOP_N, Co2Factor, ReportContent

__all__ = [
    "EMPTY",
    "SECTION_HEADINGS",
    "co2_source_text",
    "date_text",
    "day_text",
    "kwh_text",
    "money_text",
    "percent_text",
    "render_html",
    "unit_of",
    "report_view",
    "value_text",
]

DASH = "—"  # a figure that does not exist (no readings stored for that period)
NBSP = "\u00a0"  # between a number and its unit: they never part at a line end

#: The section headings, in the order the page shows them.
SECTION_HEADINGS = (
    "Summary",
    "Energy by use",
    "Trends by day",
    "Time of day and weekday",
    "Buildings and floors",
    "Top zones",
    "Overtime billed per client",
    "Cleaning over the limit",
    "Alerts and maintenance",
    "CO₂",
    "Forecast for the next period",
    "Savings opportunities",
    "Notes",
)

#: What a report says instead of an empty table (HTML, PDF and XLSX alike).
EMPTY = {
    "headline": "No readings of this scope are stored for this period.",
    "by_use": "No readings of this scope are stored for this period.",
    "by_place": "No readings of this scope are stored for this period.",
    "by_building": "No readings of this scope are stored for this period.",
    "daily": "No readings of this scope are stored for this period.",
    "by_hour": "No readings of this scope are stored for this period.",
    "by_weekday": "No readings of this scope are stored for this period.",
    "overtime": "No overtime billed in this period.",
    "cleaning": "No cleaning session over the limit in this period.",
    "alerts": "No alert raised in this period.",
    "alert_list": "No alert raised in this period.",
    "maintenance": "No maintenance recorded in this period.",
    "forecast": "No forecast of the next period (see the notes).",
    "peak_hours": "No forecast of the next period, so no peak hours (see the notes).",
    "savings": "No savings opportunity to recommend for this period (see the notes).",
}

_CHART_WIDTH_PT = 527.0  # 186 mm: the PDF's text width, in the PDF's points (fpdf2 reads img width in pt)


# --- numbers and dates for people ------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()
    return False


def money_text(value: Any, currency: str) -> str:
    """``12,345.67 EUR`` [currency]: two decimals, thousands separators, the currency after; "—" for None."""
    if _missing(value):
        return DASH
    return f"{Decimal(str(value)).quantize(Decimal('0.01')):,.2f}{NBSP}{currency}"


def _amount(value: Any) -> str:
    """An energy-like figure: no decimals from 100 on, one below (``12,345``, ``42.5``)."""
    number = float(value)
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:,.1f}"


def kwh_text(value: Any, unit: str = "kWh") -> str:
    """``12,345 kWh`` or ``42.5 kWh`` [kWh]; "—" for None."""
    return DASH if _missing(value) else f"{_amount(value)}{NBSP}{unit}"


def percent_text(value: Any, *, signed: bool = True) -> str:
    """``+4.2 %`` (a change, signed) or ``42.0 %`` (a share); "—" for None."""
    if _missing(value):
        return DASH
    number = float(value)
    return f"{number:+,.1f}{NBSP}%" if signed else f"{number:,.1f}{NBSP}%"


def date_text(day: dt.date) -> str:
    """``3 March 2025``."""
    return f"{day.day} {day:%B %Y}"


def day_text(day: dt.date) -> str:
    """``Mon 3 Mar``."""
    return f"{day:%a} {day.day} {day:%b}"


def co2_source_text(co2: Co2Factor, *, year: str = "{source}, {year}") -> str:
    """Where a CO₂ factor comes from, with its year unless the source names it already (``Strommix 2023``
    is not followed by ``, 2023``); ``year`` lays out source and year (the XLSX: ``"{source} ({year})"``)."""
    if co2.year is None or str(co2.year) in co2.source:
        return co2.source
    return year.format(source=co2.source, year=co2.year)


def unit_of(column: str) -> str:
    """The unit in a column's brackets: ``Energy [kWh]`` → ``kWh``; ``""`` without one."""
    return column[column.rfind("[") + 1 : -1] if column.endswith("]") and "[" in column else ""


def value_text(value: Any, column: str, currency: str) -> str:
    """One cell as people read it, by its column's unit (``[kWh]``, ``[<currency>]``, ``[%]``…) and its
    type (dates, times)."""
    if _missing(value):
        return DASH
    unit = unit_of(column)
    if isinstance(value, pd.Timestamp | dt.datetime):
        return f"{day_text(value.date())} {value:%H:%M}"
    if isinstance(value, dt.date):
        return day_text(value)
    if isinstance(value, dt.time):
        return f"{value:%H:%M}"
    if isinstance(value, str | bool):
        return str(value)
    if unit == currency:
        return money_text(value, currency)
    if unit == "%":
        return percent_text(value, signed=column.startswith("Change"))
    if unit.startswith("kWh") or unit in ("kg", "kW"):
        return _amount(value)
    if unit == "min":
        return f"{float(value):,.0f}"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return f"{float(value):,.1f}"


# --- the view --------------------------------------------------------------------------------------


def _table(frame: pd.DataFrame, currency: str, *, top: int | None = TOP_N) -> dict[str, Any]:
    """A frame as the template's table: headers, aligns, relative widths [%], rows of text, rows left out."""
    shown = frame if top is None else frame.head(top)
    headers = [str(column) for column in frame.columns]
    rows = [[value_text(value, column, currency) for value in shown[column].tolist()] for column in headers]
    aligns = [
        "right" if unit_of(column) or pd.api.types.is_numeric_dtype(frame[column].dtype) else "left"
        for column in headers
    ]
    weights = [
        min(max(max((len(word) for word in column.split()), default=4), *(len(t) for t in texts), 5), 48)
        for column, texts in zip(headers, rows, strict=True)
    ]
    total = sum(weights) or 1
    return {
        "headers": headers,
        "aligns": aligns,
        "widths": [max(round(100 * weight / total), 1) for weight in weights],
        "rows": [list(row) for row in zip(*rows, strict=True)],
        "more": max(len(frame) - len(shown), 0),
        "empty": frame.empty,
    }


def _headline(content: ReportContent) -> dict[str, Any]:
    """The headline table: each measure's figures formatted by its own unit (a row holds one measure)."""
    frame = content.headline
    rows = []
    for record in frame.to_dict("records"):  # one row per measure: seven at most
        measure = str(record["Measure"])
        row = [measure]
        for column in frame.columns[1:]:
            as_column = column if str(column).startswith("Change") else measure
            row.append(value_text(record[column], str(as_column), content.currency))
        rows.append(row)
    headers = [str(column) for column in frame.columns]
    return {
        "headers": headers,
        "aligns": ["left", *["right"] * (len(headers) - 1)],
        "widths": [28, *[72 // max(len(headers) - 1, 1)] * (len(headers) - 1)],
        "rows": rows,
        "more": 0,
        "empty": frame.empty,
    }


def _change_words(value: Any, against: str) -> str | None:
    if _missing(value):
        return None
    number = float(value)
    if abs(number) < 0.05:
        return f"about the same as {against}"
    return f"{abs(number):,.1f}{NBSP}% {'more' if number > 0 else 'less'} than {against}"


def summary_text(content: ReportContent) -> str:
    """The summary paragraph: energy, cost and the change against the previous period and a year earlier."""
    if content.empty:
        return f"No readings of {content.scope_label} are stored for {content.period_label}."
    text = (
        f"{content.scope_label} used {kwh_text(content.energy_kwh)} for lighting in {content.period_label}, "
        f"costing {money_text(content.cost, content.currency)}."
    )
    energy = content.headline[content.headline["Measure"].astype(str).str.startswith("Energy [")]
    changes: list[str] = []
    if not energy.empty:
        row = energy.iloc[0]
        for column, against in (
            ("Change vs previous [%]", "the previous period"),
            ("Change vs year earlier [%]", "the same period a year earlier"),
        ):
            words = _change_words(row.get(column), against) if column in row.index else None
            if words:
                changes.append(words)
    if changes:
        text += " That is " + " and ".join(changes) + "."
    else:
        text += " It is not compared with other periods (see the notes)."
    return text


def _chart(charts: Mapping[str, bytes], name: str) -> dict[str, Any] | None:
    """A chart as an ``<img>``: its data URI and its size on an A4 page [pt]."""
    png = charts.get(name)
    if not png:
        return None
    width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR
    return {
        "src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "width": round(_CHART_WIDTH_PT),
        "height": round(_CHART_WIDTH_PT * height / width),
        "alt": name,
    }


def report_view(content: ReportContent, charts: Mapping[str, bytes]) -> dict[str, Any]:
    """What the template shows, all as text; charts missing from ``charts`` show their sentence instead."""
    zone = ZoneInfo(content.timezone)
    generated = content.generated_at.astimezone(zone)
    cur = content.currency
    frames = [
        "by_use",
        "by_place",
        "by_building",
        "overtime",
        "cleaning",
        "alerts",
        "alert_list",
        "maintenance",
        "peak_hours",
        "savings",
    ]
    tables = {name: _table(getattr(content, name), cur) for name in frames}
    forecast = content.forecast
    next_period = ""
    if not forecast.empty:
        first, last = forecast["Date"].min(), forecast["Date"].max()
        next_period = f"{date_text(pd.Timestamp(first).date())} – {date_text(pd.Timestamp(last).date())}"
    co2 = content.co2
    co2_row = content.headline[content.headline["Measure"].astype(str).str.startswith("CO")]
    co2_kg = None if co2_row.empty else co2_row.iloc[0]["This period"]
    return {
        "title": content.title,
        "scope_label": content.scope_label,
        "period_label": content.period_label,
        "first_day": date_text(content.start),
        "last_day": date_text(content.end - dt.timedelta(days=1)),
        "generated": f"{date_text(generated.date())} {generated:%H:%M} ({content.timezone})",
        "currency": cur,
        "summary": summary_text(content),
        "headline": _headline(content),
        "tables": tables,
        "empty": EMPTY,
        "charts": {name: _chart(charts, name) for name in CHART_NAMES},
        "next_period": next_period,
        "co2_factor": f"{co2.kg_per_kwh:.3f} kg CO₂ per kWh",
        "co2_source": co2_source_text(co2),
        "co2_total": kwh_text(co2_kg, "kg CO₂"),
        "notes": list(content.notes),
        "top_n": TOP_N,
        "headings": dict(zip(_HEADING_KEYS, SECTION_HEADINGS, strict=True)),
    }


#: The charts a report may have (``report_charts`` makes those with data).
CHART_NAMES = ("by_use", "daily", "by_hour", "by_weekday", "by_building", "forecast")

_HEADING_KEYS = [
    "summary",
    "by_use",
    "daily",
    "hour",
    "places",
    "zones",
    "overtime",
    "cleaning",
    "alerts",
    "co2",
    "forecast",
    "savings",
    "notes",
]


@functools.cache
def _environment() -> Any:
    import jinja2  # lazy: only reports need it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("slem_ml.outputs", "templates"),
        autoescape=True,  # zone, building and client names come from user files
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_view(view: Mapping[str, Any]) -> str:
    """The template with a view from :func:`report_view` (the PDF renders the same page)."""
    return str(_environment().get_template("report.html").render(**view))


def render_html(content: ReportContent, charts: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML page (charts embedded as ``data:`` URIs)."""
    return render_view(report_view(content, charts))
