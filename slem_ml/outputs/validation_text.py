"""The validation report (SPEC §1) as people read it: plain lines for the CLI, Markdown for the app.

Both take the report as ``summary.json`` spells it (:func:`slem_ml.outputs.summary.report_facts`), so a run
reloaded from its folder reads the same as one just scored.
"""

from __future__ import annotations

from typing import Any

__all__ = ["validation_lines", "validation_markdown"]


def _reasons(facts: dict[str, Any]) -> list[tuple[str, int]]:
    """Quarantine reasons, the most frequent first."""
    return sorted((facts.get("quarantine_reasons") or {}).items(), key=lambda kv: -kv[1])


def validation_lines(facts: dict[str, Any]) -> list[str]:
    """The report as aligned plain-text lines (``slem validate``, ``slem score``)."""
    lines = [
        f"{facts['source']}: {facts['file_format']}, sha256 {facts['input_sha256'][:12]}…",
        *(
            [f"  columns      {', '.join(f'{k}←{v}' for k, v in facts['columns'].items())}"]
            if "columns" in facts
            else []
        ),
        f"  rows in      {facts['rows_in']:>12,}",
        f"  valid        {facts['rows_scored']:>12,}",
        f"  quarantined  {facts['rows_quarantined']:>12,}",
        f"  duplicates   {facts['rows_duplicate']:>12,}",
    ]
    lines += [f"    {count:>8,}  {reason}" for reason, count in _reasons(facts)]
    if facts.get("first_timestamp"):
        lines.append(f"  period       {facts['first_timestamp']} … {facts.get('last_timestamp') or ''}")
    lines.append(f"  zones        {facts.get('zones', 0):>12,}    clients {facts.get('clients_seen', 0)}")
    lines += [f"  note: {note}" for note in facts.get("notes", [])]
    return lines


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
    report += [f"- quarantined {count:,}: {reason}" for reason, count in _reasons(facts)]
    report += [f"- {note}" for note in facts.get("notes", [])]
    return "\n".join(report)
