"""The declarative base every table of :mod:`slem_ml.storage.tables` and :mod:`slem_ml.storage.live_tables`
derives from, and the column types they share (conventions: :mod:`slem_ml.storage.tables`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, MetaData
from sqlalchemy.orm import DeclarativeBase

from slem_ml.storage.types import ExactDecimal, UTCDateTime

__all__ = ["MONEY", "NAMING_CONVENTION", "QUANTITY", "Base"]

#: Deterministic constraint names, so that later migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MONEY = ExactDecimal(14, 2)  # [currency]
QUANTITY = ExactDecimal(18, 6)  # [kWh] or [h]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }
