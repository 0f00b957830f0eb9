"""slem — Smart Light & Energy Management.

Turns zone lighting-power readings into supplementary overtime invoices, cleaning-waste findings and
(from the models layer) maintenance alerts and forecasts. The public entry points are
:func:`slem_ml.io.reader.read_readings`, :func:`slem_ml.config.load_site` and
:func:`slem_ml.scoring.score.score`; docs/architecture.md maps the rest.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
