"""Column types that behave the same on SQLite and PostgreSQL: exact decimals and UTC instants.

* :class:`ExactDecimal` is ``NUMERIC(p, s)`` on PostgreSQL and fixed-point text (``"1234.50"``) on SQLite,
  whose ``NUMERIC`` affinity would silently turn the value into a float. Binding a float, or a value with
  more decimal places than the column keeps, raises instead of rounding: money is never approximate.
* :class:`UTCDateTime` stores an instant: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, naive UTC text on
  SQLite. It refuses naive datetimes and always returns tz-aware UTC, whichever backend.

The migrations spell the same storage out with plain SQLAlchemy types
(``Numeric(p, s).with_variant(String(p + 2), "sqlite")``) so that they never depend on this module.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["ExactDecimal", "UTCDateTime"]


class ExactDecimal(TypeDecorator[Decimal]):
    """``Decimal`` with ``precision`` digits, ``scale`` of them after the point, stored without loss."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = to_exact_decimal(value, self.precision, self.scale)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(self._quantum)

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return self


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A tz-aware instant, returned as UTC; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        utc = to_utc(value)
        # SQLite's DATETIME keeps no offset: store the UTC wall time.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def to_exact_decimal(value: Any, precision: int, scale: int) -> Decimal:
    """``value`` as a ``Decimal`` with exactly ``scale`` places; raises rather than round or overflow."""
    if type(value) is Decimal:  # the usual case: already at the right scale, nothing to round
        shape = value.as_tuple()
        if shape.exponent == -scale and len(shape.digits) <= precision:
            return value
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    exact = number.quantize(Decimal(1).scaleb(-scale))
    if exact != number:
        raise ValueError(f"{value!r} has more than {scale} decimal places")
    if len(exact.as_tuple().digits) > precision and exact != 0:
        raise ValueError(f"{value!r} has more than {precision} digits")
    return exact


def to_utc(value: dt.datetime) -> dt.datetime:
    """An aware ``datetime`` (``pd.Timestamp`` too) converted to a plain UTC ``datetime``."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value!r} is a naive datetime; slem stores only tz-aware instants")
    plain = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return plain.astimezone(dt.UTC)
