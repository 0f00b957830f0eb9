"""The live stream's tables (SPEC §9): its quarantine, the dates it queued for re-billing, the HTTP API's
tokens, and the small state the live detectors and the Live tab read instead of the readings.

``live_zones`` has one row per zone (its latest reading and the run it is in), ``live_power`` each
building's energy per quarter hour as the stream brings it, ``live_bands`` each zone's expected band per hour
from the champion model. They are written in the same transaction as the readings they follow (bands: once
a day), so the Live tab reads a few thousand rows, never the readings store.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from slem_ml.storage.base import Base

__all__ = ["ApiToken", "LiveBand", "LivePower", "LiveQuarantine", "LiveZone", "RebillQueue"]


class LiveQuarantine(Base):
    """A live reading or message that could not be stored (SPEC §9): where it came from, why, and its first
    200 bytes. A message with several bad readings has a row per reading (``item``: its index)."""

    __tablename__ = "live_quarantine"
    __table_args__ = (Index(None, "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(300))  # "mqtt:<topic>" or "http:<token name>"
    item: Mapped[int | None] = mapped_column(Integer)  # index in the message's array; None: the message
    reason: Mapped[str] = mapped_column(String(500))
    head: Mapped[str] = mapped_column(Text)  # the message's first 200 bytes, as text


class RebillQueue(Base):
    """A (zone, local date) whose live readings changed and whose billing is not recomputed yet (SPEC §9):
    queued in the readings' transaction, removed in the one that recomputes it."""

    __tablename__ = "rebill_queue"

    zone_key: Mapped[int] = mapped_column(ForeignKey("store_zones.id"), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # local day number since 1970-01-01
    queued_at: Mapped[dt.datetime]


class ApiToken(Base):
    """A bearer token for the HTTP ingest API (SPEC §9): only its SHA-256 is kept; ``prefix`` names it in
    lists and logs without revealing it."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class LiveZone(Base):
    """A zone as the live stream last saw it (SPEC §9): its latest reading, the interval it reports at, and
    the lit run outside contracted hours it is in. Only readings later than ``last_ms`` move it."""

    __tablename__ = "live_zones"

    zone_key: Mapped[int] = mapped_column(ForeignKey("store_zones.id"), primary_key=True)
    last_ms: Mapped[int] = mapped_column(BigInteger)  # its latest reading [UTC ms]
    power_w: Mapped[float] = mapped_column(Double)  # [W] of that reading
    client_id: Mapped[str] = mapped_column(String(64))
    lit: Mapped[bool] = mapped_column(Boolean)  # power_w at or above the site's on threshold
    in_contract: Mapped[bool] = mapped_column(Boolean)  # inside its client's widened contract window
    cleaning: Mapped[bool] = mapped_column(Boolean)  # the reading says cleaning staff
    interval_ms: Mapped[int] = mapped_column(BigInteger)  # between its latest two readings [ms]; 0: one
    #: start [UTC ms] of the lit run outside contracted hours (not cleaning) it is in; NULL: not in one
    run_start_ms: Mapped[int | None] = mapped_column(BigInteger)
    run_energy_wh: Mapped[float] = mapped_column(Double)  # [Wh] used in that run so far
    #: first and latest spike [UTC ms] of the spike episode it is in (spikes under an hour apart: one alert)
    spike_first_ms: Mapped[int | None] = mapped_column(BigInteger)
    spike_last_ms: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime]


class LivePower(Base):
    """A building's lighting energy in a quarter hour, summed from the live readings as they arrive."""

    __tablename__ = "live_power"

    building: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the quarter hour's start [UTC ms]
    energy_wh: Mapped[float] = mapped_column(Double)  # [Wh]; mean power [W] = energy_wh × 4


class LiveBand(Base):
    """A zone's expected mean power in an hour and its interval, from the champion forecaster [W]."""

    __tablename__ = "live_bands"
    __table_args__ = (Index(None, "hour_ms"),)

    zone_key: Mapped[int] = mapped_column(ForeignKey("store_zones.id"), primary_key=True)
    hour_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the hour's start [UTC ms]
    expected_w: Mapped[float] = mapped_column(Double)
    lower_w: Mapped[float] = mapped_column(Double)
    upper_w: Mapped[float] = mapped_column(Double)
