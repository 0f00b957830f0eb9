"""The scoring core (STYLE: "one orchestrator"): validated readings and the site in, every output of
SPEC §7 out.

* :mod:`~slem_ml.scoring.score` — :func:`~slem_ml.scoring.score.score`, pure: no files, no database;
* :mod:`~slem_ml.scoring.result` — :class:`~slem_ml.scoring.result.ScoringResult`, frozen, and the scored
  readings in memory or as Parquet parts.

Running it on a file, in batches or on Dask, and writing and storing what it returns is
:mod:`slem_ml.run`'s job.
"""
