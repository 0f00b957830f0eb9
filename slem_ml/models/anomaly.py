"""The learnt maintenance detectors (SPEC §5): spikes and drift of on-power, and :func:`maintenance_alerts`.

Input everywhere is the scored readings frame (``ScoringResult.readings.frame``: one row per
reading, ``timestamp`` tz-aware UTC, ``zone_id``, ``power_w`` [W], ``is_on``, ``in_contract``, optionally
``expected_power_w`` [W], which only ever appears in the words of an alert). Rows may come in any order;
per-row results follow the frame's rows.

``spike`` — :class:`slem_ml.models.spikes.SpikeDetector`
    A lit reading far above the most its zone usually draws in that contract state and above both lit
    neighbours; the IsolationForest scores those candidates (``anomaly_score``). Spikes of a zone less than
    :data:`SPIKE_MERGE_MINUTES` apart are one alert. Described in :mod:`slem_ml.models.spikes`.
``drift`` — :class:`slem_ml.models.drift.DriftDetector`
    A one-sided CUSUM per zone on the ratio of a daily on-power level (the brightest steady lit run of the
    day) to the zone's normal full-brightness power; described in :mod:`slem_ml.models.drift`.
``stuck_on`` and ``dropout``
    Rules: :func:`slem_ml.models.alerts.stuck_on_alerts`, :func:`slem_ml.models.alerts.dropout_alerts`.

Detection is causal: an alert's ``detected_at`` is the time of the last reading its detector needed, and
appending later readings changes neither that time nor any earlier decision. The alerts table (ids,
severity, status, words) is described in :mod:`slem_ml.models.alert_table`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.models.alerts import (
    ALERT_ORDER,
    DROPOUT_HOURS,
    REGULAR_HOURS,
    STUCK_ON_HOURS,
    dropout_episodes,
    empty_alerts,
    render_alerts,
    stuck_on_episodes,
    zoned_readings,
)
from slem_ml.models.drift import DriftDetector
from slem_ml.models.spikes import SPIKE_FEATURES, SpikeDetector, SpikeFindings, spike_episodes

# DriftDetector and SpikeDetector live in slem_ml.models.drift and slem_ml.models.spikes; they are
# re-exported here for bundles pickled before the split
__all__ = [
    "SPIKE_FEATURES",
    "SPIKE_MERGE_MINUTES",
    "DriftDetector",
    "MaintenanceFindings",
    "SpikeDetector",
    "SpikeFindings",
    "maintenance_alerts",
]

#: Spikes of a zone less than this apart are one alert [min]: a meter that spikes every few hours is one
#: fault to look at, not one alert a reading (the legacy export spikes 3 % of its readings).
SPIKE_MERGE_MINUTES = 24 * 60.0


@dataclass(frozen=True)
class MaintenanceFindings:
    """What :func:`maintenance_alerts` finds. Arrays have one entry per frame row, in frame order.

    ``anomaly_score`` and ``is_anomaly`` are the spike model's (SPEC §7 scored readings), ``reference_w``
    [W] is the power a spike is billed at (NaN elsewhere), ``alerts`` is
    :func:`~slem_ml.models.alerts.alert_columns`.
    """

    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    reference_w: np.ndarray
    alerts: pd.DataFrame
    #: zones the drift detector did not judge: too few days of readings (``DriftDetector.short_history``)
    short_history: tuple[str, ...] = ()


# --- all together ---------------------------------------------------------------------------------


def maintenance_alerts(
    frame: pd.DataFrame,
    site: SiteConfig,
    spike: SpikeDetector,
    drift: DriftDetector,
    *,
    spike_merge_minutes: float = SPIKE_MERGE_MINUTES,
    data_end_ms: int | None = None,
    site_hours: np.ndarray | None = None,
) -> MaintenanceFindings:
    """Every maintenance finding of the scored readings (SPEC §5): per-reading spike scores, the alerts.

    Spikes of one zone less than ``spike_merge_minutes`` apart make one alert. Alerts are ordered by
    ``detected_at``, then kind and zone. ``data_end_ms`` [UTC ms] is the end of the whole input when
    ``frame`` holds only some of its zones (a batch): a zone silent until then has dropped out;
    ``site_hours`` the hours the whole input has readings in (:func:`~slem_ml.models.alerts.active_hours`).
    """
    z = zoned_readings(frame, S.IN_CONTRACT)
    tz = site.site.timezone
    found = spike.find_sorted(z, site)
    parts = [
        render_alerts("spike", spike_episodes(z, found, spike_merge_minutes), tz),
        render_alerts("drift", drift._episodes(z, site), tz),
        render_alerts("stuck_on", stuck_on_episodes(z, site, STUCK_ON_HOURS), tz),
        render_alerts(
            "dropout", dropout_episodes(z, DROPOUT_HOURS, REGULAR_HOURS, data_end_ms, site_hours), tz
        ),
    ]
    alerts = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(map(len, parts)) else None
    if alerts is None:
        alerts = empty_alerts()
    else:
        alerts = alerts.sort_values(ALERT_ORDER, kind="stable", ignore_index=True)
    return MaintenanceFindings(
        z.scatter(found.score),
        z.scatter(found.is_spike),
        z.scatter(found.billed_w),
        alerts,
        drift.short_history(z, site),
    )
