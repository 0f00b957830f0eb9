"""Which client leases a zone (SPEC §9): ``leases:`` in contracts.yaml, for readings that name no client.

```yaml
leases:
  - zone: "HQ-F1-*"        # a zone id, or a glob (* ? [..]) over zone ids
    client: C001
    from: 2025-01-01       # optional: the first local date of the lease
    to: 2025-06-30         # optional: the last local date, inclusive
  - zone: HQ-F2-Z1
    client: C002
```

A live reading (MQTT or HTTP) may leave ``client_id`` out; then the first lease in file order whose zone
pattern matches and whose dates hold the reading's local date gives it (:meth:`Leases.clients_of`). A
reading with a ``client_id`` keeps it. A reading no lease covers is quarantined with that reason.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from slem_ml.errors import ConfigError

__all__ = ["Lease", "Leases", "parse_leases"]

_KEYS = {"zone", "client", "from", "to"}
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Lease:
    zone: str  # a zone id or a glob
    client: str
    first: dt.date | None = None  # inclusive local dates; None: open-ended
    last: dt.date | None = None

    def matches(self, zone_id: str) -> bool:
        return fnmatch.fnmatchcase(zone_id, self.zone)


@dataclass(frozen=True)
class Leases:
    """The site's leases, in file order (the first that applies wins)."""

    leases: tuple[Lease, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.leases)

    def clients_of(self, zone_ids: np.ndarray, local_days: np.ndarray) -> np.ndarray:
        """The leasing client of each (zone id, local day number since 1970-01-01); "" where none applies.

        Patterns are matched once per distinct zone, dates compared as arrays."""
        out = np.full(len(zone_ids), "", dtype=object)
        if not self.leases or not len(zone_ids):
            return out
        zones, codes = np.unique(zone_ids.astype(str), return_inverse=True)
        for lease in reversed(self.leases):  # the first lease in file order is applied last: it wins
            matching = np.array([lease.matches(z) for z in zones], bool)[codes]
            if lease.first is not None:
                matching &= local_days >= (lease.first - _EPOCH).days
            if lease.last is not None:
                matching &= local_days <= (lease.last - _EPOCH).days
            out[matching] = lease.client
        return out


def parse_leases(raw: Any, clients: Collection[str], source: str) -> Leases:
    """The ``leases:`` list, checked entry by entry against the contracts' ``clients``."""
    if raw is None:
        return Leases()
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: leases: expected a list of {{zone, client, from, to}}")
    leases = []
    for i, entry in enumerate(raw):
        key = f"{source}: leases[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}: expected a mapping with zone and client")
        for name in entry:
            if name not in _KEYS:
                raise ConfigError(f"{key}.{name}: unknown key (expected one of {', '.join(sorted(_KEYS))})")
        zone, client = str(entry.get("zone") or "").strip(), str(entry.get("client") or "").strip()
        if not zone:
            raise ConfigError(f"{key}.zone: missing; a zone id or a glob such as HQ-F1-*")
        if not client:
            raise ConfigError(f"{key}.client: missing")
        if client not in clients:
            raise ConfigError(f"{key}.client: {client!r} is not one of the clients")
        first, last = _date(entry.get("from"), f"{key}.from"), _date(entry.get("to"), f"{key}.to")
        if first is not None and last is not None and last < first:
            raise ConfigError(f"{key}: to ({last}) is before from ({first})")
        leases.append(Lease(zone, client, first, last))
    return Leases(tuple(leases))


def _date(value: Any, key: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ConfigError(f"{key}: expected a date such as 2025-01-31, got {value!r}")
