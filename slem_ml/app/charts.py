"""The app's Plotly charts, each from a frame the library already made (no I/O here).

Energy is in kWh, power in W, money in the site's currency; times are local (site timezone). Energy over
time is shown per hour [kWh] on the Overview and the Forecast alike (an hour's mean power [W] / 1000), so
the two tabs read on one scale. A chart with many series shows the :data:`TOP_N` largest and the rest as
one "others" series, with a legend.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from slem_ml.billing.holds import counts_in_total
from slem_ml.io import schema as S

__all__ = [
    "cleaning_by_hour",
    "cleaning_ranking",
    "energy_heatmap",
    "energy_trend",
    "PALETTE",
    "USES",
    "forecast_chart",
    "occupancy_chart",
    "overtime_by_client",
    "profile_heatmap",
    "zone_power_chart",
]

#: Series a chart names one by one; the rest are added up as "others".
TOP_N = 10
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
#: The uses of energy in stacking order: (usage class, name in words as the reports give it, colour as the
#: reports' charts draw it; :data:`slem_ml.outputs.report_charts.USE_STYLES`).
USES: tuple[tuple[str, str, str], ...] = (
    ("contract", "Contracted hours", "#2f3b52"),
    ("overtime", "Overtime", "#c4561d"),
    ("cleaning", "Cleaning", "#8fb8a0"),
    ("off", "Lights off", "#c8c8b4"),
)
#: Distinct colours for the named series of a chart (the :data:`TOP_N` largest and one to spare), none of
#: them grey: grey is :data:`OTHER_COLOUR`'s, the series that adds up the rest.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#393b79", "#e6ab02",
)  # fmt: skip
OTHER_COLOUR = "#9e9e9e"
_LAYOUT = {"margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "template": "plotly_white", "height": 380}


def _empty(title: str) -> go.Figure:
    fig = go.Figure(layout={**_LAYOUT, "title": f"{title} — nothing to show"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def energy_heatmap(energy: pd.DataFrame) -> go.Figure:
    """Energy [kWh] per zone: one row per building and floor, one column per zone of the floor."""
    if energy.empty:
        return _empty("Energy by building, floor and zone")
    place = energy[S.BUILDING].astype(str) + " · floor " + energy[S.FLOOR].astype(str)
    table = (
        energy.assign(place=place, zone_name=energy[S.ZONE].astype(str))
        .groupby(["place", "zone_name"], observed=True)["kwh"]
        .sum()
        .unstack("zone_name")
        .sort_index(ascending=False)
    )
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(),
            x=[f"zone {z}" for z in table.columns],
            y=list(table.index),
            colorscale="YlOrRd",
            colorbar={"title": "kWh"},
            hovertemplate="%{y}, %{x}: %{z:,.1f} kWh<extra></extra>",
        ),
        layout={**_LAYOUT, "title": "Energy by building, floor and zone [kWh]"},
    )
    return fig


def profile_heatmap(energy: pd.DataFrame) -> go.Figure:
    """Mean energy per hour of the week [kWh per hour, all visible zones]: when the light burns."""
    if energy.empty:
        return _empty("Hour × weekday profile")
    local = energy["local_time"]
    hourly = energy.assign(day=local.dt.floor("D"), weekday=local.dt.day_of_week, hour=local.dt.hour)
    per_day = hourly.groupby(["day", "weekday", "hour"], observed=True)["kwh"].sum()
    table = per_day.groupby(level=["weekday", "hour"]).mean().unstack("hour").reindex(range(7))
    table = table.reindex(columns=range(24))
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(),
            x=[f"{h:02d}:00" for h in table.columns],
            y=[_WEEKDAYS[d] for d in table.index],
            colorscale="Blues",
            colorbar={"title": "kWh per hour"},
            hovertemplate="%{y} %{x}: %{z:,.2f} kWh<extra></extra>",
        ),
        layout={**_LAYOUT, "title": "Typical week: energy per hour [kWh]"},
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def energy_trend(energy: pd.DataFrame) -> go.Figure:
    """Energy per day [kWh], stacked by use (:data:`USES`): contracted hours, overtime, cleaning, lights
    off, named in words as the reports name them."""
    if energy.empty:
        return _empty("Energy per day")
    daily = (
        energy.assign(day=energy["local_time"].dt.floor("D").dt.tz_localize(None))
        .groupby(["day", S.USAGE_CLASS], observed=True)["kwh"]
        .sum()
        .unstack(S.USAGE_CLASS, fill_value=0.0)
    )
    fig = go.Figure(layout={**_LAYOUT, "title": "Energy per day by use [kWh]", "barmode": "stack"})
    for use, name, colour in USES:
        if use in daily.columns:
            fig.add_bar(
                x=daily.index, y=daily[use], name=name, marker_color=colour,
                hovertemplate=f"%{{x|%Y-%m-%d}}, {name}: %{{y:,.1f}} kWh<extra></extra>",
            )  # fmt: skip
    fig.update_yaxes(title_text="Energy per day [kWh]")
    return fig


def overtime_by_client(lines: pd.DataFrame, currency: str) -> go.Figure:
    """Overtime amount per client [currency], stacked by zone: the :data:`TOP_N` clients and zones with the
    largest amounts by name, the rest as "other clients" / "other zones"; clients largest first. Each zone
    has a colour of its own (:data:`PALETTE`), "other zones" grey. Only what the invoices bill: a line held
    on a fault (or waived) is not in the invoice's total, and not in the chart."""
    if "status" in lines:
        lines = lines[counts_in_total(lines["status"])]
    if lines.empty:
        return _empty("Overtime by client and zone")
    amounts = lines.assign(
        amount=lines["amount"].astype(float),
        client=_top_or_other(lines[S.CLIENT_ID], lines["amount"], "other clients"),
        zone=_top_or_other(lines[S.ZONE_ID], lines["amount"], "other zones"),
    )
    table = amounts.pivot_table(
        index="client", columns="zone", values="amount", aggfunc="sum", fill_value=0.0
    )
    table = table.loc[_largest_first(table.sum(axis=1), "other clients")]
    table = table[_largest_first(table.sum(axis=0), "other zones")]
    fig = go.Figure(
        layout={
            **_LAYOUT, "title": f"Overtime billed by client and zone [{currency}]", "barmode": "stack",
            "legend": {"title": {"text": f"Zone (top {TOP_N})"}},
        }
    )  # fmt: skip
    named = iter(PALETTE)
    for zone in table.columns:
        colour = OTHER_COLOUR if zone == "other zones" else next(named)
        fig.add_bar(
            x=list(table.index), y=table[zone], name=str(zone), marker_color=colour,
            hovertemplate=f"%{{x}}, {zone}: %{{y:,.2f}} {currency}<extra></extra>",
        )  # fmt: skip
    fig.update_yaxes(title_text=f"Overtime [{currency}]")
    return fig


def _top_or_other(names: pd.Series, amounts: pd.Series, other: str) -> pd.Series:
    """``names`` with all but the :data:`TOP_N` of largest summed ``amounts`` replaced by ``other``."""
    text = names.astype(str)
    sums = amounts.astype(float).groupby(text.to_numpy()).sum().sort_values(ascending=False, kind="stable")
    top = set(sums.index[:TOP_N])
    return text.where(text.isin(top), other)


def _largest_first(sums: pd.Series, other: str) -> list[str]:
    """Labels by their sum, largest first, ``other`` last."""
    ordered = sums.sort_values(ascending=False, kind="stable").index
    return [label for label in ordered if label != other] + [label for label in ordered if label == other]


def cleaning_ranking(ranked: pd.DataFrame, currency: str) -> go.Figure:
    """Wasted energy [kWh] of flagged cleaning per building and floor, largest first."""
    if ranked.empty:
        return _empty("Cleaning waste by building and floor")
    fig = go.Figure(
        go.Bar(
            x=ranked["wasted_kwh"],
            y=ranked["building"] + " · floor " + ranked["floor"],
            orientation="h",
            customdata=ranked[["savings", "sessions"]],
            hovertemplate=(
                "%{y}: %{x:,.1f} kWh wasted, %{customdata[0]:,.2f} "
                + currency
                + " to save, %{customdata[1]} sessions<extra></extra>"
            ),
        ),
        layout={**_LAYOUT, "title": "Cleaning waste by building and floor [kWh]"},
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def cleaning_by_hour(sessions: pd.DataFrame) -> go.Figure:
    """When in the night cleaning runs: sessions by starting hour, flagged (over the limit) apart."""
    if sessions.empty:
        return _empty("When cleaning happens")
    counts = (
        sessions.assign(
            hour=sessions["start"].dt.hour,
            kind=sessions["flagged"].map({True: "over the limit", False: "normal"}),
        )
        .groupby(["hour", "kind"])
        .size()
        .unstack("kind", fill_value=0)
        .reindex(range(24), fill_value=0)
    )
    fig = go.Figure(layout={**_LAYOUT, "title": "Cleaning sessions by starting hour", "barmode": "stack"})
    for kind in ("normal", "over the limit"):
        if kind in counts.columns:
            fig.add_bar(x=[f"{h:02d}:00" for h in counts.index], y=counts[kind], name=kind)
    return fig


def zone_power_chart(series: pd.DataFrame, alerts: pd.DataFrame, zone_id: str) -> go.Figure:
    """A zone's hourly mean power against the model's expectation and 80 % band [W], alerts marked."""
    if series.empty:
        return _empty(f"{zone_id}: power")
    x = series["hour"]
    fig = go.Figure(layout={**_LAYOUT, "title": f"{zone_id}: actual vs expected power [W]", "height": 420})
    if "upper_w" in series:
        fig.add_scatter(x=x, y=series["upper_w"], line={"width": 0}, showlegend=False, hoverinfo="skip")
        fig.add_scatter(
            x=x, y=series["lower_w"], fill="tonexty", line={"width": 0}, name="expected 80 % band",
            fillcolor="rgba(100,149,237,0.25)",
        )  # fmt: skip
    if "expected_w" in series:
        fig.add_scatter(x=x, y=series["expected_w"], name="expected", line={"color": "royalblue"})
    fig.add_scatter(x=x, y=series["actual_w"], name="actual", line={"color": "black", "width": 1})
    spikes = alerts[alerts["kind"] == "spike"]
    if len(spikes):  # many and short: markers along the top, not a line each
        top = float(series["actual_w"].max()) * 1.05
        fig.add_scatter(
            x=spikes["detected_at"], y=[top] * len(spikes), mode="markers", name="spike alerts",
            marker={"symbol": "x", "color": "crimson", "size": 9},
        )  # fmt: skip
    for alert in alerts[alerts["kind"] != "spike"].itertuples(index=False):
        fig.add_vline(x=alert.detected_at, line={"color": "crimson", "dash": "dot"})
        fig.add_annotation(x=alert.detected_at, y=1, yref="paper", text=alert.kind, showarrow=False)
    return fig


def forecast_chart(table: pd.DataFrame, title: str) -> go.Figure:
    """Forecast energy per hour [kWh] with its 80 % band, from hourly mean power
    (``timestamp, expected_power_w, lower_w, upper_w`` [W]): W over one hour / 1000 = kWh in that hour, the
    Overview's unit."""
    if table.empty:
        return _empty(title)
    x = table["timestamp"].dt.tz_localize(None)
    kwh = {c: table[c].to_numpy(dtype=float) / 1000.0 for c in ("expected_power_w", "lower_w", "upper_w")}
    fig = go.Figure(layout={**_LAYOUT, "title": title, "height": 420})
    fig.add_scatter(x=x, y=kwh["upper_w"], line={"width": 0}, showlegend=False, hoverinfo="skip")
    fig.add_scatter(
        x=x, y=kwh["lower_w"], fill="tonexty", line={"width": 0}, name="80 % band",
        fillcolor="rgba(100,149,237,0.25)", hovertemplate="%{y:,.2f} kWh<extra>band low</extra>",
    )  # fmt: skip
    fig.add_scatter(
        x=x, y=kwh["expected_power_w"], name="expected", line={"color": "royalblue"},
        customdata=table["expected_power_w"].to_numpy(dtype=float),
        hovertemplate="%{x}: %{y:,.2f} kWh (mean %{customdata:,.0f} W)<extra></extra>",
    )  # fmt: skip
    fig.update_yaxes(title_text="Energy per hour [kWh]")
    return fig


def occupancy_chart(table: pd.DataFrame, peaks: pd.DataFrame, title: str) -> go.Figure:
    """Expected occupancy per hour [%] (``timestamp, expected_occupancy`` [0..1]; a building's also
    ``expected_occupied_zones``), its peak hours (``peaks``: ``timestamp, expected_occupancy``) marked."""
    if table.empty:
        return _empty(title)
    share = table["expected_occupancy"].to_numpy(dtype=float) * 100.0
    fig = go.Figure(layout={**_LAYOUT, "title": title, "height": 320})
    zones = None
    if "expected_occupied_zones" in table:
        zones = table["expected_occupied_zones"].to_numpy(dtype=float)
    fig.add_scatter(
        x=table["timestamp"].dt.tz_localize(None), y=share, name="expected occupancy", mode="lines",
        line={"color": "seagreen", "shape": "hv"}, fill="tozeroy", fillcolor="rgba(46,139,87,0.15)",
        customdata=zones, hovertemplate="%{x}: %{y:.0f} %"
        + (" (%{customdata:.1f} zones in use)" if zones is not None else "") + "<extra></extra>",
    )  # fmt: skip
    if len(peaks):
        fig.add_scatter(
            x=peaks["timestamp"].dt.tz_localize(None),
            y=peaks["expected_occupancy"].to_numpy(dtype=float) * 100, mode="markers",
            name="peak occupancy hours", marker={"symbol": "triangle-down", "size": 10, "color": "black"},
        )  # fmt: skip
    fig.update_yaxes(title_text="Expected occupancy [%]", range=[0, 105])
    return fig
