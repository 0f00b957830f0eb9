"""The column contract: canonical names, legacy aliases, dtypes and units, written once (SPEC §1, §7).

Every other module uses these constants instead of string literals. Nothing past the reader sees a legacy
header or a naive timestamp: timestamps are tz-aware UTC with millisecond resolution, power is in watts.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "GROUP_SPAN_MS",
    "ALERT_COLUMNS",
    "BUILDING",
    "CLEANING_COLUMNS",
    "CLEANING_STAFF",
    "CLIENT_ID",
    "COVERED_MINUTES",
    "BILLED_POWER_W",
    "EXPECTED_POWER_W",
    "ANOMALY_SCORE",
    "FLOOR",
    "INVOICE_COLUMNS",
    "INVOICE_LINE_COLUMNS",
    "IN_CONTRACT",
    "IS_ANOMALY",
    "IS_ON",
    "LINE",
    "LINE_STATUSES",
    "MS_PER_MINUTE",
    "OPTIONAL_COLUMNS",
    "POWER_W",
    "REQUIRED_COLUMNS",
    "TIMESTAMP",
    "USAGE_CLASS",
    "USAGE_CLASSES",
    "ZONE",
    "ZONE_ID",
    "ZONE_ID_PATTERN",
    "canonical_column",
    "normalise_header",
]

# --- readings (SPEC §1) ---------------------------------------------------------------------------
TIMESTAMP = "timestamp"  # tz-aware UTC after the reader; ISO 8601 in files
ZONE_ID = "zone_id"  # e.g. "HQ-F4-Z2"
CLIENT_ID = "client_id"
POWER_W = "power_w"  # [W]
CLEANING_STAFF = "cleaning_staff"  # bool; absent column = unknown
BUILDING = "building"
FLOOR = "floor"
ZONE = "zone"
LINE = "line"  # 1-based source line number (the header is line 1 of a CSV)

REQUIRED_COLUMNS: tuple[str, ...] = (TIMESTAMP, ZONE_ID, CLIENT_ID, POWER_W)
OPTIONAL_COLUMNS: tuple[str, ...] = (CLEANING_STAFF, BUILDING, FLOOR, ZONE)

#: Header aliases after :func:`normalise_header` (legacy export names → canonical names).
_ALIASES: dict[str, str] = {
    "timestamp": TIMESTAMP,
    "zoneid": ZONE_ID,
    "roomid": ZONE_ID,
    "clientid": CLIENT_ID,
    "powerw": POWER_W,
    "powerusagew": POWER_W,
    "cleaningstaff": CLEANING_STAFF,
    "building": BUILDING,
    "floor": FLOOR,
    "zone": ZONE,
}

#: ``B-F{floor}-Z{zone}``; the building part may itself contain dashes or ``&``.
ZONE_ID_PATTERN = re.compile(r"^(?P<building>.+)-F(?P<floor>\d+)-Z(?P<zone>\d+)$")

# --- scored readings (SPEC §7) --------------------------------------------------------------------
IN_CONTRACT = "in_contract"  # the reading's timestamp lies in its client's (widened) contract window
IS_ON = "is_on"  # power_w >= on_threshold_w
USAGE_CLASS = "usage_class"  # class at the reading's timestamp: contract/overtime/cleaning/off
COVERED_MINUTES = "covered_minutes"  # [min] true elapsed time the reading stands for
EXPECTED_POWER_W = "expected_power_w"  # [W] filled by the models layer
ANOMALY_SCORE = "anomaly_score"  # higher = more anomalous; filled by the models layer
IS_ANOMALY = "is_anomaly"
#: [W] what an overtime spike is billed at (the zone's expected lit power, SPEC §3.9); NaN = as measured
BILLED_POWER_W = "billed_power_w"
USAGE_CLASSES: tuple[str, ...] = ("off", "contract", "overtime", "cleaning")

#: slem counts time in integer milliseconds.
MS_PER_MINUTE = 60_000
#: Keys of (group, instant) pairs are ``group × GROUP_SPAN_MS + instant`` [int64]: each group's
#: instants live in their own range of 2^42 ms (139 years), and 2^21 groups still fit in int64.
GROUP_SPAN_MS = np.int64(1 << 42)

# --- output tables (SPEC §7) ----------------------------------------------------------------------
INVOICE_LINE_COLUMNS: tuple[str, ...] = (
    "invoice_id",
    "client_id",
    "zone_id",
    "date",
    "start",
    "end",
    "minutes",
    "billable_minutes",
    "energy_kwh",
    "hours_charge",
    "energy_charge",
    "amount",
    "currency",
    "adjusted",
    "original_energy_kwh",
    "status",  # billed / held / released / waived (SPEC §8.4)
)
#: An invoice line's ``status`` (SPEC §8.4): the total counts billed and released lines only.
LINE_STATUSES: tuple[str, ...] = ("billed", "held", "released", "waived")
INVOICE_COLUMNS: tuple[str, ...] = (
    "invoice_id",
    "client_id",
    "period",
    "revision",
    "lines",
    "billable_hours",
    "energy_kwh",
    "total",
    "currency",
    "content_hash",
    "held_total",  # the amount of the lines held for review, not in the total (SPEC §8.4)
)
CLEANING_COLUMNS: tuple[str, ...] = (
    "zone_id",
    "building",
    "floor",
    "date",
    "start",
    "end",
    "minutes",
    "flagged",
    "excess_minutes",
    "wasted_kwh",
    "savings",
    "inferred",
)
ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id",
    "zone_id",
    "kind",
    "severity",
    "detected_at",
    "first_seen",
    "last_seen",
    "score",
    "detail",
)


def normalise_header(name: str) -> str:
    """Header as matched: lower case, without spaces, underscores, dashes and a leading BOM."""
    return re.sub(r"[\s_\-]+", "", str(name).lstrip("\ufeff")).lower()


def canonical_column(name: str) -> str | None:
    """The canonical column a file header stands for, or ``None`` when it is not one of ours."""
    return _ALIASES.get(normalise_header(name))
