"""A periodic report (SPEC §10) as an XLSX workbook: every frame of the content as a sheet, in full.

One sheet per frame with a name in words ("Summary", "By use", "Zones"…) and an "About" sheet (title,
scope, period, CO₂ factor and its source, notes). Headers are bold and frozen, columns sized to their
content, and numbers stay numbers: money (exact ``Decimal``) as a number with two decimals and thousands
separators, kWh likewise with one decimal, changes with their sign, dates as dates. An empty frame keeps its
header and says why in the row below, in the report's words. Written with XlsxWriter, column by column;
the workbook's creation time is the report's ``generated_at``, so the same content gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.outputs.report_content import ReportContent
from slem_ml.outputs.report_html import EMPTY, co2_source_text, date_text, unit_of

__all__ = ["SHEETS", "render_xlsx"]

#: Frame of the content → its sheet, in the workbook's order ("About" comes last).
SHEETS = {
    "headline": "Summary",
    "by_use": "By use",
    "by_place": "Zones",
    "by_building": "Buildings",
    "daily": "Daily",
    "by_hour": "By hour",
    "by_weekday": "By weekday",
    "overtime": "Overtime",
    "cleaning": "Cleaning",
    "alerts": "Alerts",
    "alert_list": "Alert list",
    "maintenance": "Maintenance",
    "forecast": "Forecast",
    "peak_hours": "Peak hours",
    "savings": "Savings",
}

_FORMATS = {
    "money": "#,##0.00",
    "energy": "#,##0.0",
    "change": "+0.0;-0.0;0.0",
    "share": "0.0",
    "count": "#,##0",
    "number": "#,##0.0#",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
    "time": "hh:mm",
}
_MAX_WIDTH = 60  # [characters]


def render_xlsx(content: ReportContent) -> bytes:
    """The report as XLSX bytes: a sheet per frame, all rows, and an "About" sheet."""
    import xlsxwriter  # lazy: only reports write workbooks

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False})
    book.set_properties({"title": content.title, "author": "slem", "created": _naive(content.generated_at)})
    formats = {name: book.add_format({"num_format": pattern}) for name, pattern in _FORMATS.items()}
    formats["header"] = book.add_format({"bold": True, "text_wrap": True, "valign": "bottom", "bottom": 1})
    formats["note"] = book.add_format({"italic": True, "font_color": "#444444"})
    formats["text"] = book.add_format({"text_wrap": False})
    for name, sheet_name in SHEETS.items():
        frame: pd.DataFrame = getattr(content, name)
        sheet = book.add_worksheet(sheet_name)
        if name == "headline":
            _headline_sheet(sheet, frame, content.currency, formats)
        else:
            _frame_sheet(sheet, frame, content.currency, formats, EMPTY[name])
    _about_sheet(book.add_worksheet("About"), content, formats)
    book.close()
    return buffer.getvalue()


def _naive(moment: dt.datetime) -> dt.datetime:
    """A UTC instant as the naive datetime a workbook stores [UTC]."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _kind(column: str, values: pd.Series, currency: str) -> str:
    """How a column is written: by its unit in brackets, else by its values' type."""
    unit = unit_of(column)
    if unit == currency:
        return "money"
    if unit == "%":
        return "change" if column.startswith("Change") else "share"
    if unit.startswith("kWh") or unit in ("kg", "kW", "h"):
        return "energy"
    if unit == "min":
        return "count"
    sample = values.dropna()
    first = sample.iloc[0] if len(sample) else None
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or isinstance(first, pd.Timestamp | dt.datetime):
        return "datetime"
    if isinstance(first, dt.date):
        return "date"
    if isinstance(first, dt.time):
        return "time"
    if pd.api.types.is_integer_dtype(values.dtype):
        return "count"
    if pd.api.types.is_numeric_dtype(values.dtype) or isinstance(first, Decimal | float | int):
        return "number"
    return "text"


def _cells(values: pd.Series, kind: str) -> list[Any]:
    """A column's values as cells: numbers as float, instants as naive local datetimes, missing as None."""
    if kind in ("money", "energy", "change", "share", "count", "number"):
        numbers = pd.to_numeric(values.map(float, na_action="ignore"), errors="coerce").astype("float64")
        array = numbers.to_numpy()
        return [None if np.isnan(x) else x for x in array.tolist()]
    if kind == "datetime":
        stamps = pd.to_datetime(values)
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_localize(None)
        return [None if pd.isna(x) else x.to_pydatetime() for x in stamps]
    if kind == "time":
        return [None if x is None else dt.datetime.combine(dt.date(1899, 12, 31), x) for x in values]
    return [None if pd.isna(x) else x for x in values.tolist()]


def _width(column: str, values: pd.Series, kind: str) -> int:
    """A column's width [characters]: its header's longest word or its longest value, within bounds."""
    header = max((len(word) for word in column.split()), default=6)
    if kind == "text":
        longest = int(values.astype(str).str.len().max()) if len(values) else 0
    elif kind in ("date", "time"):
        longest = 10
    elif kind == "datetime":
        longest = 16
    else:
        longest = 14
    return min(max(header, longest, 8) + 2, _MAX_WIDTH)


def _frame_sheet(sheet: Any, frame: pd.DataFrame, currency: str, formats: dict[str, Any], empty: str) -> None:
    """A frame on its sheet: bold frozen header, one typed column after another."""
    sheet.freeze_panes(1, 0)
    sheet.set_row(0, 30)
    for index, column in enumerate(frame.columns):
        name = str(column)
        values = frame[column]
        kind = _kind(name, values, currency)
        sheet.write_string(0, index, name, formats["header"])
        cell_format = formats.get(kind)
        sheet.set_column(index, index, _width(name, values, kind), cell_format)
        sheet.write_column(1, index, _cells(values, kind), cell_format)
    if frame.empty:
        sheet.write_string(1, 0, empty, formats["note"])


def _headline_sheet(sheet: Any, frame: pd.DataFrame, currency: str, formats: dict[str, Any]) -> None:
    """The headline: a row per measure, so each row is formatted by its measure's unit."""
    sheet.freeze_panes(1, 1)
    sheet.set_row(0, 30)
    sheet.set_column(0, 0, 34)
    sheet.set_column(1, len(frame.columns) - 1, 16)
    for index, column in enumerate(frame.columns):
        sheet.write_string(0, index, str(column), formats["header"])
    for row, record in enumerate(frame.to_dict("records"), start=1):  # seven measures
        measure = str(record["Measure"])
        sheet.write_string(row, 0, measure)
        kind = _kind(measure, pd.Series([1.0]), currency)
        if kind == "number":
            kind = "count"
        for index, column in enumerate(frame.columns[1:], start=1):
            value = record[column]
            if value is None or pd.isna(value):
                continue
            cell_kind = "change" if str(column).startswith("Change") else kind
            sheet.write_number(row, index, float(value), formats[cell_kind])


def _about_sheet(sheet: Any, content: ReportContent, formats: dict[str, Any]) -> None:
    """What the report is: title, scope, period, when it was made, the CO₂ factor and its source, notes."""
    co2 = content.co2
    rows: list[tuple[str, str]] = [
        ("Title", content.title),
        ("Scope", f"{content.scope_label} ({content.scope})"),
        ("Period", f"{content.period_label} ({content.period})"),
        ("First day", date_text(content.start)),
        ("Last day", date_text(content.end - dt.timedelta(days=1))),
        ("Time zone", content.timezone),
        ("Currency", content.currency),
        ("Generated (UTC)", f"{_naive(content.generated_at):%Y-%m-%d %H:%M}"),
        ("CO₂ factor [kg CO₂/kWh]", f"{co2.kg_per_kwh:g}"),
        ("CO₂ factor source", co2_source_text(co2, year="{source} ({year})")),
    ]
    rows += [(f"Note {number}", note) for number, note in enumerate(content.notes, start=1)]
    sheet.set_column(0, 0, 26, formats["header"])
    sheet.set_column(1, 1, 90)
    for row, (label, value) in enumerate(rows):
        sheet.write_string(row, 0, label)
        sheet.write_string(row, 1, value)
