"""The manager app (issue 4, SPEC §6 ``slem serve``), in layers:

* :mod:`~slem_ml.app.workspace` — the app's configuration and where each run's files live; uploads;
* :mod:`~slem_ml.app.views` — the latest run as a signed-in user may see it;
* :mod:`~slem_ml.app.analysis` and :mod:`~slem_ml.app.charts` — findings and Plotly figures;
* :mod:`~slem_ml.app.service` — one function per user action (what the handlers call);
* :mod:`~slem_ml.app.server` — the one server of ``slem serve``: the HTTP ingest API under ``/api``, uvicorn;
* :mod:`~slem_ml.app.ui` — the Gradio page and its thin handlers, mounted at ``/`` of that server.

Only :mod:`~slem_ml.app.ui` imports Gradio.
"""
