"""The invoice header (SPEC §8): who bills, and the tax on the invoice (``supplier:`` in contracts.yaml).

```yaml
supplier:
  name: Facility Services GmbH
  address: "Hauptstraße 1, 10115 Berlin"   # one line; "\n" for more
  vat_id: DE123456789
  payment_terms_days: 30
  tax_rate: 0.19                            # a fraction: 0.19 is 19 %
```

Every key is optional. With a ``tax_rate`` an invoice shows its net (the total of SPEC §3.7), the tax
rounded half up to the cent once per invoice, and the gross (:func:`tax_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from slem_ml.errors import ConfigError

__all__ = ["SupplierInfo", "parse_supplier", "tax_of"]

_KEYS = {"name", "address", "vat_id", "payment_terms_days", "tax_rate"}
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class SupplierInfo:
    """The invoice header: who bills, their terms and the tax rate (a fraction, None: no tax shown)."""

    name: str = ""
    address: str = ""
    vat_id: str = ""
    payment_terms_days: int | None = None  # [days]
    tax_rate: Decimal | None = None  # 0.19 = 19 %


def tax_of(net: Decimal, rate: Decimal) -> Decimal:
    """The tax on ``net`` [currency] at ``rate`` (a fraction), rounded half up to the cent."""
    return (net * rate).quantize(_CENT, ROUND_HALF_UP)


def parse_supplier(raw: Any, source: str) -> SupplierInfo | None:
    """The ``supplier:`` block, checked key by key; ``None`` when there is none."""
    if raw is None:
        return None

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{source}: supplier{'.' + key if key else ''}: {message}")

    if not isinstance(raw, dict):
        raise fail("", f"expected a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in _KEYS:
            raise fail(str(key), f"unknown key (expected one of {', '.join(sorted(_KEYS))})")
    texts = {}
    for key in ("name", "address", "vat_id"):
        value = raw.get(key, "")
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise fail(key, f"{value!r} is not text")
        texts[key] = str(value).strip()[:200]
    days = raw.get("payment_terms_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 365):
        raise fail("payment_terms_days", f"{days!r} must be a whole number of days, 0..365")
    rate = raw.get("tax_rate")
    tax_rate = None
    if rate is not None:
        try:
            tax_rate = Decimal(str(rate).strip())
        except InvalidOperation:
            raise fail("tax_rate", f"{rate!r} is not a number") from None
        if isinstance(rate, bool) or not tax_rate.is_finite() or not 0 <= tax_rate < 1:
            raise fail("tax_rate", f"{rate!r} must be a fraction from 0 to below 1 (0.19 for 19 %)")
    return SupplierInfo(texts["name"], texts["address"], texts["vat_id"], days, tax_rate)
