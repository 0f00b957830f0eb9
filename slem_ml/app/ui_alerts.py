"""The Maintenance tab's alert table for people (issue 14 item 7): an alert is chosen by clicking its row,
its plain-words explanation shown beside the table in full, and tables' headers kept whole words.

The alert tables (:func:`slem_ml.app.service.dashboard`, ``acknowledge``, ``resolve``) hold the alert's id
in the first column and its explanation in the last; the helpers here rely on that order, not on titles.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

__all__ = ["CSS", "alert_explanation", "chosen_alert"]

#: The page's styles: headers break between words, never inside one; an explanation panel that wraps.
CSS = """
.table th, .table th *, th .header-content, th span { word-break: normal !important;
  overflow-wrap: normal !important; hyphens: none !important; }
#alert-explanation { border-left: 4px solid var(--color-accent); padding-left: 12px; }
"""


def chosen_alert(rows: pd.DataFrame | None, event: gr.SelectData) -> str:
    """The id of the alert whose row was clicked (any cell of it); ``""`` when none."""
    row: Any = event.row_value
    if row is None and rows is not None and len(rows) and event.index is not None:
        index = event.index[0] if isinstance(event.index, list | tuple) else event.index
        if 0 <= int(index) < len(rows):
            row = list(rows.iloc[int(index)])
    if not row:
        return ""
    return str(row[0])


def alert_explanation(rows: pd.DataFrame | None, alert_id: str) -> str:
    """The chosen alert in words (Markdown): its explanation in full, then its other cells."""
    if not alert_id or rows is None or rows.empty:
        return "Click an alert's row to see what happened and to act on it."
    found = rows[rows.iloc[:, 0].astype(str) == alert_id]
    if found.empty:
        return f"Alert {alert_id} is no longer open."
    row = found.iloc[0]
    explanation = str(row.iloc[-1]).strip() or "(no explanation stored)"
    facts = " · ".join(
        f"{name}: **{value}**"
        for name, value in list(row.items())[1:-1]
        if str(value).strip() not in ("", "—", "nan", "None")
    )
    return f"#### Alert {alert_id}\n\n{explanation}\n\n{facts}"
