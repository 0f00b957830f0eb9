"""Alerts on the store's timeline (SPEC §8.5): an episode is the same whatever the uploads that show it.

A file alone sees only its part of a stuck-on night that two uploads split; the store sees all of it.
:func:`store_stuck_on` runs the ``stuck_on`` rule (:func:`slem_ml.models.alerts.stuck_on_alerts`) on the
stored readings of the zones an upload touched, from :data:`CONTEXT_DAYS` before its first changed reading to
as many after its last, so the alert (its id, first and last time) and the lines it holds
(:mod:`slem_ml.billing.holds`) are those one upload of everything gives — for episodes shorter than the
context. The other kinds still come from the file: spikes and drift need the models' view of the file's
readings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from slem_ml.billing.coverage import classified_readings, compute_coverage
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.models.alerts import empty_alerts, stuck_on_alerts
from slem_ml.storage.blocks import MS_PER_DAY, load
from slem_ml.storage.rebill import client_names, readings_frame, zone_names

__all__ = ["CONTEXT_DAYS", "store_stuck_on"]

#: Days of stored readings around an upload's changes that the rule sees (an episode is under a day or two).
CONTEXT_DAYS = 3


def store_stuck_on(
    connection: Connection, site: SiteConfig, zone_key: np.ndarray, t_ms: np.ndarray
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The ``stuck_on`` alerts of the stored readings around the changed readings (``zone_key``, ``t_ms``
    [UTC ms]), and the zones they were looked for in (their file alerts of that kind are replaced)."""
    if not len(t_ms):
        return empty_alerts(), ()
    keys = np.unique(zone_key)
    first = int(t_ms.min()) // MS_PER_DAY - CONTEXT_DAYS
    last = int(t_ms.max()) // MS_PER_DAY + CONTEXT_DAYS
    readings, _ = load(connection, [(int(k), first, last) for k in keys])
    zones = zone_names(connection)
    names = tuple(sorted(zones[int(k)] for k in keys))
    if not len(readings):
        return empty_alerts(), names
    frame = readings_frame(readings, zones, client_names(connection))
    frame = frame[frame[S.CLIENT_ID].astype(str).isin(list(site.clients))].reset_index(drop=True)
    frame[S.CLIENT_ID] = frame[S.CLIENT_ID].cat.remove_unused_categories()
    if frame.empty:
        return empty_alerts(), names
    scored = classified_readings(frame, compute_coverage(frame, site))
    return stuck_on_alerts(scored, site), names
