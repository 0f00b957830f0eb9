"""What the reader returns (SPEC §1): validated readings, their quarantine and the validation report.

Only the reader makes :class:`Readings` (:func:`slem_ml.io.reader.read_readings`,
:func:`~slem_ml.io.reader.validate_frame`, and :func:`~slem_ml.io.reader.validate_parsed` for the batches of
:mod:`slem_ml.run.batches`), so nothing downstream sees unchecked input. :class:`Note` is how every layer
tells a user something about a run: a kind a program can test and a text a person reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Note", "NoteKind", "Readings", "ValidationReport", "note_texts"]


class NoteKind:
    """The kinds of :class:`Note` (plain strings, so they survive JSON and pickling unchanged)."""

    INPUT = "input"  # how the file was read: delimiter, encoding, decimal commas, missing optional column
    LINE_NUMBERS = "line_numbers"  # what the quarantine's ``line`` column counts (Parquet inputs)
    MODELS = "models"  # which models scored the run, or why none did
    UNSEEN_ZONES = "unseen_zones"  # zones the models never saw
    CLEANING = "cleaning"  # how cleaning was told apart from overtime
    EXTRA_COLUMNS = "extra_columns"  # columns of the input that are not slem's: listed, not used


@dataclass(frozen=True)
class Note:
    """Something a user should know about a run. Programs test :attr:`kind`; people read :attr:`text`."""

    kind: str  # one of :class:`NoteKind`
    text: str

    def __str__(self) -> str:
        return self.text


def note_texts(notes: tuple[Note, ...]) -> list[str]:
    """The texts of ``notes`` in order (what ``summary.json`` and the CLI show)."""
    return [note.text for note in notes]


@dataclass(frozen=True)
class ValidationReport:
    """What the reader found (SPEC §1). ``rows_in == rows_valid + rows_quarantined + rows_duplicate``."""

    source: str  # file name as given
    input_sha256: str  # of the file's bytes ("" for an in-memory frame)
    file_format: str  # "csv" | "parquet" | "frame"
    columns: dict[str, str]  # canonical name -> header found in the file
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    rows_duplicate: int
    reasons: dict[str, int]  # quarantine reason -> count
    notes: tuple[Note, ...] = ()  # things a user should know (delimiter sniffed, extra columns, ...)
    first_timestamp: pd.Timestamp | None = None  # UTC
    last_timestamp: pd.Timestamp | None = None  # UTC
    zones: int = 0
    clients: int = 0
    #: client id -> rows quarantined because the contracts do not know that client
    unknown_clients: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Readings:
    """Validated readings: only the reader makes these, so scoring never sees unchecked input.

    ``frame`` is sorted by (zone_id, timestamp, line) and has the canonical columns with ``timestamp``
    tz-aware UTC [ms resolution], ``power_w`` float [W], ``cleaning_staff`` bool (all False with
    ``has_cleaning_flag`` False when the input had no such column), ``building``/``floor``/``zone`` filled.
    """

    frame: pd.DataFrame
    quarantine: pd.DataFrame
    report: ValidationReport
    has_cleaning_flag: bool
