"""Applying a trained :class:`~slem_ml.models.bundle.ModelBundle` to readings (SPEC §3.9, §4, §5, §7).

Three steps, each a pure function the orchestrator (:func:`slem_ml.scoring.score.score`) calls:

* :func:`infer_cleaning` — where the input has no cleaning flag, the session classifier sets it;
* :func:`expected_power` — the forecaster's expected mean power of each reading's zone-hour [W];
* :func:`billed_power_w` — the power a spike is billed at: the zone's
  expected lit power (SPEC §3.9).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.models.features import HOUR_MS, add_features, zone_hours
from slem_ml.models.forecaster import ZoneForecaster

__all__ = ["billed_power_w", "expected_power", "infer_cleaning"]


def infer_cleaning(frame: pd.DataFrame, site: SiteConfig, classifier: object) -> pd.DataFrame:
    """``frame`` with ``cleaning_staff`` set by the session classifier (SPEC §4, input without the flag)."""
    flags = classifier.predict_cleaning(frame, site)  # type: ignore[attr-defined]
    return frame.assign(**{S.CLEANING_STAFF: np.asarray(flags, dtype=bool)})


def expected_power(
    frame: pd.DataFrame, is_on: np.ndarray, site: SiteConfig, forecaster: ZoneForecaster
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Expected mean power of each reading's zone in its hour [W], and the zones the model never saw.

    Unseen zones are forecast from floor, building, calendar and their own lags (the zone itself unknown
    to the model): a fallback, not a refusal.
    """
    if frame.empty:
        return np.zeros(0), ()
    hours = add_features(zone_hours(frame, is_on), site)
    point = forecaster.predict_point(hours)
    seen = set(forecaster.categories_[S.ZONE_ID])
    unknown = tuple(sorted(set(hours[S.ZONE_ID].astype(str).unique()) - seen))
    # each reading's zone-hour row, matched on integer keys (zone code × S.GROUP_SPAN_MS + hour [ms])
    zone = frame[S.ZONE_ID].astype("category")  # the reader's categorical: no copy
    code_of = pd.Index(zone.cat.categories.astype(str))
    hour_zone = code_of.get_indexer(hours[S.ZONE_ID].astype(str).to_numpy()).astype(np.int64)
    t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    have = hour_zone * S.GROUP_SPAN_MS + hours["hour_ms"].to_numpy(dtype=np.int64)
    wanted = zone.cat.codes.to_numpy().astype(np.int64) * S.GROUP_SPAN_MS + (t - t % HOUR_MS)
    position = pd.Index(have).get_indexer(wanted)
    return np.where(position >= 0, point[position], np.nan), unknown


def billed_power_w(frame: pd.DataFrame, is_spike: np.ndarray, reference_w: np.ndarray) -> np.ndarray:
    """Power [W] a spike is billed at: its reference (expected lit) power, at most the measured power
    (SPEC §3.9); NaN for every other reading (billed as measured)."""
    power_w = frame[S.POWER_W].to_numpy(dtype=float)
    use = np.asarray(is_spike, dtype=bool) & ~np.isnan(reference_w)
    return np.where(use, np.minimum(reference_w, power_w), np.nan)
