"""The learnt part of slem (SPEC §5): forecasts, detectors, the session classifier, training and the registry.

Estimators follow the scikit-learn contract (:mod:`~slem_ml.models.forecaster`,
:mod:`~slem_ml.models.anomaly`, :mod:`~slem_ml.models.drift`, :mod:`~slem_ml.models.session_classifier`);
:mod:`~slem_ml.models.inference` applies them while scoring; :mod:`~slem_ml.models.training` fits them
(no MLflow); :mod:`~slem_ml.models.registry` loads the champion and :mod:`~slem_ml.models.tracking` logs
training runs — the only MLflow code. Importing this package imports none of the heavy libraries.
"""
