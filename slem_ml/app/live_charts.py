"""The Live tab's figures (SPEC §9): every zone on its floor's grid coloured by state, and each building's
power today against its expected band. Plain Plotly dicts, not validated (a refresh every few seconds).
Power in W, times in site time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local
from slem_ml.live.detectors import QUARTER_MS
from slem_ml.storage.live_view import LiveSnapshot

__all__ = ["STATES", "ages_text", "building_power", "empty_figure", "floor_grid"]

#: A zone's states on the Live tab, in the order the grid's colour bar lists them.
STATES: tuple[str, ...] = ("dark", "lit in contract", "overtime now", "cleaning now", "alert", "silent")
_COLOURS = ("#d9d9d9", "#74c476", "#fd8d3c", "#6baed6", "#de2d26", "#252525")  # one per state
#: the layout every Live figure shares; the template's layout given whole, as unvalidated figures need it
_LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    "template": {"layout": pio.templates["plotly_white"].to_plotly_json()["layout"]},
}


def floor_grid(zones: pd.DataFrame) -> go.Figure:
    """Every zone in its floor's row (one row per building and floor), coloured by state."""
    title = "Zones by building and floor, coloured by state"
    if zones.empty:
        return empty_figure(title)
    place = (zones["building"].astype(str) + " · floor " + zones["floor"].astype(str)).to_numpy(object)
    number = np.array([_zone_number(z) for z in zones["zone_id"].astype(str)])
    # ids without a zone number: zones in id order along their floor
    column = number if (number >= 0).all() else pd.Series(place).groupby(place).cumcount().to_numpy() + 1
    hover = (
        zones["zone_id"].astype(str) + ": " + zones["state"].astype(str) + ", "
        + zones["power_w"].round(0).astype(int).astype(str) + " W, last reading "
        + pd.Series(ages_text(zones["age_ms"]), index=zones.index) + " ago"
    ).to_numpy(object)  # fmt: skip
    places, row = np.unique(place, return_inverse=True)  # sorted: the first place at the bottom
    numbers, col = np.unique(column, return_inverse=True)
    codes = np.full((len(places), len(numbers)), np.nan)
    codes[row, col] = zones["state"].cat.codes.to_numpy()
    text = np.full(codes.shape, "", dtype=object)
    text[row, col] = hover
    n = len(STATES)
    scale = [[edge, colour] for i, colour in enumerate(_COLOURS) for edge in (i / n, (i + 1) / n)]
    grid = {
        "type": "heatmap", "z": codes, "x": [f"zone {c}" for c in numbers.tolist()],
        "y": places.tolist(), "customdata": text,
        "hovertemplate": "%{customdata}<extra></extra>", "colorscale": scale, "zmin": -0.5,
        "zmax": n - 0.5, "xgap": 1, "ygap": 1,
        "colorbar": {"tickvals": list(range(n)), "ticktext": list(STATES), "title": {"text": "state"}},
    }  # fmt: skip
    return _figure([grid], {"title": {"text": title}, "height": max(300, 60 + 22 * len(codes))})


def building_power(snapshot: LiveSnapshot, timezone: str, now_ms: int | None = None) -> go.Figure:
    """Each building's mean power per quarter hour today [W] against the sum of its zones' expected bands
    per hour, one panel per building. The quarter hour still running at ``now_ms`` is left out: its energy
    is still arriving, and drawn it would look like the lights going out."""
    title = "Building power today [W] against the expected band (zone bands added up)"
    if now_ms is not None:
        done = snapshot.power["bucket_ms"].to_numpy(np.int64) + QUARTER_MS <= now_ms
        snapshot = replace(snapshot, power=snapshot.power[done])
    buildings = sorted(set(snapshot.power["building"]) | set(snapshot.bands["building"]))
    if not buildings:
        return empty_figure(title)
    cols = 2 if len(buildings) > 1 else 1
    rows = math.ceil(len(buildings) / cols)
    layout: dict[str, Any] = {"title": {"text": title}, "height": 120 + 220 * rows, "annotations": []}
    traces: list[dict[str, Any]] = []
    local = {  # site time on the x axes, converted once for every building
        name: frame.assign(x=ms_to_local(frame[at].to_numpy(np.int64), timezone).tz_localize(None))
        for name, frame, at in (("power", snapshot.power, "bucket_ms"), ("bands", snapshot.bands, "hour_ms"))
    }
    power, bands = (dict(tuple(local[name].groupby("building"))) for name in ("power", "bands"))
    gap_x, gap_y = 0.08, 0.3 / rows
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    for i, building in enumerate(buildings):  # a grid of panels, as plotly's make_subplots lays them
        row, col, k = i // cols, i % cols, "" if i == 0 else str(i + 1)
        left, top = col * (width + gap_x), 1 - row * (height + gap_y)
        layout[f"xaxis{k}"] = {"domain": [left, left + width], "anchor": f"y{k}"}
        layout[f"yaxis{k}"] = {"domain": [top - height, top], "anchor": f"x{k}", "rangemode": "tozero"}
        layout["annotations"].append(
            {"text": building, "x": left + width / 2, "y": top, "xref": "paper", "yref": "paper",
             "xanchor": "center", "yanchor": "bottom", "showarrow": False}
        )  # fmt: skip
        axes = {"xaxis": f"x{k}", "yaxis": f"y{k}", "showlegend": i == 0}
        if building in bands:
            band = bands[building]
            edge = {**axes, "x": band["x"], "line": {"width": 0, "shape": "hv"}, "legendgroup": "band"}
            traces += [
                {**edge, "y": band["upper_w"].to_numpy(float), "hoverinfo": "skip", "showlegend": False},
                {**edge, "y": band["lower_w"].to_numpy(float), "fill": "tonexty", "name": "expected band",
                 "fillcolor": "rgba(100,149,237,0.25)"},
                {**axes, "x": band["x"], "y": band["expected_w"].to_numpy(float), "name": "expected",
                 "line": {"color": "royalblue", "shape": "hv"}},
            ]  # fmt: skip
        if building in power:
            part = power[building]
            traces.append(
                {**axes, "x": part["x"], "y": part["energy_wh"].to_numpy(float) * 4.0, "name": "actual",
                 "line": {"color": "black", "shape": "hv"}, "legendgroup": "actual"}
            )  # fmt: skip
    return _figure([{"type": "scatter", **t} for t in traces], layout)


def ages_text(ms: pd.Series) -> list[str]:
    """Durations [ms] as people read them: ``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    out = []
    for value in ms.to_numpy(np.int64).tolist():
        s = max(value, 0) // 1000
        if s < 60:
            out.append(f"{s} s")
        elif s < 3600:
            out.append(f"{s // 60} min")
        elif s < 86_400:
            out.append(f"{s // 3600} h {s % 3600 // 60:02d} min")
        else:
            out.append(f"{s // 86_400} d {s % 86_400 // 3600} h")
    return out


@functools.lru_cache(maxsize=100_000)  # zones come and go rarely
def _zone_number(zone_id: str) -> int:
    """The zone's number on its floor (``HQ-F2-Z7`` → 7), -1 for an id without one."""
    match = S.ZONE_ID_PATTERN.match(zone_id)
    return int(match.group("zone")) if match else -1


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A figure from plain trace and layout dicts, not validated: Plotly's checks of a few dozen traces
    cost about 200 ms a refresh, ten times the rest of it; the dicts here are the tests' to get right."""
    return go.Figure({"data": data, "layout": {**_LAYOUT, **layout}}, _validate=False)


def empty_figure(title: str) -> go.Figure:
    hidden = {"visible": False}
    return _figure([], {"title": {"text": f"{title} — nothing to show"}, "height": 300, "xaxis": hidden,
                        "yaxis": hidden})  # fmt: skip
