"""Imported by every Dask worker of slem's LocalCluster as it starts (``preload``): what unpickling the
models and scoring a batch need (LightGBM, scikit-learn, holidays, slem's engine; about 1.5 s) loads while
the client is still starting up, not when the first batch arrives."""

import holidays  # noqa: F401
import lightgbm  # noqa: F401
import sklearn.ensemble  # noqa: F401

import slem_ml.anomaly
import slem_ml.batches
import slem_ml.engine
import slem_ml.inference
import slem_ml.outputs
import slem_ml.reader
import slem_ml.scoring  # noqa: F401
