"""The validation report (SPEC §1) as people read it: the full report and a summary for the CLI, Markdown
for the app.

All take the report as ``summary.json`` spells it (:func:`slem_ml.outputs.summary.report_facts`), so a run
reloaded from its folder reads the same as one just scored.
"""

from __future__ import annotations

from typing import Any

from slem_ml.io.reader import EXTRA_COLUMNS
from slem_ml.io.sources import parquet_line_note

__all__ = ["validation_lines", "validation_markdown", "validation_summary"]

#: What a Parquet input's quarantine line numbers count: worth saying only when there is a quarantine.
_LINE_NOTES = frozenset(parquet_line_note(folder=folder).text for folder in (False, True))


def _by_count(facts: dict[str, Any]) -> list[tuple[str, int]]:
    """Quarantine reasons, the most frequent first (ties in the order given)."""
    return sorted((facts.get("quarantine_reasons") or {}).items(), key=lambda kv: -kv[1])


def validation_lines(facts: dict[str, Any]) -> list[str]:
    """The whole report as aligned plain-text lines (``slem validate``)."""
    lines = [f"{facts['source']}: {facts['file_format']}, sha256 {facts['input_sha256'][:12]}…"]
    if "columns" in facts:
        lines.append(f"  columns      {', '.join(f'{k}←{v}' for k, v in facts['columns'].items())}")
    lines += [
        f"  rows in      {facts['rows_in']:>12,}",
        f"  valid        {facts['rows_scored']:>12,}",
        f"  quarantined  {facts['rows_quarantined']:>12,}",
        f"  duplicates   {facts['rows_duplicate']:>12,}",
    ]
    lines += [f"    {count:>8,}  {reason}" for reason, count in _by_count(facts)]
    if facts.get("first_timestamp"):
        lines.append(f"  period       {facts['first_timestamp']} … {facts.get('last_timestamp') or ''}")
    lines.append(f"  zones        {facts.get('zones', 0):>12,}    clients {facts.get('clients_seen', 0)}")
    lines += [f"  note: {note}" for note in facts.get("notes", [])]
    return lines


def validation_summary(facts: dict[str, Any], *, reasons: int = 5) -> list[str]:
    """The counts on one line, the ``reasons`` most frequent quarantine reasons and the columns not used
    (``slem score``)."""
    line = (
        f"  rows in {facts['rows_in']:,}  scored {facts['rows_scored']:,}  "
        f"quarantined {facts['rows_quarantined']:,}  duplicates {facts['rows_duplicate']:,}"
    )
    extra = [f"  note: {note}" for note in facts.get("notes", []) if note.startswith(EXTRA_COLUMNS)]
    return [line, *(f"    {count:>8,}  {reason}" for reason, count in _by_count(facts)[:reasons]), *extra]


def validation_markdown(facts: dict[str, Any]) -> str:
    """The report as a Markdown table and list (the app's *Upload* tab)."""
    report = [
        "**Validation report** — every row is scored, quarantined (with its line and a reason; download "
        "`quarantine.csv` below) or counted as a duplicate:",
        "",
        "| rows in | scored | quarantined | duplicates | first reading | last reading | zones | clients |",
        "|---:|---:|---:|---:|---|---|---:|---:|",
        f"| {facts['rows_in']:,} | {facts['rows_scored']:,} | {facts['rows_quarantined']:,} | "
        f"{facts['rows_duplicate']:,} | {facts.get('first_timestamp') or '–'} | "
        f"{facts.get('last_timestamp') or '–'} | {facts.get('zones', 0):,} | "
        f"{facts.get('clients_seen', 0):,} |",
        "",
    ]
    reasons = facts.get("quarantine_reasons") or {}
    report += [f"- quarantined {count:,}: {reason}" for reason, count in reasons.items()]
    quarantined = facts.get("rows_quarantined", 0) > 0
    report += [f"- {n}" for n in facts.get("notes", []) if quarantined or n not in _LINE_NOTES]
    return "\n".join(report)
