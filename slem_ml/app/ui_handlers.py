"""The app's event handlers (Gradio): one method per user action, bound to an :class:`AppConfig`.

Every handler is a thin adapter: it calls exactly one function of :mod:`slem_ml.app.service` (the Billing
tab's: :mod:`slem_ml.app.invoicing`, the Live tab's: :mod:`slem_ml.app.live`) with the signed-in user's
name and turns a :class:`~slem_ml.errors.SlemError` into a message on screen. The page
(:mod:`slem_ml.app.ui`) wires them to its controls; tests call them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from slem_ml.app import invoicing, service
from slem_ml.app import maintenance as alerts
from slem_ml.app.live import LiveBoard, live_board
from slem_ml.app.workspace import AppConfig
from slem_ml.errors import SlemError

__all__ = ["Handlers", "decider"]


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

    def zone_choices(self, invoice_id: str | None, request: gr.Request, period: str | None = None) -> Any:
        return _shown(lambda: invoicing.zone_choices(self.config, self.user(request), invoice_id, period))

    def zone(self, zone_id: str | None, request: gr.Request, period: str | None = None) -> alerts.ZoneDetail:
        return _shown(lambda: alerts.zone_detail(self.config, self.user(request), zone_id, period))

    def acknowledge(
        self, alert_id: str | None, note: str, request: gr.Request, period: str | None = None
    ) -> Any:
        return _shown(lambda: alerts.acknowledge(self.config, self.user(request), alert_id, note, period))

    def resolve(self, alert_id: str | None, note: str, request: gr.Request, period: str | None = None) -> Any:
        return _shown(lambda: alerts.resolve(self.config, self.user(request), alert_id, note, period))

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


def decider(h: Handlers, decision: str) -> Callable[..., Any]:
    """A click handler for one decision button (Gradio injects the request by its annotation)."""

    def decide(
        invoice_id: str | None, line: str | None, note: str, period: str | None, request: gr.Request
    ) -> Any:
        return h.decide(decision, invoice_id, line, note, request, period)

    return decide
