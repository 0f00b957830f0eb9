"""The session classifier (SPEC §4, §5): which after-hours light is a cleaning crew, which is tenant overtime.

Used where the input has no ``cleaning_staff`` column. The unit classified is a *segment*
(:mod:`slem_ml.models.segments`): a maximal run of consecutive lit readings of one zone outside its client's
contract window, cut where the power level steps. Each segment gets features that tell the two apart
(:data:`~slem_ml.models.segments.FEATURES`):

* how bright it is against the zone's own contract-hours light (crews switch every fixture on; a tenant
  staying late often lights part of the zone) and against the light just before and after it;
* when it starts after the client's closing and ends before the next opening, on what kind of day;
* what the other zones of the building do around it: a crew walks zone after zone, so one zone goes dark as
  the next lights up and few zones are lit at once, whereas the zones of a tenant's office start their
  overtime together at closing.

A LightGBM classifier learns from readings whose flag is true (the generator's, the legacy export's).
Every reading takes the class of its segment, so an inferred cleaning session never splits mid-run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import CLEANING, compute_coverage
from slem_ml.billing.sessions import find_runs
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.models.segments import FEATURES, Segments, after_hours_segments

__all__ = ["SessionClassifier", "cleaning_match_scores", "rule_cleaning"]


class SessionClassifier:
    """Cleaning crew or tenant overtime, per after-hours segment (scikit-learn contract).

    Parameters
    ----------
    step_log_ratio, join_gap_minutes : how readings form segments; see :func:`after_hours_segments`.
    threshold : probability of cleaning at or above which a segment is called cleaning.
    max_cleaning_hours : a segment lit longer than this is never cleaning [h]. Trees do not extrapolate: a
        lit weekend would otherwise look like the longest crews of the training data. Lights on for more
        than 12 h outside contracted hours are SPEC §5's ``stuck_on`` instead.
    n_estimators, learning_rate, num_leaves, min_child_samples : LightGBM settings.
    random_state : seed of the model.

    :meth:`predict_segments` scores each segment with ``p_cleaning``: higher = more likely a crew.
    """

    def __init__(
        self,
        *,
        step_log_ratio: float = 0.1,
        join_gap_minutes: int = 180,
        threshold: float = 0.5,
        max_cleaning_hours: float = 12.0,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 10,
        random_state: int = 0,
    ) -> None:
        self.step_log_ratio = step_log_ratio
        self.join_gap_minutes = join_gap_minutes
        self.threshold = threshold
        self.max_cleaning_hours = max_cleaning_hours
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters (scikit-learn convention)."""
        return {
            "step_log_ratio": self.step_log_ratio,
            "join_gap_minutes": self.join_gap_minutes,
            "threshold": self.threshold,
            "max_cleaning_hours": self.max_cleaning_hours,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "random_state": self.random_state,
        }

    def fit(self, frame: pd.DataFrame, site: SiteConfig) -> SessionClassifier:
        """Learn from validated readings whose ``cleaning_staff`` column is true information.

        A segment is cleaning when most of its readings say so. Raises ``ValueError`` when the frame has
        no after-hours segments of one of the two kinds.
        """
        import lightgbm as lgb  # lazy: 1 s of import time

        segments = self._segments(frame, site)
        flag = frame[S.CLEANING_STAFF].to_numpy(dtype=bool)[segments.rows]
        n = len(segments.table)
        share = np.bincount(segments.segment, weights=flag, minlength=n) / np.maximum(
            np.bincount(segments.segment, minlength=n), 1
        )
        y = share >= 0.5
        if y.all() or not y.any():
            raise ValueError(
                "the session classifier needs after-hours sessions of both cleaning crews and tenants "
                f"to learn from; this data has {int(y.sum())} cleaning and {int((~y).sum())} tenant ones"
            )
        self.features_ = list(FEATURES)
        self.model_ = lgb.LGBMClassifier(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.9,
            random_state=self.random_state,
            n_jobs=1,
            verbose=-1,
        ).fit(segments.table[self.features_], y)
        self.n_segments_ = n
        self.cleaning_share_ = float(y.mean())
        return self

    def predict_segments(self, frame: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
        """One row per after-hours segment: ``zone_id, start, end, readings``, the features, ``p_cleaning``
        (the model's probability: higher = more likely a crew) and ``is_cleaning`` (``p_cleaning`` at or
        above ``threshold`` and lit no longer than ``max_cleaning_hours``). For explanations and review."""
        self._check_fitted()
        segments = self._segments(frame, site)
        return self._scored(segments)

    def predict_cleaning(self, frame: pd.DataFrame, site: SiteConfig) -> np.ndarray:
        """The inferred ``cleaning_staff`` flag, one bool per row of ``frame``.

        Only lit readings outside the contract window can be cleaning (SPEC §3.3); each takes the class of
        its segment.
        """
        self._check_fitted()
        segments = self._segments(frame, site)
        out = np.zeros(len(frame), dtype=bool)
        if len(segments.rows):
            cleaning = self._scored(segments)["is_cleaning"].to_numpy(dtype=bool)
            out[segments.rows] = cleaning[segments.segment]
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError  # lazy: scikit-learn only when it is needed

            raise NotFittedError("this SessionClassifier is not fitted yet: call fit(frame, site) first")

    def _segments(self, frame: pd.DataFrame, site: SiteConfig) -> Segments:
        return after_hours_segments(
            frame, site, step_log_ratio=self.step_log_ratio, join_gap_minutes=self.join_gap_minutes
        )

    def _scored(self, segments: Segments) -> pd.DataFrame:
        table = segments.table
        p = np.asarray(self.model_.predict_proba(table[self.features_]))[:, 1] if len(table) else np.zeros(0)
        short = table["duration_h"].to_numpy() <= self.max_cleaning_hours
        return table.assign(p_cleaning=p, is_cleaning=(p >= self.threshold) & short)


def rule_cleaning(frame: pd.DataFrame, site: SiteConfig, *, min_level: float = 0.85) -> np.ndarray:
    """A hand-set baseline for the classifier: an after-hours segment at ``min_level`` or more of the zone's
    contract-hours light that does not carry on from the working day is cleaning. One bool per row."""
    segments = after_hours_segments(frame, site)
    table = segments.table
    cleaning = (table["level"].to_numpy() >= min_level) & (table["before_kind"].to_numpy() != 1)
    out = np.zeros(len(frame), dtype=bool)
    out[segments.rows] = cleaning[segments.segment]
    return out


def cleaning_match_scores(
    frame: pd.DataFrame, inferred: np.ndarray, site: SiteConfig, *, min_overlap: float = 0.5
) -> dict[str, float]:
    """Precision, recall and F1 of an inferred cleaning flag against the frame's true ``cleaning_staff``.

    Per session (cleaning sessions of SPEC §4 computed once with each flag): a true session is found when
    one inferred session of its zone covers at least ``min_overlap`` of its duration; an inferred session
    is right when one true session covers that share of it. Per reading: the flags themselves. A share of
    nothing is 1 (nothing to find: all found), so finding nothing scores precision 1, recall 0 and F1 0.
    """
    truth = frame[S.CLEANING_STAFF].to_numpy(dtype=bool)
    inferred = np.asarray(inferred, dtype=bool)
    true_s = _sessions(frame, site)
    pred_s = _sessions(frame.assign(**{S.CLEANING_STAFF: inferred}), site)
    recall = _found_share(true_s, pred_s, min_overlap)
    precision = _found_share(pred_s, true_s, min_overlap)
    hits = int((truth & inferred).sum())
    r_precision = hits / int(inferred.sum()) if inferred.any() else 1.0
    r_recall = hits / int(truth.sum()) if truth.any() else 1.0
    return {
        "session_precision": precision,
        "session_recall": recall,
        "session_f1": _f1(precision, recall),
        "reading_precision": r_precision,
        "reading_recall": r_recall,
        "reading_f1": _f1(r_precision, r_recall),
        "true_sessions": float(len(true_s[0])),
        "inferred_sessions": float(len(pred_s[0])),
    }


# --- helpers ----------------------------------------------------------------------------------------


def _sessions(frame: pd.DataFrame, site: SiteConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cleaning sessions (SPEC §4) of a frame as (zone code, start ms, end ms), by zone and start."""
    coverage = compute_coverage(frame, site)
    pieces = coverage.pieces
    zone = frame[S.ZONE_ID].cat.codes.to_numpy().astype(np.int64)
    runs = find_runs(pieces, pieces.usage == CLEANING, zone[pieces.reading])
    return zone[runs.reading], runs.start_ms, runs.end_ms


def _found_share(
    wanted: tuple[np.ndarray, np.ndarray, np.ndarray],
    found: tuple[np.ndarray, np.ndarray, np.ndarray],
    min_overlap: float,
) -> float:
    """Share of ``wanted`` sessions that one ``found`` session of their zone overlaps by ``min_overlap``."""
    w_zone, w_start, w_end = wanted
    f_zone, f_start, f_end = found
    if len(w_zone) == 0:
        return 1.0
    if len(f_zone) == 0:
        return 0.0
    # Sessions of a zone are disjoint and ordered, so the candidates of each wanted one are contiguous.
    base = min(int(w_start.min()), int(f_start.min()))
    f_start_key, f_end_key = (
        f_zone * S.GROUP_SPAN_MS + (f_start - base),
        f_zone * S.GROUP_SPAN_MS + (f_end - base),
    )
    lo = np.searchsorted(f_end_key, w_zone * S.GROUP_SPAN_MS + (w_start - base), side="right")
    hi = np.searchsorted(f_start_key, w_zone * S.GROUP_SPAN_MS + (w_end - base), side="left")
    count = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(w_zone)), count)
    candidate = np.repeat(lo, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    overlap = np.minimum(w_end[owner], f_end[candidate]) - np.maximum(w_start[owner], f_start[candidate])
    best = np.zeros(len(w_zone))
    np.maximum.at(best, owner, overlap)
    return float(np.mean(best >= min_overlap * (w_end - w_start)))


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
