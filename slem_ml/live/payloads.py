"""What a live message says (SPEC §9): readings, or the reason it is quarantined.

Payloads, on any topic under ``slem/readings``:

* a JSON object or a JSON array of objects with the SPEC §1 columns (``timestamp``, ``zone_id``,
  ``power_w``, optional ``client_id`` and ``cleaning_staff``);
* on ``slem/readings/<zone_id>``: a bare number (watts) or ``{"power_w": …}``, stamped with the time it
  was received; an object there may leave ``zone_id`` out.

:func:`parse_message` turns one message into rows (plain dicts of the §1 columns, not validated yet) or
problems; validation of the values is the readers' (:func:`slem_ml.io.reader.validate_parsed`), as for a
file. Nothing here touches a database or the network.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COLUMNS",
    "MAX_MESSAGE_BYTES",
    "TOPIC_ROOT",
    "Message",
    "Parsed",
    "head_of",
    "parse_message",
    "zone_of_topic",
]

#: A message over this size [bytes] is quarantined unread (SPEC §9: a 1 MB message is refused).
MAX_MESSAGE_BYTES = 512 * 1024
#: The readings published under this topic root; ``<root>/<zone_id>`` names the zone.
TOPIC_ROOT = "slem/readings"
_HEAD = 200  # bytes of a bad message kept in the quarantine
COLUMNS = ("timestamp", "zone_id", "power_w", "client_id", "cleaning_staff")


@dataclass(frozen=True)
class Message:
    """One message as it arrived: where, what and when (``received`` is tz-aware UTC)."""

    topic: str
    payload: bytes
    received: dt.datetime


@dataclass
class Parsed:
    """The rows of a message, its problems (``(index in the message or None, reason)``) and its first
    bytes as text, for the quarantine."""

    head: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    items: list[int | None] = field(default_factory=list)  # each row's index in the message's array
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    def add(self, row: dict[str, Any], item: int | None) -> None:
        self.rows.append(row)
        self.items.append(item)


def head_of(message: Message) -> str:
    """The first bytes of a message as text, as the quarantine keeps them."""
    return message.payload[:_HEAD].decode("utf-8", errors="replace")


def zone_of_topic(topic: str) -> str | None:
    """The zone id of ``slem/readings/<zone_id>`` (or any ``…/readings/<zone_id>``); None for the root."""
    parts = topic.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == TOPIC_ROOT.split("/")[-1] and parts[-1]:
        return parts[-1]
    return None


def parse_message(message: Message) -> Parsed:
    """The rows of ``message`` in SPEC §1 columns (strings and numbers as sent), or why not."""
    parsed = Parsed(head=head_of(message))
    if len(message.payload) > MAX_MESSAGE_BYTES:
        parsed.problems.append((None, f"message of {len(message.payload):,} bytes, over the limit of "
                                f"{MAX_MESSAGE_BYTES:,}: send readings in smaller messages"))  # fmt: skip
        return parsed
    try:
        body = json.loads(message.payload)
    except (UnicodeDecodeError, ValueError):
        parsed.problems.append((None, "not JSON (expected an object, an array of objects or a number)"))
        return parsed
    zone = zone_of_topic(message.topic)
    stamp = message.received.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    if isinstance(body, bool) or body is None or isinstance(body, str):
        parsed.problems.append((None, f"a JSON {type(body).__name__} is not a reading"))
    elif isinstance(body, int | float):
        if zone is None:
            parsed.problems.append(
                (None, "a bare number needs the zone in the topic: slem/readings/<zone_id>")
            )
        elif not math.isfinite(body):
            parsed.problems.append((None, "power_w is not a finite number"))
        else:
            parsed.add({"timestamp": stamp, "zone_id": zone, "power_w": body}, None)
    elif isinstance(body, dict):
        _add(parsed, None, body, zone, stamp)
    elif isinstance(body, list):
        if not body:
            parsed.problems.append((None, "an empty array: no readings"))
        for i, item in enumerate(body):
            _add(parsed, i, item, zone, stamp)
    return parsed


def _add(parsed: Parsed, index: int | None, item: Any, zone: str | None, stamp: str) -> None:
    if not isinstance(item, dict):
        parsed.problems.append((index, f"a JSON {type(item).__name__} is not a reading object"))
        return
    unknown = sorted(str(k) for k in item if k not in COLUMNS)
    if unknown:
        parsed.problems.append((index, f"unknown field {unknown[0]!r} (expected {', '.join(COLUMNS)})"))
        return
    row = dict(item)
    if "zone_id" not in row:
        if zone is None:
            parsed.problems.append((index, "missing zone_id (or publish on slem/readings/<zone_id>)"))
            return
        row["zone_id"] = zone
    elif zone is not None and str(row["zone_id"]) != zone:
        parsed.problems.append((index, f"zone_id {row['zone_id']!r} differs from the topic's {zone!r}"))
        return
    if "timestamp" not in row:
        if zone is None:
            parsed.problems.append((index, "missing timestamp"))
            return
        row["timestamp"] = stamp  # a reading on its zone's topic is stamped on arrival
    for name in ("timestamp", "zone_id", "client_id"):
        if name in row and not isinstance(row[name], str):
            parsed.problems.append((index, f"{name} must be a text, got {_json_type(row[name])}"))
            return
    power = row.get("power_w")
    if isinstance(power, bool) or not isinstance(power, int | float | str):
        parsed.problems.append((index, f"power_w must be a number, got {_json_type(power)}"))
        return
    flag = row.get("cleaning_staff")
    if flag is not None and not isinstance(flag, bool | str | int):
        parsed.problems.append(
            (index, f"cleaning_staff must be yes/no or true/false, got {_json_type(flag)}")
        )
        return
    parsed.add(row, index)


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "true/false", int: "a number", float: "a number", str: "a text"}
    return names.get(type(value), "a list" if isinstance(value, list) else "an object")
