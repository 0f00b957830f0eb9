"""The manager app's page (Gradio): overview, live, upload, billing, cleaning, maintenance, forecast, models
and reports, wired to the handlers of :mod:`slem_ml.app.ui_handlers` (re-exported here as
:class:`Handlers`). What a refused action shows and who sees which control: :mod:`slem_ml.app.ui_status`;
the alert table's row choice: :mod:`slem_ml.app.ui_alerts`; the Reports tab: :mod:`slem_ml.app.ui_reports`.
Started by ``slem serve`` (:mod:`slem_ml.cli.serve`) or ``python gradio_app.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import gradio as gr
from starlette.routing import Mount

from slem_ml.app import invoicing, server, service
from slem_ml.app.access import may_upload
from slem_ml.app.files import Downloads, files_router, links_html, upload_cache
from slem_ml.app.guard import DEFAULT_SESSION_HOURS, Guard, Sessions, request_user
from slem_ml.app.live import REFRESH_SECONDS
from slem_ml.app.signin import AuditQueue, SignInGate
from slem_ml.app.ui_alerts import CSS, alert_explanation, chosen_alert
from slem_ml.app.ui_handlers import Handlers, decider
from slem_ml.app.ui_reports import reports_tab
from slem_ml.app.ui_status import abilities, attempt, guarded, unchanged
from slem_ml.app.workspace import AppConfig
from slem_ml.storage import open_database

__all__ = ["Handlers", "build_app", "launch"]

HELP = """**How it works.** Upload a month of readings (CSV or Parquet, legacy export or canonical columns) on
the *Upload* tab; slem bills light used outside each client's contracted hours, finds cleaning that ran too
long and checks every zone against its expected power. slem keeps every reading: the other tabs show a month
(the *Month* picker; by default the latest with data) as everything stored for it stands, to everyone
signed in; a user tied to a client sees only that client."""


#: Run when a tab is shown: Plotly sizes a chart drawn in a hidden tab to nothing and redraws it on a window
#: resize only (issue 14 item 6); the tab's content is laid out by the next frame.
REDRAW_JS = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 60); }"


def build_app(config: AppConfig, downloads: Downloads | None = None) -> gr.Blocks:
    """The app's page: one tab per task, all filled from the latest stored run on load. Files are offered
    as links through ``downloads`` (:mod:`slem_ml.app.files`; :func:`launch` serves them)."""
    h = Handlers(config)
    downloads = downloads if downloads is not None else Downloads()

    def offered(request: gr.Request, title: str, *makers: Callable[[str | None], Path]) -> str:
        """Links to files made for the signed-in user; each is made again, and checked, when fetched."""
        user = h.user(request)
        return links_html(
            [downloads.offer(user, lambda make=make: make(user)) for make in makers],  # type: ignore[misc]
            title=title,
        )

    # uploads are kept by Gradio until they are scored (then removed) or for an hour at most
    with gr.Blocks(title="slem — light & energy", delete_cache=(900, 3600)) as app:
        with gr.Row(equal_height=True):
            gr.Markdown("# slem — Smart Light & Energy Management")
            # Gradio's /logout ends every session of the user; the open local mode has no sign-in
            gr.Button("Sign out", link="/logout", size="sm", scale=0, visible=config.open_user is None)
        headline = gr.Markdown("Nothing scored yet: upload readings on the *Upload* tab.")
        period = gr.Dropdown(
            label="Month", choices=[], value=None, info="Overview, Billing, Cleaning, Maintenance"
        )
        page_status = gr.Markdown()  # why the month could not be shown
        with gr.Tabs():
            with gr.Tab("Overview", id="overview") as overview_tab:
                tiles = gr.Markdown()
                heat = gr.Plot(label="Energy by building, floor and zone")
                with gr.Row():
                    profile = gr.Plot(label="Hour × weekday")
                    trend = gr.Plot(label="Trend")
            with gr.Tab("Live", id="live") as live_tab:
                live_status = gr.Markdown("The live state of every zone, refreshed every few seconds.")
                live_floors = gr.Plot(label="Zones by building and floor")
                live_power = gr.Plot(label="Building power today")
                live_overtime = gr.Dataframe(
                    label="Overtime running now (estimated cost so far)", interactive=False, max_height=300
                )
                live_alerts = gr.Dataframe(
                    label="Open alerts, newest first", interactive=False, max_height=300, wrap=True
                )
                live_stale = gr.Dataframe(label="Stale zones (silent)", interactive=False, max_height=300)
            # hidden until the page's load shows it to who may upload (Gradio 6 shows a tab on an update
            # but does not hide one)
            with gr.Tab("Upload", id="upload", visible=False) as upload_tab:
                gr.Markdown(HELP)
                with gr.Row():
                    readings_in = gr.File(label="Readings (CSV or Parquet)", file_types=[".csv", ".parquet"])
                    contracts_in = gr.File(  # required unless `slem serve --contracts` gave the site's
                        label="Contracts (required: the site's contracts.yaml)", file_types=[".yaml", ".yml"],
                        visible=config.contracts is None,
                    )  # fmt: skip
                gr.Markdown(
                    "This server's site configuration (contracts.yaml) is used."
                    if config.contracts is not None
                    else "Upload the site's contracts.yaml with the readings."
                )
                score_button = gr.Button("Score readings", variant="primary")
                upload_status = gr.Markdown()
                changes = gr.Markdown()
                notes = gr.Markdown()
                results = gr.HTML()  # the run's CSVs, as links (slem_ml.app.files)
                uploads = gr.Dataframe(label="Upload history", interactive=False, max_height=300)
            with gr.Tab("Billing", id="billing") as billing_tab:
                invoices = gr.Dataframe(label="Invoices", interactive=False, max_height=300)
                with gr.Row():
                    invoice_pick = gr.Dropdown(label="Invoice", choices=[], value=None)
                    zone_filter = gr.Dropdown(label="Zone", choices=[], value=None)
                    adjusted_only = gr.Checkbox(label="Only spike-adjusted lines")
                with gr.Row():
                    pdf_button = gr.Button("Printable invoice (PDF)")
                    zip_button = gr.Button("Download all invoices (ZIP)")
                    history_button = gr.Button("Revision history")
                billing_status = gr.Markdown()
                pdf_file = gr.HTML()  # a link to the printable invoice
                zip_file = gr.HTML()  # a link to the month's ZIP
                history = gr.Dataframe(
                    label="Revisions of the invoice", interactive=False,
                    headers=["Revision", "Created (UTC)", "Run", "Lines", "Billable [h]", "Total"],
                )  # fmt: skip
                lines = gr.Dataframe(label="Invoice lines", interactive=False, max_height=400)
                with gr.Row():
                    line_pick = gr.Dropdown(label="Line (held lines first)", choices=[], value=None)
                    decision_note = gr.Textbox(label="Why (kept in the audit log)")
                with gr.Row():
                    release_button = gr.Button("Release (bill)")
                    waive_button = gr.Button("Waive (never bill)")
                    hold_button = gr.Button("Hold for review")
                decision_status = gr.Markdown()
                overtime = gr.Plot(label="Overtime by client and zone")
            with gr.Tab("Cleaning", id="cleaning") as cleaning_tab:
                ranking = gr.Dataframe(label="Waste by building and floor", interactive=False)
                with gr.Row():
                    ranking_chart = gr.Plot(label="Waste by building and floor")
                    hours_chart = gr.Plot(label="When cleaning starts")
                flagged = gr.Dataframe(label="Sessions over the limit", interactive=False, max_height=400)
            with gr.Tab("Maintenance", id="maintenance") as maintenance_tab:
                alerts = gr.Dataframe(
                    label="Open alerts (click a row)", interactive=False, max_height=300, wrap=True
                )
                explanation = gr.Markdown(alert_explanation(None, ""), elem_id="alert-explanation")
                with gr.Row():
                    alert_id = gr.Textbox(label="Chosen alert", interactive=False, placeholder="click a row")
                    note = gr.Textbox(label="Note (what was checked or done)")
                with gr.Row():  # shown on load to who may act on alerts (ui_status.abilities)
                    ack_button = gr.Button("Acknowledge", visible=False)
                    resolve_button = gr.Button("Resolve", variant="primary", visible=False)
                maintenance_status = gr.Markdown()
                zone_pick = gr.Dropdown(label="Zone", choices=[], value=None)
                zone_status = gr.Markdown()
                zone_chart = gr.Plot(label="Actual vs expected power")
                zone_alerts = gr.Dataframe(
                    label="Alerts of the zone", interactive=False, wrap=True, headers=["choose a zone above"]
                )
                zone_history = gr.Dataframe(
                    label="Maintenance done and whether it worked", interactive=False,
                    headers=["When", "Action", "Note", "By", "Lit power before [W]", "Lit power after [W]"],
                )  # fmt: skip
            with gr.Tab("Forecast", id="forecast") as forecast_tab:
                target = gr.Dropdown(label="Zone or building", choices=[], value=None)
                forecast_status = gr.Markdown()
                forecast_chart = gr.Plot(label="Next 7 days")
                peaks = gr.Dataframe(
                    label="Peak hours", interactive=False, headers=["Rank", "Hour", "Expected energy [kWh]"]
                )
                occupancy_chart = gr.Plot(label="Expected occupancy, next 7 days")
                occupancy_peaks = gr.Dataframe(
                    label="Peak occupancy hours", interactive=False,
                    headers=["Rank", "Hour", "Expected occupancy [%]"],
                )  # fmt: skip
            with gr.Tab("Models", id="models") as models_tab:
                champion = gr.Markdown()
                runs = gr.Dataframe(label="Training runs (MLflow)", interactive=False)
                retrain_button = gr.Button("Retrain on the latest readings (data scientists)", visible=False)
                retrain_out = gr.Markdown()
                models_status = gr.Markdown()
            reports = reports_tab(config, h.user, downloads)

        board = [
            headline, tiles, heat, profile, trend, invoices, lines, overtime, flagged, ranking,
            ranking_chart, hours_chart, alerts, zone_pick, zone_filter, invoice_pick, target,
            results, notes, period, uploads, changes,
        ]  # fmt: skip

        def show(result: service.Dashboard | None, request: gr.Request) -> list[Any]:
            if result is None:
                empty = gr.update()
                return [
                    gr.update(value="Nothing scored yet: upload readings on the *Upload* tab."),
                    *[empty] * 21,
                ]
            targets = list(result.targets)  # (words, value): "Building HQ" for building:HQ
            return [
                result.headline, result.tiles, result.energy_heatmap, result.profile, result.trend,
                result.invoices, result.lines, result.overtime_chart, result.cleaning,
                result.cleaning_ranking, result.cleaning_chart, result.cleaning_hours, result.alerts,
                gr.Dropdown(choices=result.zones, value=None),
                gr.Dropdown(choices=result.zones, value=None),
                gr.Dropdown(choices=result.invoice_ids, value=None),
                gr.Dropdown(choices=targets, value=None),
                offered(
                    request, "Results (CSV)",
                    *[lambda user, p=p: service.run_file(config, user, p) for p in result.downloads],
                ),
                result.notes,
                gr.Dropdown(choices=list(result.periods), value=result.period or None),
                result.uploads, result.changes,
            ]  # fmt: skip

        def on_load(request: gr.Request) -> list[Any]:
            return show(h.load(request), request)

        def on_upload(
            readings: str | None, contracts: str | None, request: gr.Request, progress: Any = gr.Progress()
        ) -> list[Any]:
            try:
                return show(h.upload(readings, contracts, request, progress), request)
            finally:  # scored or refused, the upload leaves Gradio's cache
                for name in (readings, contracts):
                    if name:
                        Path(name).unlink(missing_ok=True)

        def on_period(month: str | None, request: gr.Request) -> list[Any]:
            return show(h.load(request, month), request)

        def on_invoice(invoice_id: str | None, month: str | None, request: gr.Request) -> Any:
            if not invoice_id:
                return gr.Dropdown(choices=[], value=None)
            return gr.Dropdown(choices=h.line_choices(invoice_id, request, month), value=None)

        def on_invoice_zones(invoice_id: str | None, month: str | None, request: gr.Request) -> Any:
            """The zone filter lists the chosen invoice's zones (every zone without an invoice)."""
            return gr.Dropdown(choices=h.zone_choices(invoice_id, request, month), value=None)

        def on_pdf(invoice_id: str | None, month: str | None, request: gr.Request) -> str:
            return offered(  # the PDF, and every line as CSV (what a long invoice's summary refers to)
                request, "Printable invoice",
                lambda user: invoicing.invoice_file(config, user, invoice_id, period=month),
                lambda user: invoicing.invoice_file(config, user, invoice_id, "lines", month),
            )  # fmt: skip

        def on_zip(month: str | None, request: gr.Request) -> str:
            return offered(
                request, "All printable invoices of the month",
                lambda user: invoicing.invoices_zip(config, user, month),
            )  # fmt: skip

        def on_zone(zone_id: str | None, month: str | None, request: gr.Request) -> list[Any]:
            if not zone_id:
                return [gr.update()] * 4
            detail = h.zone(zone_id, request, month)
            return [detail.chart, detail.alerts, detail.history, detail.status]

        def on_forecast(choice: str | None, request: gr.Request) -> list[Any]:
            if not choice:
                return [gr.update()] * 4
            power = list(h.forecast(choice, request))  # computes the forecast; occupancy reuses it
            return [*power, *service.occupancy_for(config, h.user(request), choice)]

        def on_models(request: gr.Request) -> list[Any]:
            return list(h.models(request))

        def on_retrain(request: gr.Request, progress: Any = gr.Progress()) -> str:
            done, problem = attempt(lambda: h.retrain(request, progress))
            return problem or str(done)

        def on_abilities(request: gr.Request) -> list[Any]:
            """Hide what the user may not do (the server refuses it all the same)."""
            may = abilities(config, h.user(request))
            return [
                gr.Tab(visible=may.upload), gr.Button(visible=may.retrain),
                gr.Button(visible=may.maintain), gr.Button(visible=may.maintain),
            ]  # fmt: skip

        def on_alert(rows: Any, event: gr.SelectData) -> list[str]:
            chosen = chosen_alert(rows, event)
            return [chosen, alert_explanation(rows, chosen)]

        def on_maintained(rows: Any, chosen: str) -> str:
            return alert_explanation(rows, chosen)

        live_parts = [live_status, live_floors, live_power, live_overtime, live_alerts, live_stale]
        live_timer = gr.Timer(REFRESH_SECONDS, active=False)  # ticks only while the Live tab is open

        def on_live(request: gr.Request) -> list[Any]:
            board, problem = attempt(lambda: h.live(request))
            if board is None:  # the status line says why; the last figures and tables stay
                return [problem, *unchanged(5)]
            return [board.status, board.floors, board.power, board.overtime, board.alerts, board.stale]

        def on_live_open(request: gr.Request) -> list[Any]:
            return [*on_live(request), gr.Timer(active=True)]

        # issue 14 item 5: each event's last output is the status line of its panel; a refusal leaves the
        # other outputs as they were (ui_status.guarded) instead of marking them all "Error"
        n = len(board)
        app.load(guarded(on_load, n), outputs=[*board, page_status])
        app.load(guarded(on_models, 2), outputs=[champion, runs, models_status])
        app.load(on_abilities, outputs=[upload_tab, retrain_button, ack_button, resolve_button])
        score_button.click(
            guarded(on_upload, n), inputs=[readings_in, contracts_in], outputs=[*board, upload_status],
            show_progress_on=[upload_status],  # the rest of the page stays usable while it scores
        )  # fmt: skip
        period.input(guarded(on_period, n), inputs=period, outputs=[*board, page_status])  # a choice
        for control in (invoice_pick, zone_filter, adjusted_only):
            control.change(
                guarded(h.lines), inputs=[invoice_pick, zone_filter, adjusted_only, period],
                outputs=[lines, billing_status],
            )  # fmt: skip
        invoice_pick.change(
            guarded(on_invoice), inputs=[invoice_pick, period], outputs=[line_pick, billing_status]
        )
        invoice_pick.change(
            guarded(on_invoice_zones), inputs=[invoice_pick, period], outputs=[zone_filter, billing_status]
        )
        for button, decision in ((release_button, "release"), (waive_button, "waive"), (hold_button, "hold")):
            button.click(
                guarded(decider(h, decision)),
                inputs=[invoice_pick, line_pick, decision_note, period],
                outputs=[lines, decision_status],
            ).then(guarded(on_invoice), inputs=[invoice_pick, period], outputs=[line_pick, decision_status])
        printable = ((pdf_button, on_pdf, pdf_file), (history_button, h.revisions, history))
        for button, fn, out in printable:
            button.click(guarded(fn), inputs=[invoice_pick, period], outputs=[out, billing_status])
        zip_button.click(guarded(on_zip), inputs=period, outputs=[zip_file, billing_status])
        alerts.select(on_alert, inputs=alerts, outputs=[alert_id, explanation])
        for button, act in ((ack_button, h.acknowledge), (resolve_button, h.resolve)):
            button.click(
                guarded(act), inputs=[alert_id, note, period], outputs=[alerts, maintenance_status]
            ).then(on_maintained, inputs=[alerts, alert_id], outputs=explanation)
        zone_pick.change(
            guarded(on_zone, 4), inputs=[zone_pick, period],
            outputs=[zone_chart, zone_alerts, zone_history, zone_status, maintenance_status],
        )  # fmt: skip
        target.change(
            guarded(on_forecast, 4), inputs=target,
            outputs=[forecast_chart, peaks, occupancy_chart, occupancy_peaks, forecast_status],
        )  # fmt: skip
        retrain_button.click(on_retrain, outputs=retrain_out).then(
            guarded(on_models, 2), outputs=[champion, runs, models_status]
        )
        live_tab.select(on_live_open, outputs=[*live_parts, live_timer])
        # a tick is dropped while the last refresh still runs; no spinner every few seconds
        live_timer.tick(on_live, outputs=live_parts, trigger_mode="once", show_progress="hidden")
        elsewhere = [overview_tab, upload_tab, billing_tab, cleaning_tab, maintenance_tab, forecast_tab]
        for tab in [*elsewhere, models_tab, reports]:  # the Live tab left: its timer stops
            tab.select(lambda: gr.Timer(active=False), outputs=live_timer)
            # issue 14 item 6: charts drawn while their tab was hidden are sized again once it shows
            tab.select(None, js=REDRAW_JS)
    return app


def launch(
    config: AppConfig,
    *,
    host: str,
    port: int,
    auth: Callable[[str, str], bool] | None,
    prevent_thread_lock: bool = False,
    tls: server.Tls | None = None,
    session_hours: float = DEFAULT_SESSION_HOURS,
) -> server.Running | None:
    """Serve the app at ``/`` and the HTTP ingest API under ``/api`` on http://HOST:PORT — https:// with
    ``tls`` (:func:`slem_ml.app.server.load_tls`) — until Ctrl-C or SIGTERM; with ``prevent_thread_lock`` in
    the background, returning the running server (``.url``, ``.close()``).

    ``auth(name, password)`` checks a password, or is ``None`` in the open local mode; it runs behind a
    :class:`~slem_ml.app.signin.SignInGate` (throttling, lock-out, audit), sessions end after
    ``session_hours`` [h] (:mod:`slem_ml.app.guard`), files go out through :mod:`slem_ml.app.files`, and
    Gradio's upload cache is a folder of the service's own (owner-only) in ``config.runs_dir``. The API
    signs in with its bearer tokens instead."""
    os.environ["GRADIO_TEMP_DIR"] = str(upload_cache(config.runs_dir))  # read by Gradio as the page is built
    downloads = Downloads()
    blocks = build_app(config, downloads)
    blocks.queue(default_concurrency_limit=4)
    parent = server.api_app(config)  # the API's routes first: the app at "/" would answer every path
    who = _Who(config.open_user)
    parent.include_router(files_router(downloads, who))
    engine = open_database(config.database_url) if auth is not None else None
    audit = AuditQueue(engine) if engine is not None else None
    gate = SignInGate(auth, audit) if auth is not None and audit is not None else None
    app = gr.mount_gradio_app(
        parent,
        blocks,
        path="/",
        server_name=host,
        server_port=port,
        auth=gate.sign_in if gate is not None else None,
        auth_message=(
            "Sign in with your slem account (an admin creates it with: slem users add). After 5 failed "
            "sign-ins within 15 minutes, sign-in for that name or address pauses for 15 minutes or more."
        ),
        max_file_size=f"{int(config.max_upload_mb)}mb",
        footer_links=[],
        css=CSS,
        app_kwargs={"openapi_url": None, "docs_url": None},  # no unauthenticated /openapi.json of the app
    )
    gradio_app: Any = next(route.app for route in app.routes if isinstance(route, Mount))
    who.sessions = Sessions(gradio_app.tokens, hours=session_hours)
    app.add_middleware(
        Guard,
        sessions=who.sessions,
        may_upload=lambda user: may_upload(config, user),
        open_user=config.open_user,
    )

    def on_stop() -> None:  # end the pages' heartbeat streams, which a stopping server would wait for
        gradio_app.stop_event.set()
        if audit is not None:
            audit.close()
        if engine is not None:
            engine.dispose()

    if prevent_thread_lock:
        return server.serve_in_background(app, host=host, port=port, on_stop=on_stop, tls=tls)
    server.serve_forever(app, host=host, port=port, on_stop=on_stop, tls=tls)
    return None


class _Who:
    """Who is signed in, from a request's cookie (the open local mode's user when there is no sign-in);
    its :class:`Sessions` are set once Gradio's app exists."""

    def __init__(self, open_user: str | None) -> None:
        self.open_user = open_user
        self.sessions: Sessions | None = None

    def __call__(self, request: Any) -> str | None:
        if self.open_user is not None:
            return self.open_user
        return request_user(self.sessions, request) if self.sessions is not None else None
