"""The readings store's integer keys of zone and client ids (``store_zones``, ``store_clients``): looked up,
and added for names not stored yet."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, Table, insert, select

from slem_ml.storage.tables import StoreClient, StoreZone

__all__ = ["client_keys", "names_of", "zone_keys"]

_MAX_CLIENT_KEY = np.iinfo(np.int16).max


def zone_keys(connection: Connection, places: dict[str, tuple[str, str]]) -> dict[str, int]:
    """The store key of each zone id, adding the zones not stored yet with their (building, floor)."""
    table = cast(Table, StoreZone.__table__)
    known = _lookup(connection, table, table.c.zone_id, list(places))
    missing = [z for z in places if z not in known]
    if missing:
        connection.execute(
            insert(table),
            [{"zone_id": z, "building": places[z][0][:64], "floor": places[z][1][:32]} for z in missing],
        )
        known.update(_lookup(connection, table, table.c.zone_id, missing))
    return known


def client_keys(connection: Connection, client_ids: list[str]) -> dict[str, int]:
    table = cast(Table, StoreClient.__table__)
    known = _lookup(connection, table, table.c.client_id, client_ids)
    missing = [c for c in client_ids if c not in known]
    if missing:
        connection.execute(insert(table), [{"client_id": c} for c in missing])
        known.update(_lookup(connection, table, table.c.client_id, missing))
    if known and max(known.values()) > _MAX_CLIENT_KEY:
        raise ValueError(f"the readings store holds at most {_MAX_CLIENT_KEY} clients")
    return known


def _lookup(connection: Connection, table: Table, column: Any, names: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for at in range(0, len(names), 900):
        chunk = names[at : at + 900]
        out.update(
            {
                name: key
                for key, name in connection.execute(select(table.c.id, column).where(column.in_(chunk)))
            }
        )
    return out


def names_of(connection: Connection, model: type[Any], column: str, keys: np.ndarray) -> list[str]:
    table = cast(Table, model.__table__)
    wanted = np.unique(keys).tolist()
    by_key: dict[int, str] = {}
    for at in range(0, len(wanted), 900):
        chunk = wanted[at : at + 900]
        query = select(table.c.id, table.c[column]).where(table.c.id.in_(chunk))
        by_key.update({key: name for key, name in connection.execute(query)})
    return [by_key[k] for k in keys.tolist()]
