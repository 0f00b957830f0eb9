"""The static charts of a periodic report (SPEC §10): PNG images for the HTML page and the PDF.

Each chart is drawn with matplotlib's object API (a ``Figure`` of its own, no pyplot state, the Agg
renderer), sized for an A4 page's text width at 150 dpi, with titled axes and units. Series are told apart
by lightness, hatching and line style as well as by colour, so that a page printed in grey reads the same:
the four uses sit at grey levels about 0.2 apart (dark, middle, light, very light), and the weekend line
is dashed. A chart whose data is empty is not drawn: the page says so in a sentence instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.outputs.report_content import TOP_N, ReportContent

__all__ = ["USE_STYLES", "report_charts"]

#: The uses of energy, in stacking order, with (column of ``daily``, fill colour, hatch).
#: Fill greys (ITU-R 601 luma): 0.23, 0.44, 0.66, 0.89.
USE_STYLES: tuple[tuple[str, str, str, str], ...] = (
    ("Contracted hours", "Contracted hours [kWh]", "#2f3b52", ""),
    ("Overtime", "Overtime [kWh]", "#c4561d", "///"),
    ("Cleaning", "Cleaning [kWh]", "#8fb8a0", "\\\\\\"),
    ("Lights off", "Lights off [kWh]", "#e4e4d8", ""),
)
_DARK, _MID, _BAND, _EDGE = "#2f3b52", "#c4561d", "#c9d1dc", "#222222"
_WIDTH, _HEIGHT, _DPI = 7.2, 2.7, 150  # [in]: the PDF's 186 mm text width

_STYLE: dict[str, Any] = {
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#444444",
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#d0d0d0",
    "grid.linewidth": 0.5,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "hatch.linewidth": 0.6,
    "hatch.color": _EDGE,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "figure.dpi": _DPI,
    "savefig.dpi": _DPI,
}


def report_charts(content: ReportContent) -> dict[str, bytes]:
    """The report's charts as PNG bytes, by name (``by_use``, ``daily``, ``by_hour``, ``by_weekday``,
    ``by_building``, ``forecast``); a chart without data is left out."""
    import matplotlib  # lazy: 0.5 s, only reports draw charts

    drawers: dict[str, tuple[pd.DataFrame, Callable[[Any, pd.DataFrame], None]]] = {
        "by_use": (content.by_use, _by_use),
        "daily": (content.daily, _daily),
        "by_hour": (content.by_hour, _by_hour),
        "by_weekday": (content.by_weekday, _by_weekday),
        "by_building": (content.by_building, _by_building),
        "forecast": (content.forecast, _forecast),
    }
    charts: dict[str, bytes] = {}
    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]  # mpl types its keys as Literals
        for name, (frame, draw) in drawers.items():
            if frame.empty:
                continue
            charts[name] = _png(draw, frame)
    return charts


def _png(draw: Callable[[Any, pd.DataFrame], None], frame: pd.DataFrame) -> bytes:
    from matplotlib.figure import Figure  # lazy: with matplotlib, see report_charts

    figure = Figure(figsize=(_WIDTH, _HEIGHT), layout="constrained")
    draw(figure.add_subplot(), frame)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _numbers(values: pd.Series) -> np.ndarray:
    """A column as floats [its unit], missing as 0."""
    return pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy(dtype=float)


def _legend(axes: Any, columns: int) -> None:
    axes.legend(loc="upper left", bbox_to_anchor=(0.0, 1.16), ncols=columns, handlelength=2.2)


def _by_use(axes: Any, frame: pd.DataFrame) -> None:
    """Horizontal bars: energy by use, each bar in its use's style, labelled with its kWh."""
    styles = {name: (colour, hatch) for name, _, colour, hatch in USE_STYLES}
    names = frame["Use"].astype(str).tolist()
    energy = _numbers(frame["Energy [kWh]"])
    y = np.arange(len(names))[::-1]
    for row, name in enumerate(names):
        colour, hatch = styles.get(name, ("#888888", ""))
        axes.barh(y[row], energy[row], color=colour, hatch=hatch, edgecolor=_EDGE, linewidth=0.4)
        label = f"{energy[row]:,.0f} kWh" if energy[row] >= 100 else f"{energy[row]:,.1f} kWh"
        axes.annotate(label, (energy[row], y[row]), xytext=(4, 0), textcoords="offset points", va="center")
    axes.set_yticks(y, names)
    axes.set_xlabel("Energy [kWh]")
    axes.set_xlim(0, max(float(energy.max()), 1.0) * 1.18)
    axes.grid(axis="x")
    axes.grid(axis="y", visible=False)
    axes.figure.set_size_inches(_WIDTH, 0.35 * len(names) + 0.8)


def _daily(axes: Any, frame: pd.DataFrame) -> None:
    """Stacked bars by day, one layer per use."""
    days = pd.to_datetime(frame["Date"]).to_numpy()
    bottom = np.zeros(len(frame))
    for name, column, colour, hatch in USE_STYLES:
        if column not in frame.columns:
            continue
        values = _numbers(frame[column])
        axes.bar(
            days, values, 0.8, bottom=bottom, color=colour, hatch=hatch,
            edgecolor=_EDGE, linewidth=0.3, label=name,
        )  # fmt: skip
        bottom += values
    _date_axis(axes, len(frame))
    axes.set_ylabel("Energy [kWh/day]")
    axes.set_xlabel("Day (site time)")
    _legend(axes, 4)


def _date_axis(axes: Any, days: int) -> None:
    import matplotlib.dates as mdates  # lazy: with matplotlib, see report_charts

    if days <= 10:
        axes.xaxis.set_major_locator(mdates.DayLocator())
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%a %d"))
    elif days <= 45:  # a month: Mondays labelled, every day ticked
        axes.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
        axes.xaxis.set_minor_locator(mdates.DayLocator())
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%a %d %b"))
    else:  # a quarter: the first of each month and weeks between
        axes.xaxis.set_major_locator(mdates.MonthLocator())
        axes.xaxis.set_minor_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    axes.margins(x=0.01)


def _by_hour(axes: Any, frame: pd.DataFrame) -> None:
    """Mean energy by hour of day: weekdays solid and dark, weekends and holidays dashed and lighter."""
    hours = _numbers(frame["Hour"])
    lines: Sequence[tuple[str, str, str, str]] = (
        ("Weekdays [kWh/h]", "Weekdays", _DARK, "-"),
        ("Weekends and holidays [kWh/h]", "Weekends and holidays", _MID, "--"),
    )
    for column, label, colour, style in lines:
        marker = "o" if style == "-" else "s"
        axes.plot(
            hours, _numbers(frame[column]), linestyle=style, color=colour, linewidth=1.8,
            marker=marker, markersize=3, label=label,
        )  # fmt: skip
    axes.set_xticks(range(0, 24, 2))
    axes.set_xlim(-0.5, 23.5)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("Hour of day (site time)")
    axes.set_ylabel("Mean energy [kWh/h]")
    _legend(axes, 2)


def _by_weekday(axes: Any, frame: pd.DataFrame) -> None:
    """Mean energy per day of each weekday."""
    names = frame["Weekday"].astype(str).str[:3].tolist()
    axes.bar(names, _numbers(frame["Energy [kWh/day]"]), 0.6, color="#5b6b86", edgecolor=_EDGE, linewidth=0.4)
    axes.set_xlabel("Weekday")
    axes.set_ylabel("Mean energy [kWh/day]")
    axes.figure.set_size_inches(_WIDTH, 2.1)


def _by_building(axes: Any, frame: pd.DataFrame) -> None:
    """The top buildings and floors by energy, with the overtime part of each bar hatched and darker."""
    top = frame.head(TOP_N)
    labels = (top["Building"].astype(str) + " · floor " + top["Floor"].astype(str)).tolist()
    y = np.arange(len(top))[::-1]
    energy, overtime = _numbers(top["Energy [kWh]"]), _numbers(top["Overtime [kWh]"])
    axes.barh(y, energy, 0.7, color="#b7c2d3", edgecolor=_EDGE, linewidth=0.4, label="Energy")
    axes.barh(
        y, overtime, 0.7, color=_MID, hatch="////", edgecolor=_EDGE, linewidth=0.4, label="of which overtime"
    )
    axes.set_yticks(y, labels)
    axes.set_xlabel("Energy [kWh]")
    axes.grid(axis="x")
    axes.grid(axis="y", visible=False)
    axes.figure.set_size_inches(_WIDTH, min(max(1.6, 0.28 * len(top) + 0.9), 5.5))
    _legend(axes, 2)


def _forecast(axes: Any, frame: pd.DataFrame) -> None:
    """Expected energy by day of the next period, with its low–high band."""
    days = pd.to_datetime(frame["Date"]).to_numpy()
    axes.fill_between(
        days, _numbers(frame["Low [kWh]"]), _numbers(frame["High [kWh]"]), color=_BAND,
        edgecolor="#8a96a8", hatch="", linewidth=0.5, label="Expected range (low–high)",
    )  # fmt: skip
    axes.plot(days, _numbers(frame["Expected energy [kWh]"]), color=_DARK, linewidth=1.8, marker="o",
              markersize=2.5, label="Expected")  # fmt: skip
    _date_axis(axes, len(frame))
    axes.set_ylim(bottom=0)
    axes.set_xlabel("Day (site time)")
    axes.set_ylabel("Energy [kWh/day]")
    _legend(axes, 2)
