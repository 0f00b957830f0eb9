"""Report schedules and mail settings (SPEC §10): the ``reports:`` and ``smtp:`` blocks of contracts.yaml.

```yaml
reports:
  - every: month            # week | month | quarter
    at: "07:00"             # local time of the site (default 07:00)
    on: 1                   # week: a weekday name (default monday); month, quarter: day 1-28 (default 1)
    scope: site             # site | building:HQ | client:C001 (one of clients:)
    to: [facility@example.com]
    formats: [pdf, xlsx]    # any of pdf, html, xlsx (default pdf, xlsx)
    name: monthly site      # optional; unique (default: "<every>ly <scope>")
smtp:
  host: smtp.example.com
  port: 587                 # default 587
  starttls: true            # default true
  username: slem@example.com
  password_env: SLEM_SMTP_PASSWORD   # the NAME of the environment variable holding the password
  from: slem@example.com
```

A schedule's report is the last complete period before its run time: a weekly report run on Monday is the
ISO week before, a monthly one on the 1st the month before, a quarterly one (run in the first month of a
quarter) the quarter before. The password itself is never in the file: a ``password:`` key is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from slem_ml.errors import ConfigError

__all__ = ["REPORT_FORMATS", "ReportSchedule", "SmtpSettings", "is_address", "parse_reports", "parse_smtp"]

#: The formats a report can be made in.
REPORT_FORMATS: tuple[str, ...] = ("pdf", "html", "xlsx")
_EVERY = ("week", "month", "quarter")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_REPORT_KEYS = {"every", "at", "on", "scope", "to", "formats", "name"}
_SMTP_KEYS = {"host", "port", "starttls", "username", "password_env", "from", "ca_file"}
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class ReportSchedule:
    """One report made on a schedule: its period kind, when it runs (site time), what and to whom."""

    name: str  # unique among the site's schedules; keys the reports it made
    every: str  # "week" | "month" | "quarter"
    at: dt.time  # local time of day it runs
    on: int  # week: weekday 0 = Monday … 6 = Sunday; month, quarter: day of month 1–28
    scope: str  # "site", "building:<name>" or "client:<id>"
    to: tuple[str, ...] = ()  # addresses it is mailed to (none: kept only)
    formats: tuple[str, ...] = ("pdf", "xlsx")

    def when_text(self) -> str:
        """When it runs, as a person says it: ``Mondays 07:00``, ``day 1 of each month 07:00``."""
        at = f"{self.at:%H:%M}"
        if self.every == "week":
            return f"{_WEEKDAYS[self.on].title()}s {at}"
        if self.every == "month":
            return f"day {self.on} of each month {at}"
        return f"day {self.on} of each quarter {at}"


@dataclass(frozen=True)
class SmtpSettings:
    """How reports are mailed. ``password_env`` names the environment variable holding the password."""

    host: str
    sender: str  # the From address (``from:`` in the file)
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # a CA bundle to trust instead of the system's (a private mail server)


def is_address(text: str) -> bool:
    """Whether ``text`` is a plain mail address (``name@example.com``)."""
    return bool(_ADDRESS.fullmatch(text))


def parse_reports(raw: Any, clients: Collection[str], source: str) -> tuple[ReportSchedule, ...]:
    """The ``reports:`` list, checked entry by entry (scopes against the contracts' ``clients``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: reports: expected a list of {{every, at, on, scope, to, formats}}")
    schedules: list[ReportSchedule] = []
    for i, entry in enumerate(raw):
        schedule = _schedule(entry, f"{source}: reports[{i}]", clients)
        if any(s.name == schedule.name for s in schedules):
            raise ConfigError(
                f"{source}: reports[{i}].name: {schedule.name!r} is used by another schedule; "
                "give each a name of its own"
            )
        schedules.append(schedule)
    return tuple(schedules)


def parse_smtp(raw: Any, source: str) -> SmtpSettings | None:
    """The ``smtp:`` block, or None when there is none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: smtp: expected a mapping with host, port, username, password_env, from")
    if "password" in raw:
        raise ConfigError(
            f"{source}: smtp.password: the password is never kept in this file; put it in an environment "
            "variable and name that variable in smtp.password_env (e.g. password_env: SLEM_SMTP_PASSWORD)"
        )
    for name in raw:
        if name not in _SMTP_KEYS:
            raise ConfigError(
                f"{source}: smtp.{name}: unknown key (expected one of {', '.join(sorted(_SMTP_KEYS))})"
            )
    host = raw.get("host")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"{source}: smtp.host: missing; the mail server's name, e.g. smtp.example.com")
    port = raw.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{source}: smtp.port: {port!r} is not a port number (1..65535)")
    starttls = raw.get("starttls", True)
    if not isinstance(starttls, bool):
        raise ConfigError(f"{source}: smtp.starttls: {starttls!r} must be true or false")
    username = raw.get("username")
    if username is not None and (not isinstance(username, str) or not username.strip()):
        raise ConfigError(f"{source}: smtp.username: {username!r} is not a user name")
    if username is not None and not starttls:
        raise ConfigError(
            f"{source}: smtp.starttls: signing in as {username!r} without STARTTLS would send the password "
            "unencrypted; set starttls: true"
        )
    password_env = raw.get("password_env")
    if password_env is not None and (
        not isinstance(password_env, str) or not _ENV_NAME.fullmatch(password_env)
    ):
        raise ConfigError(
            f"{source}: smtp.password_env: {password_env!r} is not the name of an environment variable "
            "(letters, digits and _, e.g. SLEM_SMTP_PASSWORD)"
        )
    if username is not None and password_env is None:
        raise ConfigError(
            f"{source}: smtp.password_env: missing; name the environment variable that holds "
            f"{username}'s password (e.g. SLEM_SMTP_PASSWORD)"
        )
    sender = raw.get("from")
    if not isinstance(sender, str) or not is_address(sender.strip()):
        raise ConfigError(f"{source}: smtp.from: {sender!r} is not a mail address (name@example.com)")
    ca_file = raw.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file.strip()):
        raise ConfigError(f"{source}: smtp.ca_file: {ca_file!r} is not a file name")
    return SmtpSettings(
        host=host.strip(),
        sender=sender.strip(),
        port=port,
        starttls=starttls,
        username=None if username is None else username.strip(),
        password_env=password_env,
        ca_file=ca_file,
    )


def _schedule(entry: Any, key: str, clients: Collection[str]) -> ReportSchedule:
    if not isinstance(entry, dict):
        raise ConfigError(f"{key}: expected a mapping with every, scope and to")
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean true
    entry = {("on" if name is True else name): value for name, value in entry.items()}
    for name in entry:
        if name not in _REPORT_KEYS:
            raise ConfigError(
                f"{key}.{name}: unknown key (expected one of {', '.join(sorted(_REPORT_KEYS))})"
            )
    every = entry.get("every")
    if every not in _EVERY:
        raise ConfigError(f"{key}.every: {every!r} is not one of week, month, quarter")
    at = _time(entry.get("at", "07:00"), f"{key}.at")
    on = _on(entry.get("on"), every, f"{key}.on")
    scope = _scope(entry.get("scope", "site"), f"{key}.scope", clients)
    to = _list(entry.get("to", []), f"{key}.to")
    for address in to:
        if not is_address(address):
            raise ConfigError(f"{key}.to: {address!r} is not a mail address (name@example.com)")
    formats = _list(entry.get("formats", ["pdf", "xlsx"]), f"{key}.formats")
    if not formats:
        raise ConfigError(f"{key}.formats: empty; list at least one of {', '.join(REPORT_FORMATS)}")
    for fmt in formats:
        if fmt not in REPORT_FORMATS:
            raise ConfigError(f"{key}.formats: {fmt!r} is not one of {', '.join(REPORT_FORMATS)}")
    name = entry.get("name", f"{every}ly {scope}")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ConfigError(f"{key}.name: {name!r} is not a name (1 to 100 characters)")
    return ReportSchedule(
        name=name.strip(),
        every=every,
        at=at,
        on=on,
        scope=scope,
        to=tuple(dict.fromkeys(to)),
        formats=tuple(dict.fromkeys(formats)),
    )


def _time(value: Any, key: str) -> dt.time:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 07:00 as the sexagesimal number 420 (minutes)
        value = f"{value // 60}:{value % 60:02d}"
    match = _TIME.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ConfigError(f'{key}: {value!r} is not a time of day like "07:00" (00:00..23:59)')
    return dt.time(int(match.group(1)), int(match.group(2)))


def _on(value: Any, every: str, key: str) -> int:
    if every == "week":
        if value is None:
            return 0
        text = str(value).strip().lower()
        for index, day in enumerate(_WEEKDAYS):
            if text in (day, day[:3]):
                return index
        raise ConfigError(f"{key}: {value!r} is not a weekday (monday..sunday)")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 28:
        raise ConfigError(f"{key}: {value!r} is not a day of the month from 1 to 28 (every month has it)")
    return value


def _scope(value: Any, key: str, clients: Collection[str]) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    if text == "site":
        return text
    kind, _, name = text.partition(":")
    if kind == "building" and name.strip():
        return f"building:{name.strip()}"
    if kind == "client" and name.strip():
        if name.strip() not in clients:
            raise ConfigError(f"{key}: client {name.strip()!r} is not one of the clients")
        return f"client:{name.strip()}"
    raise ConfigError(f"{key}: {value!r} is not a scope (site, building:<name> or client:<id>)")


def _list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list, e.g. [a, b]")
    return [v.strip() for v in value]
