"""Periodic reports (SPEC §10): a scope's energy, money, alerts, forecast and savings opportunities over a
week, month or quarter, gathered from the store, rendered as HTML, PDF and XLSX, kept, scheduled and
mailed."""
