"""Whether a retrained forecaster replaces the champion, judged on weeks neither was trained on (issue 16).

A model scored on the hours it learnt from looks better than it is; comparing the champion on its own
training weeks kept it forever. :func:`judge` compares the two honestly, in one of two ways:

* **unseen weeks** — the new run's backtest forecasts come from fold models fitted only on the hours
  before each fold (:mod:`slem_ml.models.backtest`). The hours among them after the champion's
  ``trained_to`` were seen by neither model: when they span at least ``min_days`` days, both are scored on
  exactly those zone-hours, the champion as it is;
* **the champion's recipe** — otherwise (a retrain on the same or barely newer readings) the champion's own
  settings (``forecaster_params`` of its manifest) are fitted on the new run's backtest folds, so both
  recipes learn from the same hours and are scored on the same unseen weeks.

The new model is promoted when its WAPE is lower; on a tie (within ``TIE`` relative) it is promoted only
when it learnt from newer readings than the champion (the same recipe, more recent data).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from slem_ml.io import schema as S
from slem_ml.models.backtest import backtest
from slem_ml.models.bundle import ModelBundle
from slem_ml.models.metrics import wape
from slem_ml.models.training import TrainingRun

__all__ = ["MIN_UNSEEN_DAYS", "TIE", "Verdict", "judge"]

MIN_UNSEEN_DAYS = 7  # [days] of hours neither model saw, for the champion to be scored as it is
TIE = 0.005  # relative WAPE difference below which the two are even


@dataclass(frozen=True)
class Verdict:
    """Whether the new model becomes champion, why (one sentence), and the figures behind it."""

    promoted: bool
    reason: str
    metrics: dict[str, float]


def judge(run: TrainingRun, champion: ModelBundle | None) -> Verdict:
    """The verdict on ``run``'s forecaster against ``champion`` (``None``: there is none yet)."""
    forecasts = run.backtest.forecasts
    new_all = run.backtest.metrics["model_wape"]
    if champion is None:
        first = f"first model: becomes champion (backtest WAPE {new_all:.3f})"
        return Verdict(True, first, {"new_model_wape": new_all})
    trained_to = _instant(champion.manifest.get("trained_to"))
    unseen = forecasts if trained_to is None else forecasts[forecasts["hour_start"] > trained_to]
    days = unseen["hour_start"].dt.floor("D").nunique() if len(unseen) else 0
    if days >= MIN_UNSEEN_DAYS:
        keys = unseen[[S.ZONE_ID, "hour_start"]]
        rows = run.hours.merge(keys, on=[S.ZONE_ID, "hour_start"])
        rows = rows.merge(unseen[[S.ZONE_ID, "hour_start", S.EXPECTED_POWER_W]], on=[S.ZONE_ID, "hour_start"])
        actual = rows[S.POWER_W].to_numpy(dtype=float)
        new = wape(actual, rows[S.EXPECTED_POWER_W].to_numpy(dtype=float))
        predicted = champion.forecaster.predict(rows.drop(columns=[S.EXPECTED_POWER_W]))
        old = wape(actual, predicted[S.EXPECTED_POWER_W].to_numpy(dtype=float))
        how = f"on the {days} days after the champion's training data, which neither model saw"
        method = "unseen"
    else:
        params = dict(champion.manifest.get("forecaster_params") or {})
        recipe = backtest(run.hours, params, days=_backtest_days(run))[0]
        new, old = new_all, recipe.metrics["model_wape"]
        how = (
            f"with the champion's settings refitted on the same backtest weeks (only {days} days of these "
            "readings are newer than the champion's)"
        )
        method = "recipe"
    metrics = {"new_model_wape": new, "champion_model_wape": old, f"promotion_{method}": 1.0}
    newer = trained_to is None or _instant(run.bundle.manifest.get("trained_to")) > trained_to
    if new < old * (1 - TIE):
        return Verdict(True, f"new WAPE {new:.3f} < champion {old:.3f} {how}", metrics)
    if new <= old * (1 + TIE) and newer:
        even = f"new WAPE {new:.3f} ≈ champion {old:.3f} {how}; the new one knows newer readings"
        return Verdict(True, even, metrics)
    return Verdict(False, f"kept the champion: new WAPE {new:.3f} vs champion {old:.3f} {how}", metrics)


def _instant(text: object) -> pd.Timestamp | None:
    if not text:
        return None
    stamp = pd.Timestamp(str(text))
    return stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp.tz_localize("UTC")


def _backtest_days(run: TrainingRun) -> int:
    """The backtest span [days] of ``run``: its forecasts' distinct UTC days (a fold's 7 local days may touch
    8), rounded to whole weeks."""
    days = int(run.backtest.forecasts["hour_start"].dt.floor("D").nunique())
    return max(7, round(days / 7) * 7)
