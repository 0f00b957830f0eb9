"""slem_ml.outputs.validation_text: the validation report as the CLI and the app show it (SPEC §1)."""

from __future__ import annotations

from slem_ml.io.sources import parquet_line_note
from slem_ml.outputs.validation_text import validation_lines, validation_markdown, validation_summary

LINE_NOTE = parquet_line_note(folder=True).text


def facts(quarantined: int, reasons: dict[str, int]) -> dict:
    return {
        "source": "readings",
        "input_sha256": "ab" * 32,
        "file_format": "parquet",
        "rows_in": 1000 + quarantined,
        "rows_scored": 1000,
        "rows_quarantined": quarantined,
        "rows_duplicate": 0,
        "quarantine_reasons": reasons,
        "notes": [LINE_NOTE, "decimal commas read as decimal points"],
        "first_timestamp": "2025-02-01T00:00:00+01:00",
        "last_timestamp": "2025-02-28T23:55:00+01:00",
        "zones": 40,
        "clients_seen": 6,
    }


def test_the_app_says_what_line_numbers_count_only_when_there_is_a_quarantine() -> None:
    clean = validation_markdown(facts(0, {}))
    assert LINE_NOTE not in clean and "- decimal commas read as decimal points" in clean
    assert (
        "| 1,000 | 1,000 | 0 | 0 | 2025-02-01T00:00:00+01:00 | 2025-02-28T23:55:00+01:00 | 40 | 6 |" in clean
    )
    quarantined = validation_markdown(facts(3, {"b reason": 1, "a reason": 2}))
    assert f"- {LINE_NOTE}" in quarantined
    # reasons in the order summary.json keeps them
    assert quarantined.index("quarantined 1: b reason") < quarantined.index("quarantined 2: a reason")


def test_the_cli_summary_has_the_counts_on_one_line_and_the_five_most_frequent_reasons() -> None:
    reasons = {f"reason {n}": n for n in range(1, 8)}
    lines = validation_summary(facts(28, reasons))
    assert lines[0] == "  rows in 1,028  scored 1,000  quarantined 28  duplicates 0"
    assert [line.split()[-1] for line in lines[1:]] == ["7", "6", "5", "4", "3"]


def test_the_full_report_names_the_columns_found_and_every_note() -> None:
    lines = validation_lines(facts(2, {"negative power_w": 2}) | {"columns": {"timestamp": "Timestamp"}})
    assert lines[0] == f"readings: parquet, sha256 {'ab' * 6}…"
    assert lines[1] == "  columns      timestamp←Timestamp"
    assert "           2  negative power_w" in lines
    assert lines[-2:] == [f"  note: {LINE_NOTE}", "  note: decimal commas read as decimal points"]
