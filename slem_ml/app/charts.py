"""The app's Plotly charts, each from a frame the library already made (no I/O here).

Energy is in kWh, power in W, money in the site's currency; times are local (site timezone).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from slem_ml.io import schema as S

__all__ = [
    "cleaning_by_hour",
    "cleaning_ranking",
    "energy_heatmap",
    "energy_trend",
    "forecast_chart",
    "overtime_by_client",
    "profile_heatmap",
    "zone_power_chart",
]

_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
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
            colorbar={"title": "kWh/h"},
            hovertemplate="%{y} %{x}: %{z:,.2f} kWh<extra></extra>",
        ),
        layout={**_LAYOUT, "title": "Typical week: energy per hour [kWh]"},
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def energy_trend(energy: pd.DataFrame) -> go.Figure:
    """Energy per day [kWh], stacked by use: contracted hours, overtime, cleaning."""
    if energy.empty:
        return _empty("Energy per day")
    daily = (
        energy.assign(day=energy["local_time"].dt.floor("D").dt.tz_localize(None))
        .groupby(["day", S.USAGE_CLASS], observed=True)["kwh"]
        .sum()
        .unstack(S.USAGE_CLASS, fill_value=0.0)
    )
    fig = go.Figure(layout={**_LAYOUT, "title": "Energy per day by use [kWh]", "barmode": "stack"})
    for use in ("contract", "overtime", "cleaning", "off"):
        if use in daily.columns:
            fig.add_bar(x=daily.index, y=daily[use], name=use)
    return fig


def overtime_by_client(lines: pd.DataFrame, currency: str) -> go.Figure:
    """Overtime amount per client, stacked by zone [currency]."""
    if lines.empty:
        return _empty("Overtime by client and zone")
    amounts = lines.assign(amount=lines["amount"].astype(float))
    table = amounts.pivot_table(
        index=S.CLIENT_ID, columns=S.ZONE_ID, values="amount", aggfunc="sum", fill_value=0.0
    )
    fig = go.Figure(
        layout={**_LAYOUT, "title": f"Overtime by client and zone [{currency}]", "barmode": "stack"}
    )
    for zone in table.columns:
        fig.add_bar(x=list(table.index), y=table[zone], name=str(zone))
    fig.update_layout(showlegend=len(table.columns) <= 30)
    return fig


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
    """Forecast power [W] with its 80 % band (``timestamp, expected_power_w, lower_w, upper_w``)."""
    if table.empty:
        return _empty(title)
    x = table["timestamp"].dt.tz_localize(None)
    fig = go.Figure(layout={**_LAYOUT, "title": title, "height": 420})
    fig.add_scatter(x=x, y=table["upper_w"], line={"width": 0}, showlegend=False, hoverinfo="skip")
    fig.add_scatter(
        x=x, y=table["lower_w"], fill="tonexty", line={"width": 0}, name="80 % band",
        fillcolor="rgba(100,149,237,0.25)",
    )  # fmt: skip
    fig.add_scatter(x=x, y=table["expected_power_w"], name="expected", line={"color": "royalblue"})
    return fig
