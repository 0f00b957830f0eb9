"""Imported by every Dask worker of slem's LocalCluster as it starts (``preload``): what unpickling the
models and scoring a batch need (LightGBM, scikit-learn, holidays, slem's scoring modules; about 1.5 s) loads
while the client is still starting up, not when the first batch arrives."""

import holidays  # noqa: F401
import lightgbm  # noqa: F401
import sklearn.ensemble  # noqa: F401

import slem_ml.io.reader
import slem_ml.models.anomaly
import slem_ml.models.inference
import slem_ml.outputs.writer
import slem_ml.run.batched
import slem_ml.run.batches
import slem_ml.scoring.score  # noqa: F401
