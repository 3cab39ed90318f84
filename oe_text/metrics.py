"""OOD detection metrics: pure functions of scores. OOD is the positive class; higher score = more anomalous."""

from __future__ import annotations

import numpy as np


def threshold_at_tpr(id_scores, tpr: float = 0.95) -> float:
    """Decision threshold that keeps a fraction `tpr` of in-distribution inputs.

    Here the *in-distribution* true-positive rate is meant (the deployment view: "keep 95% of in-distribution
    inputs"). An input is flagged OOD when `score > threshold`; the threshold is the smallest value such that at most
    `ceil((1 - tpr) * n)` in-distribution scores exceed it, so the flagged fraction equals `1 - tpr` within one example.

    Args:
        id_scores (array of shape `(n,)`): OOD scores of in-distribution validation inputs (higher = more anomalous).
        tpr (`float`, *optional*, defaults to 0.95): fraction of in-distribution inputs to keep, in `(0, 1]`.

    Returns:
        `float`: the threshold.
    """
    scores = np.asarray(id_scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("`id_scores` is empty: calibrating a threshold needs in-distribution scores.")
    if not np.isfinite(scores).all():
        raise ValueError("`id_scores` contains NaN or inf.")
    if not 0 < tpr <= 1:
        raise ValueError(f"`tpr` must be in (0, 1], got {tpr}.")
    n = scores.size
    n_flag = int(np.floor((1 - tpr) * n + 1e-9))
    ordered = np.sort(scores)
    # Flag the n_flag highest: threshold is the (n - n_flag)-th smallest score; ties may flag fewer.
    return float(ordered[n - n_flag - 1])
