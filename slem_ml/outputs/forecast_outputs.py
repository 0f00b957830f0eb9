"""Writing ``slem forecast`` results (SPEC §6): forecasts.csv, the peak-hour tables, the expected occupancy
(issue 16) and a chart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from slem_ml.atomic import staged_folder
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.models.forecast import FORECAST_COLUMNS, OCCUPANCY, ForecastResult, building_occupancy
from slem_ml.outputs.csvsafe import write_csv
from slem_ml.outputs.formatting import iso_text

__all__ = ["FORECAST_FILES", "write_forecast"]

FORECAST_FILES = {
    "forecasts": "forecasts.csv",
    "zone_peaks": "peak_hours_zones.csv",
    "building_peaks": "peak_hours_buildings.csv",
    "occupancy": "occupancy.csv",  # expected occupancy per zone and hour
    "building_occupancy": "occupancy_buildings.csv",  # per building and hour: zones in use expected
    "zone_occupancy_peaks": "peak_occupancy_zones.csv",
    "building_occupancy_peaks": "peak_occupancy_buildings.csv",
    "chart": "forecast.png",
}
#: Columns of occupancy.csv.
OCCUPANCY_COLUMNS = (S.ZONE_ID, S.BUILDING, S.FLOOR, S.TIMESTAMP, OCCUPANCY)


def _text(frame: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    out = frame.copy()
    out[S.TIMESTAMP] = iso_text(out[S.TIMESTAMP], site.site.timezone)
    for column in (S.EXPECTED_POWER_W, "lower_w", "upper_w"):
        if column in out:
            out[column] = out[column].astype(float).round(1)
    for column in ("p_on", OCCUPANCY):
        if column in out:
            out[column] = out[column].astype(float).round(3)
    if "expected_occupied_zones" in out:
        out["expected_occupied_zones"] = out["expected_occupied_zones"].astype(float).round(2)
    return out


def write_forecast(result: ForecastResult, out_dir: str | Path, site: SiteConfig) -> dict[str, Path]:
    """Write every file into ``out_dir`` (created); files appear only once all are written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with staged_folder(out, "slem-forecast") as staging:
        write_csv(
            _text(result.forecasts[list(FORECAST_COLUMNS)], site), staging / FORECAST_FILES["forecasts"]
        )
        write_csv(_text(result.zone_peaks, site), staging / FORECAST_FILES["zone_peaks"])
        write_csv(_text(result.building_peaks, site), staging / FORECAST_FILES["building_peaks"])
        occupancy = result.forecasts.assign(**{OCCUPANCY: result.forecasts["p_on"]})[list(OCCUPANCY_COLUMNS)]
        write_csv(_text(occupancy, site), staging / FORECAST_FILES["occupancy"])
        write_csv(
            _text(building_occupancy(result.forecasts), site), staging / FORECAST_FILES["building_occupancy"]
        )
        for key in ("zone_occupancy_peaks", "building_occupancy_peaks"):
            write_csv(_text(getattr(result, key), site), staging / FORECAST_FILES[key])
        _chart(result, site).savefig(staging / FORECAST_FILES["chart"], dpi=110, bbox_inches="tight")
        written = {}
        for key, name in FORECAST_FILES.items():
            shutil.move(staging / name, out / name)
            written[key] = out / name
    return written


def _chart(result: ForecastResult, site: SiteConfig):
    """Expected power per building with the 80 % band, peak hours marked."""
    import matplotlib  # lazy: 0.5 s, only `slem forecast` draws its chart

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

    table = result.forecasts
    fig, ax = plt.subplots(figsize=(11, 4.5))
    totals = table.groupby([S.BUILDING, S.TIMESTAMP], observed=True)[
        [S.EXPECTED_POWER_W, "lower_w", "upper_w"]
    ].sum()
    for building, part in totals.groupby(level=0, observed=True):
        times = part.index.get_level_values(1).tz_convert(site.site.timezone).tz_localize(None)
        line = ax.plot(times, part[S.EXPECTED_POWER_W], lw=1.2, label=str(building))[0]
        ax.fill_between(times, part["lower_w"], part["upper_w"], color=line.get_color(), alpha=0.15)
    peaks = result.building_peaks[result.building_peaks["rank"] == 1]
    ax.scatter(
        peaks[S.TIMESTAMP].dt.tz_convert(site.site.timezone).dt.tz_localize(None),
        peaks[S.EXPECTED_POWER_W], marker="v", color="black", zorder=3, label="peak hour",
    )  # fmt: skip
    ax.set_ylabel("expected power [W] (sum of zones)")
    ax.set_title(f"Forecast per building, next {len(totals.index.get_level_values(1).unique()) // 24} days")
    ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    plt.close(fig)
    return fig
