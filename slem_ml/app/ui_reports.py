"""The app's Reports tab (SPEC §10, issue 14 item 3): the kept reports, "Generate now", download and view.

Each handler calls one function of :mod:`slem_ml.app.reports` with the signed-in user's name; a refusal
shows in the tab's status line and leaves the rest of the tab as it was (:mod:`slem_ml.app.ui_status`).
The tab is filled when it is opened, not on page load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from slem_ml.app import reports
from slem_ml.app.files import Downloads, links_html
from slem_ml.app.ui_status import attempt, said, unchanged
from slem_ml.app.workspace import AppConfig

__all__ = ["reports_tab"]

_FORMAT_CHOICES = [("PDF", "pdf"), ("Excel (XLSX)", "xlsx"), ("Web page (HTML)", "html")]


def reports_tab(config: AppConfig, who: Callable[[gr.Request], str | None], downloads: Downloads) -> gr.Tab:
    """Build the Reports tab inside the page's ``gr.Tabs`` and wire its events; ``who`` tells the signed-in
    user's name from a request; files go out as links through ``downloads``. Returns the tab."""
    with gr.Tab("Reports", id="reports") as tab:
        status = gr.Markdown()
        with gr.Group(visible=False) as generator:
            with gr.Row():
                period = gr.Dropdown(
                    label="Period", choices=[], value=None,
                    info="the latest 12 months with readings, their quarters, and the weeks of the latest "
                    "3 of them; (to date): not over yet",
                )  # fmt: skip
                scope = gr.Dropdown(label="Scope", choices=[], value=None)
            generate_button = gr.Button("Generate now", variant="primary")
        table = gr.Dataframe(
            label="Kept reports (click a row to choose it)", interactive=False, max_height=300, wrap=True
        )
        chosen = gr.Textbox(label="Chosen report", interactive=False, placeholder="click a row above")
        with gr.Row():
            fmt = gr.Radio(label="Format", choices=_FORMAT_CHOICES, value="pdf")
            download_button = gr.Button("Download")
            view_button = gr.Button("View here")
        download = gr.HTML()  # a link to the report's file (slem_ml.app.files)
        viewer = gr.HTML()

    def on_open(request: gr.Request) -> list[Any]:
        user = who(request)
        listed, problem = attempt(lambda: reports.reports_table(config, user))
        choices, problem2 = attempt(lambda: reports.report_choices(config, user))
        if listed is None or choices is None:
            return [problem or problem2, *unchanged(4)]
        return [
            "",
            listed,
            gr.Dropdown(choices=choices.periods, value=choices.default_period),
            gr.Dropdown(choices=choices.scopes, value=choices.scopes[0][1] if choices.scopes else None),
            gr.Group(visible=choices.may_generate),
        ]

    def on_select(rows: Any, event: gr.SelectData) -> str:
        row = event.row_value
        if row is None and rows is not None:
            row = list(rows.iloc[event.index[0]])
        return str(row[0]) if row else ""

    def on_generate(period_text: str | None, scope_text: str | None, request: gr.Request) -> list[Any]:
        user = who(request)
        made, problem = attempt(lambda: reports.generate_report(config, user, period_text, scope_text))
        if made is None:
            return [problem, *unchanged(2)]
        listed, _ = attempt(lambda: reports.reports_table(config, user))
        return [said(made[1]), listed if listed is not None else gr.update(), str(made[0])]

    def on_download(report_id: str, fmt_text: str, request: gr.Request) -> list[Any]:
        user = who(request)
        link, problem = attempt(
            lambda: downloads.offer(user, lambda: reports.download_report(config, user, report_id, fmt_text))
        )
        if link is None:
            return [problem, gr.update()]
        return [said(f"{link[1].name} is ready below"), links_html([link], title="Report file")]

    def on_view(report_id: str, request: gr.Request) -> list[Any]:
        page, problem = attempt(lambda: reports.view_report(config, who(request), report_id))
        if page is None:
            return [problem, gr.update()]
        return ["", page]

    tab.select(on_open, outputs=[status, table, period, scope, generator])
    table.select(on_select, inputs=table, outputs=chosen)
    generate_button.click(
        on_generate, inputs=[period, scope], outputs=[status, table, chosen], show_progress_on=[status]
    )
    download_button.click(on_download, inputs=[chosen, fmt], outputs=[status, download])
    view_button.click(on_view, inputs=chosen, outputs=[status, viewer])
    return tab
