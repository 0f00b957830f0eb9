"""The manager app's page and handlers (Gradio): upload, overview, billing, cleaning, maintenance, forecast.

Every handler is a thin adapter: it calls exactly one function of :mod:`slem_ml.app.service` (the Billing
tab's: :mod:`slem_ml.app.invoicing`, the Live tab's: :mod:`slem_ml.app.live`) with the
signed-in user's name and turns a :class:`~slem_ml.errors.SlemError` into a message on screen. Started by
``slem serve`` (:mod:`slem_ml.cli.serve`) or ``python gradio_app.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import gradio as gr
from starlette.routing import Mount

from slem_ml.app import invoicing, server, service
from slem_ml.app.live import REFRESH_SECONDS, LiveBoard, live_board
from slem_ml.app.workspace import AppConfig
from slem_ml.errors import SlemError

__all__ = ["Handlers", "build_app", "launch"]

HELP = """**How it works.** Upload a month of readings (CSV or Parquet, legacy export or canonical columns) on
the *Upload* tab; slem bills light used outside each client's contracted hours, finds cleaning that ran too
long and checks every zone against its expected power. slem keeps every reading: the other tabs show a month
(the *Month* picker; by default the latest with data) as everything stored for it stands, to everyone
signed in; a user tied to a client sees only that client."""


def _username(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def _shown(call: Callable[[], Any]) -> Any:
    """Run one library call; a problem the user can fix becomes a message, not a traceback."""
    try:
        return call()
    except SlemError as exc:
        raise gr.Error(str(exc)) from None


class Handlers:
    """The app's event handlers, bound to one :class:`AppConfig` (tests call them directly)."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config

    def user(self, request: gr.Request) -> str | None:
        """Who is signed in (``None`` in the open local mode of ``slem serve`` without users)."""
        return _username(request) or self.config.open_user

    def load(self, request: gr.Request, period: str | None = None) -> service.Dashboard | None:
        return _shown(lambda: service.dashboard(self.config, self.user(request), period))

    def upload(
        self, readings: str | None, contracts: str | None, request: gr.Request, progress: Any = None
    ) -> service.Dashboard:
        def report(stage: str, fraction: float) -> None:
            if progress is not None:
                progress(fraction, desc=stage)

        return _shown(lambda: service.upload(self.config, self.user(request), readings, contracts, report))

    def lines(
        self,
        invoice_id: str | None,
        zone_id: str | None,
        adjusted: bool,
        request: gr.Request,
        period: str | None = None,
    ) -> Any:
        return _shown(
            lambda: invoicing.billing_lines(
                self.config, self.user(request), invoice_id, zone_id, adjusted, period
            )
        )

    def line_choices(self, invoice_id: str | None, request: gr.Request, period: str | None = None) -> Any:
        return _shown(lambda: invoicing.line_choices(self.config, self.user(request), invoice_id, period))

    def decide(
        self,
        decision: str,
        invoice_id: str | None,
        line: str | None,
        note: str,
        request: gr.Request,
        period: str | None = None,
    ) -> Any:
        return _shown(
            lambda: invoicing.decide(
                self.config, self.user(request), invoice_id, line, decision, note, period
            )
        )

    def revisions(self, invoice_id: str | None, request: gr.Request, period: str | None = None) -> Any:
        return _shown(
            lambda: invoicing.invoice_revisions(self.config, self.user(request), invoice_id, period)
        )

    def invoice_pdf(self, invoice_id: str | None, request: gr.Request, period: str | None = None) -> str:
        return str(
            _shown(lambda: invoicing.invoice_file(self.config, self.user(request), invoice_id, period=period))
        )

    def zone(self, zone_id: str | None, request: gr.Request, period: str | None = None) -> service.ZoneDetail:
        return _shown(lambda: service.zone_detail(self.config, self.user(request), zone_id, period))

    def acknowledge(
        self, alert_id: str | None, note: str, request: gr.Request, period: str | None = None
    ) -> Any:
        return _shown(lambda: service.acknowledge(self.config, self.user(request), alert_id, note, period))

    def resolve(self, alert_id: str | None, note: str, request: gr.Request, period: str | None = None) -> Any:
        return _shown(lambda: service.resolve(self.config, self.user(request), alert_id, note, period))

    def live(self, request: gr.Request) -> LiveBoard:
        return _shown(lambda: live_board(self.config, self.user(request)))

    def forecast(self, target: str | None, request: gr.Request) -> Any:
        return _shown(lambda: service.forecast_for(self.config, self.user(request), target))

    def models(self, request: gr.Request) -> Any:
        return _shown(lambda: service.models_overview(self.config, self.user(request)))

    def retrain(self, request: gr.Request, progress: Any = None) -> str:
        def report(stage: str, fraction: float) -> None:
            if progress is not None:
                progress(fraction, desc=stage)

        return str(_shown(lambda: service.retrain(self.config, self.user(request), report)))


def _decider(h: Handlers, decision: str) -> Callable[..., Any]:
    """A click handler for one decision button (Gradio injects the request by its annotation)."""

    def decide(
        invoice_id: str | None, line: str | None, note: str, period: str | None, request: gr.Request
    ) -> Any:
        return h.decide(decision, invoice_id, line, note, request, period)

    return decide


def build_app(config: AppConfig) -> gr.Blocks:
    """The app's page: one tab per task, all filled from the latest stored run on load."""
    h = Handlers(config)
    with gr.Blocks(title="slem — light & energy") as app:
        gr.Markdown("# slem — Smart Light & Energy Management")
        headline = gr.Markdown("Nothing scored yet: upload readings on the *Upload* tab.")
        period = gr.Dropdown(
            label="Month", choices=[], value=None, info="Overview, Billing, Cleaning, Maintenance"
        )
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
            with gr.Tab("Upload", id="upload") as upload_tab:
                gr.Markdown(HELP)
                with gr.Row():
                    readings_in = gr.File(label="Readings (CSV or Parquet)", file_types=[".csv", ".parquet"])
                    contracts_in = gr.File(
                        label="Contracts (optional: the site's contracts.yaml)", file_types=[".yaml", ".yml"]
                    )
                score_button = gr.Button("Score readings", variant="primary")
                changes = gr.Markdown()
                notes = gr.Markdown()
                downloads = gr.File(label="Results (CSV)", file_count="multiple", interactive=False)
                uploads = gr.Dataframe(label="Upload history", interactive=False, max_height=300)
            with gr.Tab("Billing", id="billing") as billing_tab:
                invoices = gr.Dataframe(label="Invoices", interactive=False, max_height=300)
                with gr.Row():
                    invoice_pick = gr.Dropdown(label="Invoice", choices=[], value=None)
                    zone_filter = gr.Dropdown(label="Zone", choices=[], value=None)
                    adjusted_only = gr.Checkbox(label="Only spike-adjusted lines")
                with gr.Row():
                    pdf_button = gr.Button("Printable invoice (PDF)")
                    history_button = gr.Button("Revision history")
                pdf_file = gr.File(label="Printable invoice", interactive=False)
                history = gr.Dataframe(
                    label="Revisions of the invoice", interactive=False,
                    headers=["revision", "created (UTC)", "run", "lines", "billable_hours", "total"],
                )  # fmt: skip
                lines = gr.Dataframe(label="Invoice lines", interactive=False, max_height=400)
                with gr.Row():
                    line_pick = gr.Dropdown(label="Line (held lines first)", choices=[], value=None)
                    decision_note = gr.Textbox(label="Why (kept in the audit log)")
                with gr.Row():
                    release_button = gr.Button("Release (bill)")
                    waive_button = gr.Button("Waive (never bill)")
                    hold_button = gr.Button("Hold for review")
                overtime = gr.Plot(label="Overtime by client and zone")
            with gr.Tab("Cleaning", id="cleaning") as cleaning_tab:
                ranking = gr.Dataframe(label="Waste by building and floor", interactive=False)
                with gr.Row():
                    ranking_chart = gr.Plot(label="Waste by building and floor")
                    hours_chart = gr.Plot(label="When cleaning starts")
                flagged = gr.Dataframe(label="Sessions over the limit", interactive=False, max_height=400)
            with gr.Tab("Maintenance", id="maintenance") as maintenance_tab:
                alerts = gr.Dataframe(label="Open alerts", interactive=False, max_height=300, wrap=True)
                with gr.Row():
                    alert_id = gr.Textbox(label="Alert id (copy from the table)")
                    note = gr.Textbox(label="Note (what was checked or done)")
                with gr.Row():
                    ack_button = gr.Button("Acknowledge")
                    resolve_button = gr.Button("Resolve", variant="primary")
                zone_pick = gr.Dropdown(label="Zone", choices=[], value=None)
                zone_status = gr.Markdown()
                zone_chart = gr.Plot(label="Actual vs expected power")
                zone_alerts = gr.Dataframe(
                    label="Alerts of the zone", interactive=False, wrap=True, headers=["choose a zone above"]
                )
                zone_history = gr.Dataframe(
                    label="Maintenance done and whether it worked", interactive=False,
                    headers=["at", "action", "note", "user_name", "before_w", "after_w", "verdict"],
                )  # fmt: skip
            with gr.Tab("Forecast", id="forecast") as forecast_tab:
                target = gr.Dropdown(label="Zone or building", choices=[], value=None)
                forecast_chart = gr.Plot(label="Next 7 days")
                peaks = gr.Dataframe(
                    label="Peak hours", interactive=False, headers=["rank", "timestamp", "expected_power_w"]
                )
            with gr.Tab("Models", id="models") as models_tab:
                champion = gr.Markdown()
                runs = gr.Dataframe(label="Training runs (MLflow)", interactive=False)
                retrain_button = gr.Button("Retrain on the latest readings (data scientists)")
                retrain_out = gr.Markdown()

        board = [
            headline, tiles, heat, profile, trend, invoices, lines, overtime, flagged, ranking,
            ranking_chart, hours_chart, alerts, zone_pick, zone_filter, invoice_pick, target,
            downloads, notes, period, uploads, changes,
        ]  # fmt: skip

        def show(result: service.Dashboard | None) -> list[Any]:
            if result is None:
                empty = gr.update()
                return [
                    gr.update(value="Nothing scored yet: upload readings on the *Upload* tab."),
                    *[empty] * 21,
                ]
            targets = [*result.zones, *(f"building:{b}" for b in result.buildings)]
            return [
                result.headline, result.tiles, result.energy_heatmap, result.profile, result.trend,
                result.invoices, result.lines, result.overtime_chart, result.cleaning,
                result.cleaning_ranking, result.cleaning_chart, result.cleaning_hours, result.alerts,
                gr.Dropdown(choices=result.zones, value=None),
                gr.Dropdown(choices=result.zones, value=None),
                gr.Dropdown(choices=result.invoice_ids, value=None),
                gr.Dropdown(choices=targets, value=None),
                [str(p) for p in result.downloads], result.notes,
                gr.Dropdown(choices=list(result.periods), value=result.period or None),
                result.uploads, result.changes,
            ]  # fmt: skip

        def on_load(request: gr.Request) -> list[Any]:
            return show(h.load(request))

        def on_upload(
            readings: str | None, contracts: str | None, request: gr.Request, progress: Any = gr.Progress()
        ) -> list[Any]:
            return show(h.upload(readings, contracts, request, progress))

        def on_period(month: str | None, request: gr.Request) -> list[Any]:
            return show(h.load(request, month))

        def on_invoice(invoice_id: str | None, month: str | None, request: gr.Request) -> Any:
            if not invoice_id:
                return gr.Dropdown(choices=[], value=None)
            return gr.Dropdown(choices=h.line_choices(invoice_id, request, month), value=None)

        def on_zone(zone_id: str | None, month: str | None, request: gr.Request) -> list[Any]:
            if not zone_id:
                return [gr.update()] * 4
            detail = h.zone(zone_id, request, month)
            return [detail.chart, detail.alerts, detail.history, detail.status]

        def on_forecast(choice: str | None, request: gr.Request) -> list[Any]:
            if not choice:
                return [gr.update()] * 2
            return list(h.forecast(choice, request))

        def on_models(request: gr.Request) -> list[Any]:
            return list(h.models(request))

        def on_retrain(request: gr.Request, progress: Any = gr.Progress()) -> str:
            return h.retrain(request, progress)

        live_parts = [live_status, live_floors, live_power, live_overtime, live_alerts, live_stale]
        live_timer = gr.Timer(REFRESH_SECONDS, active=False)  # ticks only while the Live tab is open

        def on_live(request: gr.Request) -> list[Any]:
            board = h.live(request)
            return [board.status, board.floors, board.power, board.overtime, board.alerts, board.stale]

        def on_live_open(request: gr.Request) -> list[Any]:
            return [*on_live(request), gr.Timer(active=True)]

        app.load(on_load, outputs=board)
        app.load(on_models, outputs=[champion, runs])
        score_button.click(on_upload, inputs=[readings_in, contracts_in], outputs=board)
        period.input(on_period, inputs=period, outputs=board)  # the user's choice, not a refresh
        for control in (invoice_pick, zone_filter, adjusted_only):
            control.change(h.lines, inputs=[invoice_pick, zone_filter, adjusted_only, period], outputs=lines)
        invoice_pick.change(on_invoice, inputs=[invoice_pick, period], outputs=line_pick)
        for button, decision in ((release_button, "release"), (waive_button, "waive"), (hold_button, "hold")):
            button.click(
                _decider(h, decision), inputs=[invoice_pick, line_pick, decision_note, period], outputs=lines
            ).then(on_invoice, inputs=[invoice_pick, period], outputs=line_pick)
        pdf_button.click(h.invoice_pdf, inputs=[invoice_pick, period], outputs=pdf_file)
        history_button.click(h.revisions, inputs=[invoice_pick, period], outputs=history)
        ack_button.click(h.acknowledge, inputs=[alert_id, note, period], outputs=alerts)
        resolve_button.click(h.resolve, inputs=[alert_id, note, period], outputs=alerts)
        zone_pick.change(
            on_zone, inputs=[zone_pick, period], outputs=[zone_chart, zone_alerts, zone_history, zone_status]
        )
        target.change(on_forecast, inputs=target, outputs=[forecast_chart, peaks])
        retrain_button.click(on_retrain, outputs=retrain_out).then(on_models, outputs=[champion, runs])
        live_tab.select(on_live_open, outputs=[*live_parts, live_timer])
        # a tick is dropped while the last refresh still runs; no spinner every few seconds
        live_timer.tick(on_live, outputs=live_parts, trigger_mode="once", show_progress="hidden")
        elsewhere = [overview_tab, upload_tab, billing_tab, cleaning_tab, maintenance_tab, forecast_tab]
        for tab in [*elsewhere, models_tab]:  # the Live tab left: its timer stops
            tab.select(lambda: gr.Timer(active=False), outputs=live_timer)
    return app


def launch(
    config: AppConfig, *, host: str, port: int, auth: Any, prevent_thread_lock: bool = False
) -> server.Running | None:
    """Serve the app at ``/`` and the HTTP ingest API under ``/api`` on http://HOST:PORT
    (:mod:`slem_ml.app.server`), until Ctrl-C or SIGTERM; with ``prevent_thread_lock`` in the background,
    returning the running server (``.url``, ``.close()``). ``auth``: Gradio's sign-in callable, or ``None``
    in the open local mode; the API signs in with its bearer tokens instead."""
    blocks = build_app(config)
    blocks.queue(default_concurrency_limit=4)
    app = gr.mount_gradio_app(
        server.api_app(config),  # the API's routes first: the app at "/" would answer every path
        blocks,
        path="/",
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message="Sign in with your slem account (an admin creates it with: slem users add).",
        max_file_size=f"{int(config.max_upload_mb)}mb",
        footer_links=[],
        app_kwargs={"openapi_url": None, "docs_url": None},  # no unauthenticated /openapi.json of the app
    )
    gradio_app: Any = next(route.app for route in app.routes if isinstance(route, Mount))

    def on_stop() -> None:  # end the pages' heartbeat streams, which a stopping server would wait for
        gradio_app.stop_event.set()

    if prevent_thread_lock:
        return server.serve_in_background(app, host=host, port=port, on_stop=on_stop)
    server.serve_forever(app, host=host, port=port, on_stop=on_stop)
    return None
