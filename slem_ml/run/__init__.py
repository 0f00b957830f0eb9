"""Jobs: a file in, everything written and stored — in one piece, in batches or on Dask (SPEC §6).

* :mod:`~slem_ml.run.pipeline` — :func:`~slem_ml.run.pipeline.score_file`, the whole ``slem score`` job;
* :mod:`~slem_ml.run.batches` and :mod:`~slem_ml.run.batched` — scoring in batches of zones, merged to the
  one-piece answer;
* :mod:`~slem_ml.run.train_job` — :func:`~slem_ml.run.train_job.train_file`, the whole training job.
"""
